"""A real OpenID Connect provider process for the tests (tests/oidc_idp: django-oidc-provider in
its own Django project and database), on a free loopback port."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import requests

from tests.services import ROOT, Process, free_port, wait_until


class OidcProvider:
    def __init__(self, *, redirect_uri: str, people: list[str], client_id: str = "dockyard") -> None:
        self.port = free_port()
        self.base = Path(tempfile.mkdtemp(prefix="dockyard-idp-"))
        self.client_id, self.secret = client_id, "idp-client-secret-" + str(self.port)
        self.redirect_uri, self.people = redirect_uri, people
        self.process: Process | None = None

    @property
    def issuer(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _env(self) -> dict[str, str]:
        clean = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "DATABASE_", "REDIS_"))}
        return {
            **clean,
            "DJANGO_SETTINGS_MODULE": "tests.oidc_idp.settings",
            "IDP_DATA_DIR": str(self.base),
            "IDP_PORT": str(self.port),
            "PYTHONPATH": str(ROOT),
        }

    def run(self, script: str, *args: str) -> None:
        subprocess.run(
            [sys.executable, str(ROOT / "tests" / "oidc_idp" / script), *args],
            cwd=ROOT,
            env=self._env(),
            check=True,
            capture_output=True,
            timeout=120,
        )

    def start(self) -> OidcProvider:
        self.run("setup.py", self.client_id, self.secret, self.redirect_uri, *self.people)
        self.process = Process(
            f"idp-{self.port}",
            [sys.executable, "-m", "gunicorn", "tests.oidc_idp.wsgi", "-b", f"127.0.0.1:{self.port}", "-w", "1"],
            env=self._env(),
            cwd=ROOT,
            log_dir=self.base,
        )
        wait_until(
            lambda: requests.get(f"{self.issuer}/.well-known/openid-configuration", timeout=1).ok,
            timeout=30,
            what="the OpenID Connect provider",
        )
        return self

    def set_groups(self, username: str, groups: list[str]) -> None:
        self.run("groups.py", username, ",".join(groups))

    def remove(self, username: str) -> None:
        self.run("remove.py", username)

    def portal_provider(self, provider_id: str = "corp") -> dict:
        """The portal's OIDC_PROVIDERS entry for this provider (README's worked example)."""
        return {
            "id": provider_id,
            "name": "Corp sign-in",
            "server_url": self.issuer,
            "client_id": self.client_id,
            "secret": self.secret,
            "scope": ["openid", "profile", "email", "groups"],
            "groups_claim": "groups",
        }

    def stop(self) -> None:
        if self.process:
            self.process.stop()
        shutil.rmtree(self.base, ignore_errors=True)
