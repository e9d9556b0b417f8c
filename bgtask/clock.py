"""One clock: every lease, due time and rescue is compared against the database server's clock.

Each process measures its offset to the database clock (one cheap query per alias), keeps it,
and measures again after ``REFRESH_SECONDS`` or as soon as its own wall clock is seen to jump (a
step of the system clock, which the monotonic clock does not follow). ``now(alias)`` is then the
local time plus that offset: two workers whose clocks disagree by minutes still agree on when a
task is due and when a lease ends.

An offset smaller than the measurement's own uncertainty (half the query's round trip, plus a
millisecond) is taken as zero, so a worker on the database host compares exactly as it would
without this module. SQLite shares the host's clock: no query, offset zero.

>>> clock.now("default")   # aware, UTC, in the database's time
datetime.datetime(2026, 11, 29, 1, 40, 3, 120512, tzinfo=datetime.timezone.utc)
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.db import connections, router
from django.utils import timezone

from bgtask.models import Task

logger = logging.getLogger("bgtask.clock")

#: Measure the offset again after this many seconds.
REFRESH_SECONDS = 300.0
#: Measure again when the wall clock moved this much more (or less) than the monotonic clock.
JUMP_SECONDS = 0.5
#: An offset beyond this is logged (once per measurement), as it points at a host without NTP.
WARN_SKEW_SECONDS = 5.0
#: The server's current time in UTC, per ``connection.vendor``. The wall clock now, not the
#: transaction's start (PostgreSQL's now() would be stale inside a transaction). SQLite has no
#: entry: it runs on this host, with this host's clock. (Kept here rather than in the store's
#: dialects because the store reads the clock: the clock sits below the store.)
SERVER_NOW_SQL = {
    "postgresql": "SELECT clock_timestamp()",
    "mysql": "SELECT UTC_TIMESTAMP(6)",
}


@dataclass(frozen=True, slots=True)
class Offset:
    seconds: float  # database clock minus local clock
    wall: float  # time.time() when measured
    mono: float  # time.monotonic() when measured


_lock = threading.Lock()
_offsets: dict[str, Offset] = {}


def _alias(alias: str | None) -> str:
    return alias if alias is not None else router.db_for_write(Task)


def _fresh(offset: Offset | None) -> bool:
    if offset is None:
        return False
    elapsed = time.monotonic() - offset.mono
    return elapsed < REFRESH_SECONDS and abs((time.time() - offset.wall) - elapsed) < JUMP_SECONDS


def measure(alias: str) -> float:
    """Ask the database for its time now; store and return the offset to the local clock."""
    connection = connections[alias]
    sql = SERVER_NOW_SQL.get(connection.vendor)
    if sql is None:  # SQLite: the same host, the same clock
        seconds = 0.0
    else:
        connection.ensure_connection()  # connecting is not part of the round trip
        with connection.cursor() as cursor:
            before = time.time()
            cursor.execute(sql)
            server = cursor.fetchone()[0]
            after = time.time()
        if timezone.is_naive(server):
            server = server.replace(tzinfo=UTC)
        seconds = server.timestamp() - (before + after) / 2
        if abs(seconds) <= (after - before) / 2 + 0.001:
            seconds = 0.0  # within what one round trip can tell: no measurable offset
        elif abs(seconds) > WARN_SKEW_SECONDS:
            logger.warning(
                "This host's clock is %.1f s %s the database's (%r); bgtask uses the database's. "
                "Check NTP on this host.",
                abs(seconds),
                "behind" if seconds > 0 else "ahead of",
                alias,
            )
    with _lock:
        _offsets[alias] = Offset(seconds, time.time(), time.monotonic())
    return seconds


def offset(alias: str | None = None) -> float:
    """Seconds to add to the local clock to get the database's (measured when stale)."""
    alias = _alias(alias)
    current = _offsets.get(alias)
    if current is not None and _fresh(current):
        return current.seconds
    return measure(alias)


def now(alias: str | None = None) -> datetime:
    """The database's "now" for ``alias`` (default: where tasks are written), aware, in UTC.

    Goes through ``django.utils.timezone.now`` so a patched clock in tests moves it too."""
    seconds = offset(alias)
    current = timezone.now()
    return current + timedelta(seconds=seconds) if seconds else current


def forget() -> None:
    """Drop every measured offset (tests; a process that knows its clock was reset)."""
    with _lock:
        _offsets.clear()
