"""The batch line's counts as JSON fields of its log event, not a dict inside the message.

On Lambda the runtime writes each log event as one JSON object, with every extra attribute of the
record as a field of its own (awslambdaric's ``JsonFormatter``). bgtask's batch line
(``bgtask.batch``: ``"Batch %s: %s"`` with the worker id and ``BatchResult.as_dict()``) passes its
counts as a format argument, so they would arrive as a Python dict inside ``message``. This filter
lifts them out: the message becomes ``Batch <worker id> done.`` and ``succeeded``, ``failed``,
``retried``, ... become fields a metric filter or Logs Insights can read
(``{ $.failed > 0 }``). Records without such counts pass unchanged.
"""

from __future__ import annotations

import logging

# The key that marks BatchResult.as_dict() among a record's arguments.
COUNTS_MARKER = "succeeded"


class BatchCountsFilter(logging.Filter):
    """``LOGGING`` filter for the ``bgtask.batch`` logger (see handlers/project/settings.py)."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args if isinstance(record.args, tuple) else ()
        counts = next((a for a in args if isinstance(a, dict) and COUNTS_MARKER in a), None)
        if counts is None:
            return True
        others = tuple(a for a in args if a is not counts)
        for key, value in counts.items():
            if key not in record.__dict__:  # never overwrite what logging itself set
                setattr(record, key, value)
        worker_id = others[0] if others else None
        record.msg, record.args = (
            ("Batch %s done.", (worker_id,)) if others else ("Batch done.", ())
        )
        if worker_id is not None:
            record.workerId = worker_id
        return True
