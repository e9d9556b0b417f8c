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

from collections import defaultdict
from datetime import datetime, timedelta
from typing import Any, TypedDict

from django.db.models import (
    Avg,
    BooleanField,
    Count,
    DurationField,
    ExpressionWrapper,
    F,
    Max,
    Min,
    Q,
)
from django.db.models.expressions import RawSQL
from django.db.models.functions import TruncHour, TruncMinute
from django.utils import timezone

from bgtask.models import Task
from bgtask.store.tasks import ABANDONED_MESSAGE

# How a rescued task's last_error starts (see TaskStore.rescue_abandoned).
RESCUED_PREFIX = ABANDONED_MESSAGE.split(":", 1)[0] + ":"
TOP = 10  # rows in the slowest / most failing tables


class QueueStats(TypedDict):
    due: int  # queued and due now
    scheduled: int  # queued for later
    running: int
    failed: int  # failed for good (history until pruned)
    oldest_due_age: float  # seconds since the oldest due task became due; 0.0 when none is due
    failed_last_hour: int  # finished as failed in the last hour
    failed_last_day: int
    succeeded_last_hour: int
    succeeded_last_day: int


def status_is(status: str) -> RawSQL:
    """``status = '<status>'`` as a literal the planner can match to a partial index."""
    if status not in dict(Task.STATUS_CHOICES):
        raise ValueError(f"Unknown task status {status!r}.")
    return RawSQL(f"{Task._meta.db_table}.status = '{status}'", (), output_field=BooleanField())


def _tasks(using: str | None):
    return Task.objects.using(using)


def queue_stats(
    now: datetime | None = None, using: str | None = None, include_history: bool = True
) -> dict[str, QueueStats]:
    """Per queue counts; a queue with nothing queued, running, failed or finished in the last day
    is left out. ``include_history=False`` skips the failed and last hour/day counts (left at 0),
    for a caller that runs after every batch and wants only the depth and lag."""
    now = now or timezone.now()
    hour_ago, day_ago = now - timedelta(hours=1), now - timedelta(days=1)
    stats: dict[str, dict[str, Any]] = defaultdict(
        lambda: dict.fromkeys(QueueStats.__annotations__, 0)
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
    if not include_history:
        return {name: QueueStats(**stats[name]) for name in sorted(stats)}  # type: ignore[typeddict-item]
    # bgtask_status_id_idx: failures kept until pruned.
    for row in (
        _tasks(using).filter(status_is(Task.FAILED)).values("queue").annotate(n=Count("id"))
    ).order_by():
        stats[row["queue"]]["failed"] = row["n"]
    # bgtask_outcome_idx (finished_at, status, queue): the last day's outcomes, index only.
    last_hour = Q(finished_at__gte=hour_ago)
    for row in (
        _tasks(using)
        .filter(finished_at__gte=day_ago)
        .values("queue", "status")
        .annotate(day=Count("id"), hour=Count("id", filter=last_hour))
        .order_by()
    ):
        if row["status"] in (Task.SUCCEEDED, Task.FAILED):
            queue = stats[row["queue"]]
            queue[f"{row['status']}_last_day"] += row["day"]
            queue[f"{row['status']}_last_hour"] += row["hour"]
    return {name: QueueStats(**stats[name]) for name in sorted(stats)}  # type: ignore[typeddict-item]


def due_count(queue: str | None = None, using: str | None = None) -> int:
    """How many tasks are due now (in ``queue``, or in all queues)."""
    tasks = Task.objects.using(using).due()
    return (tasks.filter(queue=queue) if queue else tasks).count()


def _series(
    start: datetime, step: timedelta, buckets: int, counts: dict[tuple[datetime, str], int]
) -> list[dict[str, Any]]:
    points = []
    for i in range(buckets):
        at = start + i * step
        points.append(
            {
                "start": at,
                "succeeded": counts.get((at, Task.SUCCEEDED), 0),
                "retried": counts.get((at, "retried"), 0),
                "failed": counts.get((at, Task.FAILED), 0),
            }
        )
    return points


def throughput(now: datetime | None = None, using: str | None = None) -> dict[str, list]:
    """Outcomes per minute over the last hour and per hour over the last day.

    ``succeeded`` and ``failed`` count tasks by the time they finished. ``retried`` counts tasks
    that are queued again after a failed attempt, by the time that attempt started: bgtask keeps
    one row per task, not one per attempt, so a retry that has since run again is no longer seen.
    The current (incomplete) minute and hour are the last points.
    """
    now = now or timezone.now()
    minute = now.replace(second=0, microsecond=0)
    hour = now.replace(minute=0, second=0, microsecond=0)
    first_minute, first_hour = minute - timedelta(minutes=59), hour - timedelta(hours=23)
    tz = timezone.get_current_timezone() if timezone.is_aware(now) else None
    result = {}
    for key, trunc, start, step, buckets in (
        ("per_minute", TruncMinute, first_minute, timedelta(minutes=1), 60),
        ("per_hour", TruncHour, first_hour, timedelta(hours=1), 24),
    ):
        counts: dict[tuple[datetime, str], int] = {}
        finished = (
            _tasks(using)
            .filter(finished_at__gte=start)
            .annotate(bucket=trunc("finished_at", tzinfo=tz))
            .values("bucket", "status")
            .annotate(n=Count("id"))
            .order_by()
        )
        for row in finished:
            counts[(row["bucket"], row["status"])] = row["n"]
        retried = (
            _tasks(using)
            .filter(status_is(Task.QUEUED), attempts__gt=0, started_at__gte=start)
            .annotate(bucket=trunc("started_at", tzinfo=tz))
            .values("bucket")
            .annotate(n=Count("id"))
            .order_by()
        )
        for row in retried:
            counts[(row["bucket"], "retried")] = row["n"]
        result[key] = _series(start, step, buckets, counts)
    return result


def slowest(now: datetime | None = None, using: str | None = None) -> list[dict[str, Any]]:
    """Task names by mean run time of the runs that succeeded in the last hour, slowest first."""
    now = now or timezone.now()
    duration = ExpressionWrapper(F("finished_at") - F("started_at"), output_field=DurationField())
    rows = (
        _tasks(using)
        .filter(status_is(Task.SUCCEEDED), finished_at__gte=now - timedelta(hours=1))
        .exclude(started_at=None)
        .values("task_name")
        .annotate(runs=Count("id"), mean=Avg(duration), longest=Max(duration))
        .order_by("-mean")[:TOP]
    )
    return [
        {
            "task_name": row["task_name"],
            "runs": row["runs"],
            "mean_seconds": round(_seconds(row["mean"]), 3),
            "max_seconds": round(_seconds(row["longest"]), 3),
        }
        for row in rows
    ]


def _seconds(value: Any) -> float:
    # A duration comes back as a timedelta, or as microseconds where the backend averages numbers.
    if isinstance(value, timedelta):
        return value.total_seconds()
    return float(value or 0) / 1_000_000


def most_failing(now: datetime | None = None, using: str | None = None) -> list[dict[str, Any]]:
    """Task names by failures (for good) in the last day, most first."""
    now = now or timezone.now()
    rows = (
        _tasks(using)
        .filter(status_is(Task.FAILED), finished_at__gte=now - timedelta(days=1))
        .values("task_name")
        .annotate(failures=Count("id"), last=Max("finished_at"))
        .order_by("-failures", "task_name")[:TOP]
    )
    return [
        {"task_name": r["task_name"], "failures": r["failures"], "last_failed_at": r["last"]}
        for r in rows
    ]


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


def rescued(now: datetime | None = None, using: str | None = None) -> dict[str, int]:
    """Tasks rescued from dead workers: queued again after an abandoned attempt (still waiting
    for their retry), and failed for good in the last day because their last attempt was
    abandoned; plus running tasks whose lease has expired (to be rescued by the next batch)."""
    now = now or timezone.now()
    abandoned = Q(last_error__startswith=RESCUED_PREFIX)
    return {
        "waiting_retry": _tasks(using)
        .filter(status_is(Task.QUEUED), abandoned, attempts__gt=0)
        .count(),
        "failed_last_day": _tasks(using)
        .filter(status_is(Task.FAILED), abandoned, finished_at__gte=now - timedelta(days=1))
        .count(),
        "expired_leases": _tasks(using).abandoned(now).filter(status_is(Task.RUNNING)).count(),
    }


def health(now: datetime | None = None, using: str | None = None) -> dict[str, Any]:
    """Everything the dashboard shows, as plain data (datetimes left as datetimes)."""
    now = now or timezone.now()
    return {
        "time": now,
        "queues": queue_stats(now, using),
        "throughput": throughput(now, using),
        "slowest": slowest(now, using),
        "most_failing": most_failing(now, using),
        "workers": workers(now, using),
        "rescued": rescued(now, using),
    }
