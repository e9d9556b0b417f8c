"""Settings for the test suite; the database comes from DATABASE_URL (default: a SQLite file).

DATABASE_URL=postgres://postgres@127.0.0.1:5432/test pytest
DATABASE_URL=mysql://root@127.0.0.1:3306/test pytest
"""

import hashlib
import os
from pathlib import Path

import dj_database_url
from django.conf import global_settings

BASE_DIR = Path(__file__).resolve().parent.parent
# Test databases are named after the checkout, so two clones (or worktrees) testing at once on one
# machine never create, flush or drop each other's databases.
CHECKOUT_ID = hashlib.sha1(str(BASE_DIR).encode()).hexdigest()[:8]
SQLITE_PATH = (
    Path(os.environ.get("BGTASK_TEST_SQLITE_DIR", "/tmp")) / f"bgtask-{CHECKOUT_ID}.sqlite3"
)

SECRET_KEY = "tests-only-not-secret"
DEBUG = False
USE_TZ = True
TIME_ZONE = "UTC"
ALLOWED_HOSTS = ["*"]

DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("DATABASE_URL") or f"sqlite:///{SQLITE_PATH}", conn_max_age=0
    )
}
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    # A file, not memory: worker processes started by the tests must see the same database.
    DATABASES["default"]["TEST"] = {"NAME": str(SQLITE_PATH.with_suffix(".test.sqlite3"))}
else:
    DATABASES["default"]["TEST"] = {"NAME": f"test_bgtask_{CHECKOUT_ID}"}
if DATABASES["default"]["ENGINE"].endswith("mysql"):
    DATABASES["default"].setdefault("OPTIONS", {})["charset"] = "utf8mb4"
    DATABASES["default"]["TEST"].update(CHARSET="utf8mb4", COLLATION="utf8mb4_unicode_ci")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    # Serves the admin's CSS to the browser test's live server (tests/browser).
    "django.contrib.staticfiles",
    "bgtask",
    "tests.sampleapp",
    "tests.features",
    "tests.reliability",
    "tests.compat",
    # django-background-tasks itself, for the import command's tests (tests/compat). Last, so
    # that bgtask's process_tasks command wins over its namesake.
    "tests.compat.legacy_app.LegacyBackgroundTasksConfig",
]
# Django's Tasks framework (Django >= 6.0) backed by bgtask's table: tests/features/test_backend.py.
TASKS = {
    "default": {
        "BACKEND": "bgtask.backends.DatabaseBackend",
        "QUEUES": ["default", "django-other"],
    }
}
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    # As a project should (Django's startproject lists it); bgtask's pages deny framing without it
    # too (tests/features/test_admin_hardening.py).
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]
ROOT_URLCONF = "tests.urls"
STATIC_URL = "/static/"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
# A fast hasher for new passwords, as Django's testing docs advise: the default PBKDF2 takes about
# half a second per password on the CI machine, and the suite creates users by the hundred. No
# test is about the hash itself. The default hashers stay accepted, so a password that a process
# on the Lambda project's settings (handlers/project/settings.py, default hashers) stored still
# checks here.
PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.MD5PasswordHasher",
    *global_settings.PASSWORD_HASHERS,
]
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {"bgtask": {"handlers": ["console"], "level": "WARNING"}},
}

# Worker processes started by the tests connect to the test database, not the base one.
if os.environ.get("BGTASK_TEST_DB_NAME"):
    DATABASES["default"]["NAME"] = os.environ["BGTASK_TEST_DB_NAME"]
if os.environ.get("BGTASK_TEST_MAX_RUN_TIME"):
    MAX_RUN_TIME = float(os.environ["BGTASK_TEST_MAX_RUN_TIME"])
# Issue 11 fault tests: a short heartbeat-renewed lease for the workers they start.
if os.environ.get("BGTASK_TEST_LEASE_SECONDS"):
    BGTASK_LEASE_SECONDS = float(os.environ["BGTASK_TEST_LEASE_SECONDS"])
# Outcome batching of worker processes (tests/reliability/test_outcome_batching.py).
if os.environ.get("BGTASK_TEST_CONCURRENCY"):
    BGTASK_CONCURRENCY = int(os.environ["BGTASK_TEST_CONCURRENCY"])
if os.environ.get("BGTASK_TEST_OUTCOME_BATCH"):
    BGTASK_OUTCOME_BATCH = int(os.environ["BGTASK_TEST_OUTCOME_BATCH"])
if os.environ.get("BGTASK_TEST_OUTCOME_MAX_DELAY"):
    BGTASK_OUTCOME_MAX_DELAY = float(os.environ["BGTASK_TEST_OUTCOME_MAX_DELAY"])
# Limits across workers (tests/reliability/test_limits.py): queue limits of the workers started.
if os.environ.get("BGTASK_TEST_QUEUE_LIMITS"):
    import json

    BGTASK_QUEUE_LIMITS = json.loads(os.environ["BGTASK_TEST_QUEUE_LIMITS"])
# Through PgBouncer in transaction pooling mode (make test-pgbouncer), as Django requires there.
if os.environ.get("BGTASK_TEST_PGBOUNCER"):
    DATABASES["default"]["DISABLE_SERVER_SIDE_CURSORS"] = True
