from __future__ import annotations

import re

from django import template
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

register = template.Library()


@register.filter
def highlight(text: str, query: str) -> SafeString:
    """Escape `text`, then wrap each word of `query` it contains in <mark>."""
    escaped = escape(text or "")
    words = sorted({w for w in (query or "").split() if len(w) > 1}, key=len, reverse=True)
    if not words:
        return mark_safe(escaped)  # noqa: S308 - escaped above
    pattern = re.compile("|".join(re.escape(escape(w)) for w in words), re.IGNORECASE)
    return mark_safe(pattern.sub(lambda m: f"<mark>{m.group(0)}</mark>", escaped))  # noqa: S308 - escaped above


@register.filter
def short_digest(digest: str) -> str:
    return digest.split(":", 1)[-1][:12] if digest else ""


@register.filter
def ago(moment) -> str:
    """ "just now", "5 minutes ago", "2 days ago": how long since `moment`, in words."""
    if not moment:
        return ""
    from django.utils import timezone
    from django.utils.timesince import timesince

    if (timezone.now() - moment).total_seconds() < 60:
        return "just now"
    return f"{timesince(moment)} ago"


# --- avatars: initials on a colour from the name, drawn here (no third-party image service) ---

_AVATAR_COLOURS = ["#0b5cc7", "#1a7f37", "#8250df", "#bf3989", "#b35900", "#0a7e8c", "#6e7781", "#cf222e"]


@register.simple_tag
def avatar(user_or_name, size: int = 32) -> SafeString:
    """An avatar for a user (or a name): their initials on a colour derived from the name."""
    import hashlib

    name = getattr(user_or_name, "username", None) or str(user_or_name or "?")
    label = getattr(user_or_name, "full_name", "") or name
    words = [w for w in re.split(r"[\s._+-]+", label) if w]
    initials = "".join(w[0] for w in words[:2]).upper() or "?"
    colour = _AVATAR_COLOURS[hashlib.sha256(name.encode()).digest()[0] % len(_AVATAR_COLOURS)]
    font = round(size * (0.42 if len(initials) > 1 else 0.5))
    return mark_safe(  # noqa: S308 - every value is escaped
        f'<svg class="avatar" width="{int(size)}" height="{int(size)}" viewBox="0 0 {int(size)} {int(size)}" '
        f'role="img" aria-label="{escape(name)}"><circle cx="{size / 2}" cy="{size / 2}" r="{size / 2}" '
        f'fill="{colour}"/><text x="50%" y="50%" dy=".35em" text-anchor="middle" fill="#fff" '
        f'font-size="{font}" font-family="system-ui, sans-serif" font-weight="600">{escape(initials)}</text></svg>'
    )


# --- the activity feed, in words -------------------------------------------------------------


def _repo_link(full_name: str) -> str:
    from django.urls import NoReverseMatch, reverse

    namespace, _, name = full_name.partition("/")
    try:
        url = reverse("repository", kwargs={"namespace": namespace, "name": name})
    except NoReverseMatch:
        return escape(full_name)
    return f'<a href="{escape(url)}">{escape(full_name)}</a>'


def _tag_link(full_name: str, tag: str) -> str:
    from django.urls import NoReverseMatch, reverse

    namespace, _, name = full_name.partition("/")
    try:
        url = reverse("repository-tags", kwargs={"namespace": namespace, "name": name}) + f"?name={tag}"
    except NoReverseMatch:
        return f"<code>{escape(tag)}</code>"
    return f'<a href="{escape(url)}"><code>{escape(tag)}</code></a>'


def _tags(tags) -> str:
    tags = [str(t) for t in tags or []]
    shown = ", ".join(f"<code>{escape(t)}</code>" for t in tags[:5])
    more = f" and {len(tags) - 5} more" if len(tags) > 5 else ""
    return f"{'tag' if len(tags) == 1 else 'tags'} {shown}{more}"


def describe(event) -> str:
    """One audit row as a sentence with links: "alice pushed 1.2.0 to acme/api"."""
    who = f"<strong>{escape(event.actor_name or 'the registry')}</strong>"
    data = event.data or {}
    repo = event.repository or ""
    action = event.action
    target = escape(event.target_name)
    if action == "tag.push":
        tag = event.target_name.rsplit(":", 1)[-1]
        return f"{who} pushed {_tag_link(repo, tag)} to {_repo_link(repo)}"
    if action == "tag.delete":
        return f"{who} deleted {_tags(data.get('tags'))} of {_repo_link(repo or event.target_name.split('@')[0])}"
    if action == "repository.create":
        visibility = data.get("visibility", "")
        return f"{who} created {_repo_link(repo)}" + (f" ({escape(visibility)})" if visibility else "")
    if action == "repository.update":
        if "visibility" in data:
            return f"{who} made {_repo_link(repo)} {escape(data['visibility'].get('after', ''))}"
        return f"{who} edited the description of {_repo_link(repo)}"
    if action == "repository.delete":
        return f"{who} deleted the repository {escape(event.target_name)}"
    if action == "grant.set":
        return (
            f"{who} gave {escape(data.get('holder', ''))} {escape(data.get('level', ''))} access to {_repo_link(repo)}"
        )
    if action == "grant.delete":
        return f"{who} removed the access of {escape(data.get('holder', ''))} to {_repo_link(repo)}"
    if action.startswith("webhook."):
        verb = {"create": "added", "update": "changed", "delete": "removed", "redeliver": "redelivered to"}.get(
            action.split(".", 1)[1], "changed"
        )
        return f"{who} {verb} the webhook {target}"
    if action in ("membership.add", "membership.change"):
        member = escape(event.target_name.split(" in ")[0])
        return f"{who} made {member} {escape(data.get('role', 'a member'))} of {escape(event.namespace)}"
    if action == "membership.remove":
        return f"{who} removed {escape(data.get('user', ''))} from {escape(event.namespace)}"
    if action == "team.create":
        return f"{who} created the team {target}"
    if action == "team.delete":
        return f"{who} deleted the team {target}"
    if action == "team.member_add":
        return f"{who} added {escape(data.get('user', ''))} to the team {target}"
    if action == "team.member_remove":
        return f"{who} removed {escape(data.get('user', ''))} from the team {target}"
    if action == "access_rule.create":
        pattern = f"<code>{escape(data.get('pattern', ''))}</code>"
        return f"{who} gave {escape(data.get('holder', ''))} {escape(data.get('level', ''))} on {pattern}"
    if action == "access_rule.delete":
        return (
            f"{who} removed the rule <code>{escape(data.get('pattern', ''))}</code> of {escape(data.get('holder', ''))}"
        )
    if action == "robot.create":
        return f"{who} created the robot {target}"
    if action == "robot.rotate":
        return f"{who} gave the robot {target} a new secret"
    if action == "robot.delete":
        return f"{who} deleted the robot {target}"
    if action in ("signing_key.add", "signing_key.delete"):
        key = escape(event.target_name.split(":", 1)[-1])
        verb = "trusted" if action == "signing_key.add" else "stopped trusting"
        return f"{who} {verb} the signing key {key} for {escape(event.namespace)}"
    if action in ("immutable_rule.add", "immutable_rule.delete"):
        pattern = f"<code>{escape(data.get('pattern', ''))}</code>"
        where = f"<code>{escape(data.get('repository', '*'))}</code>"
        if action == "immutable_rule.add":
            return f"{who} made tags {pattern} immutable in {where}"
        return f"{who} made tags {pattern} in {where} mutable again"
    if action in ("retention_rule.add", "retention_rule.change", "retention_rule.delete"):
        verb = {"retention_rule.add": "added", "retention_rule.change": "changed", "retention_rule.delete": "removed"}
        return f"{who} {verb[action]} the retention rule {escape(event.target_name.split('/', 1)[-1])}"
    if action == "retention.run":
        return (
            f"{who} applied the retention rules of {escape(event.namespace)}: {int(data.get('tags', 0))} tag(s) removed"
        )
    if action == "quota.set":
        from repositories.storage import describe_bytes

        after = data.get("after")
        limit = "no quota" if after is None else f"a quota of {escape(describe_bytes(int(after)))}"
        return f"{who} gave {escape(event.namespace)} {limit}"
    if action == "organization.create":
        return f"{who} created the organization {escape(event.namespace)}"
    if action == "organization.update":
        return f"{who} changed the settings of {escape(event.namespace)}"
    return f"{who} {escape(action.replace('.', ' ').replace('_', ' '))} {target}"


@register.filter(name="describe")
def describe_filter(event) -> SafeString:
    return mark_safe(describe(event))  # noqa: S308 - every value is escaped in describe()


# --- messages shown where they belong: a settings section's result at the top of the section ---


def _section_of(message) -> str:
    for tag in (message.extra_tags or "").split():
        if tag.startswith("section-"):
            return tag.removeprefix("section-")
    return ""


@register.filter
def outside_sections(messages) -> list:
    return [m for m in messages if not _section_of(m)]


@register.filter
def in_section(messages, section: str) -> list:
    return [m for m in messages if _section_of(m) == section]


@register.filter
def get_item(mapping, key):
    """`mapping|get_item:key`: a dictionary's value, or None."""
    return mapping.get(key) if isinstance(mapping, dict) else None


@register.filter
def binary_size(value) -> str:
    """Bytes as 1.5 GiB (binary units, as quotas are set)."""
    from repositories.storage import describe_bytes

    try:
        return describe_bytes(int(value))
    except (TypeError, ValueError):
        return ""
