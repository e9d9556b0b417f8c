"""``run_until_empty()``: call ``run_batch`` until nothing is due, as a worker on cron would over
several runs, but without waiting between them."""

from __future__ import annotations

from bgtask.worker.batch import BatchResult, run_batch


def run_until_empty(
    *, queue: str | None = None, max_batches: int = 100, duration: float = 60.0
) -> BatchResult:
    """Run batches until one runs nothing; return the summed counts.

    A task retried after a failure waits for its backoff, so it is not due again here: its row
    stays queued with ``attempts`` raised (``MAX_ATTEMPTS=1`` makes it fail for good instead).
    ``max_batches`` bounds a task that keeps enqueueing more due work: reaching it raises
    ``RuntimeError`` rather than looping for ever.

    >>> send_receipt(42, schedule=0)
    >>> run_until_empty().succeeded
    1
    """
    total = BatchResult()
    for _ in range(max_batches):
        result = run_batch(duration, queue=queue)
        if not result.ran:
            return total
        for name in ("succeeded", "failed", "retried", "released", "rescued"):
            setattr(total, name, getattr(total, name) + getattr(result, name))
    raise RuntimeError(
        f"run_until_empty: still running tasks after {max_batches} batches; do the tasks keep "
        "enqueueing due work?"
    )
