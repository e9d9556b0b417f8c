"""A claim hands back ordinary saved Task instances, field for field what the ORM reads, with
aware datetimes, on every database (bgtask.store.rows builds them without Manager.raw())."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from bgtask.models import Task
from bgtask.store import TaskStore
from tests.sampleapp import tasks

pytestmark = pytest.mark.django_db(transaction=True)


def test_claimed_tasks_equal_the_rows_the_orm_reads():
    tasks.add.enqueue([1, 2], schedule=-5, priority=3)
    tasks.add.enqueue([3, 4], schedule=-1, repeat=60, repeat_until=timezone.now() + timedelta(1))
    lease = timezone.now().replace(microsecond=250000) + timedelta(minutes=5)

    claimed = TaskStore().claim_due("worker-a", 10, lease)

    assert len(claimed) == 2
    for task in claimed:
        row = Task.objects.get(id=task.id)
        for field in Task._meta.concrete_fields:
            mine, orm = getattr(task, field.attname), getattr(row, field.attname)
            assert mine == orm, field.name
            assert type(mine) is type(orm), field.name
        assert task.locked_until == lease and timezone.is_aware(task.run_at)
        assert (task._state.adding, task._state.db) == (False, row._state.db)
        assert task.locked_by == "worker-a" and task.status == Task.RUNNING
    # A claimed instance behaves as a model instance: it can refresh and save.
    task = claimed[0]
    task.refresh_from_db()
    task.priority = 7
    task.save(update_fields=["priority"])
    assert Task.objects.get(id=task.id).priority == 7
