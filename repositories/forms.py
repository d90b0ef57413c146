from __future__ import annotations

from django import forms

from accounts.models import Visibility
from webhooks.models import Event

LEVEL_CHOICES = [("read", "Read (pull)"), ("write", "Write (pull, push)"), ("admin", "Admin (everything)")]


class DescriptionForm(forms.Form):
    short_description = forms.CharField(
        label="Short description",
        max_length=100,
        required=False,
        help_text="Shown in lists and search (100 characters).",
    )
    full_description = forms.CharField(
        label="Overview (Markdown)", max_length=25000, required=False, widget=forms.Textarea(attrs={"rows": 14})
    )


class VisibilityForm(forms.Form):
    visibility = forms.ChoiceField(label="Visibility", choices=Visibility.choices, widget=forms.RadioSelect)


class GrantForm(forms.Form):
    kind = forms.ChoiceField(label="Give", choices=[("team", "Team"), ("user", "User"), ("robot", "Robot")])
    holder = forms.CharField(
        label="Name", max_length=150, widget=forms.TextInput(attrs={"list": "holders-list", "autocomplete": "off"})
    )
    level = forms.ChoiceField(label="Level", choices=LEVEL_CHOICES)


class WebhookForm(forms.Form):
    name = forms.CharField(label="Name", max_length=100)
    url = forms.URLField(label="URL", max_length=500, assume_scheme="https")
    events = forms.MultipleChoiceField(
        label="Events",
        choices=[c for c in Event.choices if c[0] != Event.PING],
        widget=forms.CheckboxSelectMultiple,
        required=False,
        help_text="None ticked: all events.",
    )
    tag_pattern = forms.CharField(label="Tag pattern", max_length=100, required=False, help_text="e.g. v* or release-*")


class DeleteRepositoryForm(forms.Form):
    confirm = forms.CharField(label="Type the repository's full name to confirm", max_length=255)

    def __init__(self, *args, full_name: str, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.full_name = full_name

    def clean_confirm(self) -> str:
        if self.cleaned_data["confirm"].strip() != self.full_name:
            raise forms.ValidationError(f"Type {self.full_name} exactly.")
        return self.cleaned_data["confirm"]


class TokenForm(forms.Form):
    name = forms.CharField(label="Name", max_length=100, help_text="e.g. the CI job or laptop that uses it")
    scope = forms.ChoiceField(
        label="Access",
        choices=[
            ("read", "Read-only (pull)"),
            ("write", "Read & write (pull, push)"),
            ("delete", "Read, write & delete (also manages organizations you own)"),
        ],
        initial="write",  # what `docker push` needs: the first thing most people do with a token
    )
    expires = forms.ChoiceField(
        label="Expires",
        choices=[("30", "in 30 days"), ("90", "in 90 days"), ("365", "in a year"), ("", "never")],
        initial="90",
        required=False,
    )
    limits = forms.CharField(
        label="Only these namespaces or repositories",
        required=False,
        max_length=1000,
        help_text="Optional, comma-separated, e.g. acme, alice/tool. Empty: everything you can reach.",
    )

    def clean_limits(self) -> list[str]:
        from repositories.access import validate_limits

        names = [n.strip().lower() for n in self.cleaned_data["limits"].split(",") if n.strip()]
        return validate_limits(names)


class RepositoryCreateForm(forms.Form):
    namespace = forms.ChoiceField(label="Namespace")
    name = forms.CharField(
        label="Name", max_length=200, help_text="Lowercase letters, digits, . _ - and / between path components."
    )
    visibility = forms.ChoiceField(
        label="Visibility", choices=Visibility.choices, initial=Visibility.PRIVATE, widget=forms.RadioSelect
    )
    short_description = forms.CharField(label="Short description", max_length=100, required=False)

    def __init__(self, *args, namespaces: list[str], **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["namespace"].choices = [(n, n) for n in namespaces]


class OrganizationCreateForm(forms.Form):
    name = forms.CharField(label="Name", max_length=64, help_text="Also the namespace: acme/app.")
    display_name = forms.CharField(label="Display name", max_length=150, required=False)


class OrganizationSettingsForm(forms.Form):
    display_name = forms.CharField(label="Display name", max_length=150, required=False)
    description = forms.CharField(label="Description", max_length=300, required=False)
    email = forms.EmailField(label="Contact email", required=False)
    default_visibility = forms.ChoiceField(
        label="New repositories are",
        choices=Visibility.choices,
        widget=forms.RadioSelect,
        help_text="What a repository created by its first push (or without a choice) gets.",
    )


class DeleteOrganizationForm(DeleteRepositoryForm):
    confirm = forms.CharField(label="Type the organization's name to confirm", max_length=255)


class MemberForm(forms.Form):
    username = forms.CharField(
        label="Username", max_length=150, widget=forms.TextInput(attrs={"list": "users-list", "autocomplete": "off"})
    )
    role = forms.ChoiceField(label="Role", choices=[("member", "Member"), ("owner", "Owner")])


class TeamForm(forms.Form):
    name = forms.CharField(label="Team name", max_length=64)
    description = forms.CharField(label="Description", max_length=300, required=False)


class TeamMemberForm(forms.Form):
    team = forms.CharField(label="Team", max_length=64, widget=forms.TextInput(attrs={"list": "teams-list"}))
    username = forms.CharField(
        label="Member",
        max_length=150,
        widget=forms.TextInput(attrs={"list": "org-members-list", "autocomplete": "off"}),
    )


class AccessRuleForm(forms.Form):
    holder = forms.CharField(
        label="Team or robot",
        max_length=150,
        help_text="a team's name, or robot:<name>",
        widget=forms.TextInput(attrs={"list": "teams-and-robots-list", "autocomplete": "off"}),
    )
    pattern = forms.CharField(label="Repository pattern", max_length=200, help_text="e.g. ci-* or base/*")
    level = forms.ChoiceField(label="Level", choices=LEVEL_CHOICES)


class RobotForm(forms.Form):
    name = forms.CharField(label="Robot name", max_length=64)
    description = forms.CharField(label="Description", max_length=300, required=False)


class ImmutableTagForm(forms.Form):
    tag_pattern = forms.CharField(
        label="Tag pattern", max_length=128, help_text="e.g. v* or release-*: once such a tag exists, it stays"
    )
    repository_pattern = forms.CharField(
        label="In repositories", max_length=200, initial="*", help_text="* for every repository, or e.g. api-*"
    )


class RetentionRuleForm(forms.Form):
    tag_pattern = forms.CharField(label="Tags", max_length=128, initial="*", help_text="e.g. * or pr-*")
    repository_pattern = forms.CharField(label="In repositories", max_length=200, initial="*")
    keep_most_recent = forms.IntegerField(
        label="Keep the N most recent", required=False, min_value=0, max_value=1_000_000
    )
    keep_pushed_within_days = forms.IntegerField(
        label="Keep those pushed within (days)", required=False, min_value=0, max_value=36_500
    )
    keep_pulled_within_days = forms.IntegerField(
        label="Keep those pulled within (days)", required=False, min_value=0, max_value=36_500
    )
    untagged = forms.BooleanField(label="Also remove untagged manifests", required=False)
    protect_immutable = forms.BooleanField(
        label="Never remove immutable tags (they are always kept: an immutable tag cannot be deleted)",
        required=False,
        initial=True,
    )
    protect_verified = forms.BooleanField(
        label="Never remove tags verified by a trusted key", required=False, initial=True
    )


class RepositoryRetentionForm(RetentionRuleForm):
    """A retention rule for one repository (its settings page): the repository is that one."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        del self.fields["repository_pattern"]


class QuotaForm(forms.Form):
    quota_gib = forms.DecimalField(
        label="Quota (GiB)",
        required=False,
        min_value=0,
        max_digits=12,
        decimal_places=3,
        max_value=4 * 1024**3,  # GiB: 4 EiB, within the column
        help_text="empty: no quota. Uploads are refused once the namespace stores this much.",
    )


class SigningKeyForm(forms.Form):
    name = forms.CharField(label="Key name", max_length=100, help_text="e.g. release-ci or alice-laptop")
    public_key = forms.CharField(
        label="Public key (PEM)",
        max_length=16384,
        widget=forms.Textarea(attrs={"rows": 5, "spellcheck": "false", "placeholder": "-----BEGIN PUBLIC KEY-----"}),
        help_text="cosign.pub, as cosign generate-key-pair writes it, or any ECDSA, RSA or Ed25519 public key.",
    )


class ProfileForm(forms.Form):
    full_name = forms.CharField(label="Display name", max_length=150, required=False)
    bio = forms.CharField(
        label="Bio",
        max_length=300,
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="300 characters.",
    )
    company = forms.CharField(label="Company", max_length=150, required=False)
    location = forms.CharField(label="Location", max_length=150, required=False)
