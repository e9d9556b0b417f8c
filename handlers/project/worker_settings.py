"""The worker function's settings: the project's, without what only the web function serves.

The worker runs tasks; it needs neither the admin, sessions, messages, static files nor URLs.
Everything it leaves out is init time it does not pay (Lambda's init phase imports the handler,
which sets Django up: handlers/bootstrap.py), measured with ``make lambda-measure``:

- the web-only apps (the admin and ``django.urls`` imports were most of the first cold start);
- ``django.contrib.auth`` and ``contenttypes``, which the bundled tasks never use: about 45 ms of
  init CPU (the user models, password hashers, and contenttypes' management commands, which
  import the migration framework). **A project whose tasks or models use users adds them back**
  (``WORKER_APPS`` below); if one of its models refers to a model of an app left out here, the
  worker refuses to start and names both (``handlers.bootstrap``), rather than fail in a task;
- Django's ``mail_admins`` log handler, whose set-up imports the debug error page and the
  template engine (about 20 ms): the worker has no ``ADMINS`` and no mail server to send to.
"""

import copy
import logging.config

from django.utils.log import DEFAULT_LOGGING

from handlers.project.settings import *  # noqa: F403
from handlers.project.settings import INSTALLED_APPS, LOGGING

WORKER_SKIPS_APPS = (
    "django.contrib.admin",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    # Add these two back (remove them here) when your tasks or models use users.
    "django.contrib.auth",
    "django.contrib.contenttypes",
)
# bgtask and the project's task apps, in the project's order.
WORKER_APPS = [app for app in INSTALLED_APPS if app not in WORKER_SKIPS_APPS]
INSTALLED_APPS = WORKER_APPS
MIDDLEWARE: list[str] = []
ROOT_URLCONF = None
TEMPLATES: list[dict] = []

# Django's logging defaults less mail_admins, then the project's LOGGING: what django.setup()
# would configure, done here because Django applies its defaults, mail_admins included, whenever
# LOGGING_CONFIG is set (Django's documented way to replace it is LOGGING_CONFIG = None and a
# dictConfig in the settings).
LOGGING_CONFIG = None
_django_defaults = copy.deepcopy(DEFAULT_LOGGING)
del _django_defaults["handlers"]["mail_admins"]
_django_defaults["loggers"]["django"]["handlers"].remove("mail_admins")
logging.config.dictConfig(_django_defaults)
logging.config.dictConfig(LOGGING)
