"""HTTP client for the distribution registry API (docs/spec/api.md). No ORM here.

It returns typed objects and raises named errors. It authenticates with bearer tokens from a
token provider (the portal mints them in-process for its system identity) and reuses each token
until shortly before it expires.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from urllib.parse import quote, urljoin

import requests

log = logging.getLogger(__name__)

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
# Always all four: without the OCI types an OCI manifest answers 404, and a manifest list
# fetched without its type is rewritten to schema 1 with another digest (DESIGN.md section 2).
MANIFEST_ACCEPT = ", ".join([OCI_INDEX, OCI_MANIFEST, DOCKER_MANIFEST_LIST, DOCKER_MANIFEST])
INDEX_TYPES = frozenset({DOCKER_MANIFEST_LIST, OCI_INDEX})

# Token provider: given scopes, return (token, lifetime in seconds).
TokenProvider = Callable[[tuple[str, ...]], tuple[str, int]]


class RegistryError(Exception):
    """Anything that went wrong talking to the registry."""


class RegistryUnavailable(RegistryError):
    """Connection failures, timeouts and 5xx answers that outlasted the retries."""


class RegistryNotFound(RegistryError):
    """The repository, manifest or blob does not exist."""


class RegistryAuthError(RegistryError):
    """The registry refused our token (401/403): keys or configuration disagree."""


class RegistryResponseError(RegistryError):
    """Any other unexpected answer, or a body we cannot use."""


class RegistryContentError(RegistryResponseError):
    """A document the registry stored and serves that the portal cannot read: not JSON, not an
    object, or nested deeper than the parser goes (the registry's Go parser accepts thousands of
    levels; Python's stops near one thousand). Asking again returns the same bytes."""


@dataclass(frozen=True)
class ManifestRef:
    digest: str
    media_type: str
    size: int


@dataclass(frozen=True)
class ManifestDoc:
    digest: str
    media_type: str
    raw: bytes
    data: dict

    @property
    def is_index(self) -> bool:
        return self.media_type in INDEX_TYPES


class RegistryClient:
    def __init__(
        self,
        base_url: str,
        token_provider: TokenProvider | None = None,
        *,
        timeout: float = 10.0,
        retries: int = 3,
        backoff: float = 0.2,
        session: requests.Session | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.token_provider = token_provider
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.session = session or requests.Session()
        # No proxies or .netrc from the environment for the registry next door: requests would
        # re-read the environment on every call (a millisecond each, on every event).
        self.session.trust_env = False
        self.requests_made = 0  # counted for the sync's cost report
        self.counts: Counter[str] = Counter()  # e.g. "GET manifest", "HEAD manifest", "GET tags"
        self._tokens: dict[tuple[str, ...], tuple[str, float]] = {}
        self._lock = threading.Lock()

    # --- plumbing -------------------------------------------------------------------------

    def _token(self, scopes: tuple[str, ...]) -> str | None:
        if self.token_provider is None:
            return None
        with self._lock:
            cached = self._tokens.get(scopes)
            if cached and cached[1] > time.monotonic():
                return cached[0]
        token, lifetime = self.token_provider(scopes)
        # Renew 30 s (or a quarter of the lifetime) before expiry so no request races it.
        margin = min(30.0, lifetime / 4)
        with self._lock:
            self._tokens[scopes] = (token, time.monotonic() + lifetime - margin)
        return token

    def _request(
        self,
        method: str,
        path: str,
        scopes: tuple[str, ...],
        *,
        headers: dict | None = None,
        ok=(200,),
        stream: bool = False,
    ) -> requests.Response:
        url = path if path.startswith("http") else f"{self.base_url}{path}"
        all_headers = dict(headers or {})
        token = self._token(scopes)
        if token:
            all_headers["Authorization"] = f"Bearer {token}"
        attempt = 0
        kind = f"{method} {_kind(path)}"
        while True:
            attempt += 1
            with self._lock:
                self.requests_made += 1
                self.counts[kind] += 1
            try:
                response = self.session.request(
                    method, url, headers=all_headers, timeout=self.timeout, allow_redirects=False, stream=stream
                )
            except requests.RequestException as exc:
                if attempt > self.retries:
                    raise RegistryUnavailable(f"{method} {path}: {exc.__class__.__name__}: {exc}") from exc
                time.sleep(self.backoff * 2 ** (attempt - 1))
                continue
            if response.status_code >= 500 and attempt <= self.retries:
                time.sleep(self.backoff * 2 ** (attempt - 1))
                continue
            break
        if response.status_code in ok:
            return response
        if response.status_code == 404:
            raise RegistryNotFound(f"{method} {path}: not found")
        if response.status_code in (401, 403):
            raise RegistryAuthError(f"{method} {path}: {response.status_code} {_error_text(response)}")
        if response.status_code >= 500:
            raise RegistryUnavailable(f"{method} {path}: {response.status_code} {_error_text(response)}")
        raise RegistryResponseError(f"{method} {path}: {response.status_code} {_error_text(response)}")

    def _json(self, response: requests.Response) -> dict:
        try:
            data = response.json()
        except ValueError as exc:
            raise RegistryResponseError(f"{response.url}: body is not JSON") from exc
        if not isinstance(data, dict):
            raise RegistryResponseError(f"{response.url}: body is not a JSON object")
        return data

    def _paginate(self, path: str, scopes: tuple[str, ...], key: str) -> Iterator[str]:
        """Follow `Link: <…>; rel="next"` headers (relative, URL-encoded) to the last page."""
        next_path: str | None = path
        while next_path:
            response = self._request("GET", next_path, scopes)
            items = self._json(response).get(key) or []  # a repo with no tags answers null
            if not isinstance(items, list):
                raise RegistryResponseError(f"{next_path}: {key} is not a list")
            yield from items
            next_path = _next_link(response.headers.get("Link", ""))
            if next_path and next_path.startswith("http"):
                next_path = "/" + next_path.split("/", 3)[3]

    # --- API ------------------------------------------------------------------------------

    def ping(self) -> bool:
        self._request("GET", "/v2/", ("registry:catalog:*",))
        return True

    def catalog(self, page_size: int = 100) -> Iterator[str]:
        yield from self._paginate(f"/v2/_catalog?n={min(page_size, 1000)}", ("registry:catalog:*",), "repositories")

    def tags(self, name: str, page_size: int = 100) -> list[str]:
        return list(self._paginate(f"/v2/{_path(name)}/tags/list?n={page_size}", _pull(name), "tags"))

    def tag_digests(self, name: str, *, concurrency: int = 8) -> dict[str, str]:
        """Every tag of a repository and the digest it points at now, as the registry says: a
        tag listing and one HEAD per tag (in parallel). A tag deleted between the two is left
        out. {} for a repository the registry does not have."""
        try:
            names = self.tags(name)
        except RegistryNotFound:
            return {}
        return {tag: ref.digest for tag, ref in self.head_many(name, names, concurrency=concurrency).items()}

    def head_many(self, name: str, references, *, concurrency: int = 8) -> dict[str, ManifestRef]:
        """{reference: what it points at now}, one HEAD each (in parallel); a reference the
        registry does not have (deleted meanwhile) is left out."""
        references = list(references)

        def head(reference: str) -> tuple[str, ManifestRef | None]:
            try:
                return reference, self.head_manifest(name, reference)
            except RegistryNotFound:
                return reference, None

        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=max(1, min(concurrency, len(references) or 1))) as pool:
            return {reference: ref for reference, ref in pool.map(head, references) if ref is not None}

    def head_manifest(self, name: str, reference: str) -> ManifestRef:
        response = self._request(
            "HEAD",
            f"/v2/{_path(name)}/manifests/{quote(reference, safe=':')}",
            _pull(name),
            headers={"Accept": MANIFEST_ACCEPT},
        )
        digest = response.headers.get("Docker-Content-Digest", "")
        if not digest:
            raise RegistryResponseError(f"HEAD {name}:{reference}: no Docker-Content-Digest header")
        return ManifestRef(
            digest=digest,
            media_type=response.headers.get("Content-Type", "").split(";")[0].strip(),
            size=int(response.headers.get("Content-Length") or 0),
        )

    def get_manifest(self, name: str, reference: str) -> ManifestDoc:
        response = self._request(
            "GET",
            f"/v2/{_path(name)}/manifests/{quote(reference, safe=':')}",
            _pull(name),
            headers={"Accept": MANIFEST_ACCEPT},
        )
        raw = response.content
        digest = "sha256:" + hashlib.sha256(raw).hexdigest()
        if reference.startswith("sha256:") and reference != digest:
            raise RegistryResponseError(f"GET {name}@{reference}: content does not match its digest")
        try:
            data = json.loads(raw)
        except (ValueError, RecursionError) as exc:
            raise RegistryContentError(f"GET {name}:{reference}: manifest is not JSON the portal can read") from exc
        if not isinstance(data, dict):
            raise RegistryContentError(f"GET {name}:{reference}: manifest is not a JSON object")
        media_type = data.get("mediaType") or response.headers.get("Content-Type", "").split(";")[0].strip()
        return ManifestDoc(digest=digest, media_type=media_type, raw=raw, data=data)

    def get_blob(self, name: str, digest: str, *, max_bytes: int = 4 * 1024 * 1024) -> bytes:
        """A small blob, such as an image config. The registry may redirect blob GETs to object
        storage; the redirect is followed without our token, which the storage must not see."""
        response = self._request("GET", f"/v2/{_path(name)}/blobs/{digest}", _pull(name), ok=(200, 307))
        if response.status_code == 307:
            response = self.session.get(response.headers["Location"], timeout=self.timeout)
            with self._lock:
                self.requests_made += 1
                self.counts["GET blob (storage)"] += 1
            if response.status_code != 200:
                raise RegistryResponseError(f"GET blob {digest} from storage: {response.status_code}")
        body = response.content
        if len(body) > max_bytes:
            raise RegistryResponseError(f"blob {digest} is larger than {max_bytes} bytes")
        if digest.startswith("sha256:") and "sha256:" + hashlib.sha256(body).hexdigest() != digest:
            raise RegistryResponseError(f"blob {digest}: content does not match its digest")
        return body

    def open_blob(self, name: str, digest: str) -> requests.Response:
        """A blob to stream (an SBOM or attestation to download): the response, open; the caller
        reads it with iter_content and closes it. Redirects to object storage are followed
        without our token."""
        response = self._request("GET", f"/v2/{_path(name)}/blobs/{digest}", _pull(name), ok=(200, 307), stream=True)
        if response.status_code == 307:
            location = response.headers["Location"]
            response.close()
            response = self.session.get(location, timeout=self.timeout, stream=True)
            with self._lock:
                self.requests_made += 1
                self.counts["GET blob (storage)"] += 1
            if response.status_code != 200:
                response.close()
                raise RegistryResponseError(f"GET blob {digest} from storage: {response.status_code}")
        return response

    def get_config(self, name: str, digest: str) -> dict:
        try:
            data = json.loads(self.get_blob(name, digest))
        except (ValueError, RecursionError) as exc:
            raise RegistryContentError(f"config {digest} is not JSON the portal can read") from exc
        return data if isinstance(data, dict) else {}

    def delete_manifest(self, name: str, digest: str) -> None:
        """Delete by digest (2.8 refuses delete by tag). Removes every tag pointing at it."""
        if not digest.startswith("sha256:"):
            raise ValueError("distribution 2.8 deletes manifests by digest only")
        self._request("DELETE", f"/v2/{_path(name)}/manifests/{digest}", (f"repository:{name}:delete",), ok=(202,))


def _kind(path: str) -> str:
    for marker, kind in (
        ("/_catalog", "catalog"),
        ("/tags/list", "tags"),
        ("/manifests/", "manifest"),
        ("/blobs/", "blob"),
    ):
        if marker in path:
            return kind
    return "other"


def _pull(name: str) -> tuple[str, ...]:
    return (f"repository:{name}:pull",)


def _path(name: str) -> str:
    return quote(name, safe="/")


def _next_link(header: str) -> str | None:
    for part in header.split(","):
        if 'rel="next"' in part and "<" in part:
            return urljoin("/", part[part.index("<") + 1 : part.index(">")])
    return None


def _error_text(response: requests.Response) -> str:
    try:
        errors = response.json().get("errors") or []
        return "; ".join(f"{e.get('code')}: {e.get('message')}" for e in errors) or response.reason
    except (ValueError, AttributeError):
        return response.reason or ""
