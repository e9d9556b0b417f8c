"""Optional integrations, each on when its library is installed (and, for Sentry, initialised):

- ``opentelemetry`` (``bgtask[opentelemetry]``): a span per task execution that joins the trace of
  the code that enqueued it, and a span per claim and per group of successes written.
- ``sentry`` (``bgtask[sentry]``): a failing task captured once with its tags, retries as
  breadcrumbs, Crons check-ins for ``@periodic`` tasks.

Both hook in through bgtask's signals (``bgtask.signals``), connected by ``BgtaskConfig.ready``;
without the library, the module's import of it fails once at start-up and nothing is connected.
Per-task state is kept by task id, never per thread: a concurrent worker may send a task's outcome
signal from another thread than its ``task_started``. A receiver never raises (``guarded``): a
signal receiver that raised would stop the batch, and no tracing or error report is worth that.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable

logger = logging.getLogger("bgtask.integrations")


def guarded[**P](receiver: Callable[P, None]) -> Callable[P, None]:
    """Log, never raise, whatever goes wrong inside an integration's receiver or hook."""

    @functools.wraps(receiver)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> None:
        try:
            receiver(*args, **kwargs)
        except Exception:
            logger.warning(
                "%s failed; the task is not affected.", receiver.__qualname__, exc_info=True
            )

    return wrapper


def describe(error: BaseException) -> str:
    """``Type: message``, or the type alone when the exception cannot be shown."""
    try:
        return f"{type(error).__name__}: {error}"
    except Exception:
        return type(error).__name__


__all__ = ["describe", "guarded", "logger"]
