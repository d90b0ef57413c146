"""Retention rules now say what they keep (RetentionRule.clean): a rule without a keep criterion
is an untagged-only rule. Rules made before, without one, kept none of their tags; they say so
now (keep_most_recent 0), so what they remove does not change."""

from django.db import migrations


def keep_none_said(apps, schema_editor):
    RetentionRule = apps.get_model("repositories", "RetentionRule")
    RetentionRule.objects.filter(
        keep_most_recent__isnull=True, keep_pushed_within_days__isnull=True, keep_pulled_within_days__isnull=True
    ).update(keep_most_recent=0)


class Migration(migrations.Migration):
    dependencies = [("repositories", "0021_repository_name_trigrams")]

    operations = [migrations.RunPython(keep_none_said, migrations.RunPython.noop)]
