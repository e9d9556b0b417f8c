"""The test settings with django-background-tasks listed before bgtask, as a project in the middle
of its migration may have them (tests/core/test_setup_mistakes.py)."""

from tests.settings import *  # noqa: F403
from tests.settings import INSTALLED_APPS

LEGACY = "tests.compat.legacy_app.LegacyBackgroundTasksConfig"
INSTALLED_APPS = [LEGACY, *(app for app in INSTALLED_APPS if app != LEGACY)]
