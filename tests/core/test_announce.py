"""Every enqueue path announces itself to idle workers (issue 18): this process's waiters once the
transaction commits, and on PostgreSQL a NOTIFY sent inside the enqueuing transaction (by the
task table's insert trigger for an insert, tests/store/test_notify_trigger.py)."""

from __future__ import annotations

import importlib.util
import threading
from collections.abc import Iterator

import pytest
from django.db import connection, transaction
from django.test import override_settings
from django.test.utils import CaptureQueriesContext

from bgtask import enqueue_many
from bgtask.models import Task
from bgtask.store.tasks import NOTIFY_CHANNEL
from bgtask.web.admin import retry_failed, run_now
from bgtask.worker.idle import IdleWaiter
from tests.conftest import wait_for
from tests.sampleapp import tasks

# Django's Tasks framework (and so bgtask's backend for it) exists from Django 6.0.
HAS_DJANGO_TASKS = importlib.util.find_spec("django.tasks") is not None

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def waiter() -> Iterator[IdleWaiter]:
    """A waiter of queues "q" and "django-other" (the Django Tasks backend's) that cannot LISTEN
    nor poll in time: only this process can wake it."""
    with override_settings(BGTASK_IDLE_POLL=600):
        waiter = IdleWaiter(["q", "django-other"], listen=False)
        waiter.wait(0, threading.Event())  # its first wait takes the polls' baseline
        waiter.local.take()
        yield waiter
        waiter.close()


def rung(waiter: IdleWaiter) -> bool:
    return waiter.local.take()[0]


def test_an_enqueue_wakes_a_waiting_worker_of_this_process(waiter):
    woke: list[bool] = []
    thread = threading.Thread(target=lambda: woke.append(waiter.wait(600, threading.Event())))
    thread.start()
    tasks.noop(queue="q")
    thread.join(60)
    assert woke == [True]


def test_rings_on_commit_only_and_only_for_its_queues(waiter):
    class Abandon(Exception):
        pass

    with pytest.raises(Abandon), transaction.atomic():
        tasks.noop(queue="q")
        raise Abandon
    assert not rung(waiter)
    tasks.noop(queue="other")
    assert not rung(waiter)
    with transaction.atomic():
        tasks.noop(queue="q")
        assert not rung(waiter)  # not before the commit
    assert rung(waiter)


def test_every_enqueue_path_rings(waiter):
    enqueue_many([tasks.noop.call(queue="q") for _ in range(3)])
    assert rung(waiter)
    enqueue_many([tasks.noop.call(queue="q") for _ in range(3)], return_tasks=False)
    assert rung(waiter)
    if HAS_DJANGO_TASKS:  # Django 6: the Tasks framework backend rings too
        from tests.features import django_tasks

        django_tasks.record.enqueue("backend")  # queue_name="django-other"
        assert rung(waiter)
    later = tasks.noop(queue="q", schedule=3600)
    rung(waiter)
    assert run_now(Task.objects.filter(pk=later.pk)) == 1
    assert rung(waiter)
    Task.objects.filter(pk=later.pk).update(status=Task.FAILED)
    assert retry_failed(Task.objects.filter(pk=later.pk)) == 1
    assert rung(waiter)
    assert run_now(Task.objects.filter(pk=later.pk, status=Task.FAILED)) == 0
    assert not rung(waiter)  # nothing changed, nobody woken


@pytest.mark.skipif(connection.vendor != "postgresql", reason="NOTIFY is PostgreSQL's")
def test_the_notify_travels_with_the_transaction():
    import psycopg

    listener = psycopg.connect(**connection.get_connection_params(), autocommit=True)
    listener.execute(f"LISTEN {NOTIFY_CHANNEL}")
    received: list[str] = []

    def drain() -> list[str]:
        received.extend(note.payload for note in listener.notifies(timeout=0.05))
        return received

    class Abandon(Exception):
        pass

    try:
        with pytest.raises(Abandon), transaction.atomic():
            tasks.noop(queue="rolled")
            raise Abandon
        tasks.noop(queue="committed")
        wait_for(drain, message="the committed enqueue's notification")
        # A bulk enqueue notifies once per queue, not once per task.
        enqueue_many([tasks.noop.call(queue=q) for q in ("a", "b", "a", "a")])
        wait_for(lambda: len(drain()) >= 3, message="the bulk enqueue's notifications")
        tasks.noop(queue="last")  # a marker: everything sent before it has arrived with it
        wait_for(lambda: "last" in drain(), message="the marker's notification")
    finally:
        listener.close()
    assert received == ["committed", "a", "b", "last"]


def test_without_listen_no_poll_runs_just_before_a_due_time():
    # A poll's round trip in the last moment before a scheduled task's run_at would only delay
    # the claim that the wait ends with (and which finds everything the poll would).
    with override_settings(BGTASK_IDLE_POLL=0.01):
        waiter = IdleWaiter(["guard"], listen=False)
        try:
            waiter.wait(0, threading.Event())  # the polls' baseline
            tasks.noop(queue="guard", schedule=0.09)
            waiter.local.take()  # this process's doorbell: not what is tested here
            with CaptureQueriesContext(connection) as queries:
                assert waiter.wait(60, threading.Event()) is True
        finally:
            waiter.close()
    polls = [q["sql"] for q in queries if "MAX(" in q["sql"]]
    assert polls == [], polls
