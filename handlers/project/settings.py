"""The Django project the Lambda functions deploy, and the demo's project.

Everything that differs between a laptop and AWS comes from the environment:
DATABASE_SECRET_ARN (a Secrets Manager secret or SSM SecureString parameter holding the database
URL, read at start-up) or DATABASE_URL (default off Lambda: a SQLite file beside manage.py; on
Lambda one of the two is required), DJANGO_SECRET_KEY_ARN or DJANGO_SECRET_KEY,
BGTASK_STATUS_TOKEN_ARN or BGTASK_STATUS_TOKEN, DJANGO_DEBUG, DJANGO_ALLOWED_HOSTS,
DJANGO_CSRF_TRUSTED_ORIGINS, DJANGO_SECURE, DJANGO_HSTS_SECONDS, DJANGO_STATIC_ROOT,
DJANGO_STATIC_HASHED, DATABASE_CONNECT_TIMEOUT. The deployed functions get only the *_ARN
variables: no secret is in a function's environment (handlers/secrets.py reads them, once per
container).
"""

import os
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from handlers.secrets import setting_from_secret

BASE_DIR = Path(__file__).resolve().parent.parent.parent
ON_LAMBDA = "AWS_LAMBDA_FUNCTION_NAME" in os.environ
DEFAULT_SQLITE = BASE_DIR / "demo.sqlite3"

DEBUG = os.environ.get("DJANGO_DEBUG", "") == "1"


def _list(name: str, default: str = "") -> list[str]:
    """A comma-separated environment variable as a list, without blanks."""
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


# template.yaml sets both: the API's region-wide execute-api domain plus the AllowedHosts
# parameter, and CsrfTrustedOrigins (a custom domain or CloudFront in front sends an Origin that
# is not the Host Django sees).
ALLOWED_HOSTS = _list("DJANGO_ALLOWED_HOSTS", "*")
CSRF_TRUSTED_ORIGINS = _list("DJANGO_CSRF_TRUSTED_ORIGINS")
_bad_origins = [o for o in CSRF_TRUSTED_ORIGINS if not o.startswith(("https://", "http://"))]
if _bad_origins:
    raise ImproperlyConfigured(
        f"DJANGO_CSRF_TRUSTED_ORIGINS holds {_bad_origins}: each origin starts with its scheme, "
        "as in https://tasks.example.com."
    )
USE_TZ = True
TIME_ZONE = "UTC"

DATABASE_SECRET_ARN = os.environ.get("DATABASE_SECRET_ARN") or None
if DATABASE_SECRET_ARN:
    # Read once per container (cached); handlers.secrets reads it again when the database
    # refuses a connection, so a rotated password needs no redeploy.
    from handlers.secrets import database_settings

    DATABASES = {"default": database_settings(DATABASE_SECRET_ARN)}
elif os.environ.get("DATABASE_URL"):
    DATABASES = {"default": dj_database_url.parse(os.environ["DATABASE_URL"])}
elif ON_LAMBDA:
    # A function has no disk worth a database: say so at start-up, not with a KeyError later.
    raise ImproperlyConfigured(
        "No database configured: deploy with the DatabaseSecretArn parameter (a Secrets Manager "
        "secret holding the database URL) or DatabaseUrl, which set DATABASE_SECRET_ARN or "
        "DATABASE_URL on the function."
    )
else:
    DATABASES = {"default": dj_database_url.parse(f"sqlite:///{DEFAULT_SQLITE}")}
DATABASES["default"]["CONN_MAX_AGE"] = 0
SECRET_KEY = setting_from_secret("DJANGO_SECRET_KEY", "DjangoSecretKeyArn")
if SECRET_KEY is None:
    if ON_LAMBDA:
        raise ImproperlyConfigured(
            "No Django secret key: deploy with the DjangoSecretKeyArn parameter (a Secrets "
            "Manager secret or SSM SecureString parameter), or DjangoSecretKey, which sets "
            "DJANGO_SECRET_KEY_ARN on the function."
        )
    SECRET_KEY = "insecure-demo-key-set-DJANGO_SECRET_KEY"
# Seconds to wait for the database server to answer a connection. Without it, a server that
# drops packets holds a Lambda invocation until Lambda kills it at its timeout.
DATABASE_CONNECT_TIMEOUT = int(os.environ.get("DATABASE_CONNECT_TIMEOUT", "5"))
if DATABASES["default"]["ENGINE"].split(".")[-1] == "mysql":
    # PyMySQL, not mysqlclient: pure Python, no libmariadb needed on Lambda (see the module).
    from handlers.project import mysql_driver

    mysql_driver.install()
    # bgtask's partial indexes speed up claims where the database has them; MySQL and MariaDB
    # have none, Django creates plain tables without them and says so (models.W037) on every
    # check, which would keep `check --deploy` from ever being clean there.
    SILENCED_SYSTEM_CHECKS = ["models.W037"]
if DATABASES["default"]["ENGINE"].split(".")[-1] in ("postgresql", "mysql"):
    # psycopg and PyMySQL both take "connect_timeout" (whole seconds).
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
    "django.middleware.security.SecurityMiddleware",
    # Static files are answered here, before anything that could touch the database.
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "handlers.project.middleware.ContentSecurityPolicyMiddleware",
    "handlers.project.middleware.DatabaseUnavailableMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
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
# The admin's CSS, JavaScript and icons, served by the web function itself through WhiteNoise
# (no S3 bucket or CloudFront to set up): infra/build.py collects them into the artifact at build
# time, with hashed names (so they are cached for a year) and gzip-compressed copies. Off Lambda,
# without a collected manifest, WhiteNoise serves them from the apps' folders.
STATIC_URL = "static/"
STATIC_ROOT = Path(os.environ.get("DJANGO_STATIC_ROOT") or BASE_DIR / "staticfiles")
STATIC_HASHED = ON_LAMBDA or os.environ.get("DJANGO_STATIC_HASHED") == "1"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if STATIC_HASHED
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}
WHITENOISE_USE_FINDERS = not STATIC_HASHED

# HTTPS only (API Gateway serves nothing else): HSTS, secure cookies, the proxy's scheme header.
# On by default on Lambda; DJANGO_SECURE=1 turns it on elsewhere (behind a TLS proxy).
SECURE = ON_LAMBDA or os.environ.get("DJANGO_SECURE") == "1"
if SECURE:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = True
    SECURE_HSTS_SECONDS = int(os.environ.get("DJANGO_HSTS_SECONDS", "31536000"))
    SECURE_HSTS_INCLUDE_SUBDOMAINS = os.environ.get("DJANGO_HSTS_INCLUDE_SUBDOMAINS", "1") == "1"
    SECURE_HSTS_PRELOAD = os.environ.get("DJANGO_HSTS_PRELOAD", "1") == "1"
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
X_FRAME_OPTIONS = "DENY"
# What the admin's pages may load: their own static files only, no inline script. (Inline
# <style> blocks remain: bgtask's admin templates carry their styles with them.)
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self'; connect-src 'self'; object-src 'none'; "
    "base-uri 'self'; form-action 'self'; frame-ancestors 'none'"
)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# The demo's failing task is retried a few seconds later; keep its attempts small.
MAX_ATTEMPTS = int(os.environ.get("MAX_ATTEMPTS", "3"))

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "filters": {"batch_counts": {"()": "handlers.project.log_fields.BatchCountsFilter"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "loggers": {
        # On Lambda the runtime's own handler on the root logger writes each event once, as
        # JSON with the request id (template.yaml: LoggingConfig LogFormat JSON); a handler of
        # ours would write every line a second time.
        "bgtask": {
            "handlers": [] if ON_LAMBDA else ["console"],
            "level": os.environ.get("BGTASK_LOG_LEVEL", "INFO"),
        },
        # On Lambda, the batch line's counts become fields of its JSON log event.
        "bgtask.batch": {"filters": ["batch_counts"] if ON_LAMBDA else []},
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
    ("BGTASK_CONCURRENCY", int),  # template.yaml: WorkerConcurrency (tasks at once per batch)
    ("BGTASK_METRICS_NAMESPACE", str),
):
    if os.environ.get(_name):
        globals()[_name] = _type(os.environ[_name])
# A secret: from BGTASK_STATUS_TOKEN_ARN on Lambda (read here, in the init phase, and cached).
_status_token = setting_from_secret("BGTASK_STATUS_TOKEN", "StatusTokenArn")
if _status_token:
    BGTASK_STATUS_TOKEN = _status_token
