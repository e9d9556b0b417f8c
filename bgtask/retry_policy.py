"""Per-task retry policy: how many attempts, which errors are worth retrying, how long to wait.

>>> @background(max_attempts=5, retry_on=(ConnectionError, TimeoutError), backoff=30)
... def charge_card(order_id): ...
>>> charge_card(42, max_attempts=2)   # max_attempts may also be given per call

Defaults are the seed's: ``MAX_ATTEMPTS`` attempts, every error retried, ``attempts ** 4 + 5``
seconds between them. ``bgtask.exceptions.InvalidTaskError`` (or a subclass) raised by a task is
never retried, whatever the policy says.

``max_attempts`` is stored on each row when it is enqueued (so that the rescue of an abandoned
task, which runs no task code, counts against the same limit); ``retry_on`` and ``backoff`` are
code, so they are read from the registered function when the task fails.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from bgtask import conf
from bgtask.enqueue.scheduling import retry_delay
from bgtask.exceptions import InvalidTaskError

logger = logging.getLogger("bgtask.retry_policy")

#: ``@background`` options this module owns.
POLICY_OPTIONS = ("max_attempts", "retry_on", "backoff")
#: Of those, the ones a single call may override (stored on the row).
CALL_OPTIONS = ("max_attempts",)
MAX_ATTEMPTS_LIMIT = 2**31 - 1

Backoff = int | float | timedelta | Callable[[int], int | float | timedelta]


def check_max_attempts(value: Any) -> int | None:
    """A whole number of attempts, at least 1, or ``None`` (the ``MAX_ATTEMPTS`` setting)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"max_attempts must be a whole number (1 or more), got {value!r}.")
    if not 1 <= value <= MAX_ATTEMPTS_LIMIT:
        raise ValueError(
            f"max_attempts must be between 1 and {MAX_ATTEMPTS_LIMIT} (1: never retried), "
            f"got {value}."
        )
    return value


def check_retry_on(value: Any) -> tuple[type[BaseException], ...] | None:
    """An exception class or a non-empty tuple/list of them, as a tuple; ``None``: every error."""
    if value is None:
        return None
    classes = tuple(value) if isinstance(value, (tuple, list)) else (value,)
    if not classes:
        raise ValueError(
            "retry_on must name at least one exception class; for no retries at all use "
            "max_attempts=1."
        )
    for item in classes:
        if not (isinstance(item, type) and issubclass(item, BaseException)):
            raise TypeError(
                f"retry_on takes exception classes (e.g. retry_on=(ConnectionError,)), "
                f"got {item!r}."
            )
    return classes


def check_backoff(value: Any) -> Backoff | None:
    """Seconds (a number 0 or more, or a ``timedelta``) or a callable ``f(attempts)``."""
    if value is None or callable(value):
        return value  # type: ignore[no-any-return]
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = value
    else:
        raise TypeError(
            f"backoff must be seconds (a number or a timedelta) or a callable taking the number "
            f"of attempts so far, got {value!r}."
        )
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"backoff must be a finite number of seconds, 0 or more, got {value!r}.")
    return value  # type: ignore[no-any-return]


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """What a task's decorator said; ``None`` fields fall back to the seed's behaviour."""

    max_attempts: int | None = None
    retry_on: tuple[type[BaseException], ...] | None = None
    backoff: Backoff | None = None

    @classmethod
    def from_options(cls, options: dict[str, Any]) -> RetryPolicy:
        return cls(
            max_attempts=check_max_attempts(options.get("max_attempts")),
            retry_on=check_retry_on(options.get("retry_on")),
            backoff=check_backoff(options.get("backoff")),
        )

    def should_retry(
        self, error: BaseException, attempts: int, row_max_attempts: int | None = None
    ) -> bool:
        """Whether a task that has just failed its ``attempts``-th attempt with ``error`` runs
        again. ``row_max_attempts`` is the row's own limit (its call's or decorator's)."""
        if isinstance(error, InvalidTaskError):
            return False
        if self.retry_on is not None and not isinstance(error, self.retry_on):
            return False
        return attempts < attempt_limit(row_max_attempts)

    def delay(self, attempts: int) -> timedelta:
        """How long to wait after the ``attempts``-th failure; the seed's backoff by default.

        A backoff callable that raises or returns something unusable is logged and replaced by
        the seed's backoff: the task's failure must still be recorded."""
        backoff = self.backoff
        if backoff is None:
            return retry_delay(attempts)
        if callable(backoff):
            try:
                backoff = backoff(attempts)
                check_backoff(backoff)
                if backoff is None or callable(backoff):
                    raise TypeError(f"it returned {backoff!r}")
            except Exception as exc:
                logger.error(
                    "A backoff callable failed for attempt %d (%s); using the default backoff.",
                    attempts,
                    exc,
                )
                return retry_delay(attempts)
        if isinstance(backoff, timedelta):
            return backoff
        return timedelta(seconds=backoff)


DEFAULT = RetryPolicy()


def attempt_limit(row_max_attempts: int | None) -> int:
    """The attempts a row gets: its own ``max_attempts``, else the ``MAX_ATTEMPTS`` setting."""
    return row_max_attempts if row_max_attempts is not None else conf.max_attempts()


def policy_for(function: object) -> RetryPolicy:
    """The policy of a registered task function (the default for anything without one)."""
    policy = getattr(function, "retry_policy", None)
    return policy if isinstance(policy, RetryPolicy) else DEFAULT
