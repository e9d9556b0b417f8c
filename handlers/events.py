"""The Lambda event shapes the handlers accept, parsed once at the edge with clear errors."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from bgtask.aws import FANOUT_SOURCE, WAKE_SOURCE

SCHEDULE_SOURCE = "bgtask.schedule"  # the Input template.yaml gives the EventBridge schedule
MAX_QUEUE_LENGTH = 100

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


def _optional_queue(event: dict[str, Any]) -> str | None:
    queue = event.get("queue")
    if queue is None:
        return None
    if not isinstance(queue, str) or not queue.strip() or len(queue) > MAX_QUEUE_LENGTH:
        raise UnexpectedEvent(
            f'"queue" must be a queue name (1 to {MAX_QUEUE_LENGTH} characters) or null, '
            f"got {queue!r}."
        )
    return queue


def _optional_duration(event: dict[str, Any]) -> float | None:
    duration = event.get("duration")
    if duration is None:
        return None
    if (
        isinstance(duration, bool)
        or not isinstance(duration, (int, float))
        or not math.isfinite(duration)
        or duration <= 0
    ):
        raise UnexpectedEvent(
            f'"duration" must be a number of seconds above 0 or null, got {duration!r}.'
        )
    return float(duration)


def _refuse_unknown_keys(event: dict[str, Any], allowed: set[str], shape: str) -> None:
    unknown = sorted(set(event) - allowed)
    if unknown:
        raise UnexpectedEvent(
            f"Unexpected key(s) {unknown} in a {shape}; it takes only {sorted(allowed)}."
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
                f"The worker got an EventBridge event of detail-type {event.get('detail-type')!r}"
                f'; only "Scheduled Event" starts it. Expected {WORKER_EVENTS}.'
            )
        return WorkerRequest(source="scheduled-event", scheduled_time=event.get("time"))
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
            scheduled_time=event.get("scheduled_time"),
        )
    if source in (FANOUT_SOURCE, WAKE_SOURCE):
        _refuse_unknown_keys(event, {"source", "queue"}, f"{source} invocation")
        kind = "fanout" if source == FANOUT_SOURCE else "wake"
        # Helpers never start helpers: one tick starts at most 1 + BGTASK_FANOUT_MAX workers.
        return WorkerRequest(source=kind, queue=_optional_queue(event), allow_fanout=False)
    if source is not None:
        raise UnexpectedEvent(
            f"The worker got an event from source {source!r}; expected {WORKER_EVENTS}."
        )
    if set(event) - {"duration", "queue"}:
        raise UnexpectedEvent(
            f"The worker got an event with keys {sorted(event)}; expected {WORKER_EVENTS}."
        )
    return WorkerRequest(
        source="direct", queue=_optional_queue(event), duration=_optional_duration(event)
    )
