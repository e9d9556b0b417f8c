"""The worker's settings plus an app whose model refers to the user model; with
``WITH_AUTH=1``, django.contrib.auth and contenttypes added back, as the worker settings say to."""

import os

from handlers.project.worker_settings import *  # noqa: F403
from handlers.project.worker_settings import WORKER_APPS

AUTH_APPS = ["django.contrib.auth", "django.contrib.contenttypes"]
INSTALLED_APPS = [
    *(AUTH_APPS if os.environ.get("WITH_AUTH") == "1" else []),
    *WORKER_APPS,
    "tests.handlers.userapp",
]
