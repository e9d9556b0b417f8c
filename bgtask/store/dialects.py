"""Database-vendor differences, and only those: how a batch of due tasks is claimed atomically.

- PostgreSQL: one ``UPDATE ... WHERE id IN (SELECT ... FOR UPDATE SKIP LOCKED) RETURNING``, so
  concurrent claimers skip each other's rows instead of waiting, in a single round trip.
- MariaDB/MySQL: no ``UPDATE ... RETURNING``; ``SELECT ... FOR UPDATE SKIP LOCKED`` then ``UPDATE``
  in one short transaction, the SELECT walking the priorities one by one (see ``MySQLDialect``).
- SQLite: no row locks, but a single ``UPDATE ... RETURNING`` statement takes the write lock for its
  whole duration, so two processes can never claim the same row; a deferred read-then-write
  transaction could instead fail with "database is locked" on the lock upgrade.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from django.db import connections, transaction

from bgtask.models import Task

ORDER = "priority DESC, run_at, id"


def _due_filter(queue: str | None) -> tuple[str, list]:
    if queue is None:
        return "status = 'queued' AND run_at <= %s", []
    return "status = 'queued' AND run_at <= %s AND queue = %s", [queue]


class Dialect:
    #: Appended to the WHERE of outcome UPDATEs; PostgreSQL makes their commit asynchronous.
    outcome_where = ""

    def __init__(self, alias: str) -> None:
        self.alias = alias
        self.connection = connections[alias]
        self._outcome_sql: dict[tuple[tuple[str, ...], str], str] = {}
        self.table = self.connection.ops.quote_name(Task._meta.db_table)
        self.columns = ", ".join(
            self.connection.ops.quote_name(f.column) for f in Task._meta.concrete_fields
        )

    def claim(
        self, worker_id: str, limit: int, now: datetime, lease_until: datetime, queue: str | None
    ) -> list[Task]:
        raise NotImplementedError

    def finish(self, task_id: int, locked_by: str, fields: dict[str, object]) -> int:
        """Write an outcome (``fields``) to a task this worker still holds; the rows updated.

        One raw statement in autocommit: the outcome is committed before the next task starts, in
        a single round trip, without the ORM building the same query again for every task.
        """
        connection = self.connection
        # Inside a caller's transaction the commit is theirs, so it keeps their durability.
        extra = "" if connection.in_atomic_block else self.outcome_where
        names = tuple(fields)
        sql = self._outcome_sql.get((names, extra))
        if sql is None:
            quote = connection.ops.quote_name
            assignments = ", ".join(f"{quote(Task._meta.get_field(n).column)} = %s" for n in names)
            sql = (
                f"UPDATE {self.table} SET {assignments} "
                f"WHERE id = %s AND status = 'running' AND locked_by = %s{extra}"
            )
            self._outcome_sql[(names, extra)] = sql
        adapt = connection.ops.adapt_datetimefield_value
        params = [adapt(v) if isinstance(v, datetime) else v for v in fields.values()]
        params += (task_id, locked_by)
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            return cursor.rowcount

    def insert(self, names: Sequence[str], rows: Sequence[Sequence[object]]) -> int:
        """INSERT ``rows`` (values in the order of field ``names``) in one statement."""
        connection = self.connection
        quote = connection.ops.quote_name
        columns = ", ".join(quote(Task._meta.get_field(n).column) for n in names)
        placeholders = "(" + ", ".join(["%s"] * len(names)) + ")"
        adapt = connection.ops.adapt_datetimefield_value
        params = [adapt(v) if isinstance(v, datetime) else v for row in rows for v in row]
        sql = f"INSERT INTO {self.table} ({columns}) VALUES " + ", ".join(
            [placeholders] * len(rows)
        )
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
        return len(rows)


class UpdateReturningDialect(Dialect):
    """PostgreSQL and SQLite: claim in one statement."""

    lock_clause = ""

    def claim(self, worker_id, limit, now, lease_until, queue):
        where, extra = _due_filter(queue)
        sql = (
            f"UPDATE {self.table} SET status = 'running', locked_by = %s, locked_until = %s, "
            f"started_at = %s WHERE id IN (SELECT id FROM {self.table} "
            f"WHERE {where} ORDER BY {ORDER} LIMIT %s{self.lock_clause}) RETURNING {self.columns}"
        )
        params = [worker_id, lease_until, now, now, *extra, limit]
        rows = list(Task.objects.db_manager(self.alias).raw(sql, params))
        # RETURNING does not promise the subquery's order.
        rows.sort(key=lambda t: (-t.priority, t.run_at, t.id))
        return rows


class PostgresDialect(UpdateReturningDialect):
    lock_clause = " FOR UPDATE SKIP LOCKED"
    # The outcome's own one-statement transaction commits without waiting for the WAL flush, as
    # ``SET LOCAL synchronous_commit = off`` would (set_config(..., true) lasts for this
    # transaction only). The commit is visible at once and no worker crash can lose it; only a
    # crash of the PostgreSQL server itself within ~3 x wal_writer_delay could, and then the task
    # is still 'running' under its lease, so it is rescued and run again, never lost. Unlike a
    # session-level SET it leaves the session unchanged (RDS Proxy need not pin the connection)
    # and, being part of the UPDATE, adds no round trip. In the WHERE clause it is evaluated only
    # for the row the primary key finds, which is cheaper for the server than a joined subquery.
    outcome_where = " AND set_config('synchronous_commit', 'off', true) = 'off'"

    def insert(self, names, rows):
        # COPY: psycopg streams the rows without a statement of 30,000 literals to quote and for
        # the server to parse (three times faster than a multi-row INSERT for 100,000 rows).
        quote = self.connection.ops.quote_name
        columns = ", ".join(quote(Task._meta.get_field(n).column) for n in names)
        sql = f"COPY {self.table} ({columns}) FROM STDIN"
        # The raw psycopg cursor: Django's wrapper has no copy(); errors still become Django's.
        with (
            self.connection.cursor() as cursor,
            self.connection.wrap_database_errors,
            cursor.cursor.copy(sql) as copy,
        ):
            for row in rows:
                copy.write_row(row)
        return len(rows)


class SQLiteDialect(UpdateReturningDialect):
    """Claims walk the priorities, highest first, like MariaDB's, each step one atomic
    ``UPDATE ... RETURNING``. Without ANALYZE statistics SQLite cannot range on ``run_at`` inside
    the (priority DESC, run_at, id) index, so one query ordered by priority would read every
    scheduled row whenever fewer than ``limit`` tasks are due (the last claim of every drain);
    with the priority fixed, ``run_at <= now`` is a bounded range. ``INDEXED BY`` keeps the
    planner on the partial due indexes whatever other indexes the table has."""

    def claim(self, worker_id, limit, now, lease_until, queue):
        index = "bgtask_due_idx" if queue is None else "bgtask_due_queue_idx"
        scope = "status = 'queued'" + ("" if queue is None else " AND queue = %s")
        scope_params = [] if queue is None else [queue]
        next_priority = f"SELECT MAX(priority) FROM {self.table} INDEXED BY {index} WHERE {scope}"
        claim_sql = (
            f"UPDATE {self.table} SET status = 'running', locked_by = %s, locked_until = %s, "
            f"started_at = %s WHERE id IN (SELECT id FROM {self.table} INDEXED BY {index} "
            f"WHERE {scope} AND priority = %s AND run_at <= %s ORDER BY run_at, id LIMIT %s) "
            f"RETURNING {self.columns}"
        )
        manager = Task.objects.db_manager(self.alias)
        rows: list[Task] = []
        priority = None
        with self.connection.cursor() as cursor:
            while len(rows) < limit:
                if priority is None:
                    cursor.execute(next_priority, scope_params)
                else:
                    cursor.execute(next_priority + " AND priority < %s", [*scope_params, priority])
                priority = cursor.fetchone()[0]
                if priority is None:
                    break
                params = [worker_id, lease_until, now, *scope_params, priority, now]
                rows += manager.raw(claim_sql, [*params, limit - len(rows)])
        rows.sort(key=lambda t: (-t.priority, t.run_at, t.id))
        return rows


class MySQLDialect(Dialect):
    def claim(self, worker_id, limit, now, lease_until, queue):
        manager = Task.objects.db_manager(self.alias)
        with transaction.atomic(using=self.alias):
            queued = manager.filter(status=Task.QUEUED)
            if queue is not None:
                queued = queued.filter(queue=queue)
            rows: list[Task] = []
            priority = None
            # A loose index scan over priorities, highest first. One query ordered by
            # (priority DESC, run_at, id) and filtered on run_at cannot stop early in MariaDB's
            # (status, priority DESC, run_at, id) index when the queued rows are not due yet: it
            # reads every scheduled row (2 s per empty claim beside 1,000,000 of them). With the
            # priority fixed, run_at <= now is a bounded range of that index, and finding the next
            # lower priority is a single index probe.
            while len(rows) < limit:
                lower = queued if priority is None else queued.filter(priority__lt=priority)
                priority = lower.order_by("-priority").values_list("priority", flat=True).first()
                if priority is None:
                    break
                rows += (
                    queued.filter(priority=priority, run_at__lte=now)
                    .order_by("run_at", "id")
                    .select_for_update(skip_locked=True)[: limit - len(rows)]
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
