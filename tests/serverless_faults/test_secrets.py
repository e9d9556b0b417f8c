"""Secrets the functions hold (the DATABASE_URL password, DJANGO_SECRET_KEY, BGTASK_STATUS_TOKEN,
a createsuperuser password) never appear in a handler's answer or error, in what the handlers
print (the worker's structured line, logs at DEBUG), or in a task's ``last_error``."""

from __future__ import annotations

import json

import pytest
from django.contrib.auth import get_user_model

from bgtask.models import Task
from tests.handlers.conftest import load_event
from tests.sampleapp import tasks
from tests.serverless_faults.conftest import (
    SECRET_KEY,
    SECRETS,
    STATUS_TOKEN,
    SUPERUSER_PASSWORD,
)

pytestmark = pytest.mark.django_db(transaction=True)


def test_no_secret_reaches_answers_errors_logs_or_last_error(switchable_database, start_container):
    switchable_database.set_state("up")
    container = start_container(
        DATABASE_URL=switchable_database.url,
        DJANGO_SECRET_KEY=SECRET_KEY,
        BGTASK_STATUS_TOKEN=STATUS_TOKEN,
        BGTASK_LOG_LEVEL="DEBUG",
        BGTASK_METRICS_NAMESPACE="bgtask-test",
    )
    tasks.record("fine", schedule=0)
    tasks.always_fail("it broke", schedule=0)
    status = load_event("web-status")
    status["headers"]["authorization"] = f"Bearer {STATUS_TOKEN}"
    wrong = load_event("web-status")
    wrong["headers"]["authorization"] = f"Bearer {STATUS_TOKEN}-not"
    createsuperuser = {
        "command": "createsuperuser",
        "args": ["--username", "admin", "--email", "admin@example.com"],
        "password": SUPERUSER_PASSWORD,
    }

    results = [
        container.invoke("worker", {"source": "bgtask.schedule", "scheduled_time": "t"}),
        container.invoke("manage", createsuperuser),
        container.invoke("manage", createsuperuser),  # fails: the username is taken
        container.invoke("manage", {**createsuperuser, "args": ["--username", "a b"]}),
        container.invoke("manage", {"command": "check", "args": ["--deploy"]}),
        container.invoke("manage", {"command": "migrate", "args": ["--plan"]}),
        container.invoke("web", status),
        container.invoke("web", wrong),
        container.invoke("web", load_event("web-admin-login")),
    ]
    stderr = container.stop()

    # The invocations did what they were asked (so the secrets were in play) ...
    worker = results[0]["answer"]
    assert (worker["succeeded"], worker["retried"]) == (1, 1)
    assert results[1]["ok"] and not results[2]["ok"] and not results[3]["ok"]
    assert "already taken" in results[2]["error"]
    assert get_user_model().objects.get(username="admin").check_password(SUPERUSER_PASSWORD)
    assert results[6]["answer"]["statusCode"] == 200
    assert results[7]["answer"]["statusCode"] == 401
    failed = Task.objects.get(task_name="sample.always_fail")
    assert "it broke" in failed.last_error
    # ... and none of them shows up anywhere a caller or a log reader could see it.
    seen = {
        "answers and errors": json.dumps(results),
        "stdout lines (structured line, metrics)": "\n".join(container.log_lines),
        "stderr (logs)": stderr,
        "last_error": "\n".join(
            Task.objects.values_list("last_error", flat=True).exclude(last_error=None)
        ),
    }
    assert any(line.startswith('{"handler": "worker"') for line in container.log_lines)
    # (Only the PostgreSQL run's URL carries the database password, see conftest; the others
    # check it in test_database_unreachable with URLs of both kinds.)
    for where, text in seen.items():
        for secret in SECRETS:
            assert secret not in text, f"a secret leaked into {where}"
