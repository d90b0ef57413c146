from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand

from repositories.registry.token import prune_bundle, rotate_signing_key


class Command(BaseCommand):
    help = (
        "Rotate the registry token signing key: a new key signs from now on, and its certificate is "
        "added to the registry's root bundle next to the old ones. Restart the registry so it loads "
        "the bundle. Once tokens signed by the old key have expired (TOKEN_LIFETIME), run with "
        "--prune to drop the old certificates, and restart the registry again."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--prune", action="store_true", help="drop every certificate but the current one")

    def handle(self, *args, prune: bool, **options) -> None:
        key_dir = Path(settings.TOKEN_KEY_DIR)
        if prune:
            removed = prune_bundle(key_dir)
            self.stdout.write(f"removed {removed} old certificate(s); restart the registry")
            return
        signing = rotate_signing_key(key_dir)
        self.stdout.write(f"new signing key {signing.kid}; restart the registry to load the bundle")
