from __future__ import annotations

from pathlib import Path

from tests import services


def push(
    source_dir: Path,
    tag: str,
    registry_host: str,
    dest: str,
    *,
    creds: str | None = None,
    token: str | None = None,
    all_platforms: bool = False,
):
    """skopeo copy an OCI layout into the registry; returns the CompletedProcess."""
    args = ["copy", "--dest-tls-verify=false", "--retry-times=0"]
    if all_platforms:
        args.append("--all")
    if token:
        args += ["--dest-registry-token", token]
    else:
        args += ["--dest-creds", creds] if creds else ["--dest-no-creds"]
    args += [f"oci:{source_dir}:{tag}", f"docker://{registry_host}/{dest}"]
    return services.skopeo(*args)


def inspect(registry_host: str, ref: str, *, creds: str | None):
    args = ["inspect", "--tls-verify=false", "--raw", "--retry-times=0"]
    args += ["--creds", creds] if creds else ["--no-creds"]
    return services.skopeo(*args, f"docker://{registry_host}/{ref}")


def system_token_for(repository: str, actions: str = "pull,push,delete") -> str:
    """A registry token of the portal's own identity, as the workers mint them."""
    from repositories.registry import system_token

    return system_token((f"repository:{repository}:{actions}",))[0]


def process_events(registry) -> None:
    """Let the registry deliver its notifications, then process them as the worker does."""
    from repositories import sync
    from repositories.models import RegistryEvent

    registry.drain_notifications()
    for pk in RegistryEvent.objects.filter(status="pending").order_by("pk").values_list("pk", flat=True):
        sync.process_registry_event(pk)
