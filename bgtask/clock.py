"""One clock for every worker: the database's.

Leases, due times and the rescue of abandoned tasks are comparisons between times written by
different machines. If each used its own clock, a worker whose clock runs two minutes fast would
start scheduled tasks two minutes early and take over live tasks whose leases are shorter than that.
So bgtask reads the database server's clock: each process measures its offset to it (one
``SELECT`` of the server's time, halfway through the round trip) and adds that offset to its own
clock. The offset is refreshed at most every ``REFRESH_SECONDS``, so the cost is one tiny query
every few minutes per process, not one per task. SQLite runs in the process itself, so its clock is
the process's clock and the offset is zero without a query.

>>> from bgtask import clock
>>> clock.now()          # the database's "now", as an aware UTC datetime
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime, timedelta

from django.db import DEFAULT_DB_ALIAS, connections
from django.utils import timezone

logger = logging.getLogger("bgtask.clock")

#: How long a measured offset is trusted. Clocks drift by milliseconds per hour; NTP steps are rare.
REFRESH_SECONDS = 300.0
#: Offsets smaller than this are noise from the round trip and are not worth a log line.
NOTEWORTHY_SKEW = timedelta(seconds=1)

# alias -> (offset, time.monotonic() when measured)
_offsets: dict[str, tuple[timedelta, float]] = {}


def now(alias: str = DEFAULT_DB_ALIAS) -> datetime:
    """The database server's current time (UTC, aware), from this process's clock plus its offset.

    Measures the offset on first use and after ``REFRESH_SECONDS``; if that measurement fails (the
    database is down), the last known offset is used, or none.
    """
    return timezone.now() + offset(alias)


def offset(alias: str = DEFAULT_DB_ALIAS) -> timedelta:
    """How far the database's clock is ahead of this process's (negative when behind)."""
    known = _offsets.get(alias)
    if known is not None and time.monotonic() - known[1] < REFRESH_SECONDS:
        return known[0]
    try:
        return refresh(alias)
    except Exception:  # a clock reading must never be why a write fails
        logger.debug("Could not read the database clock of %r; using the last offset.", alias)
        return known[0] if known is not None else timedelta(0)


def refresh(alias: str = DEFAULT_DB_ALIAS) -> timedelta:
    """Measure the offset to the database's clock now (one query; none on SQLite)."""
    from bgtask.store.dialects import dialect_for

    sql = dialect_for(alias).now_sql
    if sql is None:
        measured = timedelta(0)
    else:
        connection = connections[alias]
        before = time.time()
        with connection.cursor() as cursor:
            cursor.execute(sql)
            server = cursor.fetchone()[0]
        after = time.time()
        if isinstance(server, str):  # some drivers hand back text
            server = datetime.fromisoformat(server)
        if timezone.is_naive(server):
            server = server.replace(tzinfo=UTC)
        local = datetime.fromtimestamp((before + after) / 2, tz=UTC)
        measured = server - local
        previous = _offsets.get(alias)
        if abs(measured) >= NOTEWORTHY_SKEW and (
            previous is None or abs(previous[0] - measured) >= NOTEWORTHY_SKEW
        ):
            logger.warning(
                "This machine's clock is %.3f s %s the database's (%r); bgtask uses the "
                "database's time for leases and due tasks.",
                abs(measured.total_seconds()),
                "behind" if measured > timedelta(0) else "ahead of",
                alias,
            )
    _offsets[alias] = (measured, time.monotonic())
    return measured


def forget() -> None:
    """Drop every measured offset (tests; a process that knows its clock was stepped)."""
    _offsets.clear()
