"""The worker function's settings (handlers.project.worker_settings) run the worker without
loading the admin, sessions or URLs: what a cold start does not import, it does not pay for."""

from __future__ import annotations

import json

import pytest

from tests.conftest import run_python
from tests.serverless_faults.conftest import direct_database_url

pytestmark = pytest.mark.django_db(transaction=True)

COLD_START = """
import json, sys
from handlers import worker
from handlers.local_context import LocalContext
summary = worker.handler({"source": "bgtask.schedule"}, LocalContext(timeout=30))
loaded = sorted(m for m in sys.modules if m.startswith(("django.contrib.admin", "mangum",
    "django.contrib.sessions", "django.contrib.messages", "handlers.project.urls")))
print(json.dumps({"summary": summary, "loaded": loaded}))
"""


def test_the_worker_runs_with_its_settings_and_loads_no_web_only_module():
    child = run_python(
        COLD_START,
        DJANGO_SETTINGS_MODULE="handlers.project.worker_settings",
        AWS_LAMBDA_FUNCTION_NAME="bgtask-test-worker",
        DJANGO_SECRET_KEY="worker-settings-test-" + "k" * 32,
        DATABASE_URL=direct_database_url(),
    )
    assert child.returncode == 0, child.stderr
    answer = json.loads(child.stdout.strip().splitlines()[-1])
    assert answer["summary"]["ran"] is True
    assert answer["loaded"] == []
