"""Garbage-collect the registry safely: hold writes, wait out outstanding tokens, run the
registry's own garbage-collect with the portal's configuration, release, record (gc.py)."""

from django.core.management.base import BaseCommand, CommandError

from repositories import gc
from repositories.storage import describe_bytes


class Command(BaseCommand):
    help = "Garbage-collect the registry under a write hold; prints the space freed."

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--hold-seconds",
            type=float,
            default=None,
            help="how long to hold writes before collecting (default: REGISTRY_GC_HOLD_SECONDS)",
        )

    def handle(self, *args, hold_seconds, **opts):
        try:
            run = gc.start(actor_name="manage.py registry_gc")
        except gc.GcAlreadyRunning as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(f"Writes are held (run {run.pk}); collecting after the hold ...")
        run = gc.collect(run, hold_seconds=hold_seconds)
        if run.status != run.Status.OK:
            raise CommandError(f"garbage collection failed; writes are released:\n{run.output}")
        freed = "unknown (not filesystem storage)" if run.freed_bytes is None else describe_bytes(run.freed_bytes)
        self.stdout.write(self.style.SUCCESS(f"Done; writes are released. Freed: {freed}."))
