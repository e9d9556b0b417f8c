"""TaskStore.insert_rows: many validated rows in a few statements, all or none."""

from __future__ import annotations

import pytest
from django.db import IntegrityError
from django.utils import timezone

from bgtask.models import Task
from bgtask.store import TaskStore
from bgtask.store import tasks as store_tasks
from tests.sampleapp import tasks

pytestmark = pytest.mark.django_db(transaction=True)


def rows(count: int, **extra) -> list[dict]:
    return [{**tasks.add.build_row([i, 1], {}, 0, None, None), **extra} for i in range(count)]


def test_inserts_every_row_with_the_model_defaults():
    before = timezone.now()
    assert TaskStore().insert_rows(rows(3)) == 3

    stored = list(Task.objects.order_by("id"))
    assert [t.args for t in stored] == [[0, 1], [1, 1], [2, 1]]
    for task in stored:
        assert (task.status, task.attempts, task.last_error, task.repeat) == (
            Task.QUEUED,
            0,
            "",
            0,
        )
        assert (task.task_name, task.queue, task.locked_by, task.unique_key) == (
            "sample.add",
            "default",
            None,
            None,
        )
        assert before <= task.created_at <= timezone.now()
        assert task.run_at <= timezone.now()


def test_splits_large_inserts_into_several_statements(monkeypatch):
    monkeypatch.setattr(store_tasks, "INSERT_PARAMS", 25)  # a handful of rows per statement
    assert TaskStore().insert_rows(rows(23)) == 23
    assert sorted(t.args[0] for t in Task.objects.all()) == list(range(23))


def test_rows_naming_different_fields_are_refused_before_any_write():
    mixed = [*rows(2), {"task_name": "sample.add", "arguments": '{"args":[],"kwargs":{}}'}]
    with pytest.raises(ValueError, match="same fields"):
        TaskStore().insert_rows(mixed)
    assert Task.objects.count() == 0


def test_an_unknown_field_is_refused():
    with pytest.raises(ValueError, match="no field"):
        TaskStore().insert_rows(rows(1, colour="blue"))
    assert Task.objects.count() == 0


def test_nothing_is_written_when_one_row_is_refused_by_the_database(monkeypatch):
    monkeypatch.setattr(store_tasks, "INSERT_PARAMS", 25)  # the clash is in a later statement
    batch = rows(9)
    for row in batch:
        row["unique_key"] = f"k{row['arguments']}"
    batch[-1]["unique_key"] = batch[0]["unique_key"]
    with pytest.raises(IntegrityError):
        TaskStore().insert_rows(batch)
    assert Task.objects.count() == 0


def test_no_rows_is_a_no_op():
    assert TaskStore().insert_rows([]) == 0
