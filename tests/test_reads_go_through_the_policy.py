"""The class of bug behind issue 12, item 5, closed by structure: no view (page, API, admin page)
reads repositories, tags or audit rows itself. Every such read goes through a selector that
takes the actor (repositories.selectors, audit.selectors) and so through the policy's one
visibility query. A new view that filters `AuditEvent.objects` "by namespace" fails here."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

from tests.services import ROOT

GUARDED_MODELS = {"AuditEvent", "Repository", "Tag"}
VIEW_MODULES = sorted(
    path
    for pattern in ("*/views.py", "*/*_views.py", "*/api/views.py")
    for path in ROOT.glob(pattern)
    if ".venv" not in path.parts
)


def direct_reads(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if (
            isinstance(node, ast.Attribute)
            and node.attr == "objects"
            and isinstance(node.value, ast.Name)
            and node.value.id in GUARDED_MODELS
        ):
            found.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.value.id}.objects")
    return found


def test_the_view_modules_are_found():
    names = {str(p.relative_to(ROOT)) for p in VIEW_MODULES}
    assert {"repositories/views.py", "repositories/api/views.py", "accounts/api/views.py"} <= names
    assert {"webhooks/api/views.py", "repositories/org_views.py"} <= names


def test_no_view_reads_repositories_tags_or_audit_rows_without_a_selector():
    assert [hit for path in VIEW_MODULES for hit in direct_reads(path)] == []


def test_the_list_selectors_take_the_actor():
    from audit import selectors as audit_selectors
    from repositories import selectors

    lists = [
        selectors.repository_list,
        selectors.repository_search,
        audit_selectors.repository_activity,
        audit_selectors.organization_activity,
        audit_selectors.user_activity,
        audit_selectors.audit_log,
    ]
    assert [f.__name__ for f in lists if "actor" not in inspect.signature(f).parameters] == []
