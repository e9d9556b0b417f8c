"""The Lambda event shapes the handlers accept, parsed once at the edge with clear errors."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from bgtask.aws import FANOUT_SOURCE, WAKE_SOURCE

SCHEDULE_SOURCE = "bgtask.schedule"  # the Input template.yaml gives the EventBridge schedule
MAX_QUEUE_LENGTH = 100
# No Lambda invocation runs longer than 15 minutes: a longer duration is a mistake, not a wish.
MAX_DURATION_SECONDS = 900
MAX_SCHEDULED_TIME_LENGTH = 64

WORKER_EVENTS = (
    'an EventBridge Scheduler Input {"source": "bgtask.schedule", ...} (see template.yaml), '
    'an EventBridge "Scheduled Event" (source "aws.events"), '
    'or a direct invocation {"duration": seconds, "queue": name} with both keys optional'
)


class UnexpectedEvent(ValueError):
    """The event is not one this handler accepts; the message says what it expected."""


@dataclass(frozen=True)
class WorkerRequest:
    """What one worker invocation was asked to do."""

    source: str  # "schedule", "scheduled-event", "direct", "fanout" or "wake"
    queue: str | None = None
    duration: float | None = None
    allow_fanout: bool = True
    scheduled_time: str | None = None


def _shown(value: Any) -> str:
    """A value as an error message shows it: its repr, cut short (an event may be megabytes)."""
    text = repr(value)
    return text if len(text) <= 80 else f"{text[:80]}... ({len(text)} characters)"


def _optional_queue(event: dict[str, Any]) -> str | None:
    queue = event.get("queue")
    if queue is None:
        return None
    # Control characters (NUL above all, which PostgreSQL refuses mid-query) are never in a name.
    if (
        not isinstance(queue, str)
        or not queue.strip()
        or len(queue) > MAX_QUEUE_LENGTH
        or not queue.isprintable()
    ):
        raise UnexpectedEvent(
            f'"queue" must be a queue name (1 to {MAX_QUEUE_LENGTH} printable characters) or '
            f"null, got {_shown(queue)}."
        )
    return queue


def _optional_duration(event: dict[str, Any]) -> float | None:
    duration = event.get("duration")
    if duration is None:
        return None
    # Compared as given, never converted first: float(10**400) raises OverflowError.
    if (
        isinstance(duration, bool)
        or not isinstance(duration, (int, float))
        or (isinstance(duration, float) and not math.isfinite(duration))
        or not 0 < duration <= MAX_DURATION_SECONDS
    ):
        raise UnexpectedEvent(
            f'"duration" must be a number of seconds above 0 and at most {MAX_DURATION_SECONDS} '
            f"(the longest Lambda invocation) or null, got {_shown(duration)}."
        )
    return float(duration)


def _optional_scheduled_time(event: dict[str, Any], key: str) -> str | None:
    # Echoed into the summary and the log line, so it is held to what the scheduler sends.
    value = event.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > MAX_SCHEDULED_TIME_LENGTH:
        raise UnexpectedEvent(
            f'"{key}" must be a timestamp string (at most {MAX_SCHEDULED_TIME_LENGTH} '
            f"characters) or null, got {_shown(value)}."
        )
    return value


def _refuse_unknown_keys(event: dict[str, Any], allowed: set[str], shape: str) -> None:
    unknown = sorted(map(str, set(event) - allowed))
    if unknown:
        raise UnexpectedEvent(
            f"Unexpected key(s) {_shown(unknown)} in a {shape}; it takes only {sorted(allowed)}."
        )


def parse_worker_event(event: Any) -> WorkerRequest:
    """Accept the worker's event shapes; raise ``UnexpectedEvent`` naming them for anything else.

    >>> parse_worker_event({"queue": "emails"})
    WorkerRequest(source='direct', queue='emails', duration=None, allow_fanout=True, ...)
    """
    if event is None:
        event = {}
    if not isinstance(event, dict):
        raise UnexpectedEvent(
            f"The worker got a {type(event).__name__} event; expected {WORKER_EVENTS}."
        )
    source = event.get("source")
    if source == "aws.events":
        if event.get("detail-type") != "Scheduled Event":
            raise UnexpectedEvent(
                "The worker got an EventBridge event of detail-type "
                f"{_shown(event.get('detail-type'))}"
                f'; only "Scheduled Event" starts it. Expected {WORKER_EVENTS}.'
            )
        return WorkerRequest(
            source="scheduled-event", scheduled_time=_optional_scheduled_time(event, "time")
        )
    if source == SCHEDULE_SOURCE:
        _refuse_unknown_keys(
            event,
            {"source", "queue", "duration", "scheduled_time", "execution_id"},
            "scheduler Input",
        )
        return WorkerRequest(
            source="schedule",
            queue=_optional_queue(event),
            duration=_optional_duration(event),
            scheduled_time=_optional_scheduled_time(event, "scheduled_time"),
        )
    if source in (FANOUT_SOURCE, WAKE_SOURCE):
        _refuse_unknown_keys(event, {"source", "queue"}, f"{source} invocation")
        kind = "fanout" if source == FANOUT_SOURCE else "wake"
        # Helpers never start helpers: one tick starts at most 1 + BGTASK_FANOUT_MAX workers.
        return WorkerRequest(source=kind, queue=_optional_queue(event), allow_fanout=False)
    if source is not None:
        raise UnexpectedEvent(
            f"The worker got an event from source {_shown(source)}; expected {WORKER_EVENTS}."
        )
    if set(event) - {"duration", "queue"}:
        raise UnexpectedEvent(
            f"The worker got an event with keys {_shown(sorted(map(str, event)))}; "
            f"expected {WORKER_EVENTS}."
        )
    return WorkerRequest(
        source="direct", queue=_optional_queue(event), duration=_optional_duration(event)
    )
