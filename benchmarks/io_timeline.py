"""Where a batch's slots wait: one in-process ``run_batch(concurrency=C)`` on N queued 50 ms
tasks, with the batch thread's database calls (``TaskStore.claim_due``, the completer's group
write) timed, and the tasks in flight per 50 ms read from the tasks' own stamps (``iomarks``).

    BENCH_DB=postgres .venv/bin/python -m benchmarks.io_timeline --n 400 --concurrency 16

A diagnostic for the I/O section (it wraps two methods of this process), never a timed target.
"""

from __future__ import annotations

import argparse
import collections
import os
import tempfile
import time

import django


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=400)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--kind", choices=["sync", "async"], default="sync")
    options = parser.parse_args()
    folder = tempfile.mkdtemp(prefix="bench-timeline-")
    os.environ["BENCH_IO_MARKS"] = marks = os.path.join(folder, "marks")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "benchmarks.settings")
    django.setup()

    from benchmarks import iomarks
    from benchmarks.benchapp.tasks import await_, wait
    from benchmarks.workloads import reset, seed_due
    from bgtask import run_batch
    from bgtask.store import TaskStore
    from bgtask.worker.completer import Completer

    calls: list[tuple[float, float, str, int]] = []  # (at, seconds, what, rows)
    claim_due, write_group = TaskStore.claim_due, Completer._write_group

    def timed_claim(self, worker_id, size, *args, **kwargs):
        at = time.time()
        claimed = claim_due(self, worker_id, size, *args, **kwargs)
        calls.append((at, time.time() - at, "claim", len(claimed)))
        return claimed

    def timed_write(self, group):
        at = time.time()
        written = write_group(self, group)
        calls.append((at, time.time() - at, "write", len(group)))
        return written

    TaskStore.claim_due, Completer._write_group = timed_claim, timed_write
    task = await_ if options.kind == "async" else wait
    reset()
    seed_due(2 * options.concurrency, task)
    run_batch(60, concurrency=options.concurrency)  # warm-up: imports, threads, connections
    reset()
    seed_due(options.n, task)
    calls.clear()
    os.unlink(marks)
    os.close(iomarks._fd)  # the warm-up's file; the next stamp opens the new one
    iomarks._fd = None
    run_batch(3600, concurrency=options.concurrency)
    rows = [tuple(map(float, line.split())) for line in open(marks)]  # noqa: SIM115
    first = min(r[1] for r in rows)
    span = max(r[2] for r in rows) - first
    print(f"{len(rows)} tasks, first start to last end {span:.3f} s = {len(rows) / span:.0f}/s")
    for what in ("claim", "write"):
        mine = [c for c in calls if c[2] == what]
        if mine:
            total = sum(c[1] for c in mine)
            print(
                f"{what}: {len(mine)} calls, {total * 1000:.0f} ms in all, mean "
                f"{total / len(mine) * 1000:.1f} ms, max {max(c[1] for c in mine) * 1000:.1f} ms, "
                f"mean rows {sum(c[3] for c in mine) / len(mine):.1f}"
            )
    print(f"batch thread inside these calls: {sum(c[1] for c in calls) / span:.0%} of the span")
    buckets: collections.Counter = collections.Counter()
    for _, start, end in rows:
        start, end = start - first, end - first
        k = int(start / 0.05)
        while k * 0.05 < end:
            buckets[k] += (min(end, (k + 1) * 0.05) - max(start, k * 0.05)) / 0.05
            k += 1
    print("in flight per 50 ms:", " ".join(f"{buckets[k]:.0f}" for k in range(max(buckets) + 1)))
    os.unlink(marks)
    os.rmdir(folder)


if __name__ == "__main__":
    main()
