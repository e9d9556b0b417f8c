"""Queue health in numbers: what the status endpoint answers, the admin dashboard draws and the
metrics report.

>>> queue_stats()
{'default': {'due': 3, 'scheduled': 1, 'running': 0, 'failed': 0, 'oldest_due_age': 12.5, ...}}
>>> health()["throughput"]["per_minute"][-1]
{'start': datetime(...), 'succeeded': 41, 'retried': 2, 'failed': 0}

Every query here is served by an index and reads at most the queued and running rows, the
failures still kept, and the history of the last day; none counts the whole table. Status is
compared with a literal (``status = 'queued'``) rather than a bound parameter, because SQLite can
use a partial index (``... WHERE status = 'queued'``) only when it sees the literal.
"""

from __future__ import annotations

import json
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any, TypedDict

from django.db.models import (
    Avg,
    BooleanField,
    CharField,
    Count,
    DurationField,
    ExpressionWrapper,
    F,
    Func,
    Max,
    Min,
    Q,
    Value,
)
from django.db.models.expressions import RawSQL
from django.db.models.functions import Concat, TruncHour, TruncMinute
from django.utils import timezone

from bgtask import conf
from bgtask.features.limits import current_limits
from bgtask.features.pausing import paused_queues
from bgtask.models import Task, WorkerBatch
from bgtask.store.tasks import ABANDONED_MESSAGE

# How a rescued task's last_error starts (see TaskStore.rescue_abandoned).
RESCUED_PREFIX = ABANDONED_MESSAGE.split(":", 1)[0] + ":"
TOP = 10  # rows in the slowest / most failing tables
ERROR_SUMMARY_LENGTH = 80


class QueueStats(TypedDict):
    due: int  # queued and due now
    scheduled: int  # queued for later
    running: int
    failed: int  # failed for good (history until pruned)
    cancelled: int  # cancelled before they ran (history until pruned); never counted as failed
    oldest_due_age: float  # seconds since the oldest due task became due; 0.0 when none is due
    failed_last_hour: int  # failed for good in the last hour (this minute and the 59 before)
    failed_last_day: int  # this hour and the 23 before
    succeeded_last_hour: int
    succeeded_last_day: int
    cancelled_last_hour: int
    cancelled_last_day: int
    paused: bool  # paused by an operator (bgtask.pause_queue): no worker claims its tasks


def error_summary(text: str, length: int = ERROR_SUMMARY_LENGTH) -> str:
    """The line that names the exception (the last one of a traceback), shortened."""
    lines = [line for line in text.strip().splitlines() if line.strip()]
    if not lines:
        return ""
    line = lines[-1] if lines[0].startswith("Traceback") else lines[0]
    return line if len(line) <= length else line[: length - 1] + "…"


def status_is(status: str) -> RawSQL:
    """``status = '<status>'`` as a literal the planner can match to a partial index."""
    if status not in dict(Task.STATUS_CHOICES):
        raise ValueError(f"Unknown task status {status!r}.")
    return RawSQL(f"{Task._meta.db_table}.status = '{status}'", (), output_field=BooleanField())


def _tasks(using: str | None) -> Any:  # values()/annotate() shapes vary per query
    return Task.objects.using(using)


def _hour_start(now: datetime) -> datetime:
    return now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=23)


def _minute_start(now: datetime) -> datetime:
    return now.replace(second=0, microsecond=0) - timedelta(minutes=59)


class _Bucket(Func):
    """The start of a row's minute or hour, as a group key. SQLite stores datetimes as UTC text,
    so a prefix of it is the bucket; that is much cheaper than Django's Trunc there, a Python
    function called once per row."""

    output_field = CharField()

    def __init__(self, field: str, unit: str) -> None:
        super().__init__(F(field))
        self.unit = unit

    def as_sql(self, compiler: Any, connection: Any, **extra_context: Any) -> Any:  # type: ignore[override]
        trunc = TruncHour if self.unit == "hour" else TruncMinute
        return compiler.compile(trunc(self.source_expressions[0], tzinfo=UTC))

    def as_sqlite(self, compiler: Any, connection: Any, **extra_context: Any) -> Any:
        sql, params = compiler.compile(self.source_expressions[0])
        return f"substr({sql}, 1, {13 if self.unit == 'hour' else 16})", params


def _bucket_time(value: Any) -> datetime:
    if isinstance(value, str):  # SQLite: 'YYYY-MM-DD HH' or 'YYYY-MM-DD HH:MM'
        fmt = "%Y-%m-%d %H" if len(value) == 13 else "%Y-%m-%d %H:%M"
        return datetime.strptime(value, fmt).replace(tzinfo=UTC)
    return value.astimezone(UTC)  # type: ignore[no-any-return]


def _outcomes(since: datetime, unit: str, using: str | None) -> list[dict[str, Any]]:
    """Finished tasks since ``since`` counted per (bucket, status, queue, task_name): one range
    of bgtask_outcome_idx, read from the index alone. Status is grouped on, not filtered on, so
    that no planner is tempted away from the finished_at range."""
    rows = (
        _tasks(using)
        .filter(finished_at__gte=since)
        .annotate(bucket=_Bucket("finished_at", unit))
        .values("bucket", "status", "queue", "task_name")
        .annotate(n=Count("*"))
        .order_by()
    )
    return [{**row, "bucket": _bucket_time(row["bucket"])} for row in rows]


def _retrying(since: datetime, using: str | None) -> list[tuple[datetime, bool]]:
    """(start of the failed attempt, rescued?) of queued tasks waiting for a retry whose failed
    attempt started since ``since``; few rows, read through the partial index of queued rows."""
    rescued = ExpressionWrapper(Q(last_error__startswith=RESCUED_PREFIX), BooleanField())
    # Literal conditions, as the partial bgtask_retrying_idx states them (SQLite needs that).
    retrying = RawSQL(
        f"{Task._meta.db_table}.status = 'queued' AND {Task._meta.db_table}.attempts > 0",
        (),
        output_field=BooleanField(),
    )
    return list(
        _tasks(using)
        .filter(retrying, started_at__gte=since)
        .annotate(rescued=rescued)
        .values_list("started_at", "rescued")
    )


def queue_stats(
    now: datetime | None = None,
    using: str | None = None,
    include_history: bool = True,
    *,
    _day: list[dict[str, Any]] | None = None,
    _hour: list[dict[str, Any]] | None = None,
) -> dict[str, QueueStats]:
    """Per queue counts; a queue with nothing queued, running, failed or finished in the last day is
    left out unless it is paused. "Last hour" is the current minute and the 59 before it, "last day"
    the current hour and the 23 before it (the charts' buckets). ``include_history=False`` skips the
    failed and last hour/day counts (left at 0), for a caller that runs after every batch and wants
    only the depth and lag."""
    now = now or timezone.now()
    stats: dict[str, dict[str, Any]] = defaultdict(
        lambda: {**dict.fromkeys(QueueStats.__annotations__, 0), "paused": False}
    )
    due = Q(run_at__lte=now)
    # bgtask_due_queue_idx: the queued rows only.
    for row in (
        _tasks(using)
        .filter(status_is(Task.QUEUED))
        .values("queue")
        .annotate(
            due=Count("id", filter=due),
            scheduled=Count("id", filter=~due),
            oldest_due=Min("run_at", filter=due),
        )
        .order_by()
    ):
        queue = stats[row["queue"]]
        queue["due"], queue["scheduled"] = row["due"], row["scheduled"]
        if row["oldest_due"] is not None:
            queue["oldest_due_age"] = round(max(0.0, (now - row["oldest_due"]).total_seconds()), 3)
    # bgtask_running_lease_idx.
    for row in (
        _tasks(using).filter(status_is(Task.RUNNING)).values("queue").annotate(n=Count("id"))
    ).order_by():
        stats[row["queue"]]["running"] = row["n"]
    for name in paused_queues(using=using):
        stats[name]["paused"] = True
    if not include_history:
        return {name: QueueStats(**stats[name]) for name in sorted(stats)}  # type: ignore[typeddict-item]
    # bgtask_failed_idx (partial, covers queue): failures kept until pruned.
    for row in (
        _tasks(using).filter(status_is(Task.FAILED)).values("queue").annotate(n=Count("id"))
    ).order_by():
        stats[row["queue"]]["failed"] = row["n"]
    # bgtask_cancelled_idx, the same for cancelled tasks.
    for row in (
        _tasks(using).filter(status_is(Task.CANCELLED)).values("queue").annotate(n=Count("id"))
    ).order_by():
        stats[row["queue"]]["cancelled"] = row["n"]
    day = _day if _day is not None else _outcomes(_hour_start(now), "hour", using)
    hour = _hour if _hour is not None else _outcomes(_minute_start(now), "minute", using)
    for rows, suffix in ((day, "last_day"), (hour, "last_hour")):
        for row in rows:
            if row["status"] in Task.FINISHED_STATUSES:
                stats[row["queue"]][f"{row['status']}_{suffix}"] += row["n"]
    return {name: QueueStats(**stats[name]) for name in sorted(stats)}  # type: ignore[typeddict-item]


def due_count(queue: str | None = None, using: str | None = None) -> int:
    """How many tasks are due now (in ``queue``, or in all queues)."""
    tasks = Task.objects.using(using).due()
    return (tasks.filter(queue=queue) if queue else tasks).count()


def _series(
    start: datetime,
    step: timedelta,
    buckets: int,
    outcomes: list[dict[str, Any]],
    retries: list[tuple[datetime, bool]],
) -> list[dict[str, Any]]:
    counts: dict[tuple[datetime, str], int] = defaultdict(int)
    for row in outcomes:
        counts[(row["bucket"], row["status"])] += row["n"]
    for started_at, _rescued in retries:
        at = start + ((started_at - start) // step) * step
        counts[(at, "retried")] += 1
    return [
        {
            "start": start + i * step,
            "succeeded": counts[(start + i * step, Task.SUCCEEDED)],
            "retried": counts[(start + i * step, "retried")],
            "failed": counts[(start + i * step, Task.FAILED)],
        }
        for i in range(buckets)
    ]


def throughput(
    now: datetime | None = None,
    using: str | None = None,
    *,
    _day: list[dict[str, Any]] | None = None,
    _hour: list[dict[str, Any]] | None = None,
    _retries: list[tuple[datetime, bool]] | None = None,
) -> dict[str, list[Any]]:
    """Outcomes per minute over the last hour and per hour over the last day (UTC buckets).

    ``succeeded`` and ``failed`` count tasks by the time they finished. ``retried`` counts tasks
    that are queued again after a failed attempt, by the time that attempt started: bgtask keeps
    one row per task, not one per attempt, so a retry that has since run again is no longer seen.
    The current (incomplete) minute and hour are the last points.
    """
    now = now or timezone.now()
    first_minute, first_hour = _minute_start(now), _hour_start(now)
    day = _day if _day is not None else _outcomes(first_hour, "hour", using)
    hour = _hour if _hour is not None else _outcomes(first_minute, "minute", using)
    retries = _retries if _retries is not None else _retrying(first_hour, using)
    return {
        "per_minute": _series(
            first_minute,
            timedelta(minutes=1),
            60,
            hour,
            [r for r in retries if r[0] >= first_minute],
        ),
        "per_hour": _series(first_hour, timedelta(hours=1), 24, day, retries),
    }


def slowest(now: datetime | None = None, using: str | None = None) -> list[dict[str, Any]]:
    """Task names by mean run time of the runs that succeeded in the last hour, slowest first."""
    now = now or timezone.now()
    duration = ExpressionWrapper(F("finished_at") - F("started_at"), output_field=DurationField())
    # Status is a filter of the aggregates rather than of the rows, so the finished_at range of
    # bgtask_outcome_idx stays the way in (see _outcomes).
    ok = Q(status=Task.SUCCEEDED, started_at__isnull=False)
    rows = (
        _tasks(using)
        .filter(finished_at__gte=_minute_start(now))
        # Grouped on an expression, not the column: SQLite would otherwise walk the whole
        # task_name index to skip a sort, instead of the last hour's range.
        .annotate(name=Concat("task_name", Value("")))
        .values("name")
        .annotate(
            runs=Count("id", filter=ok),
            mean=Avg(duration, filter=ok),
            longest=Max(duration, filter=ok),
        )
        .order_by()
    )
    found = [
        {
            "task_name": row["name"],
            "runs": row["runs"],
            "mean_seconds": round(_seconds(row["mean"]), 3),
            "max_seconds": round(_seconds(row["longest"]), 3),
        }
        for row in rows
        if row["runs"]
    ]
    return sorted(found, key=lambda r: (-r["mean_seconds"], r["task_name"]))[:TOP]


def _seconds(value: Any) -> float:
    # A duration comes back as a timedelta, or as microseconds where the backend averages numbers.
    if isinstance(value, timedelta):
        return value.total_seconds()
    return float(value or 0) / 1_000_000


def most_failing(
    now: datetime | None = None,
    using: str | None = None,
    *,
    _day: list[dict[str, Any]] | None = None,
    _hour: list[dict[str, Any]] | None = None,
) -> list[dict[str, Any]]:
    """Task names by failures (for good) in the last day, most first, with their failures in
    the last hour and the exception line of their newest failure (``error_line``). Cancelled
    tasks are not failures and are not counted."""
    now = now or timezone.now()
    day = _day if _day is not None else _outcomes(_hour_start(now), "hour", using)
    hour = _hour if _hour is not None else _outcomes(_minute_start(now), "minute", using)
    per_day: dict[str, int] = defaultdict(int)
    per_hour: dict[str, int] = defaultdict(int)
    for rows, counts in ((day, per_day), (hour, per_hour)):
        for row in rows:
            if row["status"] == Task.FAILED:
                counts[row["task_name"]] += row["n"]
    ranked = sorted(per_day.items(), key=lambda item: (-item[1], item[0]))[:TOP]
    return [
        {
            "task_name": name,
            "failures": n,
            "failures_last_hour": per_hour[name],
            "error_line": _latest_error_line(name, using),
        }
        for name, n in ranked
    ]


def _latest_error_line(task_name: str, using: str | None) -> str:
    """The exception line of ``task_name``'s newest failure still kept (at most TOP of these
    per dashboard view; bgtask_failed_idx read backwards, filtered on the name)."""
    error = (
        _tasks(using)
        .filter(status_is(Task.FAILED), task_name=task_name)
        .order_by("-id")
        .values_list("last_error", flat=True)
        .first()
    )
    return error_summary(error or "")


def workers(now: datetime | None = None, using: str | None = None) -> list[dict[str, Any]]:
    """Workers holding a lease now (the ``locked_by`` of running tasks): how many tasks each
    holds, when it claimed the oldest, and whether any of its leases has expired (a dead worker
    whose tasks the next batch rescues). A worker that finished its tasks is no longer seen."""
    now = now or timezone.now()
    rows = (
        _tasks(using)
        .filter(status_is(Task.RUNNING))
        .values("locked_by")
        .annotate(
            tasks=Count("id"),
            since=Min("started_at"),
            expired=Count("id", filter=Q(locked_until__lt=now) | Q(locked_until=None)),
        )
        .order_by("since", "locked_by")
    )
    return [
        {
            "worker": r["locked_by"] or "(none)",
            "tasks": r["tasks"],
            "since": r["since"],
            "expired_leases": r["expired"],
        }
        for r in rows
    ]


def batches(now: datetime | None = None, using: str | None = None) -> list[dict[str, Any]]:
    """The last finished batch of each worker host, most recent first: ``host``, ``worker_id``,
    ``finished_at``, ``counts`` (``BatchResult.as_dict()``), ``age_seconds``, and ``stale`` when
    that is longer ago than ``BGTASK_WORKER_STALE_AFTER``."""
    now = now or timezone.now()
    stale_after = conf.worker_stale_after()
    found = []
    for row in WorkerBatch.objects.using(using).order_by("-finished_at", "host"):
        age = max(0.0, (now - row.finished_at).total_seconds())
        try:
            counts = json.loads(row.counts)
        except ValueError:
            counts = {}
        found.append(
            {
                "host": row.host,
                "worker_id": row.worker_id,
                "finished_at": row.finished_at,
                "counts": counts,
                "age_seconds": round(age, 3),
                "stale": age > stale_after,
            }
        )
    return found


#: Running tasks ``in_progress`` lists at most.
PROGRESS_ROWS = 50


def in_progress(using: str | None = None) -> list[dict[str, Any]]:
    """Running tasks that reported their progress (``set_progress``), oldest start first: id,
    name, queue, worker, start, ``progress`` (0.0 to 1.0) and ``progress_note``. Read through the
    partial index of running rows."""
    rows = (
        _tasks(using)
        .filter(status_is(Task.RUNNING), progress__isnull=False)
        .order_by("started_at", "id")
        .values(
            "id",
            "task_name",
            "queue",
            "locked_by",
            "started_at",
            "progress",
            "progress_note",
        )[:PROGRESS_ROWS]
    )
    return [{**row, "progress_note": row["progress_note"] or ""} for row in rows]


def rescued(
    now: datetime | None = None,
    using: str | None = None,
    *,
    _retries: list[tuple[datetime, bool]] | None = None,
) -> dict[str, int]:
    """Tasks rescued from dead workers in the last day: queued again after an abandoned attempt
    (still waiting for their retry), and failed for good because their last attempt was
    abandoned; plus running tasks whose lease has expired (the next batch rescues them)."""
    now = now or timezone.now()
    first_hour = _hour_start(now)
    retries = _retries if _retries is not None else _retrying(first_hour, using)
    failed = (
        _tasks(using)
        .filter(status_is(Task.FAILED), finished_at__gte=first_hour)
        .filter(last_error__startswith=RESCUED_PREFIX)
        .count()
    )
    return {
        "waiting_retry": sum(1 for _, was_rescued in retries if was_rescued),
        "failed_last_day": failed,
        "expired_leases": _tasks(using).abandoned(now).filter(status_is(Task.RUNNING)).count(),
    }


#: The most due tasks counted per limited scope ("held back"): a count never reads more rows.
HELD_BACK_COUNT_CAP = 1000


def limits(now: datetime | None = None, using: str | None = None) -> list[dict[str, Any]]:
    """The limits of this process's settings and tasks (``bgtask.limits``), each with how many
    due tasks of its scope are waiting (``held_back``; capped at ``HELD_BACK_COUNT_CAP``, and
    ``held_back_capped`` then True). A due task of a limited scope that is still queued is one
    the limit holds back, or one no worker has reached yet. Empty when no limit is set."""
    now = now or timezone.now()
    rows = []
    for limit in current_limits().all():
        due = _tasks(using).filter(status_is(Task.QUEUED), run_at__lte=now)
        due = (
            due.filter(queue=limit.name)
            if limit.kind == "queue"
            else due.filter(task_name=limit.name)
        )
        held = due.values("id")[: HELD_BACK_COUNT_CAP + 1].count()
        rows.append(
            {
                "kind": limit.kind,
                "name": limit.name,
                "max_running": limit.max_running,
                "per_key": limit.keyed,
                "rate": None if limit.rate is None else str(limit.rate),
                "describe": limit.describe(),
                "held_back": min(held, HELD_BACK_COUNT_CAP),
                "held_back_capped": held > HELD_BACK_COUNT_CAP,
            }
        )
    return rows


def health(now: datetime | None = None, using: str | None = None) -> dict[str, Any]:
    """Everything the dashboard shows, as plain data (datetimes left as datetimes)."""
    now = now or timezone.now()
    # The last day and hour of outcomes and the waiting retries are read once and shared.
    day = _outcomes(_hour_start(now), "hour", using)
    hour = _outcomes(_minute_start(now), "minute", using)
    retries = _retrying(_hour_start(now), using)
    return {
        "time": now,
        "queues": queue_stats(now, using, _day=day, _hour=hour),
        "throughput": throughput(now, using, _day=day, _hour=hour, _retries=retries),
        "slowest": slowest(now, using),
        "most_failing": most_failing(now, using, _day=day, _hour=hour),
        "workers": workers(now, using),
        "in_progress": in_progress(using),
        "batches": batches(now, using),
        "rescued": rescued(now, using, _retries=retries),
        "limits": limits(now, using),
    }
