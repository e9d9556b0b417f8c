"""Django settings for the peers (django-background-tasks, django-tasks-db) in their own venv."""

import os

from benchmarks.dbs import database_settings

SECRET_KEY = "benchmark-only-not-secret"
DEBUG = False
USE_TZ = True
TIME_ZONE = "UTC"
DATABASES = {"default": database_settings(os.environ.get("BENCH_DB", "sqlite"), peers=True)}
INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "background_task",
    "django_tasks",
    "django_tasks_db",
    "benchmarks.peerapp",
]
TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": "WARNING"},
}
