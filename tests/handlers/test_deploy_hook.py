"""The PreTraffic hook (handlers/deploy_hook.py) migrates, then reports to CodeDeploy: Succeeded
lets the deployment shift traffic, Failed stops it. CodeDeploy is a small local HTTP endpoint
speaking its JSON protocol (moto has no PutLifecycleEventHookExecutionStatus); boto3, the hook and
the migration are real, in a fresh process as on Lambda."""

from __future__ import annotations

import json
import sqlite3
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from handlers import deploy_hook
from handlers.events import UnexpectedEvent
from tests.conftest import run_python

pytestmark = pytest.mark.django_db(transaction=True)

EVENT = {"DeploymentId": "d-TEST12345", "LifecycleEventHookExecutionId": "hook-execution-1"}
RUN_HOOK = """
import json, sys
from handlers.deploy_hook import handler
from handlers.local_context import LocalContext
answer = handler(json.loads(sys.argv[1]), LocalContext(timeout=300))
print(json.dumps(answer))
"""


class FakeCodeDeploy:
    """CodeDeploy's endpoint, recording each call (its X-Amz-Target and JSON body)."""

    def __init__(self) -> None:
        calls = self.calls = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                calls.append((self.headers["X-Amz-Target"].split(".")[-1], body))
                answer = json.dumps({"lifecycleEventHookExecutionId": body.get("x", "ok")})
                self.send_response(200)
                self.send_header("Content-Type", "application/x-amz-json-1.1")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer.encode())

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def codedeploy():
    fake = FakeCodeDeploy()
    yield fake
    fake.close()


def _run_hook(codedeploy: FakeCodeDeploy, database_url: str):
    return run_python(
        RUN_HOOK.replace("sys.argv[1]", repr(json.dumps(EVENT))),
        timeout=300,
        DJANGO_SETTINGS_MODULE="handlers.project.settings",
        DATABASE_URL=database_url,
        DATABASE_CONNECT_TIMEOUT="2",
        AWS_ENDPOINT_URL_CODEDEPLOY=codedeploy.url,
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_REGION="us-east-1",
        AWS_DEFAULT_REGION="us-east-1",
    )


def test_the_hook_migrates_a_fresh_database_then_reports_success(codedeploy, tmp_path):
    database = tmp_path / "fresh.sqlite3"
    child = _run_hook(codedeploy, f"sqlite:///{database}")

    assert child.returncode == 0, child.stderr
    answer = json.loads(child.stdout.strip().splitlines()[-1])
    assert answer["status"] == "Succeeded"
    assert "Applying bgtask.0001" in answer["output"]
    with sqlite3.connect(database) as connection:
        tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master")}
    assert {"bgtask_task", "django_migrations", "auth_user"} <= tables
    assert codedeploy.calls == [
        (
            "PutLifecycleEventHookExecutionStatus",
            {
                "deploymentId": EVENT["DeploymentId"],
                "lifecycleEventHookExecutionId": EVENT["LifecycleEventHookExecutionId"],
                "status": "Succeeded",
            },
        )
    ]


def test_a_failed_migration_is_reported_as_failed_and_fails_the_invocation(
    codedeploy, switchable_database
):
    switchable_database.set_state("down")  # the database cannot be reached
    child = _run_hook(codedeploy, switchable_database.url)

    assert child.returncode != 0
    assert "HookFailed" in child.stderr and "DatabaseUnavailable" in child.stderr
    assert [(name, body["status"]) for name, body in codedeploy.calls] == [
        ("PutLifecycleEventHookExecutionStatus", "Failed")
    ]


@pytest.mark.parametrize(
    "event", [None, {}, {"DeploymentId": "d-1"}, {"command": "migrate"}, ["DeploymentId"]]
)
def test_an_event_that_is_not_codedeploys_is_refused_and_nothing_is_reported(event, codedeploy):
    with pytest.raises(UnexpectedEvent, match="expects CodeDeploy's"):
        deploy_hook.handler(event, None)
    assert codedeploy.calls == []
