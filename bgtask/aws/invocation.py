"""One Lambda worker invocation: a ``run_batch`` sized to the time Lambda has left.

The budget is the invocation's remaining time less ``BGTASK_LAMBDA_SAFETY_MARGIN``; the lease of
every task claimed expires at the invocation's hard deadline plus ``BGTASK_LAMBDA_LEASE_GRACE``,
so a task whose invocation was killed at its timeout is claimable again soon after, instead of
after ``MAX_RUN_TIME``.

>>> run_invocation(remaining_seconds=60.0, function_name="bgtask-worker")
{'ran': True, 'budget': 55.0, 'succeeded': 12, ..., 'fanned_out': 0}
"""

from __future__ import annotations

import logging
from datetime import timedelta

from bgtask import clock, conf
from bgtask.aws.fanout import fan_out, max_helpers
from bgtask.aws.metrics import emit_batch_metrics
from bgtask.worker.batch import run_batch

logger = logging.getLogger("bgtask.aws")


def run_invocation(
    remaining_seconds: float,
    *,
    queue: str | None = None,
    duration: float | None = None,
    function_name: str | None = None,
    allow_fanout: bool = True,
    request_id: str | None = None,
) -> dict[str, object]:
    """Run one batch within the invocation's time; return a JSON-serialisable summary.

    ``duration`` caps the budget further. ``function_name`` (the running function) is what
    fan-out invokes when the batch ends with its budget spent and tasks still due;
    ``allow_fanout=False`` for invocations that were themselves started by a fan-out.
    ``request_id`` (the invocation's ``aws_request_id``) is written into the metrics line.

    The budget is ``remaining_seconds - BGTASK_LAMBDA_SAFETY_MARGIN``; every task claimed is
    leased until the invocation's deadline plus ``BGTASK_LAMBDA_LEASE_GRACE``. The summary holds
    the ``BatchResult`` counts, ``budget``, ``ran`` and ``fanned_out``.

    >>> def handler(event, context):
    ...     return run_invocation(
    ...         context.get_remaining_time_in_millis() / 1000, function_name=context.function_name
    ...     )
    """
    # On the database's clock, like every lease (bgtask.clock).
    hard_deadline = clock.now() + timedelta(seconds=remaining_seconds)
    budget = remaining_seconds - conf.lambda_safety_margin()
    if duration is not None:
        budget = min(budget, duration)
    summary: dict[str, object] = {"queue": queue, "budget": round(max(budget, 0.0), 3)}
    if budget <= 0:
        # Too little time left to start anything safely; the next invocation will.
        logger.warning(
            "Lambda invocation with %.3f s left and a %.3f s safety margin: nothing run.",
            remaining_seconds,
            conf.lambda_safety_margin(),
        )
        return {**summary, "ran": False, "fanned_out": 0}

    lease = hard_deadline + timedelta(seconds=conf.lambda_lease_grace())
    # No task may still run when the margin starts: it leaves time to record a task the deadline
    # cut as a retry before Lambda kills the process at its timeout.
    tasks_end_by = hard_deadline - timedelta(seconds=conf.lambda_safety_margin())
    result = run_batch(budget, queue=queue, lease_expires_at=lease, hard_deadline=tasks_end_by)
    summary.update(ran=True, **result.as_dict(), lease_expires_at=lease.isoformat())

    fanned_out = 0
    if allow_fanout and function_name and result.budget_spent:
        fanned_out = fan_out(function_name, queue, max_helpers())
    summary["fanned_out"] = fanned_out

    namespace = conf.metrics_namespace()
    if namespace:
        emit_batch_metrics(namespace, result, queue, request_id=request_id)
    return summary
