"""Exactly once under contention: many run_batch processes draining one queue at the same time."""

import time

import pytest
from django.db import connection

from bgtask.models import Task
from tests.conftest import batch_result, start_batch_process
from tests.reliability.helpers import enqueue_records, execution_counts, size


@pytest.mark.slow
@pytest.mark.parametrize("concurrency", [1, 8], ids=["one-at-a-time", "8-threads-each"])
@pytest.mark.django_db(transaction=True)
def test_every_task_runs_exactly_once_under_contention(full_count, concurrency):
    sqlite = connection.vendor == "sqlite"
    # SQLite has one writer at a time: 2 processes is the realistic contention there.
    workers = 2 if sqlite else size(full_count, 8, 4)
    count = size(full_count, 20_000, 600)
    keys = [f"once-{i}" for i in range(count)]
    enqueue_records(keys)

    started = time.monotonic()
    processes = [start_batch_process(600, concurrency=concurrency) for _ in range(workers)]
    results = [batch_result(process, timeout=900) for process in processes]
    elapsed = time.monotonic() - started

    counts = execution_counts()
    twice = {key: n for key, n in counts.items() if n != 1}
    assert not twice, f"side effects not exactly once: {list(twice.items())[:10]}"
    assert set(counts) == set(keys)
    assert sum(r["succeeded"] for r in results) == count
    assert Task.objects.succeeded().count() == count
    assert not Task.objects.filter(status__in=[Task.QUEUED, Task.RUNNING]).exists()
    print(
        f"\n[exactly-once] {connection.vendor}: {workers} processes x concurrency {concurrency}, "
        f"{count} tasks, "
        f"{elapsed:.1f}s ({count / elapsed:.0f} tasks/s), per worker "
        f"{[r['succeeded'] for r in results]}"
    )
