"""OpenTelemetry: a CONSUMER span per task execution, in the trace of the code that enqueued it.

On when ``opentelemetry-api`` is installed (``bgtask[opentelemetry]``) and ``BGTASK_OPENTELEMETRY``
is true (the default); spans go wherever the application's tracer provider sends them (none is
configured here). At enqueue, the current context is stored with the row (``Task.trace_context``,
W3C ``traceparent``/``tracestate``); the task's span has that context as its parent and as a link,
so it shows in the request's trace. Attributes follow the messaging semantic conventions
(``messaging.system`` = ``bgtask``, ``messaging.operation.type`` = ``process``,
``messaging.destination.name`` = the queue, ``messaging.message.id`` = the task id) plus
``bgtask.task.name``, ``bgtask.task.attempt`` and ``bgtask.task.outcome``
(``succeeded``/``retried``/``failed``); an error is recorded on the span with status ERROR.

The worker's own statements are spans too, recorded after the fact with their measured start and
end (from the ``tasks_claimed`` and ``outcomes_written`` signals): ``bgtask claim``, a CLIENT span
per claim that took tasks (``messaging.operation.type`` = ``receive``,
``messaging.batch.message_count`` = how many, ``messaging.destination.name`` when the batch drains
one queue, ``bgtask.worker.id``), and ``bgtask outcome group``, an INTERNAL span per group of
successes written in one statement (``messaging.operation.type`` = ``settle``,
``messaging.batch.message_count`` = the rows in the group, ``bgtask.outcomes.written`` = how many
were written). They are children of the span current where ``run_batch`` was called (a traced
Lambda invocation's, say), else roots.

The task's span is not made the current span: with a concurrent worker the outcome signal may
come from another thread, where the context could not be detached.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

try:
    from opentelemetry import propagate, trace
    from opentelemetry.trace import Link, SpanKind, Status, StatusCode
except ImportError:  # the extra is not installed: connect() does nothing
    AVAILABLE = False
else:
    AVAILABLE = True

from bgtask import __version__, conf, signals
from bgtask.enqueue import trace_context
from bgtask.integrations import describe, guarded, logger
from bgtask.models import Task

SYSTEM = "bgtask"
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
ONE_MICROSECOND = timedelta(microseconds=1)

_spans: dict[int, Any] = {}  # task id -> its open span
_lock = threading.Lock()
_tracer: Any = None


def _get_tracer() -> Any:
    # Looked up once: a tracer taken before the application sets its provider is a proxy that
    # follows the provider set later.
    global _tracer
    if _tracer is None:
        _tracer = trace.get_tracer("bgtask", __version__)
    return _tracer


def capture_context() -> str | None:
    """The current trace context as JSON text, or None outside a trace (stored with the row)."""
    if not conf.opentelemetry():
        return None
    carrier: dict[str, str] = {}
    try:
        propagate.inject(carrier)
    except Exception:  # a propagator's bug must not refuse the enqueue
        logger.warning("Could not read the trace context; stored none.", exc_info=True)
        return None
    return json.dumps(carrier, separators=(",", ":")) if carrier else None


def _parent(stored: str | None) -> Any:
    if not stored:
        return None
    try:
        carrier = json.loads(stored)
    except ValueError:
        return None  # a row written by hand: the span starts a trace of its own
    return propagate.extract(carrier) if isinstance(carrier, dict) else None


@guarded
def on_started(sender: Any, task: Task, **kwargs: Any) -> None:
    if not conf.opentelemetry():
        return
    parent = _parent(task.trace_context)
    links = []
    if parent is not None:
        origin = trace.get_current_span(parent).get_span_context()
        if origin.is_valid:
            links.append(Link(origin, {"bgtask.link": "enqueued"}))
    span = _get_tracer().start_span(
        f"process {task.task_name}",
        context=parent,
        kind=SpanKind.CONSUMER,
        links=links,
        attributes={
            "messaging.system": SYSTEM,
            "messaging.operation.type": "process",
            "messaging.operation.name": "process",
            "messaging.destination.name": task.queue,
            "messaging.message.id": str(task.pk),
            "bgtask.task.name": task.task_name,
            "bgtask.task.attempt": task.attempts + 1,
        },
    )
    with _lock:
        _spans[task.pk] = span


def _finish(task: Task, outcome: str, error: BaseException | None) -> None:
    with _lock:
        span = _spans.pop(task.pk, None)
    if span is None:  # started before the integration was on, or never started (undecodable)
        return
    try:
        span.set_attribute("bgtask.task.outcome", outcome)
        if error is not None:
            span.set_status(Status(StatusCode.ERROR, describe(error)))
            span.record_exception(error)  # str() of the error may raise: after the status
    finally:
        span.end()


@guarded
def on_succeeded(sender: Any, task: Task, **kwargs: Any) -> None:
    _finish(task, "succeeded", None)


@guarded
def on_retried(sender: Any, task: Task, error: BaseException | None = None, **kwargs: Any) -> None:
    _finish(task, "retried", error)


@guarded
def on_failed(sender: Any, task: Task, error: BaseException | None = None, **kwargs: Any) -> None:
    _finish(task, "failed", error)


def _nanoseconds(moment: datetime) -> int:
    """An aware datetime as OpenTelemetry's timestamp: integer nanoseconds since the epoch."""
    return (moment - EPOCH) // ONE_MICROSECOND * 1000


def _statement_span(
    name: str,
    kind: Any,
    started: datetime,
    finished: datetime,
    attributes: dict[str, Any],
) -> None:
    span = _get_tracer().start_span(
        name,
        kind=kind,
        attributes={"messaging.system": SYSTEM, **attributes},
        start_time=_nanoseconds(started),
    )
    span.end(end_time=_nanoseconds(finished))


@guarded
def on_claimed(
    sender: Any,
    tasks: Sequence[Task],
    worker_id: str,
    queue: str | None,
    started: datetime,
    finished: datetime,
    **kwargs: Any,
) -> None:
    if not conf.opentelemetry():
        return
    attributes: dict[str, Any] = {
        "messaging.operation.type": "receive",
        "messaging.operation.name": "claim",
        "messaging.batch.message_count": len(tasks),
        "bgtask.worker.id": worker_id,
    }
    if queue is not None:
        attributes["messaging.destination.name"] = queue
    _statement_span("bgtask claim", SpanKind.CLIENT, started, finished, attributes)


@guarded
def on_outcomes_written(
    sender: Any,
    count: int,
    written: int,
    worker_id: str,
    started: datetime,
    finished: datetime,
    **kwargs: Any,
) -> None:
    if not conf.opentelemetry():
        return
    attributes = {
        "messaging.operation.type": "settle",
        "messaging.operation.name": "outcome group",
        "messaging.batch.message_count": count,
        "bgtask.outcomes.written": written,
        "bgtask.worker.id": worker_id,
    }
    _statement_span("bgtask outcome group", SpanKind.INTERNAL, started, finished, attributes)


_RECEIVERS = (
    ("task_started", on_started, "started"),
    ("task_succeeded", on_succeeded, "succeeded"),
    ("task_retried", on_retried, "retried"),
    ("task_failed", on_failed, "failed"),
    ("tasks_claimed", on_claimed, "claimed"),
    ("outcomes_written", on_outcomes_written, "outcomes_written"),
)


def connect() -> bool:
    """Connect the receivers and the enqueue hook; False (and nothing done) without the library
    or with ``BGTASK_OPENTELEMETRY = False``."""
    if not AVAILABLE or not conf.opentelemetry():
        # Off at start-up: nothing connected, so a task pays no signal dispatch for it.
        return False
    trace_context.install(capture_context)
    for name, receiver, uid in _RECEIVERS:
        getattr(signals, name).connect(receiver, dispatch_uid=f"bgtask.otel.{uid}")
    return True


def disconnect() -> None:
    """Undo ``connect()`` (for tests and benchmarks)."""
    trace_context.install(None)
    for name, _, uid in _RECEIVERS:
        getattr(signals, name).disconnect(dispatch_uid=f"bgtask.otel.{uid}")
