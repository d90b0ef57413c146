"""Remove a person from the provider (their tokens go with them): person"""

import sys

import django

django.setup()

from django.contrib.auth.models import User  # noqa: E402

User.objects.filter(username=sys.argv[1]).delete()
