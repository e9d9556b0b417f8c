"""Outcome writes: one raw guarded UPDATE each, exact values, and on PostgreSQL an asynchronous
commit that is confined to the outcome's own transaction."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from bgtask.models import Task
from bgtask.store import TaskStore
from tests.sampleapp import tasks

pytestmark = pytest.mark.django_db(transaction=True)


def claim_one(worker: str = "worker-a") -> Task:
    tasks.add(1, 2, schedule=0)
    store = TaskStore()
    (task,) = store.claim_due(worker, 1, timezone.now() + timedelta(minutes=5))
    return task


def outcome_updates(queries) -> list[str]:
    return [q["sql"] for q in queries if q["sql"].lstrip().upper().startswith("UPDATE")]


def test_succeeded_outcome_is_written_with_exact_values():
    task = claim_one()
    started = timezone.now().replace(microsecond=123456)
    finished = started + timedelta(seconds=1, microseconds=654321)

    assert TaskStore().mark_succeeded(task, '{"x":1}', started, finished) is True

    row = Task.objects.get(id=task.id)
    assert (row.status, row.result, row.locked_by, row.locked_until) == (
        Task.SUCCEEDED,
        '{"x":1}',
        None,
        None,
    )
    assert (row.started_at, row.finished_at) == (started, finished)


def test_retry_and_failure_outcomes_are_written():
    store = TaskStore()
    retried = claim_one()
    run_at = timezone.now() + timedelta(seconds=21)
    assert store.mark_retry(retried, "Traceback: boom", 1, run_at, timezone.now())
    row = Task.objects.get(id=retried.id)
    assert (row.status, row.attempts, row.last_error, row.run_at, row.locked_by) == (
        Task.QUEUED,
        1,
        "Traceback: boom",
        run_at,
        None,
    )

    failed = claim_one()
    now = timezone.now()
    assert store.mark_failed(failed, "gave up", 25, now, now)
    row = Task.objects.get(id=failed.id)
    assert (row.status, row.attempts, row.failed_at, row.finished_at) == (
        Task.FAILED,
        25,
        now,
        now,
    )


def test_an_outcome_is_discarded_when_another_worker_holds_the_lease():
    task = claim_one("worker-a")
    # The lease expired and worker-b took the task over meanwhile.
    Task.objects.filter(id=task.id).update(locked_by="worker-b")

    now = timezone.now()
    assert TaskStore().mark_succeeded(task, None, now, now) is False

    row = Task.objects.get(id=task.id)
    assert (row.status, row.locked_by, row.finished_at) == (Task.RUNNING, "worker-b", None)


def test_an_outcome_is_discarded_once_the_task_is_no_longer_running():
    task = claim_one()
    TaskStore().release([task.id], task.locked_by)

    now = timezone.now()
    assert TaskStore().mark_failed(task, "late", 1, now, now) is False
    assert Task.objects.get(id=task.id).status == Task.QUEUED


def test_outcome_commits_are_durable_by_default():
    task = claim_one()
    now = timezone.now()
    with CaptureQueriesContext(connection) as queries:
        assert TaskStore().mark_succeeded(task, None, now, now)
    (update,) = outcome_updates(queries)
    assert "synchronous_commit" not in update


@pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL only")
@pytest.mark.parametrize("group", [1, 3])
def test_postgres_outcome_commits_asynchronously_only_for_its_own_transaction(settings, group):
    settings.BGTASK_ASYNC_COMMIT = True
    claimed = [claim_one() for _ in range(group)]
    now = timezone.now()
    rows = [(task.id, task.locked_by, None, now, now) for task in claimed]
    with CaptureQueriesContext(connection) as queries:
        assert TaskStore().mark_succeeded_many(rows) == {task.id for task in claimed}
    (update,) = outcome_updates(queries)
    assert "synchronous_commit" in update
    # Transaction-local: the session (and every later statement on it) is unchanged.
    with connection.cursor() as cursor:
        cursor.execute("SHOW synchronous_commit")
        assert cursor.fetchone()[0] == "on"


def test_inside_a_callers_transaction_the_outcome_keeps_their_commit():
    task = claim_one()
    now = timezone.now()
    with transaction.atomic(), CaptureQueriesContext(connection) as queries:
        assert TaskStore().mark_succeeded(task, None, now, now)
    (update,) = outcome_updates(queries)
    assert "synchronous_commit" not in update
    assert Task.objects.get(id=task.id).status == Task.SUCCEEDED


def test_a_group_of_successes_is_one_statement_with_exact_values_per_row():
    claimed = [claim_one() for _ in range(3)]
    base = timezone.now().replace(microsecond=0)
    rows = [
        (task.id, task.locked_by, f'{{"n":{n}}}' if n else None, base, base + timedelta(seconds=n))
        for n, task in enumerate(claimed)
    ]
    with CaptureQueriesContext(connection) as queries:
        written = TaskStore().mark_succeeded_many(rows)
    assert written == {task.id for task in claimed}
    assert len(outcome_updates(queries)) == 1
    for n, task in enumerate(claimed):
        row = Task.objects.get(id=task.id)
        assert (row.status, row.locked_by, row.locked_until, row.unique_key) == (
            Task.SUCCEEDED,
            None,
            None,
            None,
        )
        assert row.result == (f'{{"n":{n}}}' if n else None)
        assert (row.started_at, row.finished_at) == (base, base + timedelta(seconds=n))


def test_a_group_write_skips_each_row_whose_lease_was_lost():
    mine, taken_over, deleted = (claim_one() for _ in range(3))
    Task.objects.filter(id=taken_over.id).update(locked_by="another-worker")
    Task.objects.filter(id=deleted.id).delete()
    now = timezone.now()
    rows = [(task.id, "worker-a", None, now, now) for task in (mine, taken_over, deleted)]
    assert TaskStore().mark_succeeded_many(rows) == {mine.id}
    assert Task.objects.get(id=mine.id).status == Task.SUCCEEDED
    other = Task.objects.get(id=taken_over.id)
    assert (other.status, other.locked_by) == (Task.RUNNING, "another-worker")
