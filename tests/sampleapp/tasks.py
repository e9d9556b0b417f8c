"""Sample tasks for the tests; autodiscovered because this app is installed."""

import asyncio
import os
import time
from pathlib import Path

from bgtask import background
from tests.sampleapp.models import Execution


@background(name="sample.noop")
def noop():
    return None


@background(name="sample.record")
def record(key):
    Execution.objects.create(key=key, pid=os.getpid())
    return key


@background(name="sample.add")
def add(a, b):
    return a + b


@background(name="sample.always_fail")
def always_fail(message="boom"):
    raise RuntimeError(message)


@background(name="sample.fail_once")
def fail_once(key):
    """Fails on its first run, succeeds on the second."""
    first = not Execution.objects.filter(key=key).exists()
    Execution.objects.create(key=key, pid=os.getpid())
    if first:
        raise RuntimeError(f"first run of {key} fails")


@background(name="sample.slow_record")
def slow_record(key, seconds):
    Execution.objects.create(key=key, pid=os.getpid())
    time.sleep(seconds)


@background(name="sample.block_until_file")
def block_until_file(key, started_path, release_path, timeout=60):
    """Record a start, announce it in started_path, then wait until release_path exists."""
    Execution.objects.create(key=key, pid=os.getpid())
    Path(started_path).write_text(str(os.getpid()))
    deadline = time.monotonic() + timeout
    while not Path(release_path).exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    return "released"


@background(name="sample.default_schedule", schedule=60)
def scheduled_later(key):
    Execution.objects.create(key=key, pid=os.getpid())


@background(name="sample.async_record")
async def async_record(key):
    """An async def task: its body awaits, writes through the async ORM, and returns a value."""
    await asyncio.sleep(0.01)
    await Execution.objects.acreate(key=key, pid=os.getpid())
    return {"key": key, "async": True}


@background(name="sample.async_block_until_file")
async def async_block_until_file(key, started_path, release_path, timeout=60):
    """block_until_file for the event loop: waits with await, never blocking the loop."""
    await Execution.objects.acreate(key=key, pid=os.getpid())
    Path(started_path).write_text(str(os.getpid()))
    deadline = time.monotonic() + timeout
    while not Path(release_path).exists() and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    return "released"


@background(name="sample.block_and_mark")
def block_and_mark(key, folder, release_path, timeout=120):
    """Announce a start as folder/started-<pid>, wait for release_path, then leave
    folder/finished-<pid>: a run stopped on the way never leaves its finished file."""
    Execution.objects.create(key=key, pid=os.getpid())
    Path(folder, f"started-{os.getpid()}").write_text(key)
    deadline = time.monotonic() + timeout
    while not Path(release_path).exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    Path(folder, f"finished-{os.getpid()}").write_text(key)
    return "finished"


@background(name="sample.nested_result")
def nested_result(depth=100_000):
    """Returns a list nested deeper than the JSON encoder can go."""
    value = []
    for _ in range(depth):
        value = [value]
    return value


@background(name="sample.report_progress")
def report_progress(key, folder, release_path, timeout=120):
    """Says who it is and how far it got, then waits like block_and_mark."""
    from bgtask import current_task, set_progress

    task = current_task()
    Path(folder, f"current-{key}").write_text(f"{task.id} {task.attempt} {task.name}")
    set_progress(0.5, "half way")
    return block_and_mark.func(key, folder, release_path, timeout)


@background(name="sample.async_block_and_mark")
async def async_block_and_mark(key, folder, release_path, timeout=120):
    """block_and_mark on the event loop."""
    await Execution.objects.acreate(key=key, pid=os.getpid())
    Path(folder, f"started-{key}").write_text(key)
    deadline = time.monotonic() + timeout
    while not Path(release_path).exists() and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    Path(folder, f"finished-{key}").write_text(key)
    return "finished"


# The limited tasks register only where a test asks for them (worker processes it starts with
# BGTASK_TEST_LIMITED_TASKS=1, and its own fixture): registered everywhere, they would put every
# other test's claims on the limited path.
if os.environ.get("BGTASK_TEST_LIMITED_TASKS"):
    from tests.sampleapp import limited_tasks  # noqa: F401
