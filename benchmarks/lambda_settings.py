"""The Lambda worker function's own settings (``handlers.project.worker_settings``) for the I/O
section's cost run: the bench app's tasks added, and ``BGTASK_CONCURRENCY`` from
``BENCH_CONCURRENCY`` (the function's settings do not read it from the environment yet)."""

import os

from handlers.project.worker_settings import *  # noqa: F403
from handlers.project.worker_settings import INSTALLED_APPS

INSTALLED_APPS = [*INSTALLED_APPS, "benchmarks.benchapp"]
BGTASK_CONCURRENCY = int(os.environ.get("BENCH_CONCURRENCY", "1"))
