from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from repositories.models import SyncRun
from repositories.reconcile import reconcile


class Command(BaseCommand):
    help = "Crawl the registry and make the portal match it (or, with --dry-run, say what would change)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--repository", default="", help="only this repository, e.g. acme/api")
        parser.add_argument("--dry-run", action="store_true", help="list what would change; change nothing")

    def handle(self, *args, repository: str, dry_run: bool, **options) -> None:
        run = reconcile(repository=repository, dry_run=dry_run)
        verb = "would" if dry_run else "did"
        self.stdout.write(
            f"{run.get_status_display()}: {run.repositories} repositories, {run.tags} tags, "
            f"{run.manifests_fetched} manifests fetched, {run.requests} registry requests; "
            f"{verb} create {run.created}, change {run.changed}, remove {run.removed}"
        )
        for key in ("create_repositories", "create_tags", "change_tags", "remove_tags", "unclaimed"):
            for name in run.report.get(key, []):
                self.stdout.write(f"  {key.replace('_', ' ')}: {name}")
        for name, error in run.report.get("errors", {}).items():
            self.stderr.write(f"  error: {name}: {error}")
        if run.status == SyncRun.Status.FAILED:
            raise CommandError(run.error)
        if run.status == SyncRun.Status.PARTIAL:
            raise CommandError(f"{run.error}; nothing was removed from them")
