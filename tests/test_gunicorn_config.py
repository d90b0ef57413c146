"""gunicorn as every stack here starts it (from the repository root) opens no control socket:
gunicorn 27's default is one path per user (~/.gunicorn/gunicorn.ctl) that a second stack on the
machine took over (gunicorn.conf.py)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from tests.services import free_port

ROOT = Path(__file__).resolve().parent.parent


def test_gunicorn_started_from_the_repository_opens_no_control_socket(tmp_path):
    port = free_port()
    env = {**os.environ, "HOME": str(tmp_path), "DJANGO_DEBUG": "false"}
    gunicorn = Path(sys.executable).parent / "gunicorn"
    proc = subprocess.Popen(
        [str(gunicorn), "portal.wsgi", "--bind", f"127.0.0.1:{port}", "--workers", "1"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as answer:
                    assert answer.status == 200
                    break
            except OSError:
                assert proc.poll() is None, "gunicorn exited"
                assert time.monotonic() < deadline, "gunicorn did not answer"
                time.sleep(0.1)
        assert not (tmp_path / ".gunicorn").exists()
    finally:
        proc.terminate()
        proc.wait(timeout=30)
