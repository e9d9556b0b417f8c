"""tests.settings plus an app whose tasks module raises on import."""

from tests.settings import *  # noqa: F403
from tests.settings import INSTALLED_APPS

INSTALLED_APPS = [*INSTALLED_APPS, "tests.brokenapp"]
