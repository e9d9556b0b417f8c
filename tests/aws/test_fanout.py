"""Backlog fan-out: a worker batch that ran out of time with tasks due starts helpers (moto)."""

from __future__ import annotations

import pytest
from django.test import override_settings

from handlers import worker
from handlers.local_context import LocalContext
from tests.aws.conftest import FUNCTION_NAME
from tests.sampleapp import tasks

pytestmark = pytest.mark.django_db(transaction=True)


def backlog(count: int) -> None:
    for i in range(count):
        tasks.slow_record(f"b{i}", 0.1, schedule=0)


def context() -> LocalContext:
    return LocalContext(timeout=60, function_name=FUNCTION_NAME)


@override_settings(BGTASK_FANOUT_MAX=3)
def test_a_batch_that_spent_its_budget_with_a_backlog_starts_extra_workers(lambda_invocations):
    backlog(20)

    summary = worker.handler({"duration": 0.3}, context())

    assert summary["budget_spent"] is True
    assert summary["fanned_out"] == 3
    assert [(i.function_name, i.invocation_type) for i in lambda_invocations] == [
        (FUNCTION_NAME, "Event")
    ] * 3
    assert all(i.payload == {"source": "bgtask.fanout"} for i in lambda_invocations)


@override_settings(BGTASK_FANOUT_MAX=3)
def test_the_helpers_drain_the_queue_they_were_started_for(lambda_invocations):
    for i in range(10):
        tasks.slow_record.enqueue([f"m{i}", 0.1], schedule=0, queue="emails")
    worker.handler({"duration": 0.2, "queue": "emails"}, context())
    assert {str(i.payload) for i in lambda_invocations} == {
        str({"source": "bgtask.fanout", "queue": "emails"})
    }


@override_settings(BGTASK_FANOUT_MAX=5)
def test_no_more_helpers_than_tasks_due(lambda_invocations):
    backlog(4)
    summary = worker.handler({"duration": 0.15}, context())
    assert summary["budget_spent"] is True
    left = 4 - summary["succeeded"]
    assert summary["fanned_out"] == left == len(lambda_invocations)


@override_settings(BGTASK_FANOUT_MAX=3)
def test_helpers_do_not_start_helpers(lambda_invocations):
    backlog(20)
    summary = worker.handler({"source": "bgtask.fanout"}, LocalContext(timeout=5.3))
    assert summary["budget_spent"] is True
    assert summary["fanned_out"] == 0
    assert lambda_invocations == []


@override_settings(BGTASK_FANOUT_MAX=3)
def test_a_batch_that_ran_dry_starts_no_helper(lambda_invocations):
    backlog(2)
    summary = worker.handler({}, context())
    assert summary["budget_spent"] is False
    assert summary["fanned_out"] == 0
    assert lambda_invocations == []


def test_fan_out_is_off_by_default(lambda_invocations):
    backlog(20)
    summary = worker.handler({"duration": 0.3}, context())
    assert summary["budget_spent"] is True
    assert summary["fanned_out"] == 0
    assert lambda_invocations == []


@override_settings(BGTASK_FANOUT_MAX=10, BGTASK_WORKER_CONCURRENCY=3)
def test_fan_out_starts_no_more_helpers_than_the_reserved_concurrency_leaves(lambda_invocations):
    backlog(20)
    summary = worker.handler({"duration": 0.3}, context())
    assert summary["budget_spent"] is True
    assert summary["fanned_out"] == 2 == len(lambda_invocations)  # 3 slots, this one included


@override_settings(BGTASK_FANOUT_MAX=10, BGTASK_WORKER_CONCURRENCY=1)
def test_a_reserved_concurrency_of_one_leaves_no_room_for_helpers(lambda_invocations):
    backlog(20)
    summary = worker.handler({"duration": 0.3}, context())
    assert summary["budget_spent"] is True
    assert summary["fanned_out"] == 0
    assert lambda_invocations == []
