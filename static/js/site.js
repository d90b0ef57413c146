// Copy buttons: data-copy="#input-id" copies that field, data-copy-text copies the text itself.
document.addEventListener("click", async (event) => {
  const button = event.target.closest("button.copy");
  if (!button) return;
  const source = button.dataset.copy ? document.querySelector(button.dataset.copy) : null;
  const text = source ? source.value : button.dataset.copyText;
  try {
    await navigator.clipboard.writeText(text);
  } catch {
    if (source) { source.select(); document.execCommand("copy"); }
  }
  const label = button.textContent;
  button.textContent = "Copied";
  setTimeout(() => { button.textContent = label; }, 1500);
});
