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

The span is not made the current span: with a concurrent worker the outcome signal may come from
another thread, where the context could not be detached.
"""

from __future__ import annotations

import json
import threading
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


def connect() -> bool:
    """Connect the receivers and the enqueue hook; False (and nothing done) without the library
    or with ``BGTASK_OPENTELEMETRY = False``."""
    if not AVAILABLE or not conf.opentelemetry():
        # Off at start-up: nothing connected, so a task pays no signal dispatch for it.
        return False
    trace_context.install(capture_context)
    signals.task_started.connect(on_started, dispatch_uid="bgtask.otel.started")
    signals.task_succeeded.connect(on_succeeded, dispatch_uid="bgtask.otel.succeeded")
    signals.task_retried.connect(on_retried, dispatch_uid="bgtask.otel.retried")
    signals.task_failed.connect(on_failed, dispatch_uid="bgtask.otel.failed")
    return True


def disconnect() -> None:
    """Undo ``connect()`` (for tests and benchmarks)."""
    trace_context.install(None)
    for signal, uid in (
        (signals.task_started, "started"),
        (signals.task_succeeded, "succeeded"),
        (signals.task_retried, "retried"),
        (signals.task_failed, "failed"),
    ):
        signal.disconnect(dispatch_uid=f"bgtask.otel.{uid}")
