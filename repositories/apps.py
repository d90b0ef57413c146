from django.apps import AppConfig
from django.db.models.signals import post_migrate


class RepositoriesConfig(AppConfig):
    name = "repositories"
    verbose_name = "Repositories"

    def ready(self) -> None:
        # A migration that rebuilds a watched table (SQLite) or drops a column (PostgreSQL)
        # takes its triggers with it: every `migrate` puts them back.
        post_migrate.connect(_triggers_after_migrate, sender=self, dispatch_uid="dockyard-policy-triggers")


def _triggers_after_migrate(sender, using="default", **kwargs) -> None:
    from django.db import connections

    from repositories.generation import install_triggers

    install_triggers(connections[using])
