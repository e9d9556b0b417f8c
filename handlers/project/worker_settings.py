"""The worker function's settings: the project's, without what only the web function serves.

The worker runs tasks; it needs neither the admin, sessions, messages, static files nor URLs.
Leaving them out keeps its cold start short (the admin and ``django.urls`` imports were most of
it). ``django.contrib.auth`` and ``contenttypes`` stay for tasks that use users.
"""

from handlers.project.settings import *  # noqa: F403
from handlers.project.settings import INSTALLED_APPS

WEB_ONLY_APPS = (
    "django.contrib.admin",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
)
INSTALLED_APPS = [app for app in INSTALLED_APPS if app not in WEB_ONLY_APPS]
MIDDLEWARE: list[str] = []
ROOT_URLCONF = None
TEMPLATES: list[dict] = []
