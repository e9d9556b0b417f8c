"""One bgtask workload in a fresh process; prints its figures as JSON on the last line.

python -m benchmarks.workloads WORKLOAD --n N     (BENCH_DB=sqlite|postgres|mariadb)

Seeding is not timed; only the operation the workload names is. Each workload starts from an
empty table.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import django

SEED_BATCH = 2000


def reset() -> None:
    from django.db import connection

    from bgtask.models import Task

    table = connection.ops.quote_name(Task._meta.db_table)
    with connection.cursor() as cursor:
        if connection.vendor == "sqlite":
            cursor.execute(f"DELETE FROM {table}")
        else:
            cursor.execute(f"TRUNCATE TABLE {table}")


def seed_due(n: int, task_function, start: int = 0) -> None:
    """``n`` due rows of ``task_function`` built by ``TaskFunction.build_row``."""
    from bgtask.models import Task

    for first in range(start, start + n, SEED_BATCH):
        rows = [
            Task(**task_function.build_row([i], {}, 0, None, None))
            for i in range(first, min(first + SEED_BATCH, start + n))
        ]
        Task.objects.bulk_create(rows)


def fill(values: str, run_at: str, now: str) -> str:
    return (
        values.replace("[ARGS]", '{"args":[0],"kwargs":{}}')
        .replace("RUN_AT", run_at)
        .replace("NOW", now)
    )


def seed_future(n: int) -> None:
    """``n`` rows due tomorrow or later, written by the database itself (fast for 1,000,000)."""
    from django.db import connection

    from bgtask.models import Task

    names = "task_name queue priority arguments run_at status attempts last_error created_at repeat"
    columns = ", ".join(connection.ops.quote_name(name) for name in names.split())
    values = "'bench.noop', 'default', 0, '[ARGS]', RUN_AT, 'queued', 0, '', NOW, 0"
    table = connection.ops.quote_name(Task._meta.db_table)
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            select = fill(values, "now() + interval '1 day' + g * interval '1 second'", "now()")
            cursor.execute(
                f"INSERT INTO {table} ({columns}) SELECT {select} FROM generate_series(1, %s) g",
                [n],
            )
            cursor.execute(f"ANALYZE {table}")
        elif connection.vendor == "mysql":
            select = fill(
                values,
                "UTC_TIMESTAMP(6) + INTERVAL 1 DAY + INTERVAL seq SECOND",
                "UTC_TIMESTAMP(6)",
            )
            cursor.execute(
                f"INSERT INTO {table} ({columns}) SELECT {select} FROM seq_1_to_{int(n)}"
            )
            cursor.execute(f"ANALYZE TABLE {table}")
        else:
            select = fill(
                values,
                "strftime('%Y-%m-%d %H:%M:%f', 'now', '+1 day', '+' || g || ' seconds')",
                "strftime('%Y-%m-%d %H:%M:%f', 'now')",
            ).replace("%", "%%")
            cursor.execute(
                f"WITH RECURSIVE s(g) AS (SELECT 1 UNION ALL SELECT g + 1 FROM s WHERE g < %s) "
                f"INSERT INTO {table} ({columns}) SELECT {select} FROM s",
                [n],
            )
            cursor.execute("ANALYZE")


def settle() -> float:
    """Write out what seeding left dirty, so the timed drain does not pay for flushing a million
    new rows (both conditions call it); the seconds it took."""
    from django.db import connection

    from bgtask.models import Task

    started = time.perf_counter()
    table = connection.ops.quote_name(Task._meta.db_table)
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("CHECKPOINT")
        elif connection.vendor == "sqlite":
            cursor.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        else:
            cursor.execute(f"FLUSH TABLES {table} FOR EXPORT")
            cursor.execute("UNLOCK TABLES")
    return time.perf_counter() - started


def timed_drain() -> tuple[int, float]:
    from bgtask import run_batch

    started = time.perf_counter()
    result = run_batch(3600)
    return result.succeeded, time.perf_counter() - started


def warm_up() -> None:
    """Drain a few tasks first, so that no timed run pays for first-use imports and caches."""
    from benchmarks.benchapp.tasks import noop

    reset()
    seed_due(200, noop)
    timed_drain()
    reset()


def drain(n: int, repeats: int = 1) -> dict:
    """Seed ``n`` due no-op tasks and time one run_batch draining them; the median of
    ``repeats`` such runs (the machine is shared, so one run can be unlucky)."""
    from benchmarks.benchapp.tasks import noop

    warm_up()
    samples = []
    for _ in range(repeats):
        reset()
        seed_due(n, noop)
        ran, seconds = timed_drain()
        assert ran == n, (ran, n)
        samples.append(ran / seconds)
    samples.sort()
    return {"n": n, "ran": n, "rate": samples[len(samples) // 2], "samples": samples}


def enqueue(n: int) -> dict:
    """``n`` calls of the task, each an INSERT in its own (autocommit) transaction."""
    from django.db import connection

    from benchmarks.benchapp.tasks import noop
    from bgtask.models import Task

    reset()
    connection.ensure_connection()
    started = time.perf_counter()
    for i in range(n):
        noop(i)
    seconds = time.perf_counter() - started
    assert Task.objects.count() == n
    return {"n": n, "seconds": seconds, "rate": n / seconds}


def bulk(n: int) -> dict:
    """``n`` rows in one bulk call, built (and validated) by ``TaskFunction.build_row``: through
    the public bulk API when this branch has one, else ``Task.objects.bulk_create``; and through
    ``TaskStore.insert_rows``, the store's raw multi-row INSERT a bulk API can use."""
    from django.db import connection

    from benchmarks.benchapp.tasks import noop
    from bgtask.models import Task
    from bgtask.store import TaskStore

    figures = {"n": n}
    bulk_api = getattr(noop, "bulk", None)
    for how in ("api", "store"):
        reset()
        connection.ensure_connection()
        started = time.perf_counter()
        if how == "store":
            TaskStore().insert_rows([noop.build_row([i], {}, None, None, None) for i in range(n)])
            label = "TaskStore.insert_rows(build_row rows)"
        elif bulk_api is not None:
            bulk_api([(i,) for i in range(n)], return_tasks=False)
            label = "fn.bulk(..., return_tasks=False)"
        else:
            Task.objects.bulk_create(
                [Task(**noop.build_row([i], {}, None, None, None)) for i in range(n)],
                batch_size=SEED_BATCH,
            )
            label = "Task.objects.bulk_create(build_row rows)"
        seconds = time.perf_counter() - started
        assert Task.objects.count() == n
        figures[how] = {"how": label, "seconds": seconds, "rate": n / seconds}
    return figures


def backlog(n: int, future: int, repeats: int) -> dict:
    """Rate of draining ``n`` due tasks beside ``future`` scheduled ones, and beside none."""
    from benchmarks.benchapp.tasks import noop
    from bgtask.models import Task

    rates = {}
    warm_up()
    for label, scheduled in (("none", 0), ("backlog", future)):
        reset()
        if scheduled:
            seed_future(scheduled)
        rates[f"{label}_settle_seconds"] = settle()
        samples = []
        for repeat in range(repeats):
            seed_due(n, noop, start=repeat * n)
            ran, seconds = timed_drain()
            assert ran == n, (ran, n)
            samples.append(n / seconds)
            Task.objects.filter(status=Task.SUCCEEDED).delete()
        samples.sort()
        rates[label] = samples[len(samples) // 2]  # the median
        rates[f"{label}_samples"] = samples
    rates["ratio"] = rates["backlog"] / rates["none"]
    return {"n": n, "future": future, **rates}


def seed(n: int) -> dict:
    """Empty the table and queue ``n`` ``record`` tasks (for the parallel and memory runs)."""
    from benchmarks.benchapp.tasks import noop, record

    reset()
    seed_due(n, record if os.environ.get("BENCH_SEED_TASK") == "record" else noop)
    return {"n": n}


def worker(_: int) -> dict:
    """A drain worker for the parallel run: says ready, waits for "go" on stdin, drains until
    nothing is due, then reports its wall-clock span and the rows it ran."""
    from django.db import connection

    from benchmarks.benchapp.tasks import RAN
    from bgtask import run_batch

    connection.ensure_connection()
    print("ready", flush=True)
    sys.stdin.readline()
    started = time.time()
    while run_batch(3600).ran:
        pass
    return {"started": started, "finished": time.time(), "ran": RAN}


def rss(n: int) -> dict:
    """Peak RSS of ``manage.py process_tasks`` draining ``n`` due tasks (stopped by SIGTERM once
    the queue is empty), read from the kernel's accounting of that one child."""
    import signal
    import subprocess

    from benchmarks.benchapp.tasks import noop
    from bgtask.models import Task

    reset()
    seed_due(n, noop)
    env = dict(os.environ, DJANGO_SETTINGS_MODULE="benchmarks.settings")
    command = [sys.executable, "-m", "django", "process_tasks", "--sleep", "0.2"]
    started = time.perf_counter()
    child = subprocess.Popen(command, env=env, stderr=subprocess.DEVNULL)
    active = Task.objects.filter(status__in=[Task.QUEUED, Task.RUNNING])
    while active.exists():
        if child.poll() is not None:
            raise RuntimeError(f"process_tasks exited {child.returncode} before draining")
        time.sleep(0.25)
    seconds = time.perf_counter() - started
    child.send_signal(signal.SIGTERM)
    _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    return {
        "n": n,
        "peak_rss_mb": usage.ru_maxrss / 1024,  # Linux reports KiB
        "seconds": seconds,
        "exit": child.returncode,
        "succeeded": Task.objects.filter(status=Task.SUCCEEDED).count(),
    }


def check_parallel(n: int) -> dict:
    from bgtask.models import Task

    return {
        "succeeded": Task.objects.filter(status=Task.SUCCEEDED).count(),
        "other": Task.objects.exclude(status=Task.SUCCEEDED).count(),
        "n": n,
    }


def remaining(_: int) -> dict:
    from bgtask.models import Task

    return {"remaining": Task.objects.filter(status__in=[Task.QUEUED, Task.RUNNING]).count()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("workload")
    parser.add_argument("--n", type=int, required=True)
    parser.add_argument("--future", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=3)
    options = parser.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "benchmarks.settings")
    django.setup()
    if options.workload == "backlog":
        figures = backlog(options.n, options.future, options.repeats)
    elif options.workload == "drain":
        figures = drain(options.n, options.repeats)
    else:
        figures = globals()[options.workload](options.n)
    print(json.dumps(figures), flush=True)


if __name__ == "__main__":
    main()
