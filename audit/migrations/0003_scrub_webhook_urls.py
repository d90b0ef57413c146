"""Webhook URLs are often credentials (Slack, Discord and Teams put the secret in the path).
Rows written before issue 12 kept the whole URL in `data` and in `target_name`; keep the host."""

from urllib.parse import urlsplit

from django.db import migrations


def _host(url):
    try:
        parts = urlsplit(str(url))
        if not parts.hostname:
            return ""
        return parts.hostname + (f":{parts.port}" if parts.port else "")
    except ValueError:
        return ""


def _scrub(value):
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            if key == "url":
                out["host"] = _host(item) if item else item
            else:
                out[key] = _scrub(item)
        return out
    if isinstance(value, list):
        return [_scrub(item) for item in value]
    return value


def scrub(apps, schema_editor):
    AuditEvent = apps.get_model("audit", "AuditEvent")
    rows = AuditEvent.objects.filter(action__contains="webhook")
    for row in rows.iterator():
        data = _scrub(row.data)
        name = row.target_name
        if " → " in name:
            label, _, url = name.partition(" → ")
            name = f"{label} → {_host(url)}"
        if data != row.data or name != row.target_name:
            AuditEvent.objects.filter(pk=row.pk).update(data=data, target_name=name)


class Migration(migrations.Migration):
    dependencies = [("audit", "0002_repository_feed")]

    operations = [migrations.RunPython(scrub, migrations.RunPython.noop)]
