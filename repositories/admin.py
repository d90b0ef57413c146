from django.contrib import admin, messages
from django.db import transaction

from repositories import selectors, sync
from repositories.models import (
    AccessRule,
    DailyPulls,
    IndexEntry,
    Manifest,
    RegistryEvent,
    Repository,
    RepositoryGrant,
    Star,
    SyncRun,
    Tag,
    UnclaimedRepository,
)


def _enqueue_reconcile(repository: str = "") -> None:
    from repositories.tasks import reconcile_registry

    transaction.on_commit(lambda: reconcile_registry.delay(repository=repository))


class GrantInline(admin.TabularInline):
    model = RepositoryGrant
    extra = 0
    raw_id_fields = ("team", "user", "robot")


@admin.register(Repository)
class RepositoryAdmin(admin.ModelAdmin):
    list_display = ("__str__", "visibility", "last_pushed_at", "pull_count", "last_synced", "sync_error")
    list_filter = ("visibility",)
    actions = ["sync_now"]

    def changelist_view(self, request, extra_context=None):
        # One query for the newest full crawl, shared by every row of the page.
        request._latest_full_run = SyncRun.objects.filter(
            repository="", status__in=[SyncRun.Status.OK, SyncRun.Status.PARTIAL], dry_run=False
        ).first()
        return super().changelist_view(request, extra_context)

    @admin.display(description="last synced")
    def last_synced(self, obj: Repository):
        request = getattr(self, "_request", None)
        latest = getattr(request, "_latest_full_run", None)
        if latest is not None and obj.full_name not in latest.report.get("errors", {}):
            return latest.finished_at
        return selectors.last_sync_of(obj)[0]

    def get_queryset(self, request):
        self._request = request
        return super().get_queryset(request)

    list_select_related = ("namespace",)
    search_fields = ("name", "namespace__name")
    raw_id_fields = ("namespace",)
    inlines = [GrantInline]

    @admin.action(description="Sync now from the registry")
    def sync_now(self, request, queryset) -> None:
        for repository in queryset.select_related("namespace"):
            _enqueue_reconcile(repository.full_name)
        self.message_user(request, f"Sync queued for {queryset.count()} repositories; see Sync runs.", messages.SUCCESS)


@admin.register(Tag)
class TagAdmin(admin.ModelAdmin):
    list_display = ("name", "repository", "digest", "pushed_at", "pushed_by")
    list_select_related = ("repository__namespace", "manifest")
    search_fields = ("name", "repository__name", "repository__namespace__name")
    raw_id_fields = ("repository", "manifest")

    @admin.display(description="digest")
    def digest(self, obj: Tag) -> str:
        return obj.manifest.digest


class IndexEntryInline(admin.TabularInline):
    model = IndexEntry
    fk_name = "index"
    extra = 0
    raw_id_fields = ("child",)


@admin.register(Manifest)
class ManifestAdmin(admin.ModelAdmin):
    list_display = ("digest", "repository", "media_type", "os", "architecture", "total_size")
    list_select_related = ("repository__namespace",)
    search_fields = ("digest", "repository__name")
    raw_id_fields = ("repository",)
    inlines = [IndexEntryInline]


@admin.register(IndexEntry)
class IndexEntryAdmin(admin.ModelAdmin):
    list_display = ("index", "child", "os", "architecture", "variant")
    raw_id_fields = ("index", "child")


@admin.register(RepositoryGrant)
class RepositoryGrantAdmin(admin.ModelAdmin):
    list_display = ("repository", "team", "user", "robot", "level")
    list_filter = ("level",)
    list_select_related = ("repository__namespace", "team__organization", "user", "robot__organization")
    raw_id_fields = ("repository", "team", "user", "robot")


@admin.register(AccessRule)
class AccessRuleAdmin(admin.ModelAdmin):
    list_display = ("organization", "pattern", "team", "robot", "level")
    list_filter = ("level",)
    list_select_related = ("organization", "team__organization", "robot__organization")
    raw_id_fields = ("team", "robot")


@admin.register(Star)
class StarAdmin(admin.ModelAdmin):
    list_display = ("user", "repository", "created_at")
    list_select_related = ("user", "repository__namespace")
    raw_id_fields = ("user", "repository")


@admin.register(RegistryEvent)
class RegistryEventAdmin(admin.ModelAdmin):
    list_display = ("received_at", "action", "repository", "tag", "status", "attempts", "actor", "error")
    list_filter = ("status", "action")
    search_fields = ("event_id", "repository", "tag", "digest")
    actions = ["retry"]

    @admin.action(description="Retry failed events")
    def retry(self, request, queryset) -> None:
        retried = sum(
            sync.registry_event_retry(event_pk=pk, actor_name=request.user.username)
            for pk in queryset.filter(status=RegistryEvent.Status.FAILED).values_list("pk", flat=True)
        )
        self.message_user(request, f"{retried} failed events queued again.", messages.SUCCESS)

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


@admin.register(SyncRun)
class SyncRunAdmin(admin.ModelAdmin):
    list_display = (
        "started_at",
        "finished_at",
        "status",
        "repository",
        "dry_run",
        "repositories",
        "tags",
        "manifests_fetched",
        "requests",
        "created",
        "changed",
        "removed",
        "error",
    )
    list_filter = ("status", "dry_run")
    actions = None

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def changelist_view(self, request, extra_context=None):
        if request.method == "POST" and "sync_all" in request.POST:
            _enqueue_reconcile()
            self.message_user(request, "A sync of the whole registry is queued.", messages.SUCCESS)
        extra_context = {**(extra_context or {}), "title": "Sync runs (newest first)"}
        return super().changelist_view(request, extra_context)


@admin.register(UnclaimedRepository)
class UnclaimedRepositoryAdmin(admin.ModelAdmin):
    list_display = ("name", "tag_count", "first_seen_at", "last_seen_at")
    search_fields = ("name",)


@admin.register(DailyPulls)
class DailyPullsAdmin(admin.ModelAdmin):
    list_display = ("repository", "day", "count")
    list_select_related = ("repository__namespace",)
    raw_id_fields = ("repository",)
    date_hierarchy = "day"
