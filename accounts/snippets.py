"""How to use a credential just made: the lines a person copies into a terminal, a Kubernetes
cluster or a CI configuration (Quay and Harbor show the same). Plain functions of text; the
secret is only ever in the one page that shows it once."""

from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Snippet:
    key: str  # an id for the page (and its copy button)
    title: str
    text: str
    filename: str = ""  # offered as a download when set


def _k8s_name(value: str) -> str:
    """A valid Kubernetes object name derived from a credential's name."""
    name = re.sub(r"[^a-z0-9-]+", "-", value.lower()).strip("-")
    return (name or "registry")[:50] + "-pull"


def dockerconfigjson(registry: str, username: str, secret: str) -> str:
    auth = base64.b64encode(f"{username}:{secret}".encode()).decode()
    return json.dumps({"auths": {registry: {"username": username, "password": secret, "auth": auth}}})


def credential_snippets(*, registry: str, username: str, secret: str, name: str) -> list[Snippet]:
    """docker login, a Kubernetes pull secret (command and manifest), GitHub Actions, GitLab CI."""
    k8s = _k8s_name(name)
    config = base64.b64encode(dockerconfigjson(registry, username, secret).encode()).decode()
    env_name = "DOCKYARD_TOKEN"
    return [
        Snippet(
            "docker-login",
            "docker login",
            f"echo '{secret}' | docker login {registry} -u {username} --password-stdin",
        ),
        Snippet(
            "kubectl",
            "Kubernetes: create a pull secret",
            f"kubectl create secret docker-registry {k8s} \\\n"
            f"  --docker-server={registry} \\\n"
            f"  --docker-username={username} \\\n"
            f"  --docker-password='{secret}'",
        ),
        Snippet(
            "k8s-manifest",
            "Kubernetes: the same Secret as a manifest",
            "apiVersion: v1\n"
            "kind: Secret\n"
            "metadata:\n"
            f"  name: {k8s}\n"
            "type: kubernetes.io/dockerconfigjson\n"
            "data:\n"
            f"  .dockerconfigjson: {config}\n",
            filename=f"{k8s}.yaml",
        ),
        Snippet(
            "github-actions",
            f"GitHub Actions (store the token as the secret {env_name})",
            "- uses: docker/login-action@v3\n"
            "  with:\n"
            f"    registry: {registry}\n"
            f"    username: {username}\n"
            f"    password: ${{{{ secrets.{env_name} }}}}",
        ),
        Snippet(
            "gitlab-ci",
            f"GitLab CI (store the token as the masked variable {env_name})",
            f'before_script:\n  - echo "${env_name}" | docker login {registry} -u {username} --password-stdin',
        ),
    ]
