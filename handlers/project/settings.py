"""The Django project the Lambda functions deploy, and the demo's project.

Everything that differs between a laptop and AWS comes from the environment:
DATABASE_URL (default: a SQLite file beside manage.py, or /tmp on Lambda), DJANGO_SECRET_KEY,
DJANGO_DEBUG, DJANGO_ALLOWED_HOSTS, DATABASE_CONNECT_TIMEOUT.
"""

import os
from pathlib import Path

import dj_database_url

BASE_DIR = Path(__file__).resolve().parent.parent.parent
ON_LAMBDA = "AWS_LAMBDA_FUNCTION_NAME" in os.environ
DEFAULT_SQLITE = Path("/tmp" if ON_LAMBDA else BASE_DIR) / "demo.sqlite3"

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "insecure-demo-key-set-DJANGO_SECRET_KEY")
DEBUG = os.environ.get("DJANGO_DEBUG", "") == "1"
ALLOWED_HOSTS = os.environ.get("DJANGO_ALLOWED_HOSTS", "*").split(",")
USE_TZ = True
TIME_ZONE = "UTC"

DATABASES = {
    "default": dj_database_url.config(default=f"sqlite:///{DEFAULT_SQLITE}", conn_max_age=0)
}
# Seconds to wait for the database server to answer a connection. Without it, a server that
# drops packets holds a Lambda invocation until Lambda kills it at its timeout.
DATABASE_CONNECT_TIMEOUT = int(os.environ.get("DATABASE_CONNECT_TIMEOUT", "5"))
if DATABASES["default"]["ENGINE"].split(".")[-1] in ("postgresql", "mysql"):
    # Both psycopg and mysqlclient take "connect_timeout" (whole seconds).
    DATABASES["default"].setdefault("OPTIONS", {}).setdefault(
        "connect_timeout", DATABASE_CONNECT_TIMEOUT
    )

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "bgtask",
    "handlers.demo",
]
MIDDLEWARE = [
    "handlers.project.middleware.DatabaseUnavailableMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]
ROOT_URLCONF = "handlers.project.urls"
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
STATIC_URL = "static/"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# The demo's failing task is retried a few seconds later; keep its attempts small.
MAX_ATTEMPTS = int(os.environ.get("MAX_ATTEMPTS", "3"))

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "loggers": {
        "bgtask": {"handlers": ["console"], "level": os.environ.get("BGTASK_LOG_LEVEL", "INFO")}
    },
}

# Serverless (template.yaml sets these on the Lambda functions; unset means the bgtask default).
for _name, _type in (
    ("BGTASK_LAMBDA_SAFETY_MARGIN", float),
    ("BGTASK_LAMBDA_LEASE_GRACE", float),
    ("BGTASK_WAKE_FUNCTION", str),
    ("BGTASK_WAKE_INTERVAL", float),
    ("BGTASK_FANOUT_MAX", int),
    ("BGTASK_WORKER_CONCURRENCY", int),
    ("BGTASK_METRICS_NAMESPACE", str),
    ("BGTASK_STATUS_TOKEN", str),
):
    if os.environ.get(_name):
        globals()[_name] = _type(os.environ[_name])
