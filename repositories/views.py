from __future__ import annotations

from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render

from repositories import access, selectors
from repositories.models import Repository


def home(request: HttpRequest) -> HttpResponse:
    actor = access.actor_for_user(request.user)
    repositories = selectors.repository_list(actor=actor)
    return render(request, "repositories/home.html", {"repositories": repositories})


def repository_detail(request: HttpRequest, namespace: str, name: str) -> HttpResponse:
    actor = access.actor_for_user(request.user)
    repository = (
        Repository.objects.select_related("namespace").filter(namespace__name=namespace, name=name.rstrip("/")).first()
    )
    # Private and missing look the same: one 404.
    if repository is None or not access.decide(actor, repository.namespace, repository.name, repository).allows(
        access.Level.READ
    ):
        raise Http404("No such repository.")
    tags = selectors.repository_tags(repository=repository)
    activity = selectors.repository_activity(repository=repository)
    return render(request, "repositories/detail.html", {"repository": repository, "tags": tags, "activity": activity})
