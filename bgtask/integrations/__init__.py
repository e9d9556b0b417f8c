"""Optional integrations, each on when its library is installed (and, for Sentry, initialised):

- ``opentelemetry`` (``bgtask[opentelemetry]``): a span per task execution that joins the trace of
  the code that enqueued it.
- ``sentry`` (``bgtask[sentry]``): a failing task captured once with its tags, retries as
  breadcrumbs, Crons check-ins for ``@periodic`` tasks.

Both hook in through bgtask's signals (``bgtask.signals``), connected by ``BgtaskConfig.ready``;
without the library, the module's import of it fails once at start-up and nothing is connected.
Per-task state is kept by task id, never per thread: a concurrent worker may send a task's outcome
signal from another thread than its ``task_started``.
"""
