"""The worker under the real Lambda runtime client (awslambdaric) against a fake Runtime API: the
sample events of infra/events run, the deadline header is honoured (an over-long task is cut and
recorded before the deadline), errors are reported, and each log event is one JSON line carrying
its request id."""

from __future__ import annotations

import json
import subprocess
import sys
import threading

import pytest

from bgtask.models import Task
from tests.conftest import REPO_ROOT, worker_env
from tests.handlers.conftest import load_event
from tests.handlers.fake_runtime_api import FakeRuntimeApi
from tests.sampleapp import tasks
from tests.sampleapp.models import Execution
from tests.serverless_faults.conftest import direct_database_url

pytestmark = pytest.mark.django_db(transaction=True)

MARGIN = 4  # BGTASK_LAMBDA_SAFETY_MARGIN of the function
# Ceiling for one answer: start-up (imports, django.setup) on a loaded machine, plus the timeout.
START_UP_CEILING = 120


class RuntimeProcess:
    """``python -m awslambdaric handlers.worker.handler`` pointed at the fake Runtime API."""

    def __init__(self, api: FakeRuntimeApi) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "awslambdaric", "handlers.worker.handler"],
            env=worker_env(
                DJANGO_SETTINGS_MODULE="tests.serverless_faults.project_settings",
                DATABASE_URL=direct_database_url(),
                AWS_LAMBDA_RUNTIME_API=api.address,
                AWS_LAMBDA_FUNCTION_NAME="bgtask-test-worker",
                DJANGO_SECRET_KEY="awslambdaric-test-" + "k" * 32,
                AWS_EXECUTION_ENV="AWS_Lambda_python3.12",
                AWS_LAMBDA_LOG_FORMAT="JSON",  # template.yaml: LoggingConfig LogFormat JSON
                AWS_LAMBDA_LOG_LEVEL="INFO",
                BGTASK_LAMBDA_SAFETY_MARGIN=str(MARGIN),
                BGTASK_METRICS_NAMESPACE="bgtask-test",  # one EMF line per batch
            ),
            cwd=REPO_ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))

    def stop(self) -> list[str]:
        self.process.kill()
        self.process.wait()
        self._reader.join(30)
        return self.lines


@pytest.fixture
def runtime():
    api = FakeRuntimeApi()
    process = RuntimeProcess(api)
    yield api, process
    process.stop()
    api.close()


def answer(api: FakeRuntimeApi, event, timeout: float):
    invocation = api.invoke(event, timeout)
    assert invocation.done.wait(timeout + START_UP_CEILING), "no answer from the runtime client"
    return invocation


def test_the_worker_under_awslambdaric_honours_the_deadline_and_logs_one_json_line_per_event(
    runtime,
):
    api, process = runtime
    for key in ("a", "b", "c"):
        tasks.record(key, schedule=0)

    # The sample events, each in its own invocation of one warm runtime process.
    ran = answer(api, load_event("worker-schedule"), 60)
    assert ran.kind == "response", ran.body
    assert (ran.body["source"], ran.body["succeeded"]) == ("schedule", 3)
    assert ran.body["requestId"] == ran.request_id
    answered = [ran]
    for name in ("worker-scheduled-event", "worker-direct"):
        tasks.record(name, schedule=0)
        done = answer(api, load_event(name), 60)
        assert done.kind == "response", done.body
        assert done.body["succeeded"] == 1
        answered.append(done)

    # An over-long task: cut at the deadline less the margin, recorded as a retry, and the
    # answer given before the deadline (on AWS the process would be killed then).
    long = tasks.slow_record("long", 300)
    cut = answer(api, load_event("worker-schedule"), MARGIN + 3)
    assert cut.kind == "response", cut.body
    assert cut.answered_ms < cut.deadline_ms
    assert cut.body["retried"] == 1
    long.refresh_from_db()
    assert long.status == Task.QUEUED and long.attempts == 1 and long.locked_by is None
    assert long.last_error.startswith("bgtask.timeouts.DeadlineReached")
    Task.objects.filter(pk=long.pk).delete()
    answered.append(cut)

    # A task whose timeout cannot fit in what is left is not started.
    unfit = tasks.slow_record("unfit", 0, timeout=120)
    left = answer(api, load_event("worker-schedule"), MARGIN + 10)
    assert left.kind == "response", left.body
    assert (left.body["released"], left.body["succeeded"]) == (1, 0)
    unfit.refresh_from_db()
    assert unfit.status == Task.QUEUED and unfit.attempts == 0
    assert not Execution.objects.filter(key="unfit").exists()
    answered.append(left)

    # A bad event is the invocation's error, reported through the Runtime API.
    refused = answer(api, {"source": "somewhere.else"}, 30)
    assert refused.kind == "error"
    assert refused.body["errorType"] == "UnexpectedEvent"

    lines = process.stop()
    assert api.init_errors == []
    # Every bgtask log event is one JSON line with its invocation's request id; none twice.
    records = []
    for line in lines:
        if line.startswith("{"):
            records.append(json.loads(line))
        else:
            assert "bgtask" not in line, f"a log line that is not JSON: {line!r}"
    logged = [r for r in records if str(r.get("logger", "")).startswith("bgtask")]
    batch_lines = [r for r in logged if r["message"].startswith("Batch ")]
    assert [r["requestId"] for r in batch_lines] == [i.request_id for i in answered]
    [not_fitting] = [r for r in logged if "does not fit" in r["message"]]
    assert not_fitting["requestId"] == left.request_id
    retry_lines = [r for r in logged if "retrying" in r["message"]]
    assert [r["requestId"] for r in retry_lines] == [cut.request_id]
    assert retry_lines[0]["level"] == "WARNING"
    messages = [(r["requestId"], r["message"]) for r in logged]
    assert len(messages) == len(set(messages)), "a log event was written twice"
    # One summary line per answered invocation, with its request id.
    summaries = [r for r in records if r.get("handler") == "worker"]
    assert [s["requestId"] for s in summaries] == [i.request_id for i in answered]
    # The batch line's counts are fields of its JSON event, not text in the message.
    assert [(r["succeeded"], r["retried"], r["released"]) for r in batch_lines] == [
        (i.body["succeeded"], i.body["retried"], i.body["released"]) for i in answered
    ]
    assert all(r["message"] == f"Batch {r['workerId']} done." for r in batch_lines)
    # The metrics (EMF) line of each batch carries the same request id under the same name.
    emf = [r for r in records if "_aws" in r]
    assert [r["requestId"] for r in emf] == [i.request_id for i in answered]
    # One field name for the request id on every line the function writes.
    assert all(r.get("requestId") for r in records)
    assert not any("request_id" in r for r in records)
