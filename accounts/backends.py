"""Staff may do everything (DESIGN.md section 4), in the admin console too. This backend only
answers permission questions; it authenticates nobody. Admin classes that are read-only by
design (tags, manifests, the audit log) still refuse changes with their own rules."""

from __future__ import annotations


class StaffHaveAllPermissions:
    def authenticate(self, request, **credentials):
        return None

    def has_perm(self, user_obj, perm: str, obj=None) -> bool:
        return bool(user_obj.is_active and user_obj.is_staff)

    def has_module_perms(self, user_obj, app_label: str) -> bool:
        return bool(user_obj.is_active and user_obj.is_staff)
