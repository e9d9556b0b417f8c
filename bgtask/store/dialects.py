"""Database-vendor differences, and only those: how a batch of due tasks is claimed atomically.

- PostgreSQL: one ``UPDATE ... WHERE id IN (SELECT ... FOR UPDATE SKIP LOCKED) RETURNING``, so
  concurrent claimers skip each other's rows instead of waiting, in a single round trip.
- MariaDB/MySQL: no ``UPDATE ... RETURNING``; ``SELECT ... FOR UPDATE SKIP LOCKED`` then ``UPDATE``
  in one short transaction, the SELECT walking the priorities one by one (see ``MySQLDialect``).
- SQLite: no row locks, but a single ``UPDATE ... RETURNING`` statement takes the write lock for its
  whole duration, so two processes can never claim the same row; a deferred read-then-write
  transaction could instead fail with "database is locked" on the lock upgrade.

Every claim leaves out the queues paused in ``bgtask_queue_state`` (bgtask.features.pausing) with
a condition of the claim statement itself (``NOT_PAUSED``), never a check beforehand, so a pause
holds for every worker from its next claim. The claim still walks the partial due indexes in
order; the condition filters the rows it meets (the subquery's result is computed once per
statement: a hashed subplan on PostgreSQL, a materialised list on SQLite and MariaDB). Rows of a
paused queue that sit at the head of the order are read and skipped by every claim while it is
paused.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from django.db import connections, transaction
from django.db.models import DateTimeField

from bgtask import conf
from bgtask.limits import Limit, LimitSet
from bgtask.models import LimitState, QueueState, Task
from bgtask.store.rows import tasks_from_rows, to_aware

ORDER = "priority DESC, run_at, id"
# What a succeeded outcome writes besides the values of its row.
SUCCEEDED_SET = "status = 'succeeded', locked_by = NULL, locked_until = NULL, unique_key = NULL"
# (id, locked_by, result, started_at, finished_at); a None locked_by matches no row.
SuccessRow = tuple[int, "str | None", "str | None", datetime, datetime]


# The queues no claim takes from. A plain NOT IN over a primary-key table that holds a few rows:
# it is uncorrelated, so it runs once per statement, and in MariaDB's locking SELECT it takes no
# row locks (a locking read locks only the rows of its own level), so a concurrent SKIP LOCKED
# claim can never skip, and so ignore, a pause.
NOT_PAUSED = f"queue NOT IN (SELECT qs.name FROM {QueueState._meta.db_table} qs WHERE qs.paused)"
LIMIT_STATE = LimitState._meta.db_table
#: How soon a worker that found due tasks held back by a full concurrency limit looks again: a
#: task of that scope ending in another worker tells this one nothing.
LIMIT_RECHECK_SECONDS = 1.0


# What a claim sets besides the lease. A retried task starts again without the progress its
# last attempt reported (bgtask.current.set_progress).
CLAIM_SET = "status = 'running', progress = NULL, progress_note = NULL"

#: An extra condition of the plain claim and its parameters: the scopes that have a limit,
#: which only claim_limited takes (bgtask.features.limits). Empty when no limit is set, and then
#: the claim statement is exactly the one without limits.
Exclusion = tuple[str, list[Any]]
NO_EXCLUSION: Exclusion = ("", [])


def exclusion(queues: Sequence[str], task_names: Sequence[str]) -> Exclusion:
    """The plain claim's condition leaving out the limited ``queues`` and ``task_names``."""
    sql, params = "", []
    if queues:
        sql += f" AND queue NOT IN ({', '.join(['%s'] * len(queues))})"
        params += list(queues)
    if task_names:
        sql += f" AND task_name NOT IN ({', '.join(['%s'] * len(task_names))})"
        params += list(task_names)
    return sql, params


# Any in the parameter lists of this module: values for the driver to adapt.
def _due_filter(queue: str | None) -> tuple[str, list[Any]]:
    if queue is None:
        return f"status = 'queued' AND run_at <= %s AND {NOT_PAUSED}", []
    return f"status = 'queued' AND run_at <= %s AND queue = %s AND {NOT_PAUSED}", [queue]


class Dialect:
    #: Appended to the WHERE of outcome UPDATEs; PostgreSQL makes their commit asynchronous.
    outcome_where = ""
    #: An INSERT into the task table notifies the listening workers by itself (a trigger).
    inserts_notify = False

    def __init__(self, alias: str) -> None:
        self.alias = alias
        self.connection = connections[alias]
        self._outcome_sql: dict[tuple[tuple[str, ...], str], str] = {}
        self.table = self.connection.ops.quote_name(Task._meta.db_table)
        self.columns = ", ".join(
            # A concrete field always has a column (the stubs allow None for the others).
            self.connection.ops.quote_name(f.column)  # type: ignore[arg-type]
            for f in Task._meta.concrete_fields
        )

    def claim(
        self,
        worker_id: str,
        limit: int,
        now: datetime,
        lease_until: datetime,
        queue: str | None,
        exclude: Exclusion = NO_EXCLUSION,
    ) -> list[Task]:
        raise NotImplementedError

    # -- limits across workers (bgtask.limits) -------------------------------------------------

    #: Locks a candidate row so that a concurrent writer of it (a cancel) is skipped, not waited
    #: on; SQLite has no row locks and needs none under its write lock.
    candidate_lock = " FOR UPDATE SKIP LOCKED"

    def _lock_limit_states(self, cursor: Any, scopes: Sequence[str]) -> dict[str, float]:
        """Lock the state rows of ``scopes`` (made on first use) for this transaction, in scope
        order; their ``tat``. Every limited claim locks its scopes first, so claims of one scope
        take turns, and in one order, so two claims never wait on each other in a circle."""
        marks = ", ".join(["%s"] * len(scopes))
        select = f"SELECT scope, tat FROM {LIMIT_STATE} WHERE scope IN ({marks}) ORDER BY scope"
        cursor.execute(select + " FOR UPDATE", list(scopes))
        tats = {scope: float(tat) for scope, tat in cursor.fetchall()}
        missing = [scope for scope in scopes if scope not in tats]
        if missing:
            self._insert_limit_states(cursor, missing)
            cursor.execute(select + " FOR UPDATE", list(scopes))
            tats = {scope: float(tat) for scope, tat in cursor.fetchall()}
        return tats

    def _insert_limit_states(self, cursor: Any, scopes: Sequence[str]) -> None:
        # ON CONFLICT DO NOTHING (PostgreSQL, SQLite): a claim making the same row at the same
        # time waits for ours and then does nothing, and the transaction goes on.
        values = ", ".join(["(%s, 0)"] * len(scopes))
        cursor.execute(
            f"INSERT INTO {LIMIT_STATE} (scope, tat) VALUES {values} ON CONFLICT DO NOTHING",
            sorted(scopes),
        )

    def claim_limited(
        self,
        worker_id: str,
        want: int,
        now: datetime,
        lease_until: datetime,
        queue: str | None,
        limits: LimitSet,
    ) -> tuple[list[Task], tuple[float, bool] | None]:
        """Claim up to ``want`` due tasks of the limited scopes in ``limits`` without breaking
        any limit, whatever other workers claim meanwhile; also, when it took none, how many
        seconds until a held-back scope may have room again and whether that is a rate's wait
        (None: nothing is held back).

        One short transaction: (1) lock the scopes' ``bgtask_limit_state`` rows; (2) count the
        running tasks of those scopes (per key for keyed limits): the running rows are few, and
        the partial lease index reads only them; (3) read due candidates of each scope that has
        room, leaving out in SQL what is full (a task name, a queue, a key), so that a full key
        at the head of the queue cannot hide the keys behind it; (4) admit them in claim order
        while every limit that governs a row (its queue's, its task name's) has a slot and its
        rate allows a start; (5) mark the admitted rows running and move the rates on. A claim
        that cannot take the locks waits for the other claim of its scopes to commit (a few
        milliseconds); it never sees a slot that the other has just filled.

        Running tasks of a worker that died count until the lease rescue frees them.
        """
        scopes = limits.all()
        now_s = now.timestamp()
        queue_limits, task_limits = limits.queues, limits.tasks
        with transaction.atomic(using=self.alias), self.connection.cursor() as cursor:
            tats = self._lock_limit_states(cursor, [limit.scope for limit in scopes])
            running, per_key = self._count_running(cursor, limits)
            full: set[str] = set()  # scopes with no free slot, or whose rate allows no start now
            saturated: dict[str, list[str | None]] = {}  # task name -> keys with no free slot
            for limit in scopes:
                if limit.rate is not None and tats.get(limit.scope, 0.0) > now_s:
                    full.add(limit.scope)
                if limit.max_running is None:
                    continue
                if limit.keyed:
                    saturated[limit.name] = [
                        key
                        for (name, key), count in per_key.items()
                        if name == limit.name and count >= limit.max_running
                    ]
                elif running.get(limit.scope, 0) >= limit.max_running:
                    full.add(limit.scope)
            window = want * 2 + 8
            candidates: dict[int, Task] = {}
            for limit in scopes:
                if limit.scope in full:
                    continue
                for task in self._limited_candidates(
                    cursor, limit, now, queue, limits, full, saturated, window
                ):
                    candidates[task.id] = task
            admitted: list[Task] = []
            for task in sorted(candidates.values(), key=lambda t: (-t.priority, t.run_at, t.id)):
                if len(admitted) >= want:
                    break
                governing = [
                    limit
                    for limit in (queue_limits.get(task.queue), task_limits.get(task.task_name))
                    if limit is not None
                ]
                if not all(
                    _has_room(limit, task, running, per_key, tats, now_s) for limit in governing
                ):
                    continue
                admitted.append(task)
                for limit in governing:
                    running[limit.scope] = running.get(limit.scope, 0) + 1
                    if limit.keyed:
                        key = (limit.name, task.limit_key)
                        per_key[key] = per_key.get(key, 0) + 1
                    if limit.rate is not None:
                        tat = max(tats.get(limit.scope, 0.0), now_s) + limit.rate.interval
                        tats[limit.scope] = tat
                        cursor.execute(
                            f"UPDATE {LIMIT_STATE} SET tat = %s WHERE scope = %s",
                            [tat, limit.scope],
                        )
            if admitted:
                ids = [task.id for task in admitted]
                cursor.execute(
                    f"UPDATE {self.table} SET {CLAIM_SET}, locked_by = %s, locked_until = %s, "
                    f"started_at = %s WHERE id IN ({', '.join(['%s'] * len(ids))}) "
                    "AND status = 'queued'",
                    self._adapt([worker_id, lease_until, now, *ids]),
                )
                # The candidates were locked (or, on SQLite, are under the write lock) since
                # they were read: every one is still queued.
                _mark_claimed(admitted, worker_id, lease_until, now)
            retry_in = None if admitted else self._held_back_for(cursor, limits, tats, now_s, now)
        return admitted, retry_in

    def _count_running(
        self, cursor: Any, limits: LimitSet
    ) -> tuple[dict[str, int], dict[tuple[str, str | None], int]]:
        """Running tasks per scope, and per (task name, key) for keyed limits."""
        conditions, params = [], []
        if limits.queues:
            conditions.append(f"queue IN ({', '.join(['%s'] * len(limits.queues))})")
            params += list(limits.queues)
        if limits.tasks:
            conditions.append(f"task_name IN ({', '.join(['%s'] * len(limits.tasks))})")
            params += list(limits.tasks)
        cursor.execute(
            f"SELECT queue, task_name, limit_key, COUNT(*) FROM {self.table} "
            f"WHERE status = 'running' AND ({' OR '.join(conditions)}) "
            "GROUP BY queue, task_name, limit_key",
            params,
        )
        running: dict[str, int] = {}
        per_key: dict[tuple[str, str | None], int] = {}
        for queue, task_name, key, count in cursor.fetchall():
            if queue in limits.queues:
                scope = limits.queues[queue].scope
                running[scope] = running.get(scope, 0) + count
            task_limit = limits.tasks.get(task_name)
            if task_limit is not None:
                running[task_limit.scope] = running.get(task_limit.scope, 0) + count
                if task_limit.keyed:
                    per_key[(task_name, key)] = per_key.get((task_name, key), 0) + count
        return running, per_key

    def _limited_candidates(
        self,
        cursor: Any,
        limit: Limit,
        now: datetime,
        queue: str | None,
        limits: LimitSet,
        full: set[str],
        saturated: dict[str, list[str | None]],
        window: int,
    ) -> list[Task]:
        """Due rows of ``limit``'s scope in claim order, leaving out what cannot start now."""
        where = [f"status = 'queued' AND run_at <= %s AND {NOT_PAUSED}"]
        params: list[Any] = [now]
        if limit.kind == "queue":
            where.append("queue = %s")
            params.append(limit.name)
        else:
            where.append("task_name = %s")
            params.append(limit.name)
            if queue is not None:
                where.append("queue = %s")
                params.append(queue)
            full_queues = [q for q, other in limits.queues.items() if other.scope in full]
            if full_queues:
                where.append(f"queue NOT IN ({', '.join(['%s'] * len(full_queues))})")
                params += full_queues
        if limit.kind == "queue":
            full_names = [n for n, other in limits.tasks.items() if other.scope in full]
            if full_names:
                where.append(f"task_name NOT IN ({', '.join(['%s'] * len(full_names))})")
                params += full_names
        for name, keys in saturated.items():
            if not keys or (limit.kind == "task" and name != limit.name):
                continue
            known = [key for key in keys if key is not None]
            left_out = []
            if known:
                left_out.append(f"limit_key IN ({', '.join(['%s'] * len(known))})")
            if None in keys:
                left_out.append("limit_key IS NULL")
            where.append(f"NOT (task_name = %s AND ({' OR '.join(left_out)}))")
            params += [name, *known]
        cursor.execute(
            f"SELECT {self.columns} FROM {self.table} WHERE {' AND '.join(where)} "
            f"ORDER BY {ORDER} LIMIT %s{self.candidate_lock}",
            self._adapt([*params, window]),
        )
        return tasks_from_rows(self.alias, cursor.fetchall())

    def _held_back_for(
        self, cursor: Any, limits: LimitSet, tats: dict[str, float], now_s: float, now: datetime
    ) -> tuple[float, bool] | None:
        """When this claim took nothing: seconds until a scope that holds back due tasks may
        have room (a rate: exactly; a concurrency limit: ``LIMIT_RECHECK_SECONDS``, as another
        worker's task ending says nothing to this one), and whether that is a rate's wait (which
        nothing can shorten); None when no due task is held back."""
        soonest: tuple[float, bool] | None = None
        for limit in limits.all():
            column = "queue" if limit.kind == "queue" else "task_name"
            cursor.execute(
                f"SELECT 1 FROM {self.table} WHERE status = 'queued' AND {column} = %s "
                f"AND run_at <= %s AND {NOT_PAUSED} LIMIT 1",
                self._adapt([limit.name, now]),
            )
            if cursor.fetchone() is None:
                continue
            # A rate that allows no start now: exactly when it will (whatever else is full, no
            # task of the scope starts before). Otherwise a full concurrency limit: look again.
            wait, by_rate = LIMIT_RECHECK_SECONDS, False
            if limit.rate is not None and tats.get(limit.scope, 0.0) > now_s:
                wait, by_rate = tats[limit.scope] - now_s, True
            if soonest is None or wait < soonest[0]:
                soonest = (wait, by_rate)
        return soonest

    def finish(self, task_id: int, locked_by: str | None, fields: dict[str, object]) -> int:
        """Write an outcome (``fields``) to a task this worker still holds; the rows updated.

        One raw statement in autocommit: the outcome is committed before the next task starts, in
        a single round trip, without the ORM building the same query again for every task.
        """
        connection = self.connection
        extra = self._commit_clause()
        names = tuple(fields)
        sql = self._outcome_sql.get((names, extra))
        if sql is None:
            quote = connection.ops.quote_name
            # names are Task's concrete fields, so get_field gives a Field with a column.
            assignments = ", ".join(
                f"{quote(Task._meta.get_field(n).column)} = %s"  # type: ignore[union-attr,arg-type]
                for n in names
            )
            sql = (
                f"UPDATE {self.table} SET {assignments} "
                f"WHERE id = %s AND status = 'running' AND locked_by = %s{extra}"
            )
            self._outcome_sql[(names, extra)] = sql
        params = self._adapt([*fields.values(), task_id, locked_by])
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            return cursor.rowcount  # type: ignore[no-any-return]  # DB-API: an int

    def _commit_clause(self) -> str:
        """``outcome_where`` when outcome commits may be asynchronous (``BGTASK_ASYNC_COMMIT``).

        Inside a caller's transaction the commit is theirs, so it keeps their durability."""
        if not self.outcome_where or self.connection.in_atomic_block or not conf.async_commit():
            return ""
        return self.outcome_where

    def finish_successes(self, rows: Sequence[SuccessRow]) -> set[int]:
        """Record ``rows`` (id, locked_by, result, started_at, finished_at) as succeeded in one
        statement, each only while still ``running`` under that ``locked_by``; the ids written."""
        raise NotImplementedError

    def adapt_datetime(self, value: datetime) -> object:
        """``value`` as the driver takes it (the ORM's adaptation, which dialects may shortcut)."""
        return self.connection.ops.adapt_datetimefield_value(value)

    def _adapt(self, params: list[Any]) -> list[Any]:
        adapt = self.adapt_datetime
        return [adapt(v) if isinstance(v, datetime) else v for v in params]

    def _adapted(self, rows: Sequence[SuccessRow]) -> list[tuple[Any, ...]]:
        adapt = self.adapt_datetime
        return [(i, by, result, adapt(start), adapt(end)) for i, by, result, start, end in rows]

    def insert(self, names: Sequence[str], rows: Sequence[Sequence[object]]) -> int:
        """INSERT ``rows`` (values in the order of field ``names``) in one statement."""
        connection = self.connection
        quote = connection.ops.quote_name
        columns = ", ".join(
            quote(Task._meta.get_field(n).column)  # type: ignore[union-attr,arg-type]  # as in finish
            for n in names
        )
        placeholders = "(" + ", ".join(["%s"] * len(names)) + ")"
        adapt = connection.ops.adapt_datetimefield_value
        params: list[Any] = [
            adapt(v) if isinstance(v, datetime) else v for row in rows for v in row
        ]
        sql = f"INSERT INTO {self.table} ({columns}) VALUES " + ", ".join(
            [placeholders] * len(rows)
        )
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
        return len(rows)

    # -- waking idle workers ------------------------------------------------------------------

    def _due_index_hint(self, queue: str | None) -> str:
        """Put after the table name in the next-due query to keep the planner on a due index."""
        return ""

    def notify(self, channel: str, queues: Sequence[str]) -> None:
        """Tell listening workers that tasks of ``queues`` are due now; a no-op but on
        PostgreSQL. Sent in the caller's transaction, so delivered only if it commits."""

    def next_due_after(self, after: datetime, queue: str | None) -> datetime | None:
        """The earliest ``run_at`` later than ``after`` among queued tasks (of ``queue``).

        One statement, a loose index scan over the due index: the highest priority, then each
        next lower one, is a single probe, and for each priority the first ``run_at`` past
        ``after`` is another. A plain ``MIN(run_at)`` would read every queued row's entry,
        because the index leads with the priority (the claim's order).
        """
        table, hint = self.table, self._due_index_hint(queue)
        scope = "status = 'queued'" + ("" if queue is None else " AND queue = %s")
        scope_params = [] if queue is None else [queue]
        # ORDER BY ... LIMIT 1 rather than MAX()/MIN(): with the index's priority DESC and a
        # queue prefix, PostgreSQL and MariaDB turned MAX(priority) into a read of every entry
        # (EXPLAIN: 40 ms and 1.4 s beside 200,000 scheduled tasks); a LIMIT 1 in the index's
        # own order is one probe on every database.
        sql = (
            "WITH RECURSIVE p(priority) AS ("
            f"SELECT (SELECT priority FROM {table}{hint} WHERE {scope} "
            "ORDER BY priority DESC LIMIT 1) "
            "UNION ALL "
            f"SELECT (SELECT priority FROM {table}{hint} WHERE {scope} "
            "AND priority < p.priority ORDER BY priority DESC LIMIT 1) "
            "FROM p WHERE p.priority IS NOT NULL) "
            f"SELECT MIN((SELECT run_at FROM {table}{hint} WHERE {scope} "
            "AND priority = p.priority AND run_at > %s ORDER BY run_at LIMIT 1)) "
            "FROM p WHERE p.priority IS NOT NULL"
        )
        params: list[Any] = [
            *scope_params,
            *scope_params,
            *scope_params,
            self.adapt_datetime(after),
        ]
        with self.connection.cursor() as cursor:
            cursor.execute(sql, params)
            value = cursor.fetchone()[0]
        if value is None:
            return None
        return to_aware(value, self.connection.timezone)

    def latest_id(self) -> int:
        """The highest task id (0 for none): one probe of the primary key. An insert from any
        process changes it, which is how a worker without LISTEN notices new tasks cheaply."""
        with self.connection.cursor() as cursor:
            cursor.execute(f"SELECT MAX(id) FROM {self.table}")
            return cursor.fetchone()[0] or 0


def _has_room(
    limit: Limit,
    task: Task,
    running: dict[str, int],
    per_key: dict[tuple[str, str | None], int],
    tats: dict[str, float],
    now_s: float,
) -> bool:
    """Whether ``limit`` lets ``task`` start now, given what runs and the rate's state."""
    if limit.rate is not None and tats.get(limit.scope, 0.0) > now_s:
        return False
    if limit.max_running is None:
        return True
    if limit.keyed:
        return per_key.get((limit.name, task.limit_key), 0) < limit.max_running
    return running.get(limit.scope, 0) < limit.max_running


def _mark_claimed(
    tasks: Sequence[Task], worker_id: str, lease_until: datetime, now: datetime
) -> None:
    """What the claim's UPDATE wrote, on the instances read before it."""
    for task in tasks:
        task.status, task.locked_by, task.locked_until = Task.RUNNING, worker_id, lease_until
        task.started_at, task.progress, task.progress_note = now, None, None


class UpdateReturningDialect(Dialect):
    """PostgreSQL and SQLite: claim in one statement."""

    lock_clause = ""

    def claim(
        self,
        worker_id: str,
        limit: int,
        now: datetime,
        lease_until: datetime,
        queue: str | None,
        exclude: Exclusion = NO_EXCLUSION,
    ) -> list[Task]:
        where, extra = _due_filter(queue)
        sql = (
            f"UPDATE {self.table} SET {CLAIM_SET}, locked_by = %s, locked_until = %s, "
            f"started_at = %s WHERE id IN (SELECT id FROM {self.table} "
            f"WHERE {where}{exclude[0]} ORDER BY {ORDER} LIMIT %s{self.lock_clause}) "
            f"RETURNING {self.columns}"
        )
        params = self._adapt([worker_id, lease_until, now, now, *extra, *exclude[1], limit])
        with self.connection.cursor() as cursor:
            cursor.execute(sql, params)
            rows = tasks_from_rows(self.alias, cursor.fetchall())
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
    # The AFTER INSERT trigger of migration 0014 sends the enqueue's NOTIFY inside the INSERT
    # (or COPY) statement itself: no round trip of its own.
    inserts_notify = True

    def notify(self, channel: str, queues: Iterable[str]) -> None:
        # pg_notify() rather than NOTIFY: the channel and payload are parameters. PostgreSQL
        # folds identical notifications of one transaction into one, so a loop of enqueues in a
        # transaction wakes a listener once.
        with self.connection.cursor() as cursor:
            for queue in sorted(set(queues)):
                cursor.execute("SELECT pg_notify(%s, %s)", [channel, queue])

    def finish_successes(self, rows: Sequence[SuccessRow]) -> set[int]:
        # The group travels as one JSON parameter, one statement text whatever the group size
        # (the server plans one shape). Five typed arrays would say the same, but psycopg's
        # client-side array adaptation (Django binds parameters client-side) cost about twice the
        # Python per row of json.dumps, measured: the largest client-side share of a drain.
        # Times as ISO 8601 with their offset, which timestamptz reads exactly.
        payload = json.dumps(
            [
                {
                    "id": i,
                    "locked_by": by,
                    "result": result,
                    "started_at": start.isoformat(),
                    "finished_at": end.isoformat(),
                }
                for i, by, result, start, end in rows
            ]
        )
        sql = (
            f"UPDATE {self.table} AS t SET {SUCCEEDED_SET}, result = v.result, "
            "started_at = v.started_at, finished_at = v.finished_at "
            "FROM json_to_recordset(%s::json) AS v(id bigint, locked_by text, result text, "
            "started_at timestamptz, finished_at timestamptz) "
            "WHERE t.id = v.id AND t.status = 'running' AND t.locked_by = v.locked_by"
            f"{self._commit_clause()} RETURNING t.id"
        )
        with self.connection.cursor() as cursor:
            cursor.execute(sql, [payload])
            return {row[0] for row in cursor.fetchall()}

    def insert(self, names: Sequence[str], rows: Sequence[Sequence[object]]) -> int:
        # COPY: psycopg streams the rows without a statement of 30,000 literals to quote and for
        # the server to parse (three times faster than a multi-row INSERT for 100,000 rows).
        quote = self.connection.ops.quote_name
        columns = ", ".join(
            quote(Task._meta.get_field(n).column)  # type: ignore[union-attr,arg-type]  # as in finish
            for n in names
        )
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

    def __init__(self, alias: str) -> None:
        super().__init__(alias)
        # Claimed rows return their datetimes as text (an expression has no declared type, so
        # the driver calls no converter): tasks_from_rows parses them itself, in one call where
        # Django's converter took three (a share of a short task's cost).
        quote = self.connection.ops.quote_name
        self.columns = ", ".join(
            f"CAST({quote(f.column)} AS TEXT)"  # type: ignore[arg-type]  # as in Dialect
            if isinstance(f, DateTimeField)
            else quote(f.column)  # type: ignore[arg-type]
            for f in Task._meta.concrete_fields
        )

    def claim(
        self,
        worker_id: str,
        limit: int,
        now: datetime,
        lease_until: datetime,
        queue: str | None,
        exclude: Exclusion = NO_EXCLUSION,
    ) -> list[Task]:
        index = "bgtask_due_idx" if queue is None else "bgtask_due_queue_idx"
        scope = "status = 'queued'" + ("" if queue is None else " AND queue = %s")
        scope_params = [] if queue is None else [queue]
        next_priority = f"SELECT MAX(priority) FROM {self.table} INDEXED BY {index} WHERE {scope}"
        claim_sql = (
            f"UPDATE {self.table} SET {CLAIM_SET}, locked_by = %s, locked_until = %s, "
            f"started_at = %s WHERE id IN (SELECT id FROM {self.table} INDEXED BY {index} "
            f"WHERE {scope} AND priority = %s AND run_at <= %s AND {NOT_PAUSED}{exclude[0]} "
            f"ORDER BY run_at, id LIMIT %s) RETURNING {self.columns}"
        )
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
                params = [worker_id, lease_until, now, *scope_params, priority, now, *exclude[1]]
                cursor.execute(claim_sql, self._adapt([*params, limit - len(rows)]))
                rows += tasks_from_rows(self.alias, cursor.fetchall())
        rows.sort(key=lambda t: (-t.priority, t.run_at, t.id))
        return rows

    def _due_index_hint(self, queue: str | None) -> str:
        return f" INDEXED BY {'bgtask_due_idx' if queue is None else 'bgtask_due_queue_idx'}"

    candidate_lock = ""

    def _lock_limit_states(self, cursor: Any, scopes: Sequence[str]) -> dict[str, float]:
        # A write first: it takes SQLite's one write lock for the whole transaction, which then
        # serialises every limited claim (and any other writer). Reading first and writing later
        # could fail with "database is locked" on the lock upgrade instead of waiting.
        self._insert_limit_states(cursor, scopes)
        marks = ", ".join(["%s"] * len(scopes))
        cursor.execute(
            f"SELECT scope, tat FROM {LIMIT_STATE} WHERE scope IN ({marks})", list(scopes)
        )
        return {scope: float(tat) for scope, tat in cursor.fetchall()}

    def adapt_datetime(self, value: datetime) -> str:
        # Django's adaptation of an aware datetime, without its checks and lookups per value
        # (two per success in a group write, a measurable share of the per-task Python).
        return str(value.astimezone(self.connection.timezone).replace(tzinfo=None))

    def finish_successes(self, rows: Sequence[SuccessRow]) -> set[int]:
        values = ", ".join(["(%s, %s, %s, %s, %s)"] * len(rows))
        sql = (
            f"UPDATE {self.table} AS t SET {SUCCEEDED_SET}, result = v.column3, "
            f"started_at = v.column4, finished_at = v.column5 FROM (VALUES {values}) AS v "
            "WHERE t.id = v.column1 AND t.status = 'running' AND t.locked_by = v.column2 "
            "RETURNING id"
        )
        params = [value for row in self._adapted(rows) for value in row]
        with self.connection.cursor() as cursor:
            cursor.execute(sql, params)
            return {row[0] for row in cursor.fetchall()}


class MySQLDialect(Dialect):
    def _insert_limit_states(self, cursor: Any, scopes: Sequence[str]) -> None:
        values = ", ".join(["(%s, 0)"] * len(scopes))
        cursor.execute(
            f"INSERT IGNORE INTO {LIMIT_STATE} (scope, tat) VALUES {values}", sorted(scopes)
        )

    def claim(
        self,
        worker_id: str,
        limit: int,
        now: datetime,
        lease_until: datetime,
        queue: str | None,
        exclude: Exclusion = NO_EXCLUSION,
    ) -> list[Task]:
        # A loose index scan over priorities, highest first. One query ordered by
        # (priority DESC, run_at, id) and filtered on run_at cannot stop early in MariaDB's
        # (status, priority DESC, run_at, id) index when the queued rows are not due yet: it
        # reads every scheduled row (2 s per empty claim beside 1,000,000 of them). With the
        # priority fixed, run_at <= now is a bounded range of that index, and finding the next
        # lower priority is a single index probe. Raw statements and bgtask.store.rows: the
        # ORM's query building and model construction were most of a claim's Python here.
        scope = "status = 'queued'" + ("" if queue is None else " AND queue = %s")
        scope_params = [] if queue is None else [queue]
        next_priority = f"SELECT priority FROM {self.table} WHERE {scope}"
        select = (
            f"SELECT {self.columns} FROM {self.table} WHERE {scope} AND priority = %s "
            f"AND run_at <= %s AND {NOT_PAUSED}{exclude[0]} ORDER BY run_at, id LIMIT %s "
            "FOR UPDATE SKIP LOCKED"
        )
        due_by: Any = self.adapt_datetime(now)  # for the driver
        rows: list[Task] = []
        priority = None
        with transaction.atomic(using=self.alias), self.connection.cursor() as cursor:
            while len(rows) < limit:
                if priority is None:
                    cursor.execute(f"{next_priority} ORDER BY priority DESC LIMIT 1", scope_params)
                else:
                    cursor.execute(
                        f"{next_priority} AND priority < %s ORDER BY priority DESC LIMIT 1",
                        [*scope_params, priority],
                    )
                found = cursor.fetchone()
                if found is None:
                    break
                priority = found[0]
                cursor.execute(
                    select, [*scope_params, priority, due_by, *exclude[1], limit - len(rows)]
                )
                rows += tasks_from_rows(self.alias, cursor.fetchall())
            if rows:
                ids = [task.id for task in rows]
                placeholders = ", ".join(["%s"] * len(ids))
                cursor.execute(
                    f"UPDATE {self.table} SET {CLAIM_SET}, locked_by = %s, "
                    f"locked_until = %s, started_at = %s WHERE id IN ({placeholders})",
                    self._adapt([worker_id, lease_until, now, *ids]),
                )
        _mark_claimed(rows, worker_id, lease_until, now)
        return rows

    def next_due_after(self, after: datetime, queue: str | None) -> datetime | None:
        # The priorities walked one statement at a time, as the claim walks them. One
        # statement cannot do it here: MariaDB ranges neither on an outer reference
        # (priority < p.priority in a recursive CTE) nor by a loose index scan of the DESC
        # key part (GROUP BY priority), and read every queued row either way (0.5 to 1.4 s
        # beside 200,000 scheduled tasks, by EXPLAIN). With literal values each step is one
        # index probe: two statements per distinct priority of the queued tasks.
        scope = "status = 'queued'" + ("" if queue is None else " AND queue = %s")
        scope_params = [] if queue is None else [queue]
        next_priority = f"SELECT priority FROM {self.table} WHERE {scope}"
        first_run_at = (
            f"SELECT run_at FROM {self.table} WHERE {scope} AND priority = %s AND run_at > %s "
            "ORDER BY run_at LIMIT 1"
        )
        after_value = self.adapt_datetime(after)
        earliest = None
        priority = None
        with self.connection.cursor() as cursor:
            while True:
                if priority is None:
                    cursor.execute(f"{next_priority} ORDER BY priority DESC LIMIT 1", scope_params)
                else:
                    cursor.execute(
                        f"{next_priority} AND priority < %s ORDER BY priority DESC LIMIT 1",
                        [*scope_params, priority],
                    )
                found = cursor.fetchone()
                if found is None:
                    break
                priority = found[0]
                step: list[Any] = [*scope_params, priority, after_value]
                cursor.execute(first_run_at, step)
                row = cursor.fetchone()
                if row is not None and (earliest is None or row[0] < earliest):
                    earliest = row[0]
        return None if earliest is None else to_aware(earliest, self.connection.timezone)

    def finish_successes(self, rows: Sequence[SuccessRow]) -> set[int]:
        # No UPDATE ... RETURNING here: lock the rows that are still ours, then write those in
        # one UPDATE joined to the group's values, in one short transaction.
        rows = self._adapted(rows)
        holder = {row[0]: row[1] for row in rows}
        placeholders = ", ".join(["%s"] * len(rows))
        with transaction.atomic(using=self.alias), self.connection.cursor() as cursor:
            cursor.execute(
                f"SELECT id, locked_by FROM {self.table} WHERE id IN ({placeholders}) "
                "AND status = 'running' FOR UPDATE",
                list(holder),
            )
            ours = {
                task_id for task_id, locked_by in cursor.fetchall() if holder[task_id] == locked_by
            }
            if ours:
                group = [row for row in rows if row[0] in ours]
                values = " UNION ALL ".join(
                    ["SELECT %s AS id, %s AS result, %s AS started_at, %s AS finished_at"]
                    * len(group)
                )
                cursor.execute(
                    f"UPDATE {self.table} AS t JOIN ({values}) AS v ON t.id = v.id "
                    f"SET t.{SUCCEEDED_SET.replace(', ', ', t.')}, t.result = v.result, "
                    "t.started_at = v.started_at, t.finished_at = v.finished_at",
                    [
                        value
                        for i, _, result, start, end in group
                        for value in (i, result, start, end)
                    ],
                )
        return ours


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
