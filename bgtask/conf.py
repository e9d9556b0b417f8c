"""Every setting bgtask reads, with its default, in one place.

The two seed names (``MAX_ATTEMPTS``, ``MAX_RUN_TIME``) keep their django-background-tasks
spelling so existing settings files carry over; every setting bgtask adds starts with ``BGTASK_``.
Values are read on each access (not cached at import), so ``override_settings`` works.
"""

from __future__ import annotations

import math
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

#: name -> (default, one-line description). The README's settings table mirrors this dict.
DEFAULTS: dict[str, tuple[Any, str]] = {
    "MAX_ATTEMPTS": (25, "Attempts before a task is marked failed for good."),
    "MAX_RUN_TIME": (3600, "Seconds a task may stay locked before it is taken as abandoned."),
    "BGTASK_CLAIM_LIMIT": (100, "Most tasks one claim query takes; claims grow towards it."),
    "BGTASK_MAX_ARGS_BYTES": (65536, "Largest encoded arguments a task may carry, in bytes."),
    "BGTASK_MAX_RESULT_BYTES": (
        65536,
        "Largest encoded return value stored in result, in bytes; a larger one is not stored.",
    ),
    "BGTASK_DEFAULT_QUEUE": ("default", "Queue for tasks that do not name one."),
    "BGTASK_SQLITE_WAL": (True, "Switch SQLite databases to WAL mode on connect."),
}


def get(name: str) -> Any:
    default, _ = DEFAULTS[name]
    return getattr(settings, name, default)


def _positive_number(name: str, *, integer: bool) -> float:
    value = get(name)
    kind = int if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kind) or not math.isfinite(value):
        raise ImproperlyConfigured(f"{name} must be a finite positive number, got {value!r}.")
    if value <= 0:
        raise ImproperlyConfigured(f"{name} must be greater than 0, got {value!r}.")
    return value


def max_attempts() -> int:
    return int(_positive_number("MAX_ATTEMPTS", integer=True))


def max_run_time() -> float:
    return float(_positive_number("MAX_RUN_TIME", integer=False))


def claim_limit() -> int:
    return int(_positive_number("BGTASK_CLAIM_LIMIT", integer=True))


def max_args_bytes() -> int:
    return int(_positive_number("BGTASK_MAX_ARGS_BYTES", integer=True))


def max_result_bytes() -> int:
    return int(_positive_number("BGTASK_MAX_RESULT_BYTES", integer=True))


def default_queue() -> str:
    return str(get("BGTASK_DEFAULT_QUEUE"))


def sqlite_wal() -> bool:
    return bool(get("BGTASK_SQLITE_WAL"))
