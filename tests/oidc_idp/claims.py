"""What the provider says about a person: standard claims, and their groups (scope "groups")."""

from django.utils.translation import gettext_lazy as _
from oidc_provider.lib.claims import ScopeClaims


def userinfo(claims, user):
    claims["name"] = user.get_full_name() or user.username
    claims["preferred_username"] = user.username
    claims["email"] = user.email
    # Who has a verified address is the provider's to say; here, a last name of "unverified" says no.
    claims["email_verified"] = user.last_name != "unverified"
    return claims


class GroupsScope(ScopeClaims):
    info_groups = (_("Groups"), _("The groups you are in."))

    def scope_groups(self):
        return {"groups": sorted(g.name for g in self.user.groups.all())}
