"""Shared helpers for the reliability suite: bulk enqueue, sizes, side-effect counts, and the
per-vendor SQL that finds and kills a worker's database connection."""

from __future__ import annotations

from collections import Counter

from django.db import connection

from bgtask import registry
from bgtask.models import Task
from tests.sampleapp.models import Execution


def size(full_count: bool, full: int, reduced: int) -> int:
    """The full count with ``--full-count``, the reduced one in CI."""
    return full if full_count else reduced


def enqueue(name: str, calls: list[tuple[list, dict]], **row: object) -> None:
    """Enqueue many calls of task ``name`` at once (validated like a normal call), due now."""
    function = registry.get(name)
    rows = [Task(**{**function.build_row(a, k, 0, None, None), **row}) for a, k in calls]
    Task.objects.bulk_create(rows, batch_size=1000)


def enqueue_records(keys: list[str], **row: object) -> None:
    enqueue("sample.record", [([key], {}) for key in keys], **row)


def execution_counts() -> Counter:
    return Counter(Execution.objects.values_list("key", flat=True))


def backend_id() -> int:
    """This thread's connection id on the server."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SELECT pg_backend_pid()")
        else:
            cursor.execute("SELECT CONNECTION_ID()")
        return cursor.fetchone()[0]


def other_backends(exclude: tuple[int, ...] = ()) -> list[int]:
    """Ids of every other connection to this test database (the worker processes' ones)."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                "SELECT pid FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        elif connection.vendor == "mysql":
            cursor.execute(
                "SELECT id FROM information_schema.processlist "
                "WHERE db = DATABASE() AND id <> CONNECTION_ID()"
            )
        else:
            raise NotImplementedError(connection.vendor)
        return [row[0] for row in cursor.fetchall() if row[0] not in exclude]


def kill_backend(backend_id: int) -> None:
    """Drop one connection from the server side, the way a failover or an idle timeout would."""
    with connection.cursor() as cursor:
        try:
            if connection.vendor == "postgresql":
                cursor.execute("SELECT pg_terminate_backend(%s)", [backend_id])
            else:
                cursor.execute(f"KILL {int(backend_id)}")
        except Exception as exc:  # it may have ended on its own meanwhile
            if "Unknown thread id" not in str(exc):
                raise
