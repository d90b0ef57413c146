"""Template hygiene: Django's {# … #} comment is one line only; one that spans lines is printed
on the page as text (a README-only newcomer saw one on two settings pages, helper-12)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_no_template_comment_spans_lines():
    spanning = []
    for path in sorted(ROOT.glob("**/templates/**/*.html")):
        if ".venv" in path.parts:
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            for opened in re.finditer(r"\{#", line):
                if "#}" not in line[opened.end() :]:
                    spanning.append(f"{path.relative_to(ROOT)}:{number}")
    assert spanning == [], f"use {{% comment %}} for comments over several lines: {spanning}"
