from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand

from repositories.oci_layout import write_image


class Command(BaseCommand):
    help = "Write a small OCI image layout (no download) that skopeo can push: oci:DIR:TAG."

    def add_arguments(self, parser) -> None:
        parser.add_argument("directory")
        parser.add_argument("--tag", default="latest")

    def handle(self, *args, directory: str, tag: str, **options) -> None:
        image = write_image(Path(directory), tag, content="hello from dockyard")
        self.stdout.write(f"wrote oci:{directory}:{tag} ({image.top.digest})")
