"""Tasks for the features tests; autodiscovered (``tests.features`` is an installed app), so
worker processes know them too."""

import os
import time

import django

from bgtask import background
from bgtask.periodic import periodic
from tests.sampleapp.models import Execution

if django.VERSION >= (6, 0):
    from tests.features import django_tasks  # noqa: F401  (workers learn the django.tasks too)


@background(name="features.record")
def record(key):
    Execution.objects.create(key=key, pid=os.getpid())
    return key


@background(name="features.fail")
def fail(key):
    Execution.objects.create(key=key, pid=os.getpid())
    raise RuntimeError(f"{key} fails")


@background(name="features.spin")
def spin(key, seconds):
    """A runaway: a pure-Python loop that only a timeout stops early."""
    Execution.objects.create(key=key, pid=os.getpid())
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass
    return "finished"


@background(name="features.sleep_swallowing")
def sleep_swallowing(key, seconds):
    """A runaway that swallows every ``Exception``: a timeout must still stop it."""
    Execution.objects.create(key=key, pid=os.getpid())
    try:  # noqa: SIM105  (spelled out: this except is what the test defeats)
        time.sleep(seconds)
    except Exception:
        pass
    return "finished"


@background(name="features.with_default_timeout", timeout=7.5, unique="refuse")
def with_defaults(key):
    return key


# Registered only in worker processes started by the periodic tests: a periodic task is seen by
# every run_batch, and the rest of the suite must not get its occurrences.
if os.environ.get("BGTASK_TEST_PERIODIC"):
    # Yearly, so the due occurrence cannot change while the test's workers run.
    @periodic("0 0 1 1 *", name="features.yearly")
    def yearly():
        Execution.objects.create(key="yearly", pid=os.getpid())
