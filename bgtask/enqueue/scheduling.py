"""When a task runs: the ``schedule=`` argument and the seed's retry backoff."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

from django.utils import timezone

Schedule = int | float | timedelta | datetime


def resolve_schedule(schedule: Schedule | None, now: datetime | None = None) -> datetime:
    """Turn a ``schedule=`` value into an aware ``run_at``.

    Seconds from now (int or float), a ``timedelta`` from now, or a ``datetime``. A naive
    datetime is read in the current Django time zone (``timezone.get_current_timezone()``).

    >>> resolve_schedule(60) > timezone.now()
    True
    """
    now = now or timezone.now()
    if schedule is None:
        return now
    if isinstance(schedule, bool):
        raise TypeError("schedule must be seconds, a timedelta or a datetime, not a bool.")
    if isinstance(schedule, datetime):
        if timezone.is_naive(schedule):
            schedule = timezone.make_aware(schedule, timezone.get_current_timezone())
        try:
            # The database stores UTC: a time with no UTC equivalent would fail later, at save.
            schedule.astimezone(UTC)
        except OverflowError:
            raise ValueError(f"schedule={schedule!r} is beyond any date in UTC.") from None
        return schedule
    if isinstance(schedule, timedelta):
        try:
            return now + schedule
        except OverflowError:
            raise ValueError(f"schedule={schedule!r} is beyond any date.") from None
    if isinstance(schedule, (int, float)):
        if not math.isfinite(schedule):
            raise ValueError(f"schedule must be a finite number of seconds, got {schedule!r}.")
        try:
            return now + timedelta(seconds=schedule)
        except OverflowError:
            raise ValueError(f"schedule={schedule!r} seconds is beyond any date.") from None
    raise TypeError(
        f"schedule must be seconds (int or float), a timedelta or a datetime, "
        f"not {type(schedule).__name__} ({schedule!r})."
    )


def retry_delay(attempts: int) -> timedelta:
    """The seed's backoff: ``attempts ** 4 + 5`` seconds after the ``attempts``-th failure."""
    return timedelta(seconds=attempts**4 + 5)
