"""portal.net.client_address: the one reading of the client's address (issue 12, item 6). The
nginx end-to-end version is in test_production_topology.py."""

import pytest
from django.test import RequestFactory

from portal.net import client_address


def address(remote: str, forwarded: str | None = None) -> str | None:
    meta = {"REMOTE_ADDR": remote}
    if forwarded is not None:
        meta["HTTP_X_FORWARDED_FOR"] = forwarded
    return client_address(RequestFactory().get("/", **meta))


@pytest.mark.parametrize(
    ("trusted", "remote", "forwarded", "expected"),
    [
        ([], "198.51.100.7", "203.0.113.9", "198.51.100.7"),  # no proxy trusted: headers mean nothing
        (["10.0.0.2"], "198.51.100.7", "203.0.113.9", "198.51.100.7"),  # not from the proxy
        (["10.0.0.2"], "10.0.0.2", "203.0.113.9", "203.0.113.9"),  # nginx's $proxy_add_x_forwarded_for
        (["10.0.0.2"], "10.0.0.2", "1.2.3.4, 203.0.113.9", "203.0.113.9"),  # a forged left part is skipped
        (["10.0.0.0/8"], "10.0.0.2", "203.0.113.9, 10.1.1.1", "203.0.113.9"),  # two trusted hops
        (["10.0.0.2"], "10.0.0.2", "garbage", "10.0.0.2"),
        (["10.0.0.2"], "10.0.0.2", "", "10.0.0.2"),
        (["10.0.0.2"], "10.0.0.2", "[2001:db8::1]:4711", "2001:db8::1"),
        (["::1"], "::1", "203.0.113.9:5555", "203.0.113.9"),
        ([], "::ffff:192.0.2.1", None, "192.0.2.1"),
    ],
)
def test_client_address(settings, trusted, remote, forwarded, expected):
    settings.TRUSTED_PROXIES = trusted
    assert address(remote, forwarded) == expected


def test_a_bad_trusted_proxies_setting_fails_loudly(tmp_path):
    import os
    import subprocess
    import sys

    from tests.services import ROOT

    env = {**os.environ, "DOCKYARD_DATA_DIR": str(tmp_path), "TRUSTED_PROXIES": "nginx"}
    result = subprocess.run([sys.executable, "manage.py", "check"], cwd=ROOT, env=env, capture_output=True, text=True)
    assert result.returncode != 0
    assert "TRUSTED_PROXIES must list addresses or CIDR networks" in result.stderr
