"""Test helpers: see what your code enqueued, drain the queue, or run tasks as their writes commit.

>>> from bgtask.testing import capture_enqueued, run_until_empty
>>> with capture_enqueued() as enqueued:
...     place_order(cart)                       # code under test, which enqueues
>>> enqueued.assert_enqueued(send_receipt, args=[42], queue="emails")
>>> run_until_empty()                            # run_batch until nothing is due

With pytest, the ``bgtask_enqueued`` fixture (loaded through bgtask's ``pytest11`` entry point)
is such a capture for the whole test. ``BGTASK_IMMEDIATE = True`` runs each task through
``run_batch`` when the transaction that enqueued it commits (``bgtask.testing.immediate``).

The names load on first use (PEP 562): the immediate mode's receiver is connected when Django
starts, and that must not import Django's test machinery into every production process.
"""

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bgtask.testing.capture import EnqueuedTask, EnqueuedTasks, capture_enqueued
    from bgtask.testing.draining import run_until_empty

__all__ = ["EnqueuedTask", "EnqueuedTasks", "capture_enqueued", "run_until_empty"]


def __getattr__(name: str) -> Any:
    if name in ("EnqueuedTask", "EnqueuedTasks", "capture_enqueued"):
        from bgtask.testing import capture

        return getattr(capture, name)
    if name == "run_until_empty":
        from bgtask.testing import draining

        return draining.run_until_empty
    raise AttributeError(f"module 'bgtask.testing' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
