"""The tag page in Chromium (issue 15): a person trusts a key in their settings, finds a
multi-platform image through the platform picker, opens its tag page and sees every platform's
layers, the signature verified by their key, the provenance and the SBOM (which downloads), and
copies the pull command by digest. axe-clean at desktop and phone width; the README's shots."""

from __future__ import annotations

import json

import pytest
from playwright.sync_api import expect

from accounts.services import user_create
from tests import oci_push as oci
from tests.helpers import process_events
from tests.test_ui_browser import PASSWORD, shoot
from tests.test_ui_first_hour import both_widths, sign_in

pytestmark = [pytest.mark.browser, pytest.mark.registry]

HISTORY = [
    {"created": "2026-10-01T12:00:00Z", "created_by": "/bin/sh -c #(nop) ADD file:9a4f77dfaba7fd2aa in / "},
    {"created": "2026-10-01T12:00:01Z", "created_by": "RUN /bin/sh -c apk add --no-cache ca-certificates tzdata"},
    {"created": "2026-10-01T12:00:02Z", "created_by": "COPY dist/ /srv/app/ # buildkit"},
    {"created": "2026-10-01T12:00:02Z", "created_by": 'ENTRYPOINT ["/srv/app/server"]', "empty_layer": True},
]
CONFIG = {
    "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin", "APP_ENV=production", "DB_PASSWORD=s3cr3t"],
    "Entrypoint": ["/srv/app/server"],
    "Cmd": ["--listen", ":8080"],
    "ExposedPorts": {"8080/tcp": {}, "9090/tcp": {}},
    "Labels": {
        "org.opencontainers.image.source": "https://github.com/acme/web",
        "org.opencontainers.image.version": "1.4.2",
        "org.opencontainers.image.licenses": "Apache-2.0",
    },
}
PLATFORMS = [("amd64", ""), ("arm64", "v8"), ("arm", "v7")]


def test_a_person_trusts_a_key_and_reads_a_tag_page(live_server, registry, page):
    base = live_server.url
    user_create(username="tess", email="tess@example.org", password=PASSWORD)
    key = oci.new_key("ecdsa")
    pusher = oci.Pusher.login(
        portal_url=base, registry_url=registry.url, repository="tess/web", username="tess", password=PASSWORD
    )
    children = []
    for i, (arch, variant) in enumerate(PLATFORMS):
        layers = (b"base-" + arch.encode() * (2000 + i * 300), b"deps" * (900 + i), b"app" * 4000)
        desc = oci.image(pusher, arch=arch, variant=variant, layers=layers, history=HISTORY, config=CONFIG)
        children.append((desc, {"os": "linux", "architecture": arch, **({"variant": variant} if variant else {})}))
    top = oci.index(pusher, children, "1.4.2")
    pusher.manifest(json.loads(pusher.pull("1.4.2")), "latest")
    oci.image(pusher, arch="amd64", layers=(b"older",), history=HISTORY[:1], config=CONFIG, tag="1.3.0")
    reference = f"{registry.host}/tess/web"
    subject = {"mediaType": top["mediaType"], "digest": top["digest"], "size": top["size"]}
    pusher.manifest(
        oci.signature_manifest(pusher, [oci.cosign_signature(key, reference, top["digest"])]),
        oci.cosign_tag(top["digest"], "sig"),
    )
    statement = oci.slsa_v1_statement(
        top["digest"], builder="https://github.com/actions/runner/github-hosted", source="https://github.com/acme/web"
    )
    pusher.manifest(
        oci.attestation_manifest(pusher, [(oci.dsse_envelope(statement, key), "https://slsa.dev/provenance/v1")]),
        oci.cosign_tag(top["digest"], "att"),
    )
    sbom_bytes = json.dumps({"bomFormat": "CycloneDX", "specVersion": "1.5", "components": [{"name": "tzdata"}]})
    sbom = pusher.manifest(oci.sbom_referrer(pusher, sbom_bytes.encode(), subject))
    pusher.manifest(
        oci.referrers_index([(sbom, "application/vnd.cyclonedx+json")]),
        "sha256-" + top["digest"].removeprefix("sha256:"),
    )
    process_events(registry)

    # Trust the key in the personal settings: its fingerprint is shown.
    sign_in(page, base, "tess")
    page.goto(f"{base}/settings/signing-keys/")
    page.fill("input[name=name]", "release-ci")
    page.fill("textarea[name=public_key]", oci.public_pem(key))
    page.click("main button:has-text('Trust this key')")
    expect(page.locator("main table")).to_contain_text("release-ci")
    expect(page.locator("main table")).to_contain_text("ECDSA P-256")
    both_widths(page)

    # The tag list: the platform picker narrows it, and each row links to its tag page.
    page.goto(f"{base}/r/tess/web/-/tags/")
    expect(page.locator("table.tags")).to_contain_text("verified")
    page.select_option("select[name=platform]", "linux/arm/v7")
    expect(page.locator("table.tags tbody tr")).to_have_count(2)  # 1.4.2 and latest, not 1.3.0
    expect(page.locator("table.tags")).not_to_contain_text("1.3.0")
    both_widths(page)
    page.click("table.tags a.tag-name:has-text('1.4.2')")
    page.wait_for_url(f"{base}/r/tess/web/-/tags/1.4.2/")

    main = page.locator("main")
    expect(main).to_contain_text("verified by release-ci")
    expect(page.locator("section.platform")).to_have_count(3)
    for heading in ["linux/amd64", "linux/arm64/v8", "linux/arm/v7"]:
        expect(page.locator("section.platform h3", has_text=heading)).to_have_count(1)
    expect(main).to_contain_text("apk add --no-cache ca-certificates tzdata")
    expect(main).to_contain_text("DB_PASSWORD")
    expect(main).not_to_contain_text("s3cr3t")
    expect(main).to_contain_text("9090/tcp")
    expect(main).to_contain_text("https://slsa.dev/provenance/v1")
    expect(main).to_contain_text("https://github.com/acme/web")
    expect(main).to_contain_text("CycloneDX (JSON)")
    expect(main).to_contain_text("latest")  # the other tag of this digest

    # The SBOM downloads through the portal, with the visitor's session.
    href = page.locator("section.attachments tr", has_text="CycloneDX").locator("a[download]").get_attribute("href")
    download = page.request.get(base + href)
    assert download.status == 200 and download.body() == sbom_bytes.encode()

    # The pull command by digest is copied exactly.
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=base)
    page.click("button[data-copy-from='#pull-by-digest']")
    copied = page.evaluate("navigator.clipboard.readText()")
    assert copied == f"docker pull {registry.host}/tess/web@{top['digest']}"

    both_widths(page)
    shoot(page, "tag")
