"""docker-compose.yml holds together: what `docker compose config` would check (no Docker
engine runs here), and the operational promises (health checks, start order, pinned registry)."""

import re

import yaml

from tests.services import ROOT

COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
ENV_EXAMPLE = (ROOT / ".env.example").read_text()
LONG_RUNNING = {"postgres", "redis", "registry", "web", "worker", "maintenance", "webhooks", "beat", "nginx"}


def test_every_service_and_dependency_exists():
    services = COMPOSE["services"]
    assert LONG_RUNNING | {"init", "registry-gc"} == set(services)
    # The garbage collector is a one-shot, started by hand: never by `docker compose up`.
    assert services["registry-gc"]["profiles"] == ["maintenance"]
    assert services["registry-gc"]["command"] == ["python", "manage.py", "registry_gc"]
    for name, service in services.items():
        for dependency, condition in (service.get("depends_on") or {}).items():
            assert dependency in services, (name, dependency)
            assert condition["condition"] in ("service_healthy", "service_completed_successfully", "service_started")
            if condition["condition"] == "service_healthy":
                assert "healthcheck" in services[dependency], dependency


def test_every_long_running_service_has_a_health_check_and_a_restart_policy():
    for name in LONG_RUNNING:
        service = COMPOSE["services"][name]
        assert service["healthcheck"]["test"], name
        assert service.get("restart") == "unless-stopped", name


def test_every_named_volume_is_declared_and_every_mounted_file_exists():
    declared = set(COMPOSE["volumes"])
    used = set()
    for name, service in COMPOSE["services"].items():
        for volume in service.get("volumes") or []:
            source = volume.split(":", 1)[0]
            if source.startswith((".", "/")):
                assert (ROOT / source).exists(), (name, source)
            else:
                assert source in declared, (name, source)
                used.add(source)
        if "build" in service:
            assert (ROOT / service["build"] / "Dockerfile").exists()
    assert used == declared  # no stray volumes either


def test_every_variable_has_a_value_in_the_example_environment():
    text = (ROOT / "docker-compose.yml").read_text()
    variables = set(re.findall(r"\$\{([A-Z_]+)(?::?[-?][^}]*)?\}", text))
    defined = set(re.findall(r"^([A-Z_]+)=", ENV_EXAMPLE, re.MULTILINE))
    assert variables, "no variables found: the pattern is broken"
    assert sorted(variables - defined) == []


def test_the_registry_is_the_tested_line_and_the_portal_image_is_built_here():
    assert COMPOSE["services"]["registry"]["image"].startswith("registry:2.8.")
    assert COMPOSE["services"]["web"]["build"] == "."
    template = COMPOSE["services"]["nginx"]["volumes"][0].split(":")[0]
    assert (ROOT / template).exists()


def test_the_dockerfile_runs_unprivileged_without_build_tools():
    dockerfile = (ROOT / "Dockerfile").read_text()
    final_stage = dockerfile.split("\nFROM ")[-1]
    assert "USER dockyard" in final_stage
    # Run-time libraries only (OpenLDAP's client): no compiler, no headers.
    assert not re.search(r"build-essential|gcc|\S+-dev\b", final_stage)
    assert "libldap" in final_stage


def test_the_example_environment_names_every_setting():
    settings_source = (ROOT / "portal" / "settings.py").read_text()
    names = set(re.findall(r'(?:getenv|envbool|envint|envlist|envurl|envsecret)\(\s*"([A-Z_]+)"', settings_source))
    mentioned = set(re.findall(r"^#? ?([A-Z_]+)[=:]", ENV_EXAMPLE, re.MULTILINE))
    assert sorted(names - mentioned) == []


def test_portal_services_read_the_env_file():
    for name in ("web", "worker", "maintenance", "webhooks", "beat", "init"):
        assert COMPOSE["services"][name]["env_file"] == [{"path": ".env", "required": False}], name
