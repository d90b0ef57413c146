from django.db import migrations, models


def fill_full_names(apps, schema_editor):
    Repository = apps.get_model("repositories", "Repository")
    for repository in Repository.objects.select_related("namespace").iterator():
        repository.full_name = f"{repository.namespace.name}/{repository.name}"
        repository.save(update_fields=["full_name"])


class Migration(migrations.Migration):
    dependencies = [("repositories", "0002_sync_state")]

    operations = [
        migrations.AddField(
            model_name="repository",
            name="full_name",
            field=models.CharField(editable=False, max_length=255, null=True),
        ),
        migrations.RunPython(fill_full_names, migrations.RunPython.noop),
        migrations.AlterField(
            model_name="repository",
            name="full_name",
            field=models.CharField(editable=False, max_length=255, unique=True),
        ),
        migrations.AddField(
            model_name="repository",
            name="star_count",
            field=models.PositiveIntegerField(default=0),
        ),
    ]
