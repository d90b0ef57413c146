"""Write small OCI image layouts from Python, so that tests, benchmarks and `make run` have real
images to push with skopeo without downloading anything.

`write_image(dir, tag)` writes a single-platform image; `write_index(dir, tag, platforms)` an
image index over several platforms (push it with `skopeo copy --all`).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from dataclasses import dataclass
from pathlib import Path

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"


@dataclass(frozen=True)
class Descriptor:
    media_type: str
    digest: str
    size: int

    def as_dict(self, **extra) -> dict:
        return {"mediaType": self.media_type, "digest": self.digest, "size": self.size, **extra}


@dataclass(frozen=True)
class BuiltImage:
    """What was written: the top-level descriptor (manifest or index) and, per platform, the
    manifest descriptor and its compressed size (config + layers)."""

    top: Descriptor
    platforms: dict[str, Descriptor]
    sizes: dict[str, int]


def _blob(root: Path, data: bytes, media_type: str) -> Descriptor:
    digest = hashlib.sha256(data).hexdigest()
    path = root / "blobs" / "sha256" / digest
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return Descriptor(media_type, f"sha256:{digest}", len(data))


def _layer(files: dict[str, bytes]) -> tuple[bytes, str]:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, content in sorted(files.items()):
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(content), 0o644, 0
            tar.addfile(info, io.BytesIO(content))
    uncompressed = raw.getvalue()
    compressed = gzip.compress(uncompressed, mtime=0)
    return compressed, "sha256:" + hashlib.sha256(uncompressed).hexdigest()


def _platform_manifest(
    root: Path, content: str, os_name: str, arch: str, variant: str, labels: dict[str, str]
) -> tuple[Descriptor, int]:
    layer, diff_id = _layer({"hello.txt": f"{content}\n{os_name}/{arch}\n".encode()})
    layer_desc = _blob(root, layer, OCI_LAYER)
    config = {
        "created": "2026-01-01T00:00:00Z",
        "architecture": arch,
        "os": os_name,
        "config": {"Labels": labels, "Cmd": ["/hello.txt"]},
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        "history": [{"created": "2026-01-01T00:00:00Z", "created_by": "dockyard oci_layout"}],
    }
    if variant:
        config["variant"] = variant
    config_desc = _blob(root, json.dumps(config, sort_keys=True).encode(), OCI_CONFIG)
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": config_desc.as_dict(),
        "layers": [layer_desc.as_dict()],
    }
    return _blob(root, json.dumps(manifest).encode(), OCI_MANIFEST), config_desc.size + layer_desc.size


def _write_layout(root: Path, top: Descriptor, tag: str) -> None:
    (root / "oci-layout").write_text(json.dumps({"imageLayoutVersion": "1.0.0"}))
    index_path = root / "index.json"
    index = json.loads(index_path.read_text()) if index_path.exists() else {"schemaVersion": 2, "manifests": []}
    index["manifests"] = [
        m for m in index["manifests"] if m.get("annotations", {}).get("org.opencontainers.image.ref.name") != tag
    ] + [top.as_dict(annotations={"org.opencontainers.image.ref.name": tag})]
    index_path.write_text(json.dumps(index))


def write_image(
    root: Path,
    tag: str,
    *,
    content: str = "hello",
    os_name: str = "linux",
    arch: str = "amd64",
    labels: dict[str, str] | None = None,
) -> BuiltImage:
    root.mkdir(parents=True, exist_ok=True)
    desc, size = _platform_manifest(root, content, os_name, arch, "", labels or {})
    _write_layout(root, desc, tag)
    key = f"{os_name}/{arch}"
    return BuiltImage(top=desc, platforms={key: desc}, sizes={key: size})


def write_index(
    root: Path, tag: str, *, content: str = "hello", platforms: tuple[str, ...] = ("linux/amd64", "linux/arm64/v8")
) -> BuiltImage:
    root.mkdir(parents=True, exist_ok=True)
    entries, built, sizes = [], {}, {}
    for platform in platforms:
        os_name, arch, *rest = platform.split("/")
        variant = rest[0] if rest else ""
        desc, size = _platform_manifest(root, content, os_name, arch, variant, {})
        plat = {"os": os_name, "architecture": arch, **({"variant": variant} if variant else {})}
        entries.append(desc.as_dict(platform=plat))
        built[platform], sizes[platform] = desc, size
    index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries}
    top = _blob(root, json.dumps(index).encode(), OCI_INDEX)
    _write_layout(root, top, tag)
    return BuiltImage(top=top, platforms=built, sizes=sizes)
