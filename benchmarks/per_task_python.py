"""Microseconds of Python per task: bgtask's own hot path against the floor of running a task.

python -m benchmarks.per_task_python [--n 20000]        (BENCH_DB=sqlite|postgres|mariadb)

- floor: ``json.loads`` of a task's stored arguments and one call of the function, the least any
  queue that stores JSON arguments must do per task;
- execute: ``bgtask.worker.execution.execute`` on a claimed ``Task`` with a group buffer whose
  writes are stubbed out (registry look-up, decoding, signals, time limit, result encoding,
  buffering, announcing), with no database at all;
- rows: ``tasks_from_rows``, the claim's row-to-Task step, per row;
- drain CPU: the CPU time of this process per task during a real ``run_batch`` drain on the
  chosen database (Python, Django and the driver; on SQLite also SQLite's own engine).
Not a test: the figures feed docs/explanation/outcome-batching.md.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "benchmarks.settings")

import django


class _NoWrites:
    """A store whose group write reports every row written, without a database."""

    alias = "default"

    def mark_succeeded_many(self, rows):
        return {row[0] for row in rows}

    def log_lost_lease(self, task):  # pragma: no cover - never lost here
        raise AssertionError(task)


def best_of(repeats: int, function, n: int) -> float:
    """Microseconds per item of ``function()`` doing ``n`` items, best of ``repeats``."""
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        best = min(best, time.perf_counter() - started)
    return best / n * 1e6


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=20000)
    options = parser.parse_args()
    n = options.n
    django.setup()
    from benchmarks.benchapp.tasks import noop
    from benchmarks.workloads import reset, seed_due, timed_drain, warm_up
    from bgtask.store.rows import FIELDS, tasks_from_rows
    from bgtask.worker.completer import Completer
    from bgtask.worker.execution import execute

    arguments = '{"args":[1],"kwargs":{}}'
    function = noop.func

    def floor():
        for _ in range(n):
            decoded = json.loads(arguments)
            function(*decoded["args"], **decoded["kwargs"])

    now = datetime.now(UTC)
    template = {f.attname: f.get_default() for f in FIELDS}
    template.update(
        id=1,
        task_name="bench.noop",
        arguments=arguments,
        status="running",
        locked_by="w",
        locked_until=now,
        run_at=now,
        created_at=now,
        started_at=now,
    )
    row = tuple(template[f.attname] for f in FIELDS)
    tasks = tasks_from_rows("default", [row] * n)

    def run_all():
        completer = Completer(_NoWrites(), "w", group_size=50, max_delay=600)
        for task in tasks:
            completer.record(execute(task))
        completer.flush()

    def build_rows():
        tasks_from_rows("default", [row] * n)

    figures = {
        "floor_us": best_of(5, floor, n),
        "execute_us": best_of(5, run_all, n),
        "rows_us": best_of(5, build_rows, n),
    }
    warm_up()
    reset()
    seed_due(n // 4, noop)
    cpu, wall = time.process_time(), time.perf_counter()
    ran, _ = timed_drain()
    figures["drain_cpu_us"] = (time.process_time() - cpu) / ran * 1e6
    figures["drain_wall_us"] = (time.perf_counter() - wall) / ran * 1e6
    from django.db import connection

    figures["db"] = connection.vendor
    figures["load"] = round(os.getloadavg()[0], 2)
    print(json.dumps({k: round(v, 1) if isinstance(v, float) else v for k, v in figures.items()}))


if __name__ == "__main__":
    main()
