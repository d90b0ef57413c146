"""The embedded default: with no DATABASE_URL the portal migrates and serves on SQLite (WAL)."""

import os
import sqlite3
import subprocess
import sys

import requests

from tests.services import ROOT, Process, free_port, wait_until


def test_it_migrates_and_serves_a_page_on_sqlite(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "DJANGO_SETTINGS_MODULE")}
    env["DOCKYARD_DATA_DIR"] = str(tmp_path)
    migrate = subprocess.run(
        [sys.executable, "manage.py", "migrate", "--no-input"], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert migrate.returncode == 0, migrate.stderr
    db_file = tmp_path / "dockyard.sqlite3"
    assert db_file.exists()

    seed = (
        "from accounts.services import user_create; from accounts.models import Namespace, Visibility; "
        "from repositories.models import Repository; u = user_create(username='alice', password='pw-123456789'); "
        "Repository.objects.create(namespace=Namespace.objects.get(name='alice'), name='postgres-tools', "
        "visibility=Visibility.PUBLIC, short_description='Helpers'); "
        "Repository.objects.create(namespace=Namespace.objects.get(name='alice'), name='hidden', "
        "short_description='postgres')"
    )
    seeded = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", seed], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert seeded.returncode == 0, seeded.stderr

    port = free_port()
    server = Process(
        "sqlite-web",
        [sys.executable, "manage.py", "runserver", "--noreload", f"127.0.0.1:{port}"],
        env=env,
        cwd=ROOT,
        log_dir=tmp_path,
    )
    try:
        home = wait_until(
            lambda: requests.get(f"http://127.0.0.1:{port}/", timeout=2), timeout=30, what="runserver on SQLite"
        )
        assert home.status_code == 200, server.log()
        assert "Dockyard" in home.text
        assert requests.get(f"http://127.0.0.1:{port}/admin/login/", timeout=5).status_code == 200
        # The plain search fallback on SQLite: a match by name, and the private one stays hidden.
        response = requests.get(f"http://127.0.0.1:{port}/api/v1/repositories/?q=postgres", timeout=5)
        assert response.status_code == 200, (response.status_code, response.text[:2000], server.log())
        found = response.json()
        assert [r["full_name"] for r in found["results"]] == ["alice/postgres-tools"]
    finally:
        server.stop()
    with sqlite3.connect(db_file) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"accounts_user", "repositories_repository", "repositories_tag"} <= tables
