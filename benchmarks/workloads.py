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


def timed_drain(concurrency: int | None = None) -> tuple[int, float]:
    from bgtask import run_batch

    # Only given when asked: the baseline's run_batch has no ``concurrency``.
    kwargs = {} if concurrency is None else {"concurrency": concurrency}
    started = time.perf_counter()
    result = run_batch(3600, **kwargs)
    return result.succeeded, time.perf_counter() - started


def warm_up(concurrency: int | None = None) -> None:
    """Drain a few tasks first, so that no timed run pays for first-use imports and caches."""
    from benchmarks.benchapp.tasks import noop

    reset()
    seed_due(200, noop)
    timed_drain(concurrency)
    reset()


def drain(n: int, repeats: int = 1, concurrency: int | None = None) -> dict:
    """Seed ``n`` due no-op tasks and time one run_batch draining them (with ``concurrency``
    when given, else the default); the median of ``repeats`` such runs (the machine is shared,
    so one run can be unlucky)."""
    from benchmarks.benchapp.tasks import noop

    warm_up(concurrency)
    samples = []
    for _ in range(repeats):
        reset()
        seed_due(n, noop)
        ran, seconds = timed_drain(concurrency)
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


def rss_mb() -> float:
    """This process's resident set now (VmRSS), in MB."""
    from pathlib import Path

    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def worker(_: int, concurrency: int | None = None) -> dict:
    """A drain worker for the parallel run: says ready, waits for "go" on stdin, drains until
    nothing is due (``concurrency`` tasks at once when given), then reports its wall-clock span,
    the rows it ran and its RSS when ready and at the end."""
    import resource

    from django.db import connection

    from benchmarks.benchapp.tasks import RAN
    from bgtask import run_batch

    kwargs = {} if concurrency is None else {"concurrency": concurrency}
    connection.ensure_connection()
    rss_ready = rss_mb()
    print("ready", flush=True)
    sys.stdin.readline()
    started = time.time()
    while run_batch(3600, **kwargs).ran:
        pass
    return {
        "started": started,
        "finished": time.time(),
        "ran": RAN,
        "rss_ready_mb": rss_ready,
        "rss_end_mb": rss_mb(),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def io(n: int, concurrency: int, kind: str) -> dict:
    """The I/O section's bgtask job: queue ``n`` tasks that wait 50 ms (``kind`` sync: the
    ``time.sleep`` task, async: the ``asyncio.sleep`` one), untimed; then start ONE
    ``manage.py process_tasks --concurrency N`` and time from the first task's start to the last
    success (the last body ended and no row left queued or running). Its start-up (spawn to the
    first task) is reported apart; its log is kept and every WARNING/ERROR line in it reported.
    """
    import shutil
    import signal
    import subprocess
    import tempfile
    from pathlib import Path

    from benchmarks import iomarks
    from benchmarks.benchapp.tasks import await_, wait
    from bgtask.models import Task

    reset()
    seed_due(n, await_ if kind == "async" else wait)
    folder = tempfile.mkdtemp(prefix="bench-io-")
    marks = os.path.join(folder, "marks")
    log_path = os.path.join(folder, "worker.log")
    env = dict(
        os.environ,
        DJANGO_SETTINGS_MODULE="benchmarks.settings",
        BENCH_IO_MARKS=marks,
    )
    command = [
        sys.executable,
        "-m",
        "django",
        "process_tasks",
        "--concurrency",
        str(concurrency),
        "--duration",
        str(IO_WORKER_DURATION),
        "--sleep",
        "0.05",
    ]
    active = Task.objects.filter(status__in=[Task.QUEUED, Task.RUNNING])
    with open(log_path, "w") as log:
        spawned = time.time()
        child = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            while iomarks.count(marks) < n:
                if child.poll() is not None or time.time() - spawned > IO_WORKER_DURATION:
                    raise RuntimeError(
                        f"process_tasks ended or stalled with {iomarks.count(marks)} of {n} "
                        f"done:\n{Path(log_path).read_text()[-3000:]}"
                    )
                time.sleep(IO_POLL)
            while active.exists():
                time.sleep(IO_POLL / 2)
            last_success = time.time()
        finally:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
            try:
                child.wait(60)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
    figures = iomarks.read(marks)
    log_lines = Path(log_path).read_text().splitlines()
    shutil.rmtree(folder, ignore_errors=True)
    noted = [line for line in log_lines if any(w in line for w in IO_LOG_WORDS)]
    last = max(last_success, figures.last_end)
    seconds = last - figures.first_start
    return {
        "n": n,
        "concurrency": concurrency,
        "kind": kind,
        "seconds": seconds,
        "rate": n / seconds,
        "startup_seconds": figures.first_start - spawned,
        "spawn_rate": n / (last - spawned),
        "mean_in_flight": figures.mean_in_flight(last),
        "write_lag_seconds": last - figures.last_end,
        "ran": figures.distinct,
        "duplicates": figures.duplicates,
        "succeeded": Task.objects.filter(status=Task.SUCCEEDED).count(),
        "exit": child.returncode,
        "log_lines": len(log_lines),
        "noted_lines": noted[:20],
        "noted_count": len(noted),
        "locked": sum("database is locked" in line for line in log_lines),
    }


#: process_tasks' --duration in the I/O section: long enough for any size the section runs.
IO_WORKER_DURATION = 600
IO_POLL = 0.01
#: Worker log lines the I/O section reports (a clean run logs none of them).
IO_LOG_WORDS = ("WARNING", "ERROR", "CRITICAL", "Traceback", "locked", "Error")


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
    parser.add_argument("--concurrency", type=int, default=None)
    parser.add_argument("--kind", choices=["sync", "async"], default="sync")
    options = parser.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "benchmarks.settings")
    django.setup()
    if options.workload == "backlog":
        figures = backlog(options.n, options.future, options.repeats)
    elif options.workload == "drain":
        figures = drain(options.n, options.repeats, options.concurrency)
    elif options.workload == "io":
        figures = io(options.n, options.concurrency or 1, options.kind)
    elif options.workload == "worker":
        figures = worker(options.n, options.concurrency)
    else:
        figures = globals()[options.workload](options.n)
    print(json.dumps(figures), flush=True)


if __name__ == "__main__":
    main()
