"""The trace context an enqueue stores with its row: a hook, filled by an integration.

``bgtask.integrations.opentelemetry`` installs a function that returns the current context as
text (W3C ``traceparent``/``tracestate``, as JSON); without it every row stores NULL and this
costs one attribute read per row. The enqueue side never imports a tracing library.
"""

from __future__ import annotations

from collections.abc import Callable

_capture: Callable[[], str | None] | None = None


def install(capture: Callable[[], str | None] | None) -> None:
    """Use ``capture`` for every enqueue from now on (``None``: store no context)."""
    global _capture
    _capture = capture


def current() -> str | None:
    """The context to store with a row written now, or ``None``."""
    capture = _capture
    return capture() if capture is not None else None
