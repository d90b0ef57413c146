from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand

from repositories.registry.config import render_config
from repositories.registry.token import BUNDLE_FILE, ensure_signing_key


class Command(BaseCommand):
    help = "Write the registry's config from the portal's settings, creating the token signing key if missing."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--output", "-o", default=str(settings.REGISTRY_CONFIG_FILE), help="'-' for stdout")
        parser.add_argument("--listen", default=settings.REGISTRY_LISTEN)
        parser.add_argument("--storage", default=str(settings.REGISTRY_STORAGE_DIR))
        parser.add_argument("--notifications-url", default=settings.REGISTRY_NOTIFICATIONS_URL)
        parser.add_argument(
            "--rootcertbundle",
            default=None,
            help="path of the bundle as the registry sees it (default: the portal's own copy)",
        )

    def handle(self, *args, output: str, listen: str, storage: str, notifications_url: str, rootcertbundle, **opts):
        key_dir = Path(settings.TOKEN_KEY_DIR)
        signing = ensure_signing_key(key_dir)
        text = render_config(
            listen=listen,
            storage_dir=Path(storage),
            realm=f"{settings.PORTAL_URL}/auth/token",
            service=settings.REGISTRY_SERVICE,
            issuer=settings.TOKEN_ISSUER,
            rootcertbundle=Path(rootcertbundle) if rootcertbundle else key_dir / BUNDLE_FILE,
            notifications_url=notifications_url,
            notifications_secret=settings.REGISTRY_EVENTS_SECRET,
            http_secret=settings.REGISTRY_HTTP_SECRET,
        )
        if output == "-":
            self.stdout.write(text)
            return
        path = Path(output)
        path.parent.mkdir(parents=True, exist_ok=True)
        Path(storage).mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(text)
        tmp.chmod(0o600)  # it holds the notification secret
        tmp.rename(path)
        self.stdout.write(f"wrote {path} (token key id {signing.kid})")
