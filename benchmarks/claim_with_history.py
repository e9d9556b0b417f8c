"""Does history slow claiming down? Times ``claim_due`` with and without a large history.

Prints figures; asserts nothing. Uses this checkout's test database (created and dropped here),
on the database DATABASE_URL names (default SQLite), e.g. with a history of 100000 rows:

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/test \
        .venv/bin/python benchmarks/claim_with_history.py 100000
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")

import django

QUEUED = 1000
CLAIMS = 50
CHUNK = 5000


def median_claim_ms(store, now) -> float:
    from bgtask.models import Task

    samples = []
    for i in range(CLAIMS):
        started = time.perf_counter()
        claimed = store.claim_due(f"bench-{i}", 10, now + timedelta(minutes=5))
        samples.append((time.perf_counter() - started) * 1000)
        Task.objects.filter(id__in=[t.id for t in claimed]).update(
            status=Task.QUEUED, locked_by=None, locked_until=None
        )
    return statistics.median(samples)


def main() -> None:
    history = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    django.setup()
    from django.db import connection
    from django.utils import timezone

    from bgtask.models import Task
    from bgtask.store import TaskStore

    name = connection.creation.create_test_db(verbosity=0, autoclobber=True)
    try:
        now = timezone.now()
        Task.objects.bulk_create(
            Task(task_name="bench", run_at=now - timedelta(seconds=i)) for i in range(QUEUED)
        )
        store = TaskStore()
        before = median_claim_ms(store, now)
        for start in range(0, history, CHUNK):
            Task.objects.bulk_create(
                Task(
                    task_name="bench",
                    status=Task.SUCCEEDED if i % 5 else Task.FAILED,
                    run_at=now - timedelta(days=1, seconds=i),
                    finished_at=now - timedelta(days=1, seconds=i),
                )
                for i in range(start, min(start + CHUNK, history))
            )
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("ANALYZE bgtask_task")
        after = median_claim_ms(store, now)
        print(
            f"{connection.vendor}: claim of 10 among {QUEUED} queued, median of {CLAIMS}: "
            f"{before:.2f} ms with no history, {after:.2f} ms with {history} finished rows"
        )
    finally:
        connection.creation.destroy_test_db(name, verbosity=0)


if __name__ == "__main__":
    main()
