"""Every environment variable the settings read is in the README's configuration table, and
bad values stop the start with a clear message."""

import os
import re
import subprocess
import sys

from tests.services import ROOT

SETTINGS = (ROOT / "portal" / "settings.py").read_text()
README = (ROOT / "README.md").read_text()


def test_every_setting_is_in_the_readme_table():
    names = set(re.findall(r'(?:getenv|envbool|envint|envlist|envurl|envsecret)\(\s*"([A-Z_]+)"', SETTINGS))
    assert len(names) > 20
    missing = sorted(n for n in names if f"| `{n}`" not in README)
    assert missing == []


def test_a_bad_value_fails_loudly(tmp_path):
    env = {**os.environ, "DOCKYARD_DATA_DIR": str(tmp_path), "TOKEN_LIFETIME": "30"}
    result = subprocess.run([sys.executable, "manage.py", "check"], cwd=ROOT, env=env, capture_output=True, text=True)
    assert result.returncode != 0
    assert "TOKEN_LIFETIME must be at least 60" in result.stderr


def test_every_ldap_setting_is_documented():
    source = (ROOT / "accounts" / "ldap_config.py").read_text()
    names = set(re.findall(r'env(?:\.get\(|\[)\s*"(LDAP_[A-Z_]+)"', source))
    assert len(names) >= 10
    example = (ROOT / ".env.example").read_text()
    assert sorted(n for n in names if f"`{n}`" not in README or n not in example) == []
