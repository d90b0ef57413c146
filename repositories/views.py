"""Server-rendered pages. Thin: access.py decides, selectors read, services write (the same
ones the API calls). Private and missing repositories are the same 404."""

from __future__ import annotations

import datetime as dt
import re

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.db.models import F, Q
from django.http import Http404, HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_http_methods, require_POST

from accounts.models import Level, Membership, Namespace, Organization, Robot, Team, User
from audit import selectors as audit_selectors
from portal.params import id_param, query_param
from repositories import access, selectors, services
from repositories.forms import (
    DeleteRepositoryForm,
    DescriptionForm,
    GrantForm,
    ImmutableTagForm,
    RepositoryRetentionForm,
    VisibilityForm,
    WebhookForm,
)
from repositories.gc import WritesHeld
from repositories.markdown import render_markdown
from repositories.models import DailyPulls, ImmutableTagRule, Repository, RepositoryGrant, RetentionRule
from repositories.policies import TagImmutable, covering, immutable_tags
from repositories.registry.client import RegistryError
from webhooks import services as webhook_services
from webhooks.models import Webhook

LEVELS = {"read": Level.READ, "write": Level.WRITE, "admin": Level.ADMIN}


def _actor(request: HttpRequest) -> access.Actor:
    return access.actor_for_user(request.user)


def _repository(request: HttpRequest, namespace: str, name: str, level: Level = Level.READ):
    return access.access_repository(_actor(request), f"{namespace}/{name}", level)


def home(request: HttpRequest) -> HttpResponse:
    actor = _actor(request)
    visible = access.visible_repositories(actor).select_related("namespace")
    others = visible
    context = {}
    if request.user.is_authenticated:
        mine = Q(namespace__user=request.user) | Q(
            namespace__organization__in=Organization.objects.filter(memberships__user=request.user)
        )
        context["mine"] = visible.filter(mine).order_by(F("last_pushed_at").desc(nulls_last=True), "full_name")[:12]
        context["starred"] = visible.filter(stars__user=request.user).order_by("full_name")[:12]
        others = visible.exclude(mine)  # "your repositories" already lists yours
    context["recent"] = others.filter(last_pushed_at__isnull=False).order_by("-last_pushed_at")[:8]
    context["popular"] = others.order_by("-pull_count", "full_name")[:8]
    return render(request, "repositories/home.html", context)


SORTS = {"relevance": "relevance", "pulls": "pulls", "stars": "stars", "updated": "updated"}


def search(request: HttpRequest) -> HttpResponse:
    actor = _actor(request)
    q = query_param(request.GET, "q")
    namespace = query_param(request.GET, "namespace", 64)
    sort = SORTS.get(request.GET.get("sort", ""), "")
    qs = selectors.repository_search(
        actor=actor,
        q=q,
        namespace=namespace,
        starred_by=request.user if request.GET.get("starred") and request.user.is_authenticated else None,
        architecture=query_param(request.GET, "arch", 32),
        ordering=sort,
    ).defer("full_description")
    if request.GET.get("mine") and request.user.is_authenticated:
        qs = qs.filter(
            Q(namespace__user=request.user)
            | Q(namespace__organization__in=Organization.objects.filter(memberships__user=request.user))
        )
    page = Paginator(qs, 20).get_page(request.GET.get("page"))
    suggestion = selectors.repository_suggestion(actor=actor, q=q) if q and not page.paginator.count else ""
    return render(
        request,
        "repositories/search.html",
        {"page": page, "q": q, "sort": sort or "relevance", "suggestion": suggestion},
    )


def _pulls_chart(repository: Repository) -> list[dict]:
    today = timezone.now().date()
    counts = dict(
        DailyPulls.objects.filter(repository=repository, day__gte=today - dt.timedelta(days=29)).values_list(
            "day", "count"
        )
    )
    days = [today - dt.timedelta(days=29 - i) for i in range(30)]
    peak = max(counts.values(), default=0) or 1
    bars = []
    for i, day in enumerate(days):
        height = round(96 * counts.get(day, 0) / peak)
        bars.append({"day": day, "count": counts.get(day, 0), "x": i * 10, "y": 100 - height, "height": height})
    return bars


def _repository_context(request: HttpRequest, repository: Repository, decision, tab: str) -> dict:
    return {
        "repository": repository,
        "tab": tab,
        "is_admin": decision.allows(Level.ADMIN),
        "is_starred": request.user.is_authenticated and repository.stars.filter(user=request.user).exists(),
    }


# Sub-pages before "/-/" existed: /r/acme/web/tags/ is acme/web's tags page, unless a repository
# called acme/web/tags exists (then that repository wins; its pages are all reachable).
OLD_SUBPAGES = {"tags": "repository-tags", "settings": "repository-settings"}
OLD_TAG_PAGE = re.compile(r"^(?P<parent>.+)/tags/(?P<tag>[a-z0-9_][a-z0-9_.-]{0,127})$")


def repository_detail(request: HttpRequest, namespace: str, name: str) -> HttpResponse:
    parent, _, last = name.rpartition("/")
    old_tag = OLD_TAG_PAGE.match(name)
    if old_tag and not selectors.visible_repository_exists(actor=_actor(request), full_name=f"{namespace}/{name}"):
        return redirect("tag-detail", namespace=namespace, name=old_tag["parent"], tag=old_tag["tag"], permanent=True)
    if parent and last in OLD_SUBPAGES:
        exists = selectors.visible_repository_exists(actor=_actor(request), full_name=f"{namespace}/{name}")
        if not exists:
            target = redirect(OLD_SUBPAGES[last], namespace=namespace, name=parent)
            query = request.META.get("QUERY_STRING", "")
            return redirect(f"{target.url}?{query}" if query else target.url, permanent=True)
    repository, decision = _repository(request, namespace, name)
    context = _repository_context(request, repository, decision, "overview")
    context["overview"] = render_markdown(repository.full_description)
    context["pulls"] = _pulls_chart(repository)
    context.update(
        pulls_total=sum(d["count"] for d in context["pulls"]),
        pulls_peak=max((d["count"] for d in context["pulls"]), default=0),
        pulls_first=context["pulls"][0]["day"],
        pulls_last=context["pulls"][-1]["day"],
        can_push=decision.allows(Level.WRITE),
    )
    context["activity"] = audit_selectors.repository_activity(actor=_actor(request), repository=repository, limit=20)
    context["latest_tags"] = selectors.tag_list(repository=repository, ordering="newest")[:5]
    return render(request, "repositories/detail.html", context)


def repository_tags(request: HttpRequest, namespace: str, name: str) -> HttpResponse:
    repository, decision = _repository(request, namespace, name)
    ordering = request.GET.get("sort", "newest")
    if ordering not in ("newest", "name", "version"):
        ordering = "newest"
    name_filter = query_param(request.GET, "name", 128)
    platform = query_param(request.GET, "platform", 100)
    tags = selectors.tag_list(repository=repository, ordering=ordering, name_filter=name_filter, platform=platform)
    page = Paginator(tags, 25).get_page(request.GET.get("page"))
    context = _repository_context(request, repository, decision, "tags")
    context.update(
        page=page,
        tags=page.object_list,
        immutable=immutable_tags(
            namespace_name=repository.namespace.name,
            repository_name=repository.name,
            tag_names=[t.name for t in page.object_list],
        ),
        sort=ordering,
        name_filter=name_filter,
        platform=platform,
        platforms=selectors.repository_platforms(repository=repository),
    )
    return render(request, "repositories/tags.html", context)


def tag_detail(request: HttpRequest, namespace: str, name: str, tag: str) -> HttpResponse:
    """One tag, fully described: per platform its digest, size, layers (with the history line
    that made each), config; the tags sharing its digest; signatures checked against the
    namespace's trusted keys; attestations and SBOMs to download; pull commands."""
    repository, decision = _repository(request, namespace, name)
    detail = selectors.tag_detail(repository=repository, tag_name=tag)
    if detail is None:
        raise Http404("No such tag.")
    context = _repository_context(request, repository, decision, "tags")
    context.update(
        detail=detail,
        tag=detail.tag,
        manifest=detail.manifest,
        immutable=immutable_tags(
            namespace_name=repository.namespace.name, repository_name=repository.name, tag_names=[detail.tag.name]
        ),
    )
    return render(request, "repositories/tag_detail.html", context)


ATTACHMENT_EXTENSIONS = {"json": ".json", "xml": ".xml", "spdx": ".spdx"}


def attachment_download(request: HttpRequest, namespace: str, name: str, artifact: str, layer: str) -> HttpResponse:
    """An attestation or SBOM, streamed from the registry to whoever may read the repository."""
    repository, _ = _repository(request, namespace, name)
    try:
        item, chunks, length = services.attachment_open(
            repository=repository, artifact_digest=artifact, layer_digest=layer
        )
    except services.AttachmentNotFound:
        raise Http404("No such attestation or SBOM.") from None
    except RegistryError:
        return render(request, "503.html", {"message": "The registry could not be reached."}, status=503)
    return attachment_response(item, chunks, f"{repository.name.replace('/', '-')}-{layer[7:19]}", length)


MEDIA_TYPE_RE = re.compile(r"^[a-z0-9][a-z0-9!#$&^_.+-]{0,126}/[a-z0-9][a-z0-9!#$&^_.+-]{0,126}$")
# Served as they are: documents a browser does not run. Anything else (text/html, image/svg+xml,
# whatever a pusher wrote) is served as application/octet-stream.
DOWNLOAD_TYPES_KEPT = ("+json", "/json", "text/spdx", "/vnd.cyclonedx", "application/vnd.")
DOWNLOAD_TYPES_NEVER = ("html", "svg", "javascript", "ecmascript", "xml")


def download_media_type(declared) -> str:
    """The Content-Type an attachment is served with: its declared media type when that is a
    well-formed type of a kind a browser does not render or run, else application/octet-stream.
    (The media type is whatever the pusher wrote into the manifest.)"""
    value = declared.lower() if isinstance(declared, str) else ""
    if not MEDIA_TYPE_RE.match(value) or any(word in value for word in DOWNLOAD_TYPES_NEVER):
        return "application/octet-stream"
    return value if any(kind in value for kind in DOWNLOAD_TYPES_KEPT) else "application/octet-stream"


def attachment_response(item: dict, chunks, stem: str, length: str | None = None) -> StreamingHttpResponse:
    """The download. Its length is the registry's (the size in the manifest is the pusher's
    claim, and a wrong Content-Length hangs clients)."""
    media_type = download_media_type(item.get("media_type"))
    suffix = media_type.rsplit("+", 1)[-1] if "+" in media_type else media_type.rsplit("/", 1)[-1]
    response = StreamingHttpResponse(chunks, content_type=media_type)
    response["Content-Disposition"] = f'attachment; filename="{stem}{ATTACHMENT_EXTENSIONS.get(suffix, "")}"'
    response["X-Content-Type-Options"] = "nosniff"
    if length and length.isdigit():
        response["Content-Length"] = length
    return response


@login_required
@require_http_methods(["GET", "POST"])
def tag_delete(request: HttpRequest, namespace: str, name: str, tag: str) -> HttpResponse:
    """Confirm, then delete. What goes with the tag is read from the registry (not the portal's
    picture), shown, and deleted only if the tag still points where it did when shown."""
    repository, decision = _repository(request, namespace, name, Level.ADMIN)
    back = redirect("repository-tags", namespace=namespace, name=repository.name)
    try:
        if request.method == "POST":
            _digest, deleted = services.tag_delete(
                repository=repository,
                tag_name=tag,
                actor=request.user,
                confirm=True,
                expected_digest=query_param(request.POST, "digest", 150),
            )
            messages.success(request, f"Deleted {', '.join(deleted)} ({_digest[:19]}).")
            return back
        preview = services.tag_delete_preview(repository=repository, tag_name=tag)
        digest, siblings = preview.digest, preview.tags
        services.tag_delete_check(repository=repository, preview=preview)
    except services.TagNotInRegistry:
        messages.info(request, f"The registry has no tag {tag} (any more).")
        return back
    except (TagImmutable, services.UsedByIndex) as exc:
        messages.error(request, f"Nothing was deleted: {exc}.")
        return back
    except services.ConfirmationRequired as exc:
        messages.warning(request, f"{tag} moved since you looked: check what goes with it now.")
        digest, siblings = exc.digest, exc.tags
    except WritesHeld as exc:
        messages.error(request, f"Nothing was deleted: {exc}.")
        return back
    except RegistryError:
        messages.error(request, "The registry could not be reached; nothing was deleted. Try again later.")
        return back
    context = _repository_context(request, repository, decision, "tags")
    context.update(tag_name=tag, digest=digest, siblings=siblings)
    return render(request, "repositories/tag_delete.html", context)


@login_required
@require_POST
def star(request: HttpRequest, namespace: str, name: str) -> HttpResponse:
    repository, _ = _repository(request, namespace, name)
    starred = request.POST.get("star") == "1"
    services.star_set(repository=repository, user=request.user, starred=starred)
    messages.success(request, f"{'Starred' if starred else 'Unstarred'} {repository.full_name}.")
    return redirect("repository", namespace=namespace, name=repository.name)


@login_required
@require_http_methods(["GET", "POST"])
def repository_settings(request: HttpRequest, namespace: str, name: str) -> HttpResponse:
    """A repository's settings, a section each (descriptions, visibility, permissions,
    webhooks, delete). After an action the page comes back at its section with the result
    there; a webhook's secret is shown once, in a dialog."""
    repository, decision = _repository(request, namespace, name, Level.ADMIN)
    action = request.POST.get("action", "")
    description_form = DescriptionForm(
        request.POST if action in ("describe", "preview") else None,
        initial={"short_description": repository.short_description, "full_description": repository.full_description},
    )
    visibility_form = VisibilityForm(
        request.POST if action == "visibility" else None, initial={"visibility": repository.visibility}
    )
    grant_form = GrantForm(request.POST if action == "grant" else None)
    webhook_form = WebhookForm(request.POST if action == "webhook" else None)
    retention_form = RepositoryRetentionForm(request.POST if action == "retention" else None, prefix="retention")
    delete_form = DeleteRepositoryForm(request.POST if action == "delete" else None, full_name=repository.full_name)
    context = _repository_context(request, repository, decision, "settings")
    settings_url = reverse("repository-settings", kwargs={"namespace": namespace, "name": repository.name})

    def done(section: str, message: str, level=messages.SUCCESS) -> HttpResponse:
        messages.add_message(request, level, message, extra_tags=f"section-{section}")
        return redirect(f"{settings_url}#{section}")

    if action == "preview" and description_form.is_valid():
        context["preview"] = render_markdown(description_form.cleaned_data["full_description"])
    elif action == "describe" and description_form.is_valid():
        services.repository_update(repository=repository, actor=request.user, **description_form.cleaned_data)
        return done("descriptions", "Descriptions saved.")
    elif action == "visibility" and visibility_form.is_valid():
        services.repository_update(
            repository=repository, actor=request.user, visibility=visibility_form.cleaned_data["visibility"]
        )
        return done("visibility", f"{repository.full_name} is now {repository.get_visibility_display().lower()}.")
    elif action == "grant" and grant_form.is_valid():
        holder = _grant_holder(repository, grant_form.cleaned_data["kind"], grant_form.cleaned_data["holder"])
        if holder is None:
            grant_form.add_error("holder", "No such team, user or robot here.")
        else:
            try:
                services.grant_set(
                    repository=repository, level=LEVELS[grant_form.cleaned_data["level"]], actor=request.user, **holder
                )
            except ValidationError as exc:
                grant_form.add_error(None, exc)
            else:
                return done("permissions", "Permission granted.")
    elif action == "revoke":
        grant = RepositoryGrant.objects.filter(repository=repository, pk=id_param(request.POST.get("grant"))).first()
        if grant is not None:
            services.grant_delete(grant=grant, actor=request.user)
            return done("permissions", f"Removed the access of {grant.holder}.")
        return redirect(f"{settings_url}#permissions")
    elif action == "webhook" and webhook_form.is_valid():
        try:
            hook = webhook_services.webhook_create(
                actor=request.user, repository=repository, **webhook_form.cleaned_data
            )
        except ValidationError as exc:
            webhook_form.add_error(None, exc)
        else:
            # Shown once, on this page only, in a dialog that must be dismissed.
            context.update(
                secret_title=f"Webhook {hook.name} created: its signing secret", secret_value=hook.secret, snippets=[]
            )
            webhook_form = WebhookForm()
    elif action in ("webhook-delete", "webhook-test"):
        hook = Webhook.objects.filter(repository=repository, pk=id_param(request.POST.get("webhook"))).first()
        if hook is not None and action == "webhook-delete":
            webhook_services.webhook_delete(webhook=hook, actor=request.user)
            return done("webhooks", f"Webhook {hook.name} deleted.")
        if hook is not None:
            webhook_services.send_test(webhook=hook, actor=request.user)
            return done("webhooks", f"A test delivery to {hook.name} is on its way.")
        return redirect(f"{settings_url}#webhooks")
    elif action == "redeliver":
        from webhooks.models import Delivery

        delivery = (
            Delivery.objects.filter(webhook__repository=repository, pk=id_param(request.POST.get("delivery")))
            .select_related("webhook")
            .first()
        )
        if delivery is not None:
            webhook_services.redeliver(delivery=delivery, actor=request.user)
            return done("webhooks", f"Delivery to {delivery.webhook.name} sent again.")
        return redirect(f"{settings_url}#webhooks")
    elif action == "immutable":
        from repositories import policies

        pattern = request.POST.get("tag_pattern", "")
        limit = ImmutableTagForm.base_fields["tag_pattern"].max_length  # the bound every other form has
        if len(pattern) > limit:  # refused, never cut: a shortened pattern would cover more tags
            return done(
                "immutable", f"A tag pattern has at most {limit} characters; nothing was changed.", messages.ERROR
            )
        try:
            policies.immutable_rule_create(
                namespace=repository.namespace,
                tag_pattern=pattern,
                repository_pattern=repository.name,  # a repository's admin: this repository alone
                actor=request.user,
                repository_admin=not access.may_manage_namespace(_actor(request), repository.namespace),
            )
        except ValidationError as exc:
            errors = "; ".join(m for ms in exc.message_dict.values() for m in ms)
            return done("immutable", errors, messages.ERROR)
        return done("immutable", "Those tags are immutable in this repository once they exist.")
    elif action == "immutable-delete":
        from repositories import policies

        rule = ImmutableTagRule.objects.filter(
            namespace=repository.namespace, repository_pattern=repository.name, pk=id_param(request.POST.get("rule"))
        ).first()
        if rule is not None:
            policies.immutable_rule_delete(rule=rule, actor=request.user)
            return done("immutable", f"Tags matching {rule.tag_pattern} can be pushed over and deleted again.")
        return redirect(f"{settings_url}#immutable")
    elif action == "retention" and retention_form.is_valid():
        from repositories import retention

        try:
            retention.rule_save(
                namespace=repository.namespace,
                actor=request.user,
                repository_pattern=repository.name,  # a repository's admin: this repository alone
                repository_admin=not access.may_manage_namespace(_actor(request), repository.namespace),
                **retention_form.cleaned_data,
            )
        except ValidationError as exc:
            for field, errors in exc.message_dict.items():
                retention_form.add_error(field if field in retention_form.fields else None, errors)
        else:
            return done("retention", "Rule added. It applies when retention runs (daily).")
    elif action == "retention-delete":
        from repositories import retention

        rule = RetentionRule.objects.filter(
            namespace=repository.namespace, repository_pattern=repository.name, pk=id_param(request.POST.get("rule"))
        ).first()
        if rule is not None:
            retention.rule_delete(rule=rule, actor=request.user)
            return done("retention", "Rule removed.")
        return redirect(f"{settings_url}#retention")
    elif action == "delete" and delete_form.is_valid():
        try:
            services.repository_delete(repository=repository, actor=request.user)
        except (TagImmutable, WritesHeld) as exc:
            return done("delete", f"Nothing was deleted: {exc}.", messages.ERROR)
        except RegistryError:
            return done(
                "delete", "The registry could not be reached; nothing was deleted. Try again later.", messages.ERROR
            )
        messages.success(request, f"Deleted {repository.full_name}.")
        return redirect("home")

    org_id = repository.namespace.organization_id
    holders = (
        [f"{t}" for t in Team.objects.filter(organization_id=org_id).values_list("name", flat=True)] if org_id else []
    )
    holders += list(Robot.objects.filter(organization_id=org_id).values_list("name", flat=True)) if org_id else []
    holders += list(
        (Membership.objects.filter(organization_id=org_id).values_list("user__username", flat=True))
        if org_id
        else User.objects.filter(is_active=True).order_by("username").values_list("username", flat=True)[:500]
    )
    context.update(
        description_form=description_form,
        visibility_form=visibility_form,
        grant_form=grant_form,
        webhook_form=webhook_form,
        delete_form=delete_form,
        grants=selectors.repository_grants(repository=repository),
        webhooks=Webhook.objects.filter(repository=repository).order_by("name"),
        immutable_rules=covering(
            ImmutableTagRule.objects.filter(namespace=repository.namespace).order_by("pk"), repository.name
        ),
        retention_form=retention_form,
        retention_rules=covering(
            RetentionRule.objects.filter(namespace=repository.namespace).order_by("pk"), repository.name
        ),
        holders=holders,
        sections=[
            ("descriptions", "Descriptions"),
            ("visibility", "Visibility"),
            ("permissions", "Permissions"),
            ("immutable", "Immutable tags"),
            ("retention", "Retention"),
            ("webhooks", "Webhooks"),
            ("delete", "Delete"),
        ],
    )
    forms_sent = [
        f
        for f in (description_form, visibility_form, grant_form, webhook_form, retention_form, delete_form)
        if f.is_bound
    ]
    status = 400 if any(f.errors for f in forms_sent) else 200
    return render(request, "repositories/settings.html", context, status=status)


def _grant_holder(repository: Repository, kind: str, name: str) -> dict | None:
    org_id = repository.namespace.organization_id
    if kind == "team":
        team = Team.objects.filter(organization_id=org_id, name=name).first() if org_id else None
        return {"team": team} if team else None
    if kind == "robot":
        robot = Robot.objects.filter(organization_id=org_id, name=name.split("+")[-1]).first() if org_id else None
        return {"robot": robot} if robot else None
    user = User.objects.filter(username=name.lower(), is_active=True).first()
    return {"user": user} if user else None


def namespace_page(request: HttpRequest, name: str) -> HttpResponse:
    """A user's profile or an organization's page: its repositories the visitor can see."""
    actor = _actor(request)
    repositories = (
        access.visible_repositories(actor)
        .filter(namespace__name=name)
        .select_related("namespace")
        .order_by("full_name")
    )
    organization = Organization.objects.filter(name=name).first()
    profile = None if organization else User.objects.filter(username=name, is_active=True).first()
    if organization is None and profile is None:
        raise Http404("No such user or organization.")
    context = {
        "name": name,
        "organization": organization,
        "profile": profile,
        "page": Paginator(repositories, 30).get_page(request.GET.get("page")),
    }
    context["can_manage"] = organization is not None and access.may_manage_organization(actor, organization)
    namespace_row = Namespace.objects.filter(name=name).first()
    # The first-push panel, for whoever may create repositories here by pushing.
    context["can_push"] = namespace_row is not None and access.decide(actor, namespace_row, "my-app").allows(
        Level.WRITE
    )
    if profile is not None:
        # What this user did, to repositories the visitor may see.
        context["activity"] = audit_selectors.user_activity(actor=actor, user=profile, limit=20)
    if organization is not None and access.may_see_organization_internals(actor, organization):
        members = Membership.objects.filter(organization=organization).select_related("user")
        context["members"] = members.order_by("user__username")
        context["teams"] = organization.teams.order_by("name")
        context["activity"] = audit_selectors.organization_activity(actor=actor, organization=organization, limit=20)
    return render(request, "repositories/namespace.html", context)
