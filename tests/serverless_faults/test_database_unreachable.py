"""The database unreachable when an invocation starts: each handler fails fast with a clear error
(no hang on connect), writes nothing, and the next invocation of the same warm container works
once the database is back."""

from __future__ import annotations

import json

import pytest
from django.db import connection

from bgtask.models import Task
from tests.handlers.conftest import load_event
from tests.sampleapp import tasks
from tests.sampleapp.models import Execution
from tests.serverless_faults.conftest import DB_PASSWORD, SECRET_KEY, STATUS_TOKEN

pytestmark = pytest.mark.django_db(transaction=True)
INVOCATION_TIMEOUT = 60  # seconds the local Lambda context gives each invocation


def container_env(url: str, **extra: str) -> dict[str, str]:
    return {
        "DATABASE_URL": url,
        "DJANGO_SECRET_KEY": SECRET_KEY,
        "BGTASK_STATUS_TOKEN": STATUS_TOKEN,
        "BGTASK_METRICS_NAMESPACE": "",
        **extra,
    }


def status_event(token: str = STATUS_TOKEN) -> dict:
    event = load_event("web-status")
    event["headers"]["authorization"] = f"Bearer {token}"
    return event


def assert_clear_database_error(result: dict) -> None:
    assert result["ok"] is False, result
    assert result["error_type"] == "DatabaseUnavailable"
    assert "Could not reach the" in result["error"]
    assert "Nothing was run" in result["error"]
    assert DB_PASSWORD not in result["error"]
    assert result["remaining_ms"] > 0, "the invocation ran into its Lambda timeout"


def test_each_handler_fails_clearly_while_the_database_is_down_and_works_when_it_is_back(
    switchable_database, start_container
):
    task = tasks.record("after-the-outage", schedule=0)
    container = start_container(**container_env(switchable_database.url))

    # Down: a clear error from the worker and the management function, a 503 from the web.
    assert_clear_database_error(container.invoke("worker", {}, INVOCATION_TIMEOUT))
    assert_clear_database_error(
        container.invoke("manage", {"command": "showmigrations"}, INVOCATION_TIMEOUT)
    )
    response = container.invoke("web", status_event(), INVOCATION_TIMEOUT)["answer"]
    assert response["statusCode"] == 503
    assert response["headers"]["retry-after"] == "30"
    assert json.loads(response["body"]) == {
        "error": "The database is unavailable; try again shortly."
    }
    admin = load_event("web-admin-login")
    admin["cookies"] = ["sessionid=abcdefghijklmnopqrstuvwxyz012345"]  # the session is looked up
    assert container.invoke("web", admin, INVOCATION_TIMEOUT)["answer"]["statusCode"] == 503
    task.refresh_from_db()
    assert (task.status, task.attempts, task.locked_by) == (Task.QUEUED, 0, None)
    assert Execution.objects.count() == 0

    # Back: the same warm container serves every handler.
    switchable_database.set_state("up")
    worker = container.invoke("worker", {}, INVOCATION_TIMEOUT)
    assert worker["ok"], worker
    assert worker["answer"]["succeeded"] == 1
    manage = container.invoke("manage", {"command": "showmigrations"}, INVOCATION_TIMEOUT)
    assert manage["ok"], manage
    assert "[X] 0001_initial" in manage["answer"]["output"]
    web = container.invoke("web", status_event(), INVOCATION_TIMEOUT)["answer"]
    assert web["statusCode"] == 200
    queues = json.loads(web["body"])["queues"]
    # The one task succeeded: nothing due or running, one success in the last hour.
    assert (queues["default"]["due"], queues["default"]["running"]) == (0, 0), queues
    assert queues["default"]["succeeded_last_hour"] == 1, queues

    # Down again mid-life of the container: clear errors again, nothing half-written.
    tasks.record("second-outage", schedule=0)
    switchable_database.set_state("down")
    assert_clear_database_error(container.invoke("worker", {}, INVOCATION_TIMEOUT))
    assert Task.objects.filter(status=Task.QUEUED).count() == 1
    stderr = container.stop()
    assert DB_PASSWORD not in stderr and DB_PASSWORD not in "\n".join(container.log_lines)


@pytest.mark.skipif(
    connection.vendor == "sqlite", reason="SQLite has no server that could stop answering"
)
def test_a_server_that_never_answers_ends_the_invocation_at_the_connect_timeout(
    switchable_database, start_container
):
    """Without a connect timeout a blackholed server holds the invocation until Lambda kills it."""
    tasks.record("behind-the-blackhole", schedule=0)
    switchable_database.set_state("blackhole")
    container = start_container(
        **container_env(switchable_database.url, DATABASE_CONNECT_TIMEOUT="2")
    )

    result = container.invoke("worker", {}, INVOCATION_TIMEOUT)

    assert_clear_database_error(result)
    # psycopg says "timeout expired"; mysqlclient "Lost connection ... system error: 110"
    # (ETIMEDOUT): both are the connect timeout, not the Lambda deadline, ending the wait.
    assert any(
        words in result["error"].lower() for words in ("timeout", "timed out", "system error: 110")
    ), result["error"]
    web = container.invoke("web", status_event(), INVOCATION_TIMEOUT)
    assert web["answer"]["statusCode"] == 503
    assert web["remaining_ms"] > 0
    switchable_database.set_state("up")
    assert container.invoke("worker", {}, INVOCATION_TIMEOUT)["answer"]["succeeded"] == 1


@pytest.mark.parametrize(
    "url",
    [
        f"postgres://bgtask:{DB_PASSWORD}@127.0.0.1:{{port}}/bgtask",
        f"mysql://bgtask:{DB_PASSWORD}@127.0.0.1:{{port}}/bgtask",
    ],
    ids=["postgres-url", "mysql-url"],
)
def test_the_database_password_never_reaches_the_error_or_the_logs(url, start_container):
    """Whatever database the suite runs on: these URLs point at a port where nothing listens."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again when the block ends: connection refused
    container = start_container(**container_env(url.format(port=port)))

    results = [
        container.invoke("worker", {"source": "bgtask.schedule"}, INVOCATION_TIMEOUT),
        container.invoke("manage", {"command": "migrate"}, INVOCATION_TIMEOUT),
        container.invoke("web", status_event(), INVOCATION_TIMEOUT),
    ]

    assert_clear_database_error(results[0])
    assert_clear_database_error(results[1])
    assert results[2]["answer"]["statusCode"] == 503
    seen = json.dumps(results) + "\n".join(container.log_lines) + container.stop()
    for secret in (DB_PASSWORD, SECRET_KEY, STATUS_TOKEN):
        assert secret not in seen


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("postgres://u:p@db.example:5432/app", 5),
        ("mysql://u:p@db.example:3306/app", 5),
        ("sqlite:////tmp/app.sqlite3", None),
    ],
)
def test_the_lambda_project_sets_a_connect_timeout_on_server_databases(url, expected):
    import subprocess
    import sys

    from tests.conftest import REPO_ROOT

    code = (
        "import json, handlers.project.settings as s; "
        "print(json.dumps(s.DATABASES['default'].get('OPTIONS', {}).get('connect_timeout')))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        env={"PATH": "/usr/bin:/bin", "DATABASE_URL": url, "PYTHONPATH": str(REPO_ROOT)},
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout) == expected
