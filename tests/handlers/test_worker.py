"""The worker handler, called with the sample events against the test database."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import pytest
from django.db import connection
from django.test import override_settings
from django.utils import timezone

from bgtask.models import Task
from handlers import worker
from handlers.events import UnexpectedEvent
from handlers.local_context import LocalContext
from tests.handlers.conftest import load_event
from tests.sampleapp import tasks
from tests.sampleapp.models import Execution

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.mark.parametrize(
    ("event_name", "source"),
    [
        ("worker-schedule", "schedule"),
        ("worker-scheduled-event", "scheduled-event"),
        ("worker-direct", "direct"),
    ],
)
def test_each_sample_event_runs_the_due_tasks_and_says_what_ran(event_name, source, capsys):
    for key in ("a", "b", "c"):
        tasks.record(key, schedule=0)
    later = tasks.record("later", schedule=3600)

    summary = worker.handler(load_event(event_name), LocalContext(timeout=30))

    assert summary["source"] == source
    assert summary["ran"] is True
    assert summary["succeeded"] == 3
    assert summary["budget_spent"] is False
    assert sorted(Execution.objects.values_list("key", flat=True)) == ["a", "b", "c"]
    assert Task.objects.get(pk=later.pk).status == Task.QUEUED
    json.dumps(summary)  # JSON-serialisable as Lambda needs
    # One structured line per invocation on stdout, the same summary as the return value.
    logged = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert logged == summary


def test_the_direct_event_drains_only_its_queue():
    tasks.record.enqueue(["in-default"], schedule=0)
    tasks.record.enqueue(["in-emails"], schedule=0, queue="emails")

    summary = worker.handler({"queue": "emails"}, LocalContext(timeout=30))

    assert summary["succeeded"] == 1
    assert list(Execution.objects.values_list("key", flat=True)) == ["in-emails"]


def test_a_duration_in_the_event_caps_the_budget():
    summary = worker.handler({"duration": 2}, LocalContext(timeout=60))
    assert summary["budget"] == 2.0


@override_settings(BGTASK_LAMBDA_SAFETY_MARGIN=1.0)
def test_an_invocation_with_3_seconds_left_returns_before_its_deadline():
    for i in range(60):
        tasks.slow_record(f"s{i}", 0.1, schedule=0)
    context = LocalContext(timeout=3)

    summary = worker.handler(load_event("worker-schedule"), context)

    assert context.get_remaining_time_in_millis() > 0, "returned after the Lambda deadline"
    assert summary["budget_spent"] is True
    assert 1 <= summary["succeeded"] < 60
    # Whatever it did not run is queued and unlocked, claimable by the next invocation at once.
    left = Task.objects.filter(task_name="sample.slow_record").exclude(status=Task.SUCCEEDED)
    assert left.count() == 60 - summary["succeeded"]
    assert set(left.values_list("status", "locked_by")) == {(Task.QUEUED, None)}


def test_with_less_time_left_than_the_safety_margin_nothing_starts():
    tasks.record("not-now", schedule=0)
    context = LocalContext(timeout=3)  # default margin is 5 s

    summary = worker.handler({}, context)

    assert summary["ran"] is False
    assert context.get_remaining_time_in_millis() > 0
    assert Execution.objects.count() == 0
    assert Task.objects.get().status == Task.QUEUED


@override_settings(BGTASK_LAMBDA_LEASE_GRACE=7.0)
def test_the_lease_ends_at_the_invocation_deadline_plus_grace():
    tasks.record("x", schedule=0)
    before = timezone.now()
    summary = worker.handler({}, LocalContext(timeout=20))
    after = timezone.now()
    lease = datetime.fromisoformat(summary["lease_expires_at"])
    assert before + timedelta(seconds=26) <= lease <= after + timedelta(seconds=27)


def test_connections_are_closed_when_the_invocation_ends():
    tasks.record("x", schedule=0)
    worker.handler({}, LocalContext(timeout=20))
    assert connection.connection is None


@pytest.mark.parametrize(
    ("event", "expected_words"),
    [
        ("run please", "got a str event"),
        ([{"queue": "a"}], "got a list event"),
        ({"foo": 1}, "keys ['foo']"),
        ({"duration": -1}, '"duration" must be a number of seconds above 0'),
        ({"duration": "5"}, '"duration" must be a number'),
        ({"duration": True}, '"duration" must be a number'),
        ({"queue": ""}, '"queue" must be a queue name'),
        ({"queue": 7}, '"queue" must be a queue name'),
        ({"source": "aws.events", "detail-type": "Object Created"}, 'only "Scheduled Event"'),
        ({"source": "bgtask.schedule", "cron": "* * * * *"}, "Unexpected key(s) ['cron']"),
        ({"source": "aws.s3", "Records": []}, "from source 'aws.s3'"),
        (load_event("web-status"), "keys"),
    ],
)
def test_a_malformed_event_gets_a_clear_error_naming_what_was_expected(event, expected_words):
    tasks.record("must-not-run", schedule=0)
    with pytest.raises(UnexpectedEvent) as raised:
        worker.handler(event, LocalContext(timeout=30))
    message = str(raised.value).lower()
    assert expected_words.lower() in message
    assert "expected" in message or "must be" in message or "takes only" in message
    assert Execution.objects.count() == 0  # nothing ran, nothing was claimed
    assert Task.objects.get().status == Task.QUEUED


def test_a_wake_up_event_runs_the_due_tasks_and_never_fans_out():
    tasks.record("woken", schedule=0)
    summary = worker.handler({"source": "bgtask.wake"}, LocalContext(timeout=30))
    assert summary["source"] == "wake"
    assert summary["succeeded"] == 1
    assert summary["fanned_out"] == 0


def test_fan_out_invokes_the_alias_the_invocation_runs_as():
    from handlers.worker import fan_out_target

    context = LocalContext(timeout=60, function_name="bgtask-Worker-AbC")
    assert fan_out_target(context) == "bgtask-Worker-AbC"  # unqualified: by name
    context.invoked_function_arn += ":live"
    assert fan_out_target(context).endswith(":function:bgtask-Worker-AbC:live")
