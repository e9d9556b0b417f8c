"""claim_due takes due tasks only, highest priority first, then oldest run_at, on every database,
however many priorities hold only scheduled (future) tasks."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from bgtask.models import Task
from bgtask.store import TaskStore
from tests.sampleapp import tasks

pytestmark = pytest.mark.django_db(transaction=True)


def lease():
    return timezone.now() + timedelta(minutes=5)


def enqueue(label: str, priority: int, seconds: float, queue: str = "default") -> Task:
    return tasks.add.enqueue(
        [label, ""], schedule=timedelta(seconds=seconds), priority=priority, queue=queue
    )


@pytest.fixture
def mixed():
    """Due and scheduled tasks spread over priorities, the highest holding only future ones."""
    return {
        "p9-future": enqueue("p9-future", 9, 3600),
        "p5-future": enqueue("p5-future", 5, 600),
        "p3-due": enqueue("p3-due", 3, -5),
        "p1-older": enqueue("p1-older", 1, -30),
        "p1-newer": enqueue("p1-newer", 1, -10),
        "p1-future": enqueue("p1-future", 1, 600),
        "m2-due": enqueue("m2-due", -2, -1),
        "m2-other-queue": enqueue("m2-other-queue", -2, -60, queue="other"),
    }


def labels(claimed: list[Task]) -> list[str]:
    return [task.args[0] for task in claimed]


def test_claims_due_tasks_in_priority_then_run_at_order(mixed):
    claimed = TaskStore().claim_due("w", 10, lease())
    assert labels(claimed) == [
        "p3-due",
        "p1-older",
        "p1-newer",
        "m2-other-queue",
        "m2-due",
    ]
    assert Task.objects.running().count() == 5


def test_a_small_claim_takes_the_first_in_order_and_leaves_the_rest(mixed):
    store = TaskStore()
    assert labels(store.claim_due("w1", 2, lease())) == ["p3-due", "p1-older"]
    assert labels(store.claim_due("w2", 2, lease())) == ["p1-newer", "m2-other-queue"]
    assert labels(store.claim_due("w3", 2, lease())) == ["m2-due"]
    assert store.claim_due("w4", 2, lease()) == []


def test_a_queue_claim_takes_only_that_queue(mixed):
    store = TaskStore()
    assert labels(store.claim_due("w", 10, lease(), queue="other")) == ["m2-other-queue"]
    assert labels(store.claim_due("w", 10, lease(), queue="default")) == [
        "p3-due",
        "p1-older",
        "p1-newer",
        "m2-due",
    ]


def test_nothing_is_claimed_when_only_scheduled_tasks_are_queued():
    for priority in (7, 0, -7):
        enqueue(f"future-{priority}", priority, 600)
    assert TaskStore().claim_due("w", 10, lease()) == []
    assert Task.objects.running().count() == 0


@pytest.mark.django_db
def test_sqlite_claims_search_the_due_index_never_scan_the_table():
    """The claim must stay a bounded index range however many tasks are scheduled for later
    (a planner that scanned every queued row made a drain beside 1,000,000 of them 10x slower)."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext
    from django.utils import timezone

    from bgtask.store import TaskStore

    if connection.vendor != "sqlite":
        pytest.skip("SQLite's planner only")
    store = TaskStore()
    for queue in (None, "default"):
        with CaptureQueriesContext(connection) as queries:
            store.claim_due("w", 10, timezone.now(), queue)
        for query in queries.captured_queries:
            with connection.cursor() as cursor:
                cursor.execute(f"EXPLAIN QUERY PLAN {query['sql']}")
                plan = [row[-1] for row in cursor.fetchall()]
            scans = [step for step in plan if step.startswith("SCAN")]
            assert not scans, (query["sql"], plan)
