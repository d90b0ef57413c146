"""Outbound webhook HTTP. No ORM here.

Safe by default (server-side request forgery): the target's name is resolved once, every
address is checked (anything not globally routable, and multicast, is refused unless allowed),
and the connection is then made to that checked address itself,
with the original host name in the Host header and for TLS, so a DNS answer cannot change
between the check and the connect. Redirects are not followed; answers are read up to 1 KiB.
"""

from __future__ import annotations

import ipaddress
import socket
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

import urllib3

MAX_BODY = 1024


class WebhookTargetRefused(Exception):
    """The URL is not something we deliver to (scheme, or an internal address)."""


class WebhookNameUnresolved(WebhookTargetRefused):
    """The target's host name did not resolve now: like a connection error, worth another try
    (DNS fails for a while; a name not yet published may be soon)."""


@dataclass(frozen=True)
class WebhookResult:
    status_code: int | None
    duration_ms: int
    body: str
    error: str

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300

    @property
    def retryable(self) -> bool:
        """Connection errors, timeouts and 5xx are worth another try; other answers are not."""
        return self.status_code is None or self.status_code >= 500 or self.status_code == 429


def _forbidden(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """Anything but a globally routable unicast address: loopback, link-local, private,
    carrier-grade NAT (100.64.0.0/10), documentation, benchmarking, reserved, unspecified and
    multicast ranges (IANA's special-purpose registries, as `is_global` reads them)."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return not ip.is_global or ip.is_multicast


def check_url(url: str, *, allow_private: bool) -> None:
    """What can be checked when a webhook is saved, without looking the name up (DNS can change,
    so names are checked again at every delivery): http or https, a host, no credentials in
    the URL, and an address written as such must be a public one."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise WebhookTargetRefused("only http:// and https:// URLs with a host name")
    if parts.username or parts.password:
        raise WebhookTargetRefused("credentials in the URL are not allowed; use the secret")
    try:
        ip = ipaddress.ip_address(parts.hostname)
    except ValueError:
        return
    if not allow_private and _forbidden(ip):
        raise WebhookTargetRefused(
            f"{ip} is not a public address (loopback, private, link-local, carrier-grade NAT and other "
            "special ranges are refused unless WEBHOOK_ALLOW_PRIVATE_TARGETS is on)"
        )


def resolve_target(url: str, *, allow_private: bool) -> tuple[str, str, int, str]:
    """(scheme, host, port, checked IP) for a URL we may deliver to, or WebhookTargetRefused."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise WebhookTargetRefused("only http:// and https:// URLs with a host name")
    if parts.username or parts.password:
        raise WebhookTargetRefused("credentials in the URL are not allowed; use the secret")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        infos = socket.getaddrinfo(parts.hostname, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise WebhookNameUnresolved(f"cannot resolve {parts.hostname}: {exc.strerror}") from None
    addresses = [ipaddress.ip_address(info[4][0]) for info in infos]
    if not allow_private:
        refused = [str(ip) for ip in addresses if _forbidden(ip)]
        if refused:
            raise WebhookTargetRefused(f"{parts.hostname} resolves to an internal address ({refused[0]})")
    return parts.scheme, parts.hostname, port, str(addresses[0])


def deliver(url: str, body: bytes, headers: dict[str, str], *, timeout: float, allow_private: bool) -> WebhookResult:
    started = time.monotonic()
    try:
        scheme, host, port, ip = resolve_target(url, allow_private=allow_private)
    except WebhookNameUnresolved as exc:
        return WebhookResult(None, int((time.monotonic() - started) * 1000), "", str(exc))  # retried
    except WebhookTargetRefused as exc:
        return WebhookResult(None, 0, "", f"refused: {exc}")
    parts = urlsplit(url)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    host_header = host if port in (80, 443) else f"{host}:{port}"
    pool_kwargs = {"timeout": urllib3.Timeout(connect=timeout, read=timeout), "retries": False, "maxsize": 1}
    if scheme == "https":
        pool = urllib3.HTTPSConnectionPool(ip, port, server_hostname=host, assert_hostname=host, **pool_kwargs)
    else:
        pool = urllib3.HTTPConnectionPool(ip, port, **pool_kwargs)
    try:
        response = pool.urlopen(
            "POST",
            path,
            body=body,
            headers={**headers, "Host": host_header},
            redirect=False,
            preload_content=False,
            assert_same_host=False,
        )
        try:
            text = response.read(MAX_BODY, decode_content=False).decode("utf-8", "replace")
        finally:
            response.release_conn()
        return WebhookResult(response.status, int((time.monotonic() - started) * 1000), text, "")
    except urllib3.exceptions.HTTPError as exc:
        return WebhookResult(
            None, int((time.monotonic() - started) * 1000), "", f"{exc.__class__.__name__}: {exc}"[:500]
        )
    finally:
        pool.close()
