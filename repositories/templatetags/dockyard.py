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
