import stat

import yaml
from django.core.management import call_command

from repositories.registry.token import BUNDLE_FILE, load_signing_key


def test_it_writes_the_registry_config_and_the_signing_key(tmp_path, settings):
    settings.TOKEN_KEY_DIR = tmp_path / "token"
    settings.PORTAL_URL = "https://portal.example.org"
    output = tmp_path / "registry.yml"
    call_command("registry_config", output=str(output), storage=str(tmp_path / "storage"))

    config = yaml.safe_load(output.read_text())
    token = config["auth"]["token"]
    assert token["realm"] == "https://portal.example.org/auth/token"
    assert token["service"] == settings.REGISTRY_SERVICE
    assert token["issuer"] == settings.TOKEN_ISSUER
    bundle = (tmp_path / "token" / BUNDLE_FILE).read_text()
    assert token["rootcertbundle"] == str(tmp_path / "token" / BUNDLE_FILE)
    assert "BEGIN CERTIFICATE" in bundle
    endpoint = config["notifications"]["endpoints"][0]
    assert endpoint["headers"]["Authorization"] == [f"Bearer {settings.REGISTRY_EVENTS_SECRET}"]
    assert endpoint["ignoredmediatypes"] == ["application/octet-stream"]
    assert config["storage"]["delete"]["enabled"] is True
    assert config["log"]["level"] == "warn"  # "info" would log the notification secret
    assert stat.S_IMODE(output.stat().st_mode) == 0o600  # it holds that secret


def test_it_keeps_the_key_and_the_old_certificates_on_a_second_run(tmp_path, settings):
    settings.TOKEN_KEY_DIR = tmp_path / "token"
    call_command("registry_config", output=str(tmp_path / "a.yml"), storage=str(tmp_path / "s"))
    first = load_signing_key(tmp_path / "token").kid
    call_command("registry_config", output=str(tmp_path / "b.yml"), storage=str(tmp_path / "s"))
    assert load_signing_key(tmp_path / "token").kid == first
    assert (tmp_path / "token" / BUNDLE_FILE).read_text().count("BEGIN CERTIFICATE") == 1
