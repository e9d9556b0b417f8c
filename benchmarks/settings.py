"""Django settings for the bgtask side of the benchmark; BENCH_DB picks sqlite/postgres/mariadb."""

import os

from benchmarks.dbs import database_settings

SECRET_KEY = "benchmark-only-not-secret"
DEBUG = False  # DEBUG=True would keep every query in memory and skew time and RSS
USE_TZ = True
TIME_ZONE = "UTC"
DATABASES = {"default": database_settings(os.environ.get("BENCH_DB", "sqlite"))}
INSTALLED_APPS = ["bgtask", "benchmarks.benchapp"]
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {"bgtask": {"handlers": ["console"], "level": "WARNING"}},
}
SILENCED_SYSTEM_CHECKS = ["models.W037"]  # MariaDB: migration 0002 adds full indexes
# The enqueue-to-start workload's polling row (benchmarks/latency.py --listen off).
if os.environ.get("BENCH_LISTEN") == "off":
    BGTASK_LISTEN = False
# The dev install brings opentelemetry-api and sentry-sdk (for their tests): the benchmark measures
# bgtask itself, as a project without them runs it. benchmarks/integrations_cost.py measures what
# they add.
BGTASK_OPENTELEMETRY = os.environ.get("BENCH_OPENTELEMETRY") == "1"
BGTASK_SENTRY = os.environ.get("BENCH_SENTRY") == "1"
# The limits section (benchmarks/limits_bench.py): queue limits of the processes it starts.
if os.environ.get("BENCH_QUEUE_LIMITS"):
    import json

    BGTASK_QUEUE_LIMITS = json.loads(os.environ["BENCH_QUEUE_LIMITS"])
