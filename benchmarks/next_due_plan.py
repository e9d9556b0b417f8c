"""The plan and the time of ``TaskStore.next_due_at`` beside many scheduled tasks (issue 18).

python -m benchmarks.next_due_plan --future 200000     (BENCH_DB=sqlite|postgres|mariadb)

An idle worker reads the next due time once per wait; it must stay one short index walk however
many tasks are scheduled. Seeds ``future`` tasks due tomorrow or later over a few priorities and
queues, prints the database's EXPLAIN of the statement and its median time over 50 runs, then
empties the table. JSON on the last line.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

import django


def explain(sql: str, params: list) -> list[str]:
    from django.db import connection

    prefix = {
        "postgresql": "EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) ",
        "mysql": "EXPLAIN ",
        "sqlite": "EXPLAIN QUERY PLAN ",
    }[connection.vendor]
    with connection.cursor() as cursor:
        cursor.execute(prefix + sql, params)
        return [" | ".join(str(c) for c in row) for row in cursor.fetchall()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--future", type=int, default=200_000)
    options = parser.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "benchmarks.settings")
    django.setup()
    from django.db import connection

    from benchmarks.workloads import reset, seed_future
    from bgtask import clock
    from bgtask.models import Task
    from bgtask.store import TaskStore

    reset()
    seed_future(options.future)
    # Spread them over priorities and queues, as a real table is.
    Task.objects.filter(id__regex=r"3$").update(priority=5)
    Task.objects.filter(id__regex=r"7$").update(priority=-5, queue="reports")
    store = TaskStore()
    captured: list[tuple[str, list]] = []

    def capture(execute, sql, params, many, context):
        captured.append((sql, list(params or [])))
        return execute(sql, params, many, context)

    plans = {}
    for queue in (None, "reports"):
        captured.clear()
        with connection.execute_wrapper(capture):
            store.next_due_at(queue)
        sql, params = captured[-1]
        samples = []
        for _ in range(50):
            started = time.perf_counter()
            store.next_due_at(queue, after=clock.now())
            samples.append(time.perf_counter() - started)
        plans[queue or "all"] = {
            "median_ms": statistics.median(samples) * 1000,
            "plan": explain(sql, params),
        }
    reset()
    figures = {"vendor": connection.vendor, "future": options.future, **plans}
    for name, plan in plans.items():
        print(f"-- {connection.vendor}, queue {name}: {plan['median_ms']:.2f} ms")
        print("\n".join(plan["plan"]))
    print(json.dumps(figures), flush=True)


if __name__ == "__main__":
    main()
