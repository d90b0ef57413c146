"""The front door (issue 16): nginx on the one public address, `/v2/` to the registry (asking
the portal first about manifest PUTs and DELETEs), the rest to the portal. Compose fills
deploy/nginx/default.conf.template with the nginx image's entrypoint; `make run` and the tests
render the same file here, for Debian's nginx, with a main configuration around it."""

from __future__ import annotations

import os
import re
from pathlib import Path

TEMPLATE = Path(__file__).resolve().parent.parent / "deploy" / "nginx" / "default.conf.template"
TEMPLATE_NAMES = {"PORTAL_UPSTREAM", "REGISTRY_UPSTREAM", "LISTEN_PORT", "STATIC_ROOT"}


def render_site(values: dict[str, str]) -> str:
    """What the nginx image's entrypoint does: fill ${NAME} from `values`, leave nginx's own
    $variables alone."""
    text = TEMPLATE.read_text()
    names = set(re.findall(r"\$\{([A-Z_]+)\}", text))
    if names != set(values):
        raise ValueError(f"the template names {sorted(names)}, given {sorted(values)}")
    for name, value in values.items():
        text = text.replace("${" + name + "}", value)
    return text


def write_config(work: Path, values: dict[str, str], *, listen_host: str = "") -> Path:
    """Write `work`/nginx.conf (and the site beside it) for `nginx -c … -p …`; returns its path.
    Temporary files, the pid and the logs stay under `work`."""
    work.mkdir(parents=True, exist_ok=True)
    values = {"FRONT_CACHE_DIR": str(work / "front-cache"), **values}
    site = render_site(values)
    if listen_host:
        site = site.replace(f"listen {values['LISTEN_PORT']};", f"listen {listen_host}:{values['LISTEN_PORT']};")
    (work / "site.conf").write_text(site)
    user = "user root;\n" if os.geteuid() == 0 else ""  # workers read var/static under root's home
    (work / "nginx.conf").write_text(
        f"{user}daemon off; worker_processes auto; pid {work}/nginx.pid; error_log stderr warn;\n"
        "events { worker_connections 1024; }\n"
        "http {\n"
        "  include /etc/nginx/mime.types;\n"
        "  access_log off;\n"
        f"  client_body_temp_path {work}/body; proxy_temp_path {work}/proxy;\n"
        f"  fastcgi_temp_path {work}/fastcgi; uwsgi_temp_path {work}/uwsgi; scgi_temp_path {work}/scgi;\n"
        f"  include {work}/site.conf;\n"
        "}\n"
    )
    return work / "nginx.conf"
