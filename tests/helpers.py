from __future__ import annotations

from pathlib import Path

from tests import services


def push(source_dir: Path, tag: str, registry_host: str, dest: str, *, creds: str | None, all_platforms: bool = False):
    """skopeo copy an OCI layout into the registry; returns the CompletedProcess."""
    args = ["copy", "--dest-tls-verify=false", "--retry-times=0"]
    if all_platforms:
        args.append("--all")
    args += ["--dest-creds", creds] if creds else ["--dest-no-creds"]
    args += [f"oci:{source_dir}:{tag}", f"docker://{registry_host}/{dest}"]
    return services.skopeo(*args)


def inspect(registry_host: str, ref: str, *, creds: str | None):
    args = ["inspect", "--tls-verify=false", "--raw", "--retry-times=0"]
    args += ["--creds", creds] if creds else ["--no-creds"]
    return services.skopeo(*args, f"docker://{registry_host}/{ref}")
