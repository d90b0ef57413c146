"""Storage used per repository and per namespace, and namespace quotas (issue 16, item 3).

A namespace's usage counts each blob (layer or config) once, however many of its repositories
and images share it: that is what the registry stores. (Manifests themselves, a few KB each,
are not counted.) Usage is computed from the portal's picture of the registry, after the sync
applies pushes and deletes, and read by the front before an upload starts: a quota bites within
seconds of being crossed, not in the middle of an upload.
"""

from __future__ import annotations

import logging
from collections import defaultdict

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from accounts.models import Namespace
from audit.services import audit_record
from repositories.models import Manifest, NamespaceStorage

log = logging.getLogger(__name__)
WARNING_RATIO = 0.8
REFRESH_DELAY_SECONDS = 5


BLOB_FIELDS = ("digest", "media_type", "config_digest", "total_size", "details")


def manifest_blobs(digest: str, media_type: str, config_digest: str, total_size: int, details) -> dict[str, int]:
    """{blob digest: size} a manifest references (its layers and config; an index: none)."""
    layers = details.get("layers") if isinstance(details, dict) else None
    blobs: dict[str, int] = {}
    if isinstance(layers, list) and (layers or config_digest):
        for layer in layers:
            if isinstance(layer, dict) and isinstance(layer.get("digest"), str):
                blobs[layer["digest"]] = max(int(layer.get("size") or 0), 0)
        if config_digest:
            blobs[config_digest] = max(total_size - sum(blobs.values()), 0)
    elif "index" not in media_type and "list" not in media_type:
        blobs[digest] = max(total_size, 0)  # stored before its layers were read: its total
    return blobs


def compute(namespace: Namespace) -> tuple[int, dict[str, int]]:
    """(bytes the namespace stores, {repository: bytes it stores}), each blob counted once."""
    namespace_blobs: dict[str, int] = {}
    repository_blobs: dict[str, dict[str, int]] = defaultdict(dict)
    rows = (
        Manifest.objects.filter(repository__namespace=namespace)
        .values_list("repository__name", *BLOB_FIELDS)
        .iterator(chunk_size=2000)
    )
    for repository_name, *row in rows:
        blobs = manifest_blobs(*row)
        namespace_blobs.update(blobs)
        repository_blobs[repository_name].update(blobs)
    return sum(namespace_blobs.values()), {name: sum(b.values()) for name, b in repository_blobs.items()}


def refresh(namespace: Namespace) -> NamespaceStorage:
    used, by_repository = compute(namespace)
    row, _ = NamespaceStorage.objects.update_or_create(
        namespace=namespace,
        defaults={"used_bytes": used, "repository_bytes": by_repository, "computed_at": timezone.now()},
    )
    from repositories.policies import forget_front_state

    forget_front_state()
    return row


def refresh_soon(namespace_id: int) -> None:
    """After the sync applied pushes or deletes: compute the namespace's usage again in a few
    seconds (once, however many pushes arrive meanwhile)."""
    from django.core.cache import cache

    from repositories.tasks import storage_refresh

    def enqueue() -> None:
        try:
            if cache.add(f"storage-refresh:{namespace_id}", 1, REFRESH_DELAY_SECONDS):
                storage_refresh.apply_async((namespace_id,), countdown=REFRESH_DELAY_SECONDS)
        except Exception:  # no broker or cache: the hourly refresh catches up
            log.warning("storage refresh of namespace %s not queued", namespace_id)

    transaction.on_commit(enqueue)


def usage(namespace: Namespace) -> NamespaceStorage:
    """The stored usage (computed now if it never was)."""
    row = NamespaceStorage.objects.filter(namespace=namespace).first()
    return row if row is not None and row.computed_at is not None else refresh(namespace)


def quota_set(*, namespace: Namespace, quota_bytes: int | None, actor) -> NamespaceStorage:
    if quota_bytes is not None and (not isinstance(quota_bytes, int) or not 0 <= quota_bytes <= 2**62):
        raise ValidationError({"quota_bytes": "Give a number of bytes (0 to 2^62), or null for no quota."})
    row = usage(namespace)
    with transaction.atomic():
        before = row.quota_bytes
        NamespaceStorage.objects.filter(pk=row.pk).update(quota_bytes=quota_bytes)
        from repositories.policies import forget_front_state

        forget_front_state()
        row.quota_bytes = quota_bytes
        audit_record(
            action="quota.set",
            actor=actor,
            target_name=namespace.name,
            namespace=namespace.name,
            data={"before": before, "after": quota_bytes},
        )
    return row


def describe_bytes(value: int) -> str:
    """50 GiB, 1.5 MiB: binary units, as registries and disks count."""
    size = float(value)
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            text = f"{size:.1f}".rstrip("0").rstrip(".") if unit != "bytes" else str(int(size))
            return f"{text} {unit}"
        size /= 1024
    return f"{value} bytes"


def over_quota(namespace_name: str) -> str | None:
    """The front's question before an upload or a manifest: None, or why not (one query)."""
    row = (
        NamespaceStorage.objects.filter(namespace__name=namespace_name, quota_bytes__isnull=False)
        .values_list("used_bytes", "quota_bytes")
        .first()
    )
    if row is None:
        return None
    used, quota = row
    if used >= quota:
        return f"namespace {namespace_name} is over its {describe_bytes(quota)} quota"
    return None


def as_data(namespace: Namespace, row: NamespaceStorage) -> dict:
    quota = row.quota_bytes
    return {
        "namespace": namespace.name,
        "used_bytes": row.used_bytes,
        "quota_bytes": quota,
        "warning": bool(quota is not None and row.used_bytes >= WARNING_RATIO * quota),
        "over_quota": bool(quota is not None and row.used_bytes >= quota),
        "repositories": [
            {"name": name, "used_bytes": size}
            for name, size in sorted(row.repository_bytes.items(), key=lambda item: (-item[1], item[0]))
        ],
        "computed_at": row.computed_at,
    }
