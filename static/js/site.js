// Copy buttons: data-copy="#input" copies a field, data-copy-from="#code" an element's text,
// data-copy-text the attribute itself.
document.addEventListener("click", async (event) => {
  const button = event.target.closest("button.copy");
  if (!button) return;
  let text = button.dataset.copyText;
  let source = null;
  if (button.dataset.copy) { source = document.querySelector(button.dataset.copy); text = source.value; }
  if (button.dataset.copyFrom) { text = document.querySelector(button.dataset.copyFrom).textContent; }
  try {
    await navigator.clipboard.writeText(text);
  } catch {
    if (source) { source.select(); document.execCommand("copy"); }
  }
  const label = button.textContent;
  button.textContent = "Copied";
  setTimeout(() => { button.textContent = label; }, 1500);
});

// Downloads made in the page (a one-time secret never goes back to the server).
document.addEventListener("click", (event) => {
  const button = event.target.closest("button[data-download]");
  if (!button) return;
  const text = document.querySelector(button.dataset.download).textContent;
  const link = document.createElement("a");
  link.href = URL.createObjectURL(new Blob([text], { type: "application/yaml" }));
  link.download = button.dataset.filename;
  document.body.appendChild(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(link.href), 1000);
});

// Destructive actions ask first: <form data-confirm="What will happen."> (or a button with it).
document.addEventListener("submit", (event) => {
  const form = event.target;
  const submitter = event.submitter;
  const message = (submitter && submitter.dataset.confirm) || form.dataset.confirm;
  if (message && !window.confirm(message)) event.preventDefault();
});

// One-time secrets open as modal dialogs that stay until dismissed. The page that shows one
// answers the POST that made it: it becomes a plain GET in the history, so reloading it does
// not send the form again (a second token, robot or webhook, or a rotated secret rotated again).
document.addEventListener("DOMContentLoaded", () => {
  for (const dialog of document.querySelectorAll("dialog[data-open-modal]")) {
    if (!dialog.open) dialog.showModal();
    dialog.addEventListener("cancel", (event) => event.preventDefault()); // Esc does not lose it
    history.replaceState(null, "", location.href);
  }
});
