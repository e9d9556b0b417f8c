"""Drain rate by BGTASK_OUTCOME_BATCH (and BGTASK_ASYNC_COMMIT on PostgreSQL), interleaved.

python -m benchmarks.outcome_sweep --n 5000 --batches 1,10,50,100 --repeats 3
    (BENCH_DB=sqlite|postgres|mariadb; BENCH_*_URL / BENCH_SQLITE_PATH pick the database)

Each sample seeds ``n`` due no-op tasks (not timed) and times one ``run_batch`` draining them. The
configurations run in turn, round after round, so a change in the machine's load touches them all;
the median of the rounds is printed, with the load average before and after. Not a test: the
figures feed docs/explanation/outcome-batching.md.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "benchmarks.settings")

import django


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=5000)
    parser.add_argument("--batches", default="1,10,50,100")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--async-commit", default="0", help="0, 1 or 0,1 (PostgreSQL only)")
    options = parser.parse_args()
    django.setup()
    from django.conf import settings
    from django.db import connection

    from benchmarks.benchapp.tasks import noop
    from benchmarks.workloads import reset, seed_due, timed_drain, warm_up

    batches = [int(b) for b in options.batches.split(",")]
    commits = [bool(int(c)) for c in options.async_commit.split(",")]
    if connection.vendor != "postgresql":
        commits = [False]
    configs = [(b, c) for c in commits for b in batches]
    samples: dict[tuple[int, bool], list[float]] = {config: [] for config in configs}
    load_before = os.getloadavg()[0]
    warm_up()
    for _ in range(options.repeats):
        for batch, async_commit in configs:
            settings.BGTASK_OUTCOME_BATCH = batch
            settings.BGTASK_ASYNC_COMMIT = async_commit
            reset()
            seed_due(options.n, noop)
            ran, seconds = timed_drain()
            assert ran == options.n, (ran, options.n)
            samples[(batch, async_commit)].append(ran / seconds)
    load_after = os.getloadavg()[0]
    for (batch, async_commit), rates in samples.items():
        print(
            json.dumps(
                {
                    "db": connection.vendor,
                    "n": options.n,
                    "outcome_batch": batch,
                    "async_commit": async_commit,
                    "rate": round(statistics.median(rates)),
                    "samples": [round(r) for r in rates],
                    "load": [round(load_before, 2), round(load_after, 2)],
                }
            )
        )


if __name__ == "__main__":
    main()
