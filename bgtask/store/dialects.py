"""Database-vendor differences, and only those: how a batch of due tasks is claimed atomically.

- PostgreSQL: one ``UPDATE ... WHERE id IN (SELECT ... FOR UPDATE SKIP LOCKED) RETURNING``, so
  concurrent claimers skip each other's rows instead of waiting, in a single round trip.
- MariaDB/MySQL: no ``UPDATE ... RETURNING``; ``SELECT ... FOR UPDATE SKIP LOCKED`` then ``UPDATE``
  in one short transaction.
- SQLite: no row locks, but a single ``UPDATE ... RETURNING`` statement takes the write lock for its
  whole duration, so two processes can never claim the same row; a deferred read-then-write
  transaction could instead fail with "database is locked" on the lock upgrade.
"""

from __future__ import annotations

from datetime import datetime

from django.db import connections, transaction

from bgtask.models import Task

ORDER = "priority DESC, run_at, id"


def _due_filter(queue: str | None) -> tuple[str, list]:
    if queue is None:
        return "status = 'queued' AND run_at <= %s", []
    return "status = 'queued' AND run_at <= %s AND queue = %s", [queue]


class Dialect:
    def __init__(self, alias: str) -> None:
        self.alias = alias
        self.connection = connections[alias]
        self.table = self.connection.ops.quote_name(Task._meta.db_table)
        self.columns = ", ".join(
            self.connection.ops.quote_name(f.column) for f in Task._meta.concrete_fields
        )

    def claim(
        self, worker_id: str, limit: int, now: datetime, lease_until: datetime, queue: str | None
    ) -> list[Task]:
        raise NotImplementedError


class UpdateReturningDialect(Dialect):
    """PostgreSQL and SQLite: claim in one statement."""

    lock_clause = ""

    def claim(self, worker_id, limit, now, lease_until, queue):
        where, extra = _due_filter(queue)
        sql = (
            f"UPDATE {self.table} SET status = 'running', locked_by = %s, locked_until = %s, "
            f"started_at = %s WHERE id IN (SELECT id FROM {self.table} WHERE {where} "
            f"ORDER BY {ORDER} LIMIT %s{self.lock_clause}) RETURNING {self.columns}"
        )
        params = [worker_id, lease_until, now, now, *extra, limit]
        rows = list(Task.objects.db_manager(self.alias).raw(sql, params))
        # RETURNING does not promise the subquery's order.
        rows.sort(key=lambda t: (-t.priority, t.run_at, t.id))
        return rows


class PostgresDialect(UpdateReturningDialect):
    lock_clause = " FOR UPDATE SKIP LOCKED"


class SQLiteDialect(UpdateReturningDialect):
    pass


class MySQLDialect(Dialect):
    def claim(self, worker_id, limit, now, lease_until, queue):
        manager = Task.objects.db_manager(self.alias)
        with transaction.atomic(using=self.alias):
            candidates = manager.filter(status=Task.QUEUED, run_at__lte=now)
            if queue is not None:
                candidates = candidates.filter(queue=queue)
            rows = list(
                candidates.order_by("-priority", "run_at", "id").select_for_update(
                    skip_locked=True
                )[:limit]
            )
            if rows:
                manager.filter(id__in=[t.id for t in rows]).update(
                    status=Task.RUNNING,
                    locked_by=worker_id,
                    locked_until=lease_until,
                    started_at=now,
                )
        for task in rows:
            task.status, task.locked_by, task.locked_until = Task.RUNNING, worker_id, lease_until
            task.started_at = now
        return rows


def dialect_for(alias: str) -> Dialect:
    vendor = connections[alias].vendor
    if vendor == "postgresql":
        return PostgresDialect(alias)
    if vendor == "mysql":
        return MySQLDialect(alias)
    if vendor == "sqlite":
        return SQLiteDialect(alias)
    raise NotImplementedError(
        f"bgtask supports PostgreSQL, MariaDB/MySQL and SQLite; database {alias!r} is {vendor}."
    )
