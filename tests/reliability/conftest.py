"""A failed fault test must not leave a worker process behind to drain the next test's tasks."""

import os
import signal
from pathlib import Path

import pytest


def _children() -> list[int]:
    """Live child processes of this pytest process (Linux /proc)."""
    me, found = os.getpid(), []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        # fields[0] is the state, fields[1] the parent pid; zombies are already dead.
        if int(fields[1]) == me and fields[0] != "Z":
            found.append(int(stat.parent.name))
    return found


@pytest.fixture(autouse=True)
def _no_worker_outlives_its_test():
    yield
    for pid in _children():
        try:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass
