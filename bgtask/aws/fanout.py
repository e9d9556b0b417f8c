"""Backlog fan-out: a Lambda batch that ran out of time with work left starts helpers.

Helpers are invoked with ``{"source": "bgtask.fanout"}`` and do not fan out themselves, so one
scheduled tick starts at most ``1 + BGTASK_FANOUT_MAX`` workers and a backlog can never multiply
invocations without bound. With ``BGTASK_WORKER_CONCURRENCY`` (the function's reserved
concurrency) it starts no more than the other slots: a helper beyond them would only be throttled
and, once stale, land in the dead-letter queue.
"""

from __future__ import annotations

import logging

from bgtask import conf
from bgtask.aws import FANOUT_SOURCE
from bgtask.aws.client import invoke_async
from bgtask.web.status import due_count

logger = logging.getLogger("bgtask.aws")


def fan_out(function_name: str, queue: str | None, max_extra: int) -> int:
    """Invoke up to ``max_extra`` workers (no more than tasks are due); return how many started.

    >>> fan_out("bgtask-worker", None, 4)
    4
    """
    if max_extra <= 0:
        return 0
    wanted = min(max_extra, due_count(queue))
    payload: dict[str, object] = {"source": FANOUT_SOURCE}
    if queue is not None:
        payload["queue"] = queue
    started = sum(invoke_async(function_name, payload) for _ in range(wanted))
    if started:
        logger.info("Backlog: started %d extra worker invocation(s) of %s.", started, function_name)
    return started


def max_helpers() -> int:
    """How many helpers one batch may start: ``BGTASK_FANOUT_MAX``, less when the worker's
    reserved concurrency (``BGTASK_WORKER_CONCURRENCY``, this invocation included) is smaller."""
    wanted = conf.fanout_max()
    concurrency = conf.worker_concurrency()
    if concurrency is not None:
        wanted = min(wanted, concurrency - 1)
    return max(wanted, 0)
