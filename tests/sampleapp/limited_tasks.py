"""Tasks with limits across workers (tests/reliability/test_limits.py); imported by
tests.sampleapp.tasks only when BGTASK_TEST_LIMITED_TASKS is set, and by that test's fixture."""

import os
import time
from pathlib import Path

from bgtask import background
from tests.sampleapp.models import Execution


def _ledger(folder, group, step):
    """Count the bodies running right now, in total and per ``group``, under a file lock shared
    by every worker process; keep the most seen at once (folder/ledger.json)."""
    import fcntl
    import json

    with open(Path(folder, "ledger.lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        path = Path(folder, "ledger.json")
        state = json.loads(path.read_text()) if path.exists() else {"now": {}, "max": {}}
        for name in ("*", group):
            state["now"][name] = state["now"].get(name, 0) + step
            state["max"][name] = max(state["max"].get(name, 0), state["now"][name])
        path.write_text(json.dumps(state))
        fcntl.flock(lock, fcntl.LOCK_UN)


def _counted_run(key, folder, group, seconds):
    _ledger(folder, group, +1)
    try:
        Execution.objects.create(key=key, pid=os.getpid())
        time.sleep(seconds)  # the body's own work: long enough for runs to overlap
    finally:
        _ledger(folder, group, -1)


@background(name="sample.counted", queue="limited")
def counted(key, folder, seconds=0.05, group="queue"):
    """A task of the queue that BGTASK_TEST_QUEUE_LIMITS limits; counted in the ledger."""
    _counted_run(key, folder, group, seconds)


@background(
    name="sample.keyed", max_running=1, max_running_key=lambda account, *args, **kw: account
)
def keyed(account, key, folder, seconds=0.05):
    """One at a time per account; counted per account in the ledger."""
    _counted_run(key, folder, f"account-{account}", seconds)


@background(
    name="sample.keyed_block", max_running=1, max_running_key=lambda account, *args, **kw: account
)
def keyed_block(account, key, folder, release_path, timeout=120):
    """One at a time per account; announces folder/started-<key>, waits for release_path."""
    Path(folder, f"started-{key}").write_text(key)
    deadline = time.monotonic() + timeout
    while not Path(release_path).exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    Execution.objects.create(key=key, pid=os.getpid())


@background(name="sample.queue_block", queue="limited")
def queue_block(key, folder, release_path, timeout=120):
    """keyed_block's wait, in the limited queue."""
    keyed_block.func("-", key, folder, release_path, timeout)


@background(name="sample.rated", rate="20/s")
def rated(key, folder):
    """At most 20 starts a second across workers. Leaves folder/claimed-<key> holding the claim
    time of its row (started_at, written by the claim that admitted it, which the rate spaced)."""
    from bgtask import current_task
    from bgtask.models import Task

    task = current_task()
    started = Task.objects.values_list("started_at", flat=True).get(pk=task.id)
    Path(folder, f"claimed-{key}").write_text(started.isoformat())
    Execution.objects.create(key=key, pid=os.getpid())
