"""The Celery application shared by the web process and every worker."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("aegis")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
# Every worker records where it listens (jury.presence), for the jury's pages. Named
# by string: the step is loaded when a worker starts, after Django is set up.
app.steps["worker"].add("jury.presence:PresenceStep")
