"""PostgreSQL: the task table's insert trigger (migration 0014) announces enqueues to listening
workers, inside the INSERT statement, whatever path wrote the rows; SQLite and MariaDB have no
trigger (the migration does nothing there), and their idle workers poll.

The notifications are read on a psycopg connection of the test's own that LISTENs, and every
test ends with a marker notification: what arrives before it is everything that was sent.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.db.migrations.executor import MigrationExecutor

from bgtask import clock, enqueue_many
from bgtask.models import Task
from bgtask.store import TaskStore
from bgtask.store.tasks import NOTIFY_CHANNEL, read_notification
from bgtask.web.admin import run_now
from tests.conftest import wait_for
from tests.sampleapp import tasks

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "postgresql", reason="NOTIFY is PostgreSQL's"),
]

TRIGGER_MIGRATION = "0014_notify_trigger"


class Inbox:
    """A LISTEN connection of the test's own, and what it received."""

    def __init__(self) -> None:
        import psycopg

        self.connection = psycopg.connect(**connection.get_connection_params(), autocommit=True)
        self.connection.execute(f"LISTEN {NOTIFY_CHANNEL}")
        self.received: list[str] = []

    def until_marker(self) -> list[str]:
        """Everything sent before now: send a marker from another connection and read up to it."""
        marker = f"marker:{secrets.token_hex(4)}"
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_notify(%s, %s)", [NOTIFY_CHANNEL, marker])

        def arrived() -> bool:
            self.received.extend(n.payload for n in self.connection.notifies(timeout=0.05))
            return marker in self.received

        wait_for(arrived, message="the marker notification")
        got = self.received[: self.received.index(marker)]
        self.received = self.received[self.received.index(marker) + 1 :]
        return got


@pytest.fixture
def inbox() -> Iterator[Inbox]:
    box = Inbox()
    yield box
    box.connection.close()


def row(queue: str, schedule: float | None = None) -> dict:
    return tasks.noop.build_row([], {}, schedule, queue)


def test_an_insert_by_any_path_notifies_its_queue(inbox):
    # The store's verb, with no signal and no enqueue API around it: the trigger alone.
    TaskStore().insert(Task(task_name="sample.noop", queue="raw"))
    assert inbox.until_marker() == ["raw"]


def test_a_rolled_back_insert_notifies_nobody(inbox):
    class Abandon(Exception):
        pass

    with pytest.raises(Abandon), transaction.atomic():
        TaskStore().insert(Task(task_name="sample.noop", queue="rolled"))
        tasks.noop(queue="rolled-too")
        raise Abandon
    assert inbox.until_marker() == []
    tasks.noop(queue="committed")
    assert inbox.until_marker() == ["committed"]


@pytest.mark.parametrize("path", ["copy", "bulk_create"])
def test_a_bulk_insert_into_two_queues_notifies_each_queue_once(inbox, path):
    rows = [row(queue) for queue in ("b", "a", "b", "a", "a")]
    if path == "copy":  # COPY on PostgreSQL
        assert TaskStore().insert_rows(rows) == 5
    else:
        enqueue_many([tasks.noop.call(queue=q) for q in ("b", "a", "b", "a", "a")])
    assert inbox.until_marker() == ["a", "b"]


def test_scheduled_rows_announce_their_earliest_run_at_not_a_wake_up(inbox):
    now = clock.now()
    rows = [row("later", 300), row("later", 100), row("soon"), row("soon", 200)]
    TaskStore().insert_rows(rows)
    received = sorted(inbox.until_marker())
    # "soon" has a due row: a plain wake-up. "later" has none: its earliest run_at.
    assert received[1] == "soon", received
    queue, run_at = read_notification(received[0])
    expected = Task.objects.filter(queue="later").order_by("run_at").first()
    assert queue == "later" and run_at == expected.run_at, (received, expected.run_at)
    assert now + timedelta(seconds=99) < run_at < now + timedelta(seconds=101)


def test_only_queued_rows_count(inbox):
    TaskStore().insert(Task(task_name="sample.noop", queue="done", status=Task.SUCCEEDED))
    assert inbox.until_marker() == []


def test_run_now_still_notifies_the_queue(inbox):
    # An UPDATE makes the task due: no trigger for it, the explicit announcement.
    later = tasks.noop(queue="moved", schedule=3600)
    (scheduled,) = inbox.until_marker()
    assert read_notification(scheduled)[0] == "moved"
    assert run_now(Task.objects.filter(pk=later.pk)) == 1
    assert inbox.until_marker() == ["moved"]


def _migrate(target: str | None) -> None:
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate([("bgtask", target)] if target else executor.loader.graph.leaf_nodes())


def test_the_migration_is_reversible(inbox):
    previous = (
        MigrationExecutor(connection).loader.graph.node_map[("bgtask", TRIGGER_MIGRATION)].parents
    )
    (parent,) = [key for key in previous if key[0] == "bgtask"]
    _migrate(parent[1])
    try:
        TaskStore().insert(Task(task_name="sample.noop", queue="untriggered"))
        assert inbox.until_marker() == []
    finally:
        _migrate(None)
    TaskStore().insert(Task(task_name="sample.noop", queue="triggered"))
    assert inbox.until_marker() == ["triggered"]
