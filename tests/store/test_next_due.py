"""TaskStore.next_due_at and latest_id: what an idle worker reads to know when to look again."""

from __future__ import annotations

from datetime import timedelta

import pytest

from bgtask import clock
from bgtask.models import Task
from bgtask.store import TaskStore
from tests.sampleapp import tasks

pytestmark = pytest.mark.django_db(transaction=True)


def test_none_when_nothing_is_scheduled():
    assert TaskStore().next_due_at() is None
    tasks.noop()  # due now: not "next", it is already due
    assert TaskStore().next_due_at() is None


def test_the_earliest_future_run_at_across_priorities():
    now = clock.now()
    tasks.noop(schedule=300, priority=5)
    tasks.noop(schedule=120, priority=-3)
    tasks.noop(schedule=200, priority=0)
    tasks.noop(priority=9)  # due already: left out
    due = TaskStore().next_due_at()
    assert due is not None and due.tzinfo is not None
    assert now + timedelta(seconds=119) < due < now + timedelta(seconds=121)


def test_only_queued_tasks_of_the_queue_count():
    now = clock.now()
    tasks.noop(schedule=50, queue="other")
    mine = tasks.noop(schedule=100, queue="mine")
    running = tasks.noop(schedule=10, queue="mine")
    Task.objects.filter(pk=running.pk).update(status=Task.RUNNING)
    due = TaskStore().next_due_at("mine")
    assert due is not None and abs((due - mine.run_at).total_seconds()) < 0.001
    assert TaskStore().next_due_at("nobody") is None
    overall = TaskStore().next_due_at()
    assert overall is not None and overall < now + timedelta(seconds=51)


def test_after_moves_the_cut_off():
    first = tasks.noop(schedule=10)
    second = tasks.noop(schedule=20)
    store = TaskStore()
    assert store.next_due_at(after=first.run_at) == second.run_at
    assert store.next_due_at(after=second.run_at) is None


def test_latest_id_follows_inserts():
    store = TaskStore()
    assert store.latest_id() == 0
    task = tasks.noop()
    assert store.latest_id() == task.pk
