"""What a process still owes the database after losing it in the middle of a batch.

When the database goes away, a batch cannot hand back the tasks it claimed but did not start, and
cannot write the successes it buffered. Dropping them would leave those rows ``running`` until
their leases expire, and the successes would run again. Instead they wait here, in this process's
memory, and the next ``run_batch`` of the process (``process_tasks`` calls it again as soon as the
database answers) settles them before doing anything else: claims are released, successes written.

Each row keeps the guard it was claimed under (``locked_by``), so settling late is safe: a row that
another worker rescued meanwhile is simply not touched. If the process dies instead, the rows are
rescued when their (short, see ``bgtask.heartbeat``) leases expire, which is the "at most one group
re-runs" of the guarantees.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bgtask.outcomes import Success
    from bgtask.store import TaskStore

logger = logging.getLogger("bgtask.carryover")

# alias -> worker_id -> ids claimed but never started
_releases: dict[str, dict[str, set[int]]] = defaultdict(lambda: defaultdict(set))
# alias -> successes run but not yet written
_successes: dict[str, list[Success]] = defaultdict(list)


def owe_release(alias: str, worker_id: str, task_ids: list[int]) -> None:
    _releases[alias][worker_id].update(task_ids)


def owe_successes(alias: str, successes: list[Success]) -> None:
    _successes[alias].extend(successes)


def owed(alias: str) -> tuple[int, int]:
    """(claims to release, successes to write) this process owes ``alias``."""
    return sum(map(len, _releases[alias].values())), len(_successes[alias])


def settle(store: TaskStore) -> tuple[int, int]:
    """Write what is owed to ``store``'s database; return (released, written).

    Raises the store's error (``DatabaseUnavailable``) if the database is still away; whatever was
    not settled stays owed.
    """
    alias = store.alias
    released = written = 0
    successes = _successes[alias]
    if successes:
        from bgtask.outcomes import write_successes

        group = list(successes)
        written = len(write_successes(store, group))
        del successes[: len(group)]
    releases = _releases[alias]
    for worker_id in list(releases):
        ids = releases[worker_id]
        released += store.release(sorted(ids), worker_id)
        del releases[worker_id]
    if released or written:
        logger.info(
            "Settled what a batch could not write while the database was away: %d claimed "
            "task(s) released, %d success(es) written.",
            released,
            written,
        )
    return released, written


def forget() -> None:
    """Drop everything owed (tests)."""
    _releases.clear()
    _successes.clear()
