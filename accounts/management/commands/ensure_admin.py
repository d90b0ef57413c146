from __future__ import annotations

import os
import secrets

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from accounts.models import User
from accounts.services import user_create


class Command(BaseCommand):
    help = (
        "Create a superuser if there is none: from DJANGO_SUPERUSER_USERNAME, _PASSWORD and _EMAIL "
        "when set, otherwise 'admin' with a generated password printed once."
    )

    def handle(self, *args, **options) -> None:
        if User.objects.filter(is_superuser=True).exists():
            self.stdout.write("An admin user exists already; log in with its password.")
            return
        username = os.getenv("DJANGO_SUPERUSER_USERNAME", "admin")
        email = os.getenv("DJANGO_SUPERUSER_EMAIL", "")
        password = os.getenv("DJANGO_SUPERUSER_PASSWORD")
        generated = not password
        password = password or secrets.token_urlsafe(12)
        try:
            user_create(username=username, email=email, password=password, is_staff=True, is_superuser=True)
        except ValidationError as exc:
            raise CommandError(f"cannot create admin user {username!r}: {exc.messages}") from None
        if generated:
            self.stdout.write(f"Created admin user {username!r} with password: {password}")
            self.stdout.write("(shown once; change it after logging in)")
        else:
            self.stdout.write(f"Created admin user {username!r} from DJANGO_SUPERUSER_* settings.")
