"""The Lambda project's own settings (handlers/project/settings.py: DATABASE_URL, connect timeout,
middleware) plus the sample tasks, for the child processes that stand in for Lambda containers."""

from handlers.project.settings import *  # noqa: F403
from handlers.project.settings import INSTALLED_APPS

INSTALLED_APPS = [*INSTALLED_APPS, "tests.sampleapp"]
ROOT_URLCONF = "handlers.project.urls"
