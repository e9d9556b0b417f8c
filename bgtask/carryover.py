"""Successes a process could not write because its database went away mid-batch.

A batch writes its successes in groups (``bgtask.outcomes``). If the database goes away before a
group is written, dropping the group would leave those rows ``running`` until their leases expire,
and the tasks would run again. Instead the group waits here, in this process's memory, and the next
``run_batch`` of the process (``process_tasks`` calls it again as soon as the database answers)
writes it before doing anything else. (Claims the batch could not release wait likewise in
``bgtask.outages``.)

Each row keeps the guard it was claimed under (``locked_by``), so writing late is safe: a row that
another worker rescued meanwhile is not touched, and is reported as a lost lease. If the process
dies instead, the rows are rescued when their (short) leases expire: that is the "at most one
group re-runs" of the guarantees.
"""

from __future__ import annotations

import logging
import threading
from collections import defaultdict
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bgtask.outcomes import Success
    from bgtask.store import TaskStore

logger = logging.getLogger("bgtask.carryover")

_lock = threading.Lock()
# alias -> successes run but not yet written
_successes: dict[str, list[Success]] = defaultdict(list)


def owe_successes(alias: str, successes: list[Success]) -> None:
    with _lock:
        _successes[alias].extend(successes)


def owed(alias: str) -> int:
    """How many successes this process still owes ``alias``."""
    return len(_successes[alias])


def settle(store: TaskStore) -> int:
    """Write the successes owed to ``store``'s database; return how many rows were written.

    Raises the store's error if the database is still away; what was not written stays owed.
    """
    from bgtask.outcomes import write_successes

    with _lock:
        group = list(_successes[store.alias])
    if not group:
        return 0
    written = len(write_successes(store, group))
    with _lock:
        del _successes[store.alias][: len(group)]
    logger.info(
        "Wrote %d of %d success(es) a batch could not write while the database was away (the "
        "rest lost their lease meanwhile).",
        written,
        len(group),
    )
    return written


def forget() -> None:
    """Drop everything owed (tests)."""
    with _lock:
        _successes.clear()
