"""The worker function's settings (handlers.project.worker_settings) run the worker without
loading the admin, sessions or URLs: what a cold start does not import, it does not pay for."""

from __future__ import annotations

import json
import logging

import pytest

from tests.conftest import run_python
from tests.serverless_faults.conftest import direct_database_url

pytestmark = pytest.mark.django_db(transaction=True)

COLD_START = """
import json, logging, sys
from handlers import worker
at_init = set(sys.modules)
from django.db import connections
from handlers.local_context import LocalContext
summary = worker.handler({"source": "bgtask.schedule"}, LocalContext(timeout=30))
loaded = sorted(m for m in sys.modules if m.startswith(("django.contrib.admin", "mangum",
    "django.contrib.sessions", "django.contrib.messages", "handlers.project.urls",
    "django.contrib.auth", "django.contrib.contenttypes", "django.views.debug",
    "django.template.defaulttags")))
django_logger = logging.getLogger("django")
print(json.dumps({
    "summary": summary,
    "loaded": loaded,
    "backend_at_init": type(connections["default"]).__module__ in at_init,
    "compiler_at_init": "django.db.models.sql.compiler" in at_init,
    "django_log_handlers": [type(h).__name__ for h in django_logger.handlers],
    "django_log_level": django_logger.level,
    "bgtask_batch_filters": [type(f).__name__ for f in logging.getLogger("bgtask.batch").filters],
}))
"""


def _cold_start(settings: str = "handlers.project.worker_settings", **env: str):
    return run_python(
        COLD_START,
        DJANGO_SETTINGS_MODULE=settings,
        AWS_LAMBDA_FUNCTION_NAME="bgtask-test-worker",
        DJANGO_SECRET_KEY="worker-settings-test-" + "k" * 32,
        DATABASE_URL=direct_database_url(),
        **env,
    )


def test_the_worker_runs_with_its_settings_and_loads_no_web_only_module():
    child = _cold_start()
    assert child.returncode == 0, child.stderr
    answer = json.loads(child.stdout.strip().splitlines()[-1])
    assert answer["summary"]["ran"] is True
    assert answer["loaded"] == []


def test_the_database_backend_is_loaded_in_the_init_phase_not_the_first_invocation():
    child = _cold_start()
    assert child.returncode == 0, child.stderr
    answer = json.loads(child.stdout.strip().splitlines()[-1])
    assert answer["backend_at_init"] is True
    assert answer["compiler_at_init"] is True


def test_the_worker_keeps_djangos_logging_defaults_except_mail_admins():
    child = _cold_start()
    assert child.returncode == 0, child.stderr
    answer = json.loads(child.stdout.strip().splitlines()[-1])
    # Django's defaults: the "django" logger at INFO with its console handler (which prints only
    # with DEBUG); the project's LOGGING on top (the batch line's counts filter, on Lambda).
    assert answer["django_log_handlers"] == ["StreamHandler"]
    assert answer["django_log_level"] == logging.INFO
    assert answer["bgtask_batch_filters"] == ["BatchCountsFilter"]


def test_a_model_referring_to_an_app_the_worker_leaves_out_stops_it_at_init():
    child = _cold_start("tests.handlers.worker_settings_with_users")
    assert child.returncode != 0
    assert "ModelOutsideTheApps" in child.stderr
    assert "Models refer to auth.user" in child.stderr
    assert "django.contrib.auth and django.contrib.contenttypes" in child.stderr


def test_with_auth_added_back_as_the_settings_say_the_worker_starts():
    child = _cold_start("tests.handlers.worker_settings_with_users", WITH_AUTH="1")
    assert child.returncode == 0, child.stderr
    assert json.loads(child.stdout.strip().splitlines()[-1])["summary"]["ran"] is True
