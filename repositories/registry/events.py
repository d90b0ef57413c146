"""Parse the registry's notification envelopes (docs/notifications.md). No ORM here.

The endpoint must answer 2xx to anything the authenticated registry sends (it retries anything
else forever and stalls its queue), so parsing never raises for a single bad event: it returns
the event with a `problem` that the caller stores as quarantined.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any

from django.utils.dateparse import parse_datetime

ENVELOPE_MEDIA_TYPE = "application/vnd.docker.distribution.events.v1+json"
MAX_ENVELOPE_BYTES = 1024 * 1024
# distribution's grammars (repositories.models keeps the same, for the ORM): a tag, a repository
# name (path components; 255 characters at most) and a digest (sha256: 64 hex digits).
TAG_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*"
REPOSITORY_RE = re.compile(rf"^{COMPONENT}(?:/{COMPONENT})*$")
DIGEST_RE = re.compile(r"^(?:sha256:[0-9a-f]{64}|sha512:[0-9a-f]{128})$")


class EnvelopeError(ValueError):
    """The body is not an envelope at all (not JSON, no `events` list)."""


@dataclass
class ParsedEvent:
    event_id: str
    action: str
    repository: str
    tag: str
    digest: str
    media_type: str
    actor: str
    timestamp: dt.datetime | None
    payload: dict[str, Any]
    problem: str = ""
    method: str = ""  # the HTTP method of the request that caused it (a HEAD is no pull)
    instance_id: str = ""  # the registry process that sent it (source.instanceID)
    source_addr: str = ""


def parse_envelope(body: bytes) -> list[ParsedEvent]:
    if len(body) > MAX_ENVELOPE_BYTES:
        raise EnvelopeError("envelope is larger than 1 MiB")
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise EnvelopeError(f"envelope is not JSON: {exc}") from None
    except RecursionError:
        raise EnvelopeError("envelope is nested too deeply") from None
    if not isinstance(data, dict) or not isinstance(data.get("events"), list):
        raise EnvelopeError("envelope has no events list")
    return [parse_event(item) for item in data["events"]]


def parse_event(item: Any) -> ParsedEvent:
    if not isinstance(item, dict):
        return _bad(item, "event is not a JSON object")
    event_id = item.get("id")
    target = item.get("target") if isinstance(item.get("target"), dict) else {}
    actor = item.get("actor") if isinstance(item.get("actor"), dict) else {}
    timestamp = _timestamp(item.get("timestamp"))
    request = item.get("request") if isinstance(item.get("request"), dict) else {}
    source = item.get("source") if isinstance(item.get("source"), dict) else {}
    parsed = ParsedEvent(
        event_id=str(event_id)[:100] if event_id else "",
        action=_s(item.get("action"), 20),
        repository=_s(target.get("repository"), 255),
        tag=_s(target.get("tag"), 128),
        digest=_s(target.get("digest"), 150),
        media_type=_s(target.get("mediaType"), 100),
        actor=_s(actor.get("name"), 150),
        timestamp=timestamp,
        payload=item,
        method=_s(request.get("method"), 10).upper(),
        instance_id=_s(source.get("instanceID"), 100),
        source_addr=_s(source.get("addr"), 255),
    )
    if not parsed.event_id:
        parsed.event_id = _synthetic_id(item)
        parsed.problem = "event has no id"
    elif parsed.action not in ("push", "pull", "delete", "mount"):
        parsed.problem = f"unknown action {parsed.action!r}"
    elif not parsed.repository:
        parsed.problem = "event has no target repository"
    elif len(str(target.get("repository"))) > 255 or not REPOSITORY_RE.match(parsed.repository):
        parsed.problem = f"invalid repository name {parsed.repository[:60]!r}"
    elif parsed.action in ("push", "pull") and not parsed.digest:
        parsed.problem = "event has no target digest"
    elif parsed.digest and not DIGEST_RE.match(parsed.digest):
        parsed.problem = f"invalid digest {parsed.digest[:80]!r}"
    elif timestamp is None:
        parsed.problem = "event has no valid timestamp"
    elif parsed.tag and not TAG_RE.match(parsed.tag):
        parsed.problem = f"invalid tag {parsed.tag[:60]!r}"
    return parsed


def _timestamp(value: Any) -> dt.datetime | None:
    """An aware UTC datetime, or None for anything unreadable or out of range (year 1 with a
    positive offset overflows when converted to UTC)."""
    if not isinstance(value, str):
        return None
    try:
        parsed = parse_datetime(value)
        if parsed is None or parsed.tzinfo is None:
            return None
        return parsed.astimezone(dt.UTC)
    except (ValueError, OverflowError):
        return None


def _bad(item: Any, problem: str) -> ParsedEvent:
    return ParsedEvent(_synthetic_id(item), "", "", "", "", "", "", None, {"raw": item}, problem)


def _synthetic_id(item: Any) -> str:
    # The same malformed event sent twice gets the same id, so it is stored once.
    return "invalid-" + hashlib.sha256(json.dumps(item, sort_keys=True, default=str).encode()).hexdigest()[:40]


def _s(value: Any, limit: int) -> str:
    return value[:limit] if isinstance(value, str) else ""
