from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from repositories.models import SyncRun
from repositories.reconcile import SyncAlreadyRunning, reconcile


class Command(BaseCommand):
    help = "Crawl the registry and make the portal match it (or, with --dry-run, say what would change)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--repository", default="", help="only this repository, e.g. acme/api")
        parser.add_argument("--dry-run", action="store_true", help="list what would change; change nothing")
        parser.add_argument(
            "--allow-removals",
            action="store_true",
            help="remove every tag the registry no longer has, even more than SYNC_REMOVAL_THRESHOLD_* "
            "or with an empty catalog (check the registry's storage first)",
        )

    def handle(self, *args, repository: str, dry_run: bool, allow_removals: bool, **options) -> None:
        try:
            run = reconcile(repository=repository, dry_run=dry_run, allow_removals=allow_removals)
        except SyncAlreadyRunning as exc:
            raise CommandError(f"{exc}; one sync runs at a time") from None
        verb = "would" if dry_run else "did"
        self.stdout.write(
            f"{run.get_status_display()}: {run.repositories} repositories, {run.tags} tags, "
            f"{run.manifests_fetched} manifests fetched, {run.requests} registry requests; "
            f"{verb} create {run.created}, change {run.changed}, remove {run.removed}"
        )
        for key in ("create_repositories", "create_tags", "change_tags", "remove_tags", "held_removals", "unclaimed"):
            for name in run.report.get(key, []):
                self.stdout.write(f"  {key.replace('_', ' ')}: {name}")
        for name, error in run.report.get("errors", {}).items():
            self.stderr.write(f"  error: {name}: {error}")
        if run.status == SyncRun.Status.FAILED:
            raise CommandError(run.error)
        if run.status == SyncRun.Status.PARTIAL:
            raise CommandError(f"{run.error}; nothing was removed from them")
        if run.status == SyncRun.Status.HELD:
            raise CommandError(
                f"{run.held} removals held: {run.error}. If the registry is right, run again with --allow-removals."
            )
