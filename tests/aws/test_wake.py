"""Wake-on-enqueue against moto's Lambda: one async invoke after commit, throttled per process."""

from __future__ import annotations

import pytest
from django.db import transaction
from django.test import override_settings

from bgtask.aws import wake
from bgtask.aws.client import lambda_client
from bgtask.models import Task
from tests.aws.conftest import FUNCTION_NAME, free_port
from tests.sampleapp import tasks

pytestmark = pytest.mark.django_db(transaction=True)


@override_settings(BGTASK_WAKE_FUNCTION=FUNCTION_NAME)
def test_a_due_enqueue_invokes_the_worker_asynchronously_after_the_commit(lambda_invocations):
    with transaction.atomic():
        tasks.record("wake-me", schedule=0)
        assert lambda_invocations == []  # not before the task is visible to the worker

    assert len(lambda_invocations) == 1
    (invocation,) = lambda_invocations
    assert invocation.function_name == FUNCTION_NAME
    assert invocation.invocation_type == "Event"
    assert invocation.payload == {"source": "bgtask.wake"}


@override_settings(BGTASK_WAKE_FUNCTION=FUNCTION_NAME, BGTASK_WAKE_INTERVAL=3600)
def test_wake_ups_are_throttled_per_process(lambda_invocations):
    for i in range(5):
        tasks.record(f"burst-{i}", schedule=0)
    assert len(lambda_invocations) == 1
    wake.reset_throttle()
    tasks.record("after-the-interval", schedule=0)
    assert len(lambda_invocations) == 2


@override_settings(BGTASK_WAKE_FUNCTION=FUNCTION_NAME)
def test_a_rolled_back_or_later_enqueue_wakes_nobody(lambda_invocations):
    with pytest.raises(RuntimeError), transaction.atomic():
        tasks.record("rolled-back", schedule=0)
        raise RuntimeError("abort")
    tasks.record("tomorrow", schedule=24 * 3600)
    assert lambda_invocations == []


def test_wake_on_enqueue_is_off_without_its_setting(lambda_invocations):
    tasks.record("no-wake", schedule=0)
    assert lambda_invocations == []


@override_settings(BGTASK_WAKE_FUNCTION=FUNCTION_NAME)
def test_a_failed_wake_up_never_fails_the_enqueue(lambda_invocations, monkeypatch, caplog):
    # Lambda's endpoint is unreachable: nothing listens on this port.
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")
    lambda_client.cache_clear()

    task = tasks.record("still-stored", schedule=0)

    assert Task.objects.filter(pk=task.pk, status=Task.QUEUED).exists()
    assert f"Could not invoke {FUNCTION_NAME}" in caplog.text
    assert lambda_invocations == []


@override_settings(BGTASK_WAKE_FUNCTION=FUNCTION_NAME, BGTASK_WAKE_INTERVAL=3600)
def test_a_fast_bulk_enqueue_of_due_tasks_wakes_the_worker_once(lambda_invocations):
    with transaction.atomic():
        tasks.record.bulk([(f"bulk-{i}",) for i in range(50)], return_tasks=False)
        assert lambda_invocations == []
    assert len(lambda_invocations) == 1
    wake.reset_throttle()
    tasks.record.bulk([("later",)], schedule=3600, return_tasks=False)
    assert len(lambda_invocations) == 1
