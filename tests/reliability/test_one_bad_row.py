"""Issue 20 A1/A2: whatever goes wrong with one row is that row's outcome; the batch goes on."""

from __future__ import annotations

import logging

import pytest
from django.db import connection

from bgtask import run_batch
from bgtask.models import Task
from bgtask.signals import task_started, task_succeeded
from tests.reliability.helpers import enqueue_records, execution_counts
from tests.sampleapp import tasks


def _store_arguments(task: Task, arguments: str) -> None:
    # Written past the enqueue checks, as a corrupt or hostile row would be.
    Task.objects.filter(pk=task.pk).update(arguments=arguments)


@pytest.mark.parametrize("concurrency", [1, 4])
@pytest.mark.django_db(transaction=True)
def test_deeply_nested_arguments_fail_that_row_and_the_batch_goes_on(concurrency):
    hostile = tasks.record("hostile")
    _store_arguments(hostile, '{"args": ' + "[" * 100_000 + "]" * 100_000 + ', "kwargs": {}}')
    enqueue_records(["good1", "good2"])
    result = run_batch(30, concurrency=concurrency)  # raised RecursionError before
    hostile.refresh_from_db()
    assert hostile.status == Task.FAILED and hostile.attempts == 1
    assert "cannot be decoded" in hostile.last_error and "RecursionError" in hostile.last_error
    assert execution_counts() == {"good1": 1, "good2": 1}
    assert (result.succeeded, result.failed) == (2, 1)
    assert not Task.objects.running().exists()


@pytest.mark.django_db(transaction=True)
def test_a_result_nested_too_deep_to_store_is_a_success_without_a_result(caplog):
    task = tasks.nested_result()
    with caplog.at_level(logging.WARNING, logger="bgtask.execution"):
        result = run_batch(30)
    task.refresh_from_db()
    # It ran: recorded as having run (not retried, so its side effects do not repeat).
    assert (task.status, task.result, task.attempts) == (Task.SUCCEEDED, None, 0)
    assert result.succeeded == 1 and result.retried == 0
    assert "cannot be stored as JSON" in caplog.text


@pytest.mark.django_db(transaction=True)
def test_a_task_started_receiver_that_raises_retries_that_row_only():
    def picky(sender, task, **kwargs):
        if task.arguments.find("bad") >= 0:
            raise RuntimeError("receiver refuses this one")

    enqueue_records(["bad", "fine"])
    task_started.connect(picky)
    try:
        result = run_batch(30)
    finally:
        task_started.disconnect(picky)
    bad = Task.objects.get(arguments__contains="bad")
    assert bad.status == Task.QUEUED and bad.attempts == 1
    assert "receiver refuses this one" in bad.last_error
    assert execution_counts() == {"fine": 1}
    assert (result.succeeded, result.retried) == (1, 1)


@pytest.mark.django_db(transaction=True)
def test_a_task_succeeded_receiver_that_raises_is_logged_and_the_batch_goes_on(caplog):
    def broken(sender, task, **kwargs):
        raise RuntimeError("receiver bug")

    enqueue_records(["a", "b", "c"])
    task_succeeded.connect(broken)
    try:
        with caplog.at_level(logging.ERROR, logger="bgtask.outcomes"):
            result = run_batch(30)
    finally:
        task_succeeded.disconnect(broken)
    assert result.succeeded == 3
    assert Task.objects.succeeded().count() == 3
    assert caplog.text.count("A receiver of a bgtask signal") == 3


@pytest.mark.django_db(transaction=True)
def test_an_unregistered_name_is_retried_and_the_rest_run():
    stray = tasks.record("stray")
    Task.objects.filter(pk=stray.pk).update(task_name="nobody.knows.me")
    enqueue_records(["ok"])
    result = run_batch(30, concurrency=2)
    stray.refresh_from_db()
    assert stray.status == Task.QUEUED and "No task named" in stray.last_error
    assert result.succeeded == 1 and execution_counts() == {"ok": 1}
    assert connection.vendor  # the database is still usable after all of it
