"""Limits that hold across every worker: how many tasks of a scope run at once, and how fast
they start.

A *scope* is a queue (``BGTASK_QUEUE_LIMITS = {"payments": {"max_running": 5}}``) or a task name
(``@background(max_running=2, rate="100/m")``). A concurrency limit may be *keyed*:
``@background(max_running=1, max_running_key=lambda account_id, **kw: account_id)`` allows one at
a time per account. The key is computed when the task is enqueued, from the call's arguments, and
stored on the row (``Task.limit_key``).

Nothing here counts or decides in one process: this module only says what the limits are. The
claim (``bgtask.store.dialects``, ``Dialect.claim_limited``) enforces them inside one short
transaction that first locks the scopes' rows of ``bgtask_limit_state``, then counts what runs,
then claims at most the free slots, so two workers can never both take the last slot. A task
held back stays ``queued`` and due; it is claimed later, and being held back is not an attempt.

Every worker must know the same limits (the same settings and task code), as it must to run the
tasks at all: a worker that does not know a limit claims that scope's tasks like any others.

>>> @background(max_running=1, max_running_key=lambda account_id, **kw: account_id)
... def charge(account_id, amount): ...
>>> Rate.parse("100/m")
Rate(count=100, seconds=60.0)
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from django.core.exceptions import ImproperlyConfigured

from bgtask import conf

#: Longest stored key (``Task.limit_key``).
MAX_KEY_LENGTH = 255
PERIODS = {"s": 1.0, "m": 60.0, "h": 3600.0}
_RATE = re.compile(r"^\s*(\d+)\s*/\s*(\d*)\s*([smh])\s*$")
QUEUE_LIMIT_OPTIONS = ("max_running", "rate")
#: The decorator's limit options (decoration only: a limit belongs to the task, not one call).
TASK_LIMIT_OPTIONS = ("max_running", "max_running_key", "rate")


@dataclass(frozen=True)
class Rate:
    """At most ``count`` starts per ``seconds``, spaced evenly: one start every
    ``seconds / count`` (a generic cell rate algorithm, no bursts), across all workers.

    >>> Rate.parse("100/m").interval
    0.6
    """

    count: int
    seconds: float

    @property
    def interval(self) -> float:
        """Seconds between two starts."""
        return self.seconds / self.count

    @classmethod
    def parse(cls, value: Any, *, what: str = "rate") -> Rate:
        """``"N/s"``, ``"N/m"``, ``"N/h"`` (or ``"N/10s"``: N per 10 seconds); ``ValueError``
        naming ``what`` otherwise."""
        if isinstance(value, Rate):
            return value
        if not isinstance(value, str):
            raise TypeError(f'{what} must be a string like "100/m", got {value!r}.')
        match = _RATE.match(value)
        if match is None:
            raise ValueError(
                f'{what} must look like "100/m": a count, "/", then s, m or h (optionally with a '
                f'number before it, "5/10s"); got {value!r}.'
            )
        count, multiple, unit = int(match[1]), match[2], match[3]
        seconds = PERIODS[unit] * (int(multiple) if multiple else 1)
        if count < 1 or seconds <= 0:
            raise ValueError(f"{what} must allow at least 1 start per period, got {value!r}.")
        return cls(count, seconds)

    def __str__(self) -> str:
        """As it is written in settings: ``"100/m"``, or ``"5/10s"``."""
        for unit, seconds in PERIODS.items():
            if self.seconds == seconds:
                return f"{self.count}/{unit}"
        return f"{self.count}/{self.seconds:g}s"


def check_max_running(value: Any, *, what: str = "max_running") -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{what} must be an int of 1 or more, got {value!r}.")
    if value < 1:
        raise ValueError(
            f"{what} must be 1 or more, got {value}; pause the queue (bgtask.pause_queue) to "
            "run none."
        )
    return value


@dataclass(frozen=True)
class Limit:
    """The limits of one scope: ``kind`` ``"queue"`` or ``"task"``, and ``name``."""

    kind: str
    name: str
    max_running: int | None = None
    keyed: bool = False  # max_running counts per Task.limit_key
    rate: Rate | None = None

    @property
    def scope(self) -> str:
        """The scope's key in ``bgtask_limit_state`` (``"queue:payments"``). A name too long for
        the column ends in a digest of the whole, so two long names never share a row."""
        scope = f"{self.kind}:{self.name}"
        if len(scope) <= 255:
            return scope
        return f"{scope[:200]}#{hashlib.sha256(scope.encode()).hexdigest()}"

    def describe(self) -> str:
        parts = []
        if self.max_running is not None:
            per = " per key" if self.keyed else ""
            parts.append(f"at most {self.max_running} running{per}")
        if self.rate is not None:
            parts.append(f"{self.rate.count} starts per {self.rate.seconds:g} s ({self.rate})")
        return ", ".join(parts)


def queue_limits() -> dict[str, Limit]:
    """``BGTASK_QUEUE_LIMITS``, checked: queue name -> its Limit. ``ImproperlyConfigured``
    names what is wrong (system check ``bgtask.E002`` reports it before a worker starts)."""
    value = conf.get("BGTASK_QUEUE_LIMITS")
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ImproperlyConfigured(
            'BGTASK_QUEUE_LIMITS must be a dict of queue name -> {"max_running": N, "rate": '
            f'"N/m"}}, got {value!r}.'
        )
    limits = {}
    for queue, options in value.items():
        where = f"BGTASK_QUEUE_LIMITS[{queue!r}]"
        if not isinstance(queue, str) or not queue.strip() or len(queue) > 100:
            raise ImproperlyConfigured(
                f"BGTASK_QUEUE_LIMITS keys must be queue names (1 to 100 characters), got "
                f"{queue!r}."
            )
        if not isinstance(options, Mapping) or not options:
            raise ImproperlyConfigured(
                f'{where} must be a dict with "max_running" and/or "rate", got {options!r}.'
            )
        unknown = sorted(set(options) - set(QUEUE_LIMIT_OPTIONS))
        if unknown:
            raise ImproperlyConfigured(
                f"{where} has unknown option(s) {', '.join(map(repr, unknown))}; it takes "
                '"max_running" (an int) and "rate" ("100/m").'
            )
        try:
            max_running = options.get("max_running")
            if max_running is not None:
                max_running = check_max_running(max_running, what=f'{where}["max_running"]')
            rate = options.get("rate")
            if rate is not None:
                rate = Rate.parse(rate, what=f'{where}["rate"]')
        except (TypeError, ValueError) as exc:
            raise ImproperlyConfigured(str(exc)) from None
        if max_running is None and rate is None:
            raise ImproperlyConfigured(f'{where} sets neither "max_running" nor "rate".')
        limits[queue] = Limit("queue", queue, max_running, False, rate)
    return limits


@dataclass(frozen=True)
class LimitSet:
    """The limits a worker claims under: per queue and per task name. Empty: no limit is set,
    and the claim is exactly the one without limits."""

    queues: dict[str, Limit] = field(default_factory=dict)
    tasks: dict[str, Limit] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.queues or self.tasks)

    def for_queue(self, queue: str | None) -> LimitSet:
        """The limits that matter to a worker of ``queue`` (None: every queue)."""
        if queue is None:
            return self
        queues = {queue: self.queues[queue]} if queue in self.queues else {}
        return LimitSet(queues, self.tasks)

    def all(self) -> list[Limit]:
        """Every limit, in the order their state rows are locked (by scope), which is what keeps
        two claims from waiting on each other's locks in a circle."""
        return sorted([*self.queues.values(), *self.tasks.values()], key=lambda x: x.scope)
