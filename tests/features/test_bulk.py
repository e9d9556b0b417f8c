"""Bulk enqueue: one INSERT for many calls, each validated like a single call."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from bgtask import run_batch
from bgtask.bulk import enqueue_many
from bgtask.models import Task
from tests.features import tasks
from tests.sampleapp import tasks as sample

pytestmark = pytest.mark.django_db(transaction=True)


def test_many_calls_are_one_insert_and_each_is_signalled(received):
    # Rows that fit one statement even under Django 5.2's SQLite limit of 999 parameters (one per
    # field a row); beyond it SQLite splits the INSERT, as documented.
    n = min(40, 999 // len(Task._meta.concrete_fields))
    with CaptureQueriesContext(connection) as queries:
        rows = tasks.record.bulk([(f"k{i}",) for i in range(n)], priority=3)
    inserts = [
        q for q in queries.captured_queries if q["sql"].lstrip().upper().startswith("INSERT")
    ]
    assert len(inserts) == 1
    assert len(rows) == n and all(row.pk for row in rows)
    assert sorted(Task.objects.values_list("priority", flat=True).distinct()) == [3]
    assert [row.args for row in rows[:2]] == [["k0"], ["k1"]]
    assert [name for name, _ in received].count("task_enqueued") == n
    assert run_batch(30).succeeded == n


def test_calls_of_several_tasks_with_their_own_options():
    rows = enqueue_many(
        [
            tasks.record.call("a", schedule=3600, queue="slow"),
            sample.add.call(1, b=2, priority=9, timeout=4),
        ]
    )
    slow, add = (Task.objects.get(pk=row.pk) for row in rows)
    assert (slow.queue, slow.task_name) == ("slow", "features.record")
    assert (add.kwargs, add.priority, add.timeout) == ({"b": 2}, 9, 4.0)


def test_one_bad_call_refuses_the_whole_batch_naming_its_position():
    with pytest.raises(TypeError, match=r"Call 2 \(features.record\).*set is not JSON"):
        tasks.record.bulk([("a",), ("b",), ({1, 2},)])
    with pytest.raises(ValueError, match="Call 1"):
        tasks.record.bulk([("a",), tasks.record.call("b", priority=2**40)])
    with pytest.raises(TypeError, match="item 0"):
        enqueue_many(["not a call"])
    assert Task.objects.count() == 0


def test_unique_calls_are_refused_in_bulk():
    with pytest.raises(ValueError, match="unique"):
        tasks.record.bulk([tasks.record.call("a", unique=True)])
    with pytest.raises(ValueError, match="unique"):
        tasks.with_defaults.bulk([("a",)])  # unique by its decorator
    assert Task.objects.count() == 0


def test_an_empty_batch_writes_nothing():
    assert tasks.record.bulk([]) == []


def test_fast_path_returns_the_count_and_writes_the_same_rows(received):
    count = tasks.record.bulk(((f"f{i}",) for i in range(3000)), priority=2, return_tasks=False)
    assert count == 3000
    assert Task.objects.count() == 3000
    stored = Task.objects.order_by("id")
    assert [t.args for t in stored[:2]] == [["f0"], ["f1"]]
    assert set(stored.values_list("priority", "queue", "status", "attempts").distinct()) == {
        (2, "default", Task.QUEUED, 0)
    }
    assert [name for name, _ in received].count("task_enqueued") == 0
    # Batches until one runs dry: on a loaded machine one 60 s budget may not cover 3,000 tasks.
    succeeded = 0
    while True:
        result = run_batch(60)
        succeeded += result.succeeded
        if not (result.budget_spent and result.ran):
            break
    assert succeeded == 3000


def test_fast_path_sends_one_bulk_signal_with_the_rows():
    from bgtask.signals import tasks_bulk_enqueued

    seen = []

    def receiver(sender, rows, count, using, **kwargs):
        seen.append((count, using, [row["arguments"] for row in rows[:2]]))

    tasks_bulk_enqueued.connect(receiver)
    try:
        tasks.record.bulk([("a",), ("b",), ("c",)], return_tasks=False)
    finally:
        tasks_bulk_enqueued.disconnect(receiver)
    assert seen == [(3, "default", ['{"args":["a"],"kwargs":{}}', '{"args":["b"],"kwargs":{}}'])]


def test_fast_path_mixes_calls_with_and_without_options():
    count = enqueue_many(
        [tasks.record.call("plain"), sample.add.call(1, b=2, timeout=4, repeat=3600)],
        return_tasks=False,
    )
    assert count == 2
    plain = Task.objects.get(task_name="features.record")
    add = Task.objects.get(task_name="sample.add")
    assert (plain.timeout, plain.repeat) == (None, 0)
    assert (add.timeout, add.repeat, add.kwargs) == (4.0, 3600, {"b": 2})


def test_fast_path_refuses_a_bad_call_and_writes_nothing():
    with pytest.raises(TypeError, match="Call 2"):
        enqueue_many(
            [tasks.record.call("a"), tasks.record.call("b"), tasks.record.call(object())],
            return_tasks=False,
        )
    assert Task.objects.count() == 0
