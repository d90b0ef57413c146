"""Set a person's groups at the provider: person group,group ..."""

import sys

import django

django.setup()

from django.contrib.auth.models import Group, User  # noqa: E402

username, groups = sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else ""
user = User.objects.get(username=username)
user.groups.set([Group.objects.get_or_create(name=n)[0] for n in filter(None, groups.split(","))])
