"""Run once in the provider's own environment: a signing key, the portal as a client, people
and groups. Arguments: client_id secret redirect_uri, then person:password:group,group ..."""

import sys

import django

django.setup()

from django.contrib.auth.models import Group, User  # noqa: E402
from django.core.management import call_command  # noqa: E402
from oidc_provider.models import Client, ResponseType  # noqa: E402

client_id, secret, redirect_uri, *people = sys.argv[1:]
call_command("migrate", verbosity=0)
call_command("creatersakey")
client = Client.objects.create(
    name="Dockyard",
    client_type="confidential",
    client_id=client_id,
    client_secret=secret,
    redirect_uris=[redirect_uri],
    require_consent=False,
    reuse_consent=True,
    _scope="openid profile email groups",
)
client.response_types.add(ResponseType.objects.get(value="code"))
for spec in people:
    username, password, groups = spec.split(":")
    user = User.objects.create_user(username=username, password=password, email=f"{username}@corp.example")
    if username.endswith("-unverified"):
        user.last_name = "unverified"
        user.save()
    for name in filter(None, groups.split(",")):
        user.groups.add(Group.objects.get_or_create(name=name)[0])
