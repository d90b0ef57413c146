from django.contrib import admin

from repositories.models import AccessRule, IndexEntry, Manifest, RegistryEvent, Repository, RepositoryGrant, Star, Tag


class GrantInline(admin.TabularInline):
    model = RepositoryGrant
    extra = 0
    raw_id_fields = ("team", "user", "robot")


@admin.register(Repository)
class RepositoryAdmin(admin.ModelAdmin):
    list_display = ("__str__", "visibility", "last_pushed_at", "pull_count")
    list_filter = ("visibility",)
    list_select_related = ("namespace",)
    search_fields = ("name", "namespace__name")
    raw_id_fields = ("namespace",)
    inlines = [GrantInline]


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
    list_display = ("received_at", "action", "repository", "tag", "status", "actor")
    list_filter = ("status", "action")
    search_fields = ("event_id", "repository", "tag", "digest")

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False
