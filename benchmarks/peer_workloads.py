"""A peer's workload in a fresh process (run with the peers' own venv); JSON on the last line.

benchmarks/.peers-venv/bin/python -m benchmarks.peer_workloads PEER WORKLOAD --n N

PEER: ``dbt`` (django-background-tasks 1.2.8) or ``dtd`` (django-tasks-db 0.13).
WORKLOAD: ``drain`` (seed N due no-op tasks untimed, then time draining them the way the peer's
own worker command does) or ``enqueue`` (N single enqueues, each its own transaction).
"""

from __future__ import annotations

import argparse
import json
import os
import time

import django


def reset() -> None:
    from background_task.models import CompletedTask, Task
    from django_tasks_db.models import DBTaskResult

    for model in (Task, CompletedTask, DBTaskResult):
        model.objects.all().delete()


def enqueue_many(peer: str, n: int) -> None:
    from benchmarks.peerapp.tasks import bgt_noop, dtd_noop

    if peer == "dbt":
        for i in range(n):
            bgt_noop(i)
    else:
        for i in range(n):
            dtd_noop.enqueue(i)


def pending(peer: str) -> int:
    from background_task.models import Task
    from django_tasks_db.models import DBTaskResult

    if peer == "dbt":
        return Task.objects.count()
    return DBTaskResult.objects.ready().count()


def drain(peer: str, n: int) -> dict:
    reset()
    enqueue_many(peer, n)
    started = time.perf_counter()
    if peer == "dbt":
        # What `process_tasks` does between its sleeps.
        from background_task.tasks import tasks

        while tasks.run_next_task():
            pass
    else:
        # What `db_worker --batch --interval 0` does.
        from django_tasks_db.management.commands.db_worker import Worker

        Worker(
            queue_names=["default"],
            interval=0,
            batch=True,
            backend_name="default",
            startup_delay=False,
            max_tasks=None,
            worker_id="bench",
            excluded_queue_names=[],
        ).run()
    seconds = time.perf_counter() - started
    left = pending(peer)
    return {"n": n, "ran": n - left, "seconds": seconds, "rate": (n - left) / seconds}


def enqueue(peer: str, n: int) -> dict:
    from django.db import connection

    reset()
    connection.ensure_connection()
    started = time.perf_counter()
    enqueue_many(peer, n)
    seconds = time.perf_counter() - started
    return {"n": n, "seconds": seconds, "rate": n / seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("peer", choices=["dbt", "dtd"])
    parser.add_argument("workload", choices=["drain", "enqueue"])
    parser.add_argument("--n", type=int, required=True)
    options = parser.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "benchmarks.peer_settings")
    django.setup()
    figures = globals()[options.workload](options.peer, options.n)
    print(json.dumps(figures), flush=True)


if __name__ == "__main__":
    main()
