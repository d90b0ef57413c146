from django.contrib import admin, messages
from django.db import transaction
from django.db.models import Case, Count, DateTimeField, OuterRef, Subquery, Value, When
from django.utils.html import format_html_join

from audit.admin_mixins import AuditedAdmin, ReadOnlyAdmin
from audit.services import audit_record
from portal.net import client_address
from repositories import access, sync
from repositories.models import (
    AccessRule,
    DailyPulls,
    GcRun,
    ImmutableTagRule,
    IndexEntry,
    Manifest,
    NamespaceStorage,
    RegistryEvent,
    Repository,
    RepositoryGrant,
    RetentionRule,
    RetentionRun,
    Star,
    SyncRun,
    Tag,
    UnclaimedRepository,
)


def _enqueue_reconcile(repository: str = "", *, allow_removals: bool = False) -> None:
    from repositories.tasks import reconcile_registry

    transaction.on_commit(lambda: reconcile_registry.delay(repository=repository, allow_removals=allow_removals))


class GrantInline(admin.TabularInline):
    model = RepositoryGrant
    extra = 0
    raw_id_fields = ("team", "user", "robot")


@admin.register(Repository)
class RepositoryAdmin(AuditedAdmin, admin.ModelAdmin):
    list_display = ("full_name", "visibility", "tag_count", "last_pushed_at", "pull_count", "last_synced", "sync_error")
    list_filter = ("visibility", "namespace__kind")
    fields = (
        "namespace",
        "name",
        "visibility",
        "short_description",
        "full_description",
        "description_from_image",
        "pull_count",
        "star_count",
        "last_pushed_at",
        "sync_error",
        "sync_error_at",
    )
    readonly_fields = ("pull_count", "star_count", "last_pushed_at", "sync_error", "sync_error_at")
    show_full_result_count = False  # one COUNT per page at 100,000 repositories, not two
    ordering = ("full_name",)  # unique and indexed: no join, no sort of the whole table
    actions = ["sync_now"]

    def get_readonly_fields(self, request, obj=None):
        # The registry holds the repository under its name and has no rename: renaming the row
        # would point the portal at a name the registry does not have.
        if obj is not None:
            return ("namespace", "name", *self.readonly_fields)
        return self.readonly_fields

    @admin.display(description="last synced")
    def last_synced(self, obj: Repository):
        # Annotated per row by get_queryset: the newest clean crawl of this repository alone,
        # and the newest whole-registry crawl unless it had an error for this repository.
        found = [t for t in (getattr(obj, "own_sync", None), getattr(obj, "full_sync", None)) if t is not None]
        return max(found) if found else None

    def get_queryset(self, request):
        # Correlated subqueries per row of the page (no GROUP BY over a million tags), and the
        # newest full crawl read once per request; nothing is kept on this shared instance.
        tags = Tag.objects.filter(repository=OuterRef("pk")).order_by().values("repository")
        own = SyncRun.objects.filter(
            repository=OuterRef("full_name"), status=SyncRun.Status.OK, dry_run=False
        ).order_by("-finished_at")
        latest = SyncRun.objects.filter(
            repository="", status__in=[SyncRun.Status.OK, SyncRun.Status.PARTIAL], dry_run=False
        ).first()
        full_sync = Value(None, output_field=DateTimeField())
        if latest is not None:
            failed = list((latest.report or {}).get("errors", {}))
            full_sync = Case(
                When(full_name__in=failed, then=Value(None, output_field=DateTimeField())),
                default=Value(latest.finished_at, output_field=DateTimeField()),
            )
        return (
            super()
            .get_queryset(request)
            .annotate(
                tag_count=Subquery(tags.annotate(n=Count("pk")).values("n")[:1]),
                own_sync=Subquery(own.values("finished_at")[:1]),
                full_sync=full_sync,
            )
        )

    list_select_related = ("namespace",)
    search_fields = ("full_name",)
    raw_id_fields = ("namespace",)
    inlines = [GrantInline]

    @admin.display(description="tags", ordering="tag_count")
    def tag_count(self, obj: Repository) -> int:
        return obj.tag_count

    @admin.action(description="Sync now from the registry")
    def sync_now(self, request, queryset) -> None:
        for repository in queryset.select_related("namespace"):
            _enqueue_reconcile(repository.full_name)
        self.message_user(request, f"Sync queued for {queryset.count()} repositories; see Sync runs.", messages.SUCCESS)


@admin.register(Tag)
class TagAdmin(ReadOnlyAdmin):
    list_display = ("name", "repository", "digest", "pushed_at", "pushed_by")
    list_select_related = ("repository__namespace", "manifest")
    search_fields = ("name", "repository__full_name")
    list_filter = ("artifact",)
    show_full_result_count = False
    ordering = ("-pushed_at",)  # served by the tag_pushed index

    @admin.display(description="digest")
    def digest(self, obj: Tag) -> str:
        return obj.manifest.digest


class IndexEntryInline(admin.TabularInline):
    model = IndexEntry
    fk_name = "index"
    extra = 0
    raw_id_fields = ("child",)


@admin.register(Manifest)
class ManifestAdmin(ReadOnlyAdmin):
    list_display = ("digest", "repository", "media_type", "os", "architecture", "total_size")
    list_select_related = ("repository__namespace",)
    search_fields = ("digest", "repository__full_name")
    list_filter = ("is_signed", "os", "architecture")
    inlines = [IndexEntryInline]
    show_full_result_count = False


@admin.register(IndexEntry)
class IndexEntryAdmin(ReadOnlyAdmin):
    list_display = ("index", "child", "os", "architecture", "variant")
    raw_id_fields = ("index", "child")


@admin.register(RepositoryGrant)
class RepositoryGrantAdmin(AuditedAdmin, admin.ModelAdmin):
    list_display = ("repository", "team", "user", "robot", "level")
    list_filter = ("level", "team__organization")
    search_fields = ("repository__full_name", "team__name", "user__username", "robot__name")
    list_select_related = ("repository__namespace", "team__organization", "user", "robot__organization")
    raw_id_fields = ("repository", "team", "user", "robot")


@admin.register(AccessRule)
class AccessRuleAdmin(AuditedAdmin, admin.ModelAdmin):
    list_display = ("organization", "pattern", "team", "robot", "level")
    list_filter = ("level", "organization")
    search_fields = ("pattern", "organization__name", "team__name", "robot__name")
    list_select_related = ("organization", "team__organization", "robot__organization")
    raw_id_fields = ("team", "robot")
    readonly_fields = ("matches",)

    @admin.display(description="repositories this pattern matches (first 50)")
    def matches(self, obj: AccessRule):
        if obj.pk is None:
            return "Save to see the repositories it matches."
        try:
            regex = access.pattern_regex(obj.pattern)
        except access.InvalidPattern as exc:
            return f"This pattern matches nothing: {exc}"
        found = Repository.objects.filter(namespace__organization=obj.organization, name__regex=regex).order_by("name")
        names = list(found.values_list("full_name", flat=True)[:50])
        if not names:
            return "None yet."
        return format_html_join(", ", "{}", ((name,) for name in names))


@admin.register(ImmutableTagRule)
class ImmutableTagRuleAdmin(AuditedAdmin, admin.ModelAdmin):
    """Tags that cannot be pushed again or deleted once they exist (the front enforces them)."""

    list_display = ("namespace", "repository_pattern", "tag_pattern", "created_by", "created_at")
    list_filter = ("namespace",)
    search_fields = ("namespace__name", "repository_pattern", "tag_pattern")
    list_select_related = ("namespace", "created_by")
    raw_id_fields = ("namespace", "created_by")


@admin.register(RetentionRule)
class RetentionRuleAdmin(AuditedAdmin, admin.ModelAdmin):
    """Which tags to keep; the rest of the tags a rule covers go when retention runs."""

    list_display = ("namespace", "repository_pattern", "tag_pattern", "keep_most_recent", "untagged")
    list_filter = ("namespace",)
    list_select_related = ("namespace",)
    raw_id_fields = ("namespace", "created_by")


@admin.register(RetentionRun)
class RetentionRunAdmin(ReadOnlyAdmin):
    list_display = ("namespace", "started_at", "dry_run", "bytes", "requested_by")
    list_filter = ("dry_run",)
    list_select_related = ("namespace",)


@admin.register(NamespaceStorage)
class NamespaceStorageAdmin(AuditedAdmin, admin.ModelAdmin):
    """Usage is computed (each blob once); the quota is set here, in the API or the settings."""

    list_display = ("namespace", "used_bytes", "quota_bytes", "computed_at")
    list_select_related = ("namespace",)
    readonly_fields = ("namespace", "used_bytes", "repository_bytes", "computed_at")
    search_fields = ("namespace__name",)

    def has_add_permission(self, request) -> bool:
        return False


@admin.register(GcRun)
class GcRunAdmin(admin.ModelAdmin):
    """Garbage collections (repositories/gc.py); "Run garbage collection now" starts one."""

    list_display = ("started_at", "status", "freed_bytes", "finished_at", "requested_by")
    readonly_fields = ("status", "started_at", "collect_started_at", "finished_at", "freed_bytes", "output")
    actions = None
    change_list_template = "admin/repositories/gcrun/change_list.html"

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def get_urls(self):
        from django.urls import path

        return [
            path("run/", self.admin_site.admin_view(self.run_now), name="repositories_gcrun_run"),
            *super().get_urls(),
        ]

    def run_now(self, request):
        from django.shortcuts import redirect
        from django.views.decorators.http import require_POST

        @require_POST
        def start(request):
            from repositories import gc
            from repositories.tasks import registry_gc

            if not request.user.is_superuser:
                messages.error(request, "Only superusers start a garbage collection.")
                return redirect("admin:repositories_gcrun_changelist")
            try:
                run = gc.start(actor_name=request.user.username)
            except gc.GcAlreadyRunning:
                messages.warning(request, "A garbage collection is running already.")
                return redirect("admin:repositories_gcrun_changelist")
            transaction.on_commit(lambda: registry_gc.delay(run.pk))
            messages.success(
                request,
                "Writes are held; the collection starts once outstanding tokens have expired "
                "(REGISTRY_GC_HOLD_SECONDS). Pushes meanwhile get 503: registry maintenance.",
            )
            return redirect("admin:repositories_gcrun_changelist")

        return start(request)


@admin.register(Star)
class StarAdmin(AuditedAdmin, admin.ModelAdmin):
    list_display = ("user", "repository", "created_at")
    list_select_related = ("user", "repository__namespace")
    raw_id_fields = ("user", "repository")


@admin.register(RegistryEvent)
class RegistryEventAdmin(ReadOnlyAdmin):  # what the registry said is kept as it said it
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
        "held",
        "trigger",
        "error",
    )
    list_filter = ("status", "trigger", "dry_run")
    actions = ["apply_held_removals"]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    @admin.action(description="Apply held removals: crawl again and remove every tag the registry no longer has")
    def apply_held_removals(self, request, queryset) -> None:
        held = [run for run in queryset if run.status == SyncRun.Status.HELD]
        if not held:
            self.message_user(request, "None of these runs held removals.", messages.WARNING)
            return
        for run in held:
            audit_record(
                action="sync.removals_allowed",
                actor=request.user,
                target=run,
                target_name=str(run),
                data={"held": run.held, "reason": run.error},
                address=client_address(request),
            )
            _enqueue_reconcile(run.repository, allow_removals=True)
        self.message_user(
            request,
            "A sync that removes what the registry no longer has is queued; see the next run.",
            messages.SUCCESS,
        )

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
