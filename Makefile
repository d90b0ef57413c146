# Two commands on a fresh Debian machine as root: `make run` and `make test`.
# Each installs what is missing (apt packages, .venv) and nothing else.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
# libldap2-dev and libsasl2-dev: python-ldap compiles against them (LDAP sign-in); slapd and
# ldap-utils: the tests' own directory server.
APT_PACKAGES := docker-registry skopeo redis-server redis-tools postgresql umoci wrk chromium nginx \
	libldap2-dev libsasl2-dev slapd ldap-utils
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: run test deps system-deps venv lint format clean

run: deps
	@scripts/run.sh

test: deps
	$(PY) -m pytest

deps: system-deps venv

system-deps:
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	python3 -c 'import venv, ensurepip' 2>/dev/null || missing="$$missing python3-venv"; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		$(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing; \
	fi

venv: $(VENV)/.installed

$(VENV)/.installed: requirements.txt requirements-dev.txt
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements-dev.txt
	touch $@

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: venv
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

clean:
	rm -rf $(VENV) var .pytest_cache
