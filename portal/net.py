"""The client's address, the one way every surface reads it: the login throttle, the audit log,
the API's rate limits and django-allauth's.

Behind a reverse proxy every connection comes from the proxy, so REMOTE_ADDR alone would put
every user behind one address (one bad actor locks everyone out) and record the proxy in the
audit log. X-Forwarded-For fixes that only when it is read carefully: anyone can send one, so
it is walked from the right (each proxy appends the address it saw), skipping addresses of
proxies we trust (TRUSTED_PROXIES); the first address not trusted is the client. A request that
did not come from a trusted proxy is taken at its REMOTE_ADDR, whatever headers it carries.
"""

from __future__ import annotations

import ipaddress
from functools import lru_cache

from django.conf import settings
from django.http import HttpRequest

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@lru_cache(maxsize=8)
def _networks(spec: tuple[str, ...]) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(item, strict=False) for item in spec)


def parse_networks(items: list[str]) -> tuple[Network, ...]:
    """Validate a list of addresses or CIDR networks (settings call this to fail loudly)."""
    return _networks(tuple(items))


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    text = text.strip().strip('"')
    if text.startswith("[") and "]" in text:  # [v6]:port
        text = text[1 : text.index("]")]
    elif text.count(":") == 1:  # v4:port
        text = text.split(":", 1)[0]
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def _trusted(ip, networks: tuple[Network, ...]) -> bool:
    return any(ip.version == net.version and ip in net for net in networks)


def client_address(request: HttpRequest) -> str | None:
    """The address of the client that made this request, as far as we can trust it."""
    remote = _address(request.META.get("REMOTE_ADDR", "") or "")
    if remote is None:
        return None
    networks = _networks(tuple(settings.TRUSTED_PROXIES))
    if not networks or not _trusted(remote, networks):
        return str(remote)
    hops = [hop for hop in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if hop.strip()]
    client = remote
    for hop in reversed(hops):
        ip = _address(hop)
        if ip is None:
            break  # garbage in the chain: trust nothing left of it
        client = ip
        if not _trusted(ip, networks):
            break
    return str(client)
