"""The namespace policy actions of the settings pages (immutable tags, retention, storage), one
copy for an organization's settings and a user's own: each takes the POST and the namespace,
calls the service, and says what happened as a `Done` (a section and a message) or an
`Invalid` (the form, with its errors, to show again); `Gone` when what the form pointed at is
not there any more. Who may act is the caller's check (the page's decorator), as elsewhere."""

from __future__ import annotations

from dataclasses import dataclass

from django.core.exceptions import ValidationError
from django.http import HttpRequest
from django.urls import reverse

from accounts.models import Namespace
from portal.params import id_param
from repositories import gc, policies, retention, storage
from repositories.forms import ImmutableTagForm, QuotaForm, RetentionRuleForm
from repositories.models import ImmutableTagRule, RetentionRule, RetentionRun

# The sections these actions answer in, as (anchor, title), in page order.
SECTIONS = [("immutable", "Immutable tags"), ("retention", "Retention"), ("storage", "Storage")]


class Gone(Exception):
    """What a form pointed at is not there (removed in another tab, or a hand-edited form): the
    section says so instead of an error page."""

    def __init__(self, section: str, message: str):
        super().__init__(message)
        self.section, self.message = section, message


@dataclass
class Done:
    section: str
    message: str


@dataclass
class Invalid:
    key: str  # the form's key in the page's `forms`
    form: object


def with_errors(form, exc: ValidationError):
    if hasattr(exc, "error_dict"):
        for field, errors in exc.message_dict.items():
            form.add_error(field if field in form.fields else None, errors)
    else:
        form.add_error(None, exc.messages)
    return form


ACTIONS = ["immutable", "immutable_delete", "retention", "retention_delete", "retention_run", "storage"]


def urls(prefix: str, *args) -> dict:
    """Where each section's forms post: the URL names are `<prefix>-immutable`,
    `<prefix>-immutable-delete`, … (as the settings pages' URLconf names them)."""
    return {action: reverse(f"{prefix}-{action.replace('_', '-')}", args=args) for action in ACTIONS}


def forms() -> dict:
    return {
        "immutable": ImmutableTagForm(prefix="immutable"),
        "quota": QuotaForm(prefix="quota"),
        "retention": RetentionRuleForm(prefix="retention"),
    }


def context(namespace: Namespace) -> dict:
    """What the three sections show."""
    return {
        "retention_rules": RetentionRule.objects.filter(namespace=namespace),
        "retention_run": RetentionRun.objects.filter(namespace=namespace).first(),
        "storage": storage.as_data(namespace, storage.usage(namespace)),
        "immutable_rules": ImmutableTagRule.objects.filter(namespace=namespace).select_related("created_by"),
    }


def immutable_add(request: HttpRequest, namespace: Namespace) -> Done | Invalid:
    form = ImmutableTagForm(request.POST, prefix="immutable")
    if not form.is_valid():
        return Invalid("immutable", form)
    try:
        rule = policies.immutable_rule_create(
            namespace=namespace,
            tag_pattern=form.cleaned_data["tag_pattern"],
            repository_pattern=form.cleaned_data["repository_pattern"],
            actor=request.user,
        )
    except ValidationError as exc:
        if hasattr(exc, "error_dict") and "pattern" in exc.error_dict:
            exc = ValidationError({"tag_pattern": exc.error_dict["pattern"]})
        return Invalid("immutable", with_errors(form, exc))
    return Done(
        "immutable", f"Tags {rule.tag_pattern} in {rule.repository_pattern} are immutable: once pushed, they stay."
    )


def immutable_delete(request: HttpRequest, namespace: Namespace) -> Done:
    rule = ImmutableTagRule.objects.filter(namespace=namespace, pk=id_param(request.POST.get("rule"))).first()
    if rule is None:
        raise Gone("immutable", "That rule is gone already.")
    policies.immutable_rule_delete(rule=rule, actor=request.user)
    return Done("immutable", f"Tags {rule.tag_pattern} can be pushed again and deleted.")


def retention_add(request: HttpRequest, namespace: Namespace) -> Done | Invalid:
    form = RetentionRuleForm(request.POST, prefix="retention")
    if not form.is_valid():
        return Invalid("retention", form)
    try:
        retention.rule_save(namespace=namespace, actor=request.user, **form.cleaned_data)
    except ValidationError as exc:
        return Invalid("retention", with_errors(form, exc))
    return Done("retention", "Rule added. Preview to see what it would remove.")


def retention_delete(request: HttpRequest, namespace: Namespace) -> Done:
    rule = RetentionRule.objects.filter(namespace=namespace, pk=id_param(request.POST.get("rule"))).first()
    if rule is None:
        raise Gone("retention", "That rule is gone already.")
    retention.rule_delete(rule=rule, actor=request.user)
    return Done("retention", "Rule removed.")


def retention_run(request: HttpRequest, namespace: Namespace) -> Done:
    dry_run = request.POST.get("apply") != "yes"
    try:
        run = retention.run(namespace=namespace, dry_run=dry_run, actor=request.user)
    except (gc.WritesHeld, retention.RunUnderWay) as exc:
        raise Gone("retention", f"Nothing was removed: {exc}.") from None
    size = storage.describe_bytes(run.bytes)
    if dry_run:
        return Done("retention", f"Preview: {len(run.tags)} tag(s) and {len(run.digests)} image(s) would go ({size}).")
    return Done(
        "retention",
        f"Removed {len(run.tags)} tag(s) and {len(run.digests)} image(s) ({size} once garbage is collected).",
    )


def quota_set(request: HttpRequest, namespace: Namespace) -> Done | Invalid:
    form = QuotaForm(request.POST, prefix="quota")
    if not form.is_valid():
        return Invalid("quota", form)
    gib = form.cleaned_data["quota_gib"]
    quota = None if gib is None else int(gib * 1024**3)
    storage.quota_set(namespace=namespace, quota_bytes=quota, actor=request.user)
    if quota is None:
        return Done("storage", "No quota: uploads are never refused for size.")
    return Done("storage", f"Quota set to {storage.describe_bytes(quota)}: uploads are refused once it is reached.")
