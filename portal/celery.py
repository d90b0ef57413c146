import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")

app = Celery("portal")
# Every CELERY_* Django setting configures the app; nothing is configured twice.
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
