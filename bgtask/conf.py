"""Every setting bgtask reads, with its default, in one place.

The two seed names (``MAX_ATTEMPTS``, ``MAX_RUN_TIME``) keep their django-background-tasks
spelling so existing settings files carry over; every setting bgtask adds starts with ``BGTASK_``.
Values are read on each access (not cached at import), so ``override_settings`` works.
"""

from __future__ import annotations

import math
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

#: name -> (default, one-line description). The README's settings table mirrors this dict.
DEFAULTS: dict[str, tuple[Any, str]] = {
    "MAX_ATTEMPTS": (25, "Attempts before a task is marked failed for good."),
    "MAX_RUN_TIME": (
        3600,
        "Seconds a task may run; past it, its lease is no longer renewed and it is rescued.",
    ),
    "BGTASK_LEASE_SECONDS": (
        60,
        "Lease of a cron/CLI worker's claimed tasks, renewed by its heartbeat while a task runs; "
        "a dead worker's task is rescued about this long after it died.",
    ),
    "BGTASK_CONCURRENCY": (
        1,
        "Tasks one run_batch runs at once: sync tasks on that many threads, async def tasks on "
        "one event loop (process_tasks --concurrency, run_batch(concurrency=)).",
    ),
    "BGTASK_CANCEL_CHECK_SECONDS": (
        1.0,
        "How often a worker with tasks running looks for cancel requests of them (one indexed "
        "query); a cancelled running task stops within about this long.",
    ),
    "BGTASK_EXIT_GRACE": (
        10.0,
        "Seconds process_tasks keeps trying, as it exits, to write what it owes a database that "
        "went away (outcomes, claims to hand back); keep it shorter than BGTASK_LEASE_SECONDS.",
    ),
    "BGTASK_QUEUE_LIMITS": (
        {},
        'Limits per queue that hold across every worker: {"payments": {"max_running": 5}, '
        '"mail": {"rate": "100/m"}} (see also @background(max_running=, rate=)).',
    ),
    "BGTASK_CLAIM_LIMIT": (100, "Most tasks one claim query takes; claims grow towards it."),
    "BGTASK_OUTCOME_BATCH": (
        50,
        "Most successes written by one statement; 1 writes each before the next task starts.",
    ),
    "BGTASK_OUTCOME_MAX_DELAY": (
        0.02,
        "Seconds a success may wait in its group before the group is written.",
    ),
    "BGTASK_ASYNC_COMMIT": (
        False,
        "PostgreSQL: commit outcomes without waiting for the WAL flush (faster; a server crash "
        "can lose the last moment's outcomes, which then run again).",
    ),
    "BGTASK_MAX_ARGS_BYTES": (65536, "Largest encoded arguments a task may carry, in bytes."),
    "BGTASK_MAX_RESULT_BYTES": (
        65536,
        "Largest encoded return value stored in result, in bytes; a larger one is not stored.",
    ),
    "BGTASK_DEFAULT_QUEUE": ("default", "Queue for tasks that do not name one."),
    "BGTASK_SQLITE_WAL": (True, "Switch SQLite databases to WAL mode on connect."),
    # Features
    "BGTASK_RETENTION": (
        7 * 24 * 3600,
        "Seconds (or a timedelta) finished tasks are kept before pruning; None keeps them forever.",
    ),
    "BGTASK_PRUNE_CHUNK_SIZE": (500, "Most finished tasks one pruning DELETE removes."),
    # Coming from django-background-tasks (read by manage.py import_background_tasks only)
    "BACKGROUND_TASK_PRIORITY_ORDERING": (
        "DESC",
        "django-background-tasks' priority order; ASC makes the import turn priorities round.",
    ),
    # Serverless
    "BGTASK_LAMBDA_SAFETY_MARGIN": (
        5.0,
        "Seconds of a Lambda invocation kept free after the batch: budget = remaining - margin.",
    ),
    "BGTASK_LAMBDA_LEASE_GRACE": (
        30.0,
        "Seconds after a Lambda invocation's hard deadline at which its task locks expire.",
    ),
    "BGTASK_WAKE_FUNCTION": (
        None,
        "Worker function name or ARN invoked (async) when a due task is enqueued; None: off.",
    ),
    "BGTASK_WAKE_INTERVAL": (5.0, "Fewest seconds between two wake-up invokes of one process."),
    "BGTASK_FANOUT_MAX": (
        0,
        "Extra async worker invocations a Lambda batch starts when it ends with a backlog; 0: off.",
    ),
    "BGTASK_WORKER_CONCURRENCY": (
        None,
        "The worker function's reserved concurrency; fan-out starts at most one fewer helpers. "
        "None or 0: no cap beyond BGTASK_FANOUT_MAX.",
    ),
    "BGTASK_METRICS_NAMESPACE": (
        None,
        "CloudWatch namespace of the Embedded Metric Format lines the worker prints; None: off.",
    ),
    "BGTASK_STATUS_TOKEN": (
        None,
        "Bearer token (16+ characters) that opens the JSON status endpoint besides the session "
        "of a user who may view tasks; None: none.",
    ),
    # Dashboard (issue 19): a host whose last batch is older than this is flagged stale.
    "BGTASK_WORKER_STALE_AFTER": (
        180,
        "Seconds after a host's last finished batch at which the dashboard flags it stale; set it "
        "above your schedule's interval (cron every minute: the default allows two missed runs).",
    ),
    # Integrations (issue 22): each also needs its library installed (bgtask[opentelemetry],
    # bgtask[sentry]); Sentry also needs sentry_sdk.init().
    "BGTASK_OPENTELEMETRY": (
        True,
        "A span per task execution in the enqueuing trace, when opentelemetry-api is installed.",
    ),
    "BGTASK_SENTRY": (
        True,
        "Failed tasks to Sentry with tags, retries as breadcrumbs, Crons check-ins for periodic "
        "tasks, when sentry-sdk is installed and initialised.",
    ),
    # Tests (issue 22)
    "BGTASK_IMMEDIATE": (
        False,
        "Run each enqueued task through run_batch when the transaction that wrote it commits "
        "(for tests; see bgtask.testing).",
    ),
    # Idle workers (issue 18)
    "BGTASK_LISTEN": (
        "auto",
        'PostgreSQL: idle workers LISTEN for enqueues and start them at once. "auto": on unless '
        "a test notification does not arrive (PgBouncer in transaction mode); False: poll.",
    ),
    "BGTASK_IDLE_POLL": (
        0.25,
        "Seconds between an idle worker's checks for new tasks when it cannot LISTEN "
        "(SQLite, MariaDB, PgBouncer): one primary-key probe each.",
    ),
    # Admin (issue 13): substring search reads every row, so it is opt-in.
    "BGTASK_ADMIN_FULL_SEARCH": (
        False,
        "Admin search also matches substrings of task names, arguments and errors (slow).",
    ),
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


def lease_seconds() -> float:
    return float(_positive_number("BGTASK_LEASE_SECONDS", integer=False))


def claim_limit() -> int:
    return int(_positive_number("BGTASK_CLAIM_LIMIT", integer=True))


def concurrency() -> int:
    value = get("BGTASK_CONCURRENCY")
    if isinstance(value, str) and value.strip().isdigit():  # from an environment variable
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ImproperlyConfigured(
            f"BGTASK_CONCURRENCY must be an int of 1 or more, got {value!r}."
        )
    return value


def cancel_check_seconds() -> float:
    return float(_positive_number("BGTASK_CANCEL_CHECK_SECONDS", integer=False))


def exit_grace() -> float:
    return _non_negative_number("BGTASK_EXIT_GRACE")


def outcome_batch() -> int:
    return int(_positive_number("BGTASK_OUTCOME_BATCH", integer=True))


def outcome_max_delay() -> float:
    return _non_negative_number("BGTASK_OUTCOME_MAX_DELAY")


def async_commit() -> bool:
    value = get("BGTASK_ASYNC_COMMIT")
    if not isinstance(value, bool):
        raise ImproperlyConfigured(f"BGTASK_ASYNC_COMMIT must be True or False, got {value!r}.")
    return value


def max_args_bytes() -> int:
    return int(_positive_number("BGTASK_MAX_ARGS_BYTES", integer=True))


def max_result_bytes() -> int:
    return int(_positive_number("BGTASK_MAX_RESULT_BYTES", integer=True))


def default_queue() -> str:
    return str(get("BGTASK_DEFAULT_QUEUE"))


def sqlite_wal() -> bool:
    return bool(get("BGTASK_SQLITE_WAL"))


def retention() -> timedelta | None:
    """How long succeeded and failed tasks are kept; ``None`` when pruning is switched off."""
    value = get("BGTASK_RETENTION")
    if value is None:
        return None
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = float(value)
    else:
        raise ImproperlyConfigured(
            f"BGTASK_RETENTION must be seconds, a timedelta or None, got {value!r}."
        )
    if not math.isfinite(seconds) or seconds < 0:
        raise ImproperlyConfigured(f"BGTASK_RETENTION must be 0 or more seconds, got {value!r}.")
    return timedelta(seconds=seconds)


def prune_chunk_size() -> int:
    return int(_positive_number("BGTASK_PRUNE_CHUNK_SIZE", integer=True))


def legacy_priority_ascending() -> bool:
    """Whether django-background-tasks ran lower priorities first (its setting, kept so the
    import command keeps the order)."""
    value = get("BACKGROUND_TASK_PRIORITY_ORDERING")
    if value not in ("ASC", "DESC"):
        raise ImproperlyConfigured(
            f'BACKGROUND_TASK_PRIORITY_ORDERING must be "ASC" or "DESC", got {value!r}.'
        )
    return bool(value == "ASC")


# -- Serverless -------------------------------------------------------------------------------


def _non_negative_number(name: str) -> float:
    value = get(name)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ImproperlyConfigured(f"{name} must be a finite number of seconds, got {value!r}.")
    if value < 0:
        raise ImproperlyConfigured(f"{name} must be 0 or more, got {value!r}.")
    return float(value)


def _optional_text(name: str) -> str | None:
    value = get(name)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ImproperlyConfigured(f"{name} must be a string or None, got {value!r}.")
    return value


def lambda_safety_margin() -> float:
    return _non_negative_number("BGTASK_LAMBDA_SAFETY_MARGIN")


def lambda_lease_grace() -> float:
    return _non_negative_number("BGTASK_LAMBDA_LEASE_GRACE")


def wake_function() -> str | None:
    return _optional_text("BGTASK_WAKE_FUNCTION")


def wake_interval() -> float:
    return _non_negative_number("BGTASK_WAKE_INTERVAL")


def worker_concurrency() -> int | None:
    value = get("BGTASK_WORKER_CONCURRENCY")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ImproperlyConfigured(
            f"BGTASK_WORKER_CONCURRENCY must be an int >= 0 or None, got {value!r}."
        )
    return value or None


def fanout_max() -> int:
    value = get("BGTASK_FANOUT_MAX")
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ImproperlyConfigured(f"BGTASK_FANOUT_MAX must be an int >= 0, got {value!r}.")
    return value


def metrics_namespace() -> str | None:
    return _optional_text("BGTASK_METRICS_NAMESPACE")


#: Fewest characters of BGTASK_STATUS_TOKEN: a short token can be guessed by trying, and the
#: endpoint has no lockout (check bgtask.E003 refuses a shorter one).
MIN_STATUS_TOKEN_LENGTH = 16


def status_token() -> str | None:
    """The status endpoint's bearer token, or ``None``; ``ImproperlyConfigured`` when it is shorter
    than ``MIN_STATUS_TOKEN_LENGTH`` (the message gives its length, never the token)."""
    value = _optional_text("BGTASK_STATUS_TOKEN")
    if value is not None and len(value.strip()) < MIN_STATUS_TOKEN_LENGTH:
        raise ImproperlyConfigured(
            f"BGTASK_STATUS_TOKEN is {len(value.strip())} characters long; it must have at least "
            f"{MIN_STATUS_TOKEN_LENGTH}, or it can be guessed. Make one with "
            '`python -c "import secrets; print(secrets.token_urlsafe(32))"`, or leave it unset '
            "(None or empty) to open the status endpoint to admin sessions only."
        )
    return value


def worker_stale_after() -> float:
    return _positive_number("BGTASK_WORKER_STALE_AFTER", integer=False)


def opentelemetry() -> bool:
    return bool(get("BGTASK_OPENTELEMETRY"))


def sentry() -> bool:
    return bool(get("BGTASK_SENTRY"))


def immediate() -> bool:
    value = get("BGTASK_IMMEDIATE")
    if not isinstance(value, bool):
        raise ImproperlyConfigured(f"BGTASK_IMMEDIATE must be True or False, got {value!r}.")
    return value


def admin_full_search() -> bool:
    return bool(get("BGTASK_ADMIN_FULL_SEARCH"))


def listen() -> bool | str:
    """``BGTASK_LISTEN``: True, False or ``"auto"``."""
    value = get("BGTASK_LISTEN")
    if value is True or value is False:
        return bool(value)
    if value == "auto":
        return "auto"
    raise ImproperlyConfigured(f'BGTASK_LISTEN must be True, False or "auto", got {value!r}.')


def idle_poll() -> float:
    return float(_positive_number("BGTASK_IDLE_POLL", integer=False))
