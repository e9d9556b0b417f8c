"""The worker's CloudWatch Embedded Metric Format line (no AWS call: it is a log line)."""

from __future__ import annotations

import json

import pytest
from django.test import override_settings

from handlers import worker
from handlers.local_context import LocalContext
from tests.sampleapp import tasks

pytestmark = pytest.mark.django_db(transaction=True)


def emf_lines(output: str) -> list[dict]:
    documents = [json.loads(line) for line in output.splitlines() if line.startswith('{"_aws"')]
    return documents


@override_settings(BGTASK_METRICS_NAMESPACE="bgtask-test", MAX_ATTEMPTS=1)
def test_the_worker_prints_one_emf_line_per_invocation(capsys):
    tasks.record("ok-1", schedule=0)
    tasks.record("ok-2", schedule=0)
    tasks.always_fail(schedule=0)
    tasks.record.enqueue(["other-queue"], schedule=0, queue="emails")

    worker.handler({"queue": "default"}, LocalContext(timeout=30))

    (document,) = emf_lines(capsys.readouterr().out)
    (directive,) = document["_aws"]["CloudWatchMetrics"]
    assert directive["Namespace"] == "bgtask-test"
    assert directive["Dimensions"] == [["Queue"]]
    assert {m["Name"]: m["Unit"] for m in directive["Metrics"]} == {
        "QueueDepth": "Count",
        "OldestDueAge": "Seconds",
        "Succeeded": "Count",
        "Failed": "Count",
        "Retried": "Count",
        "BatchDuration": "Seconds",
    }
    assert document["Queue"] == "default"
    assert (document["Succeeded"], document["Failed"], document["Retried"]) == (2, 1, 0)
    assert document["QueueDepth"] == 0  # the other queue's task is not counted here
    assert document["OldestDueAge"] == 0.0
    assert document["BatchDuration"] >= 0
    assert isinstance(document["_aws"]["Timestamp"], int)


def test_no_metrics_line_without_a_namespace(capsys):
    tasks.record("quiet", schedule=0)
    worker.handler({}, LocalContext(timeout=30))
    assert emf_lines(capsys.readouterr().out) == []
