"""The admin and the dashboard at scale: 1,000,000 finished and 100,000 queued tasks.

    make bench-admin                                  # SQLite and PostgreSQL
    .venv/bin/python benchmarks/admin_scale.py --db postgres --refill

Fills the benchmark's own database (never a test database) with INSERT ... SELECT over
generate_series (PostgreSQL) or a recursive CTE (SQLite), then asks Django's test client for each
page of the Tasks list (default view, each filter, searches, a deep page), a task's page, the
dashboard and the JSON status endpoint, and prints each one's median time and query count.
``--index-cost`` also times claiming and finishing tasks with and without the indexes migration
0006 adds. The figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

FINISHED, QUEUED = 1_000_000, 100_000
NAMES = 20  # task names app.job_0 .. app.job_19
# Per checkout, so that two clones benchmarking on one server never share a database.
SUFFIX = hashlib.sha1(str(ROOT).encode()).hexdigest()[:8]

TRACEBACK = (
    'Traceback (most recent call last):\\n  File "/srv/app/jobs.py", line 12, in run\\n'
    "    call_partner()\\nConnectionError: partner API refused the connection"
)

POSTGRES_FILL = f"""
INSERT INTO bgtask_task (task_name, queue, priority, arguments, run_at, status, attempts,
    last_error, failed_at, locked_by, locked_until, created_at, started_at, finished_at, result,
    repeat, repeat_until, unique_key, timeout)
SELECT 'app.job_' || (i % {NAMES}), (ARRAY['default', 'mail', 'reports'])[1 + i % 3], 0,
    '{{"args": [' || i || '], "kwargs": {{}}}}', f - interval '2 seconds',
    CASE WHEN i % 20 = 0 THEN 'failed' ELSE 'succeeded' END,
    CASE WHEN i % 20 = 0 THEN 25 ELSE 0 END,
    CASE WHEN i % 20 = 0 THEN E'{TRACEBACK}' ELSE '' END,
    CASE WHEN i % 20 = 0 THEN f END, NULL, NULL, f - interval '3 seconds',
    f - (i % 5 + 1) * interval '100 milliseconds', f, NULL, 0, NULL, NULL, NULL
FROM (SELECT i, now() - (i * interval '604 milliseconds') AS f
      FROM generate_series(1, {FINISHED}) AS i) AS s;
INSERT INTO bgtask_task (task_name, queue, priority, arguments, run_at, status, attempts,
    last_error, failed_at, locked_by, locked_until, created_at, started_at, finished_at, result,
    repeat, repeat_until, unique_key, timeout)
SELECT 'app.job_' || (i % {NAMES}), (ARRAY['default', 'mail', 'reports'])[1 + i % 3], i % 3,
    '{{"args": [' || i || '], "kwargs": {{}}}}',
    now() + (i - {QUEUED} / 10) * interval '1 second', 'queued',
    CASE WHEN i % 50 = 0 THEN 1 ELSE 0 END,
    CASE WHEN i % 50 = 0 THEN E'{TRACEBACK}' ELSE '' END, NULL, NULL, NULL,
    now() - interval '1 hour',
    CASE WHEN i % 50 = 0 THEN now() - (i % 3600) * interval '1 second' END,
    NULL, NULL, 0, NULL, NULL, NULL
FROM generate_series(1, {QUEUED}) AS i;
"""

# SQLite stores datetimes as 'YYYY-MM-DD HH:MM:SS.ffffff' text in UTC.
SQLITE_TIME = "strftime('%Y-%m-%d %H:%M:%f', 'now', '{offset} seconds') || '000'"
SQLITE_FILL = [
    f"""
WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < {FINISHED})
INSERT INTO bgtask_task (task_name, queue, priority, arguments, run_at, status, attempts,
    last_error, failed_at, locked_by, locked_until, created_at, started_at, finished_at, result,
    repeat, repeat_until, unique_key, timeout)
SELECT 'app.job_' || (i % {NAMES}),
    CASE i % 3 WHEN 0 THEN 'default' WHEN 1 THEN 'mail' ELSE 'reports' END, 0,
    '{{"args": [' || i || '], "kwargs": {{}}}}',
    {SQLITE_TIME.format(offset="-' || (i * 0.604 + 2) || '")},
    CASE WHEN i % 20 = 0 THEN 'failed' ELSE 'succeeded' END,
    CASE WHEN i % 20 = 0 THEN 25 ELSE 0 END,
    CASE WHEN i % 20 = 0 THEN replace('{TRACEBACK}', '\\n', char(10)) ELSE '' END,
    CASE WHEN i % 20 = 0 THEN {SQLITE_TIME.format(offset="-' || (i * 0.604) || '")} END,
    NULL, NULL,
    {SQLITE_TIME.format(offset="-' || (i * 0.604 + 3) || '")},
    {SQLITE_TIME.format(offset="-' || (i * 0.604 + (i % 5 + 1) * 0.1) || '")},
    {SQLITE_TIME.format(offset="-' || (i * 0.604) || '")},
    NULL, 0, NULL, NULL, NULL
FROM s
""",
    f"""
WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < {QUEUED})
INSERT INTO bgtask_task (task_name, queue, priority, arguments, run_at, status, attempts,
    last_error, failed_at, locked_by, locked_until, created_at, started_at, finished_at, result,
    repeat, repeat_until, unique_key, timeout)
SELECT 'app.job_' || (i % {NAMES}),
    CASE i % 3 WHEN 0 THEN 'default' WHEN 1 THEN 'mail' ELSE 'reports' END, i % 3,
    '{{"args": [' || i || '], "kwargs": {{}}}}',
    {SQLITE_TIME.format(offset=f"' || (i - {QUEUED // 10}) || '")},
    'queued', CASE WHEN i % 50 = 0 THEN 1 ELSE 0 END,
    CASE WHEN i % 50 = 0 THEN replace('{TRACEBACK}', '\\n', char(10)) ELSE '' END,
    NULL, NULL, NULL, {SQLITE_TIME.format(offset="-3600")},
    CASE WHEN i % 50 = 0 THEN {SQLITE_TIME.format(offset="-' || (i % 3600) || '")} END,
    NULL, NULL, 0, NULL, NULL, NULL
FROM s
""",
]


def setup(vendor: str) -> None:
    from benchmarks import dbs

    if vendor == "sqlite":
        os.environ.setdefault(
            "BENCH_SQLITE_PATH", str(dbs.DATA_DIR / f"admin-scale-{SUFFIX}.sqlite3")
        )
    else:
        os.environ.setdefault(
            "BENCH_POSTGRES_URL", f"postgres://postgres@127.0.0.1:5432/bgtask_admin_{SUFFIX}"
        )
    dbs.create_database(vendor)
    os.environ["BENCH_DB"] = vendor
    os.environ["DJANGO_SETTINGS_MODULE"] = "benchmarks.admin_settings"
    import django

    django.setup()


def fill(vendor: str, refill: bool) -> None:
    from django.core.management import call_command
    from django.db import connection

    from bgtask.models import Task

    call_command("migrate", verbosity=0)
    have = Task.objects.count()  # once, before the figures: not a page view
    if have == FINISHED + QUEUED + 1 and not refill:
        print(f"  reusing {have:,} rows")
        return
    started = time.perf_counter()
    Task.objects.all().delete() if have < 50_000 else _truncate(connection)
    with connection.cursor() as cursor:
        for statement in SQLITE_FILL if vendor == "sqlite" else [POSTGRES_FILL]:
            cursor.execute(statement)
    Task.objects.create(task_name="app.job_1", status=Task.RUNNING, locked_by="host-a:101")
    if vendor == "postgres":
        # What autovacuum does on its own soon after a bulk load: statistics and the visibility
        # map (index-only scans).
        connection.cursor().execute("VACUUM ANALYZE bgtask_task")
    took = time.perf_counter() - started
    print(f"  filled {FINISHED:,} finished + {QUEUED:,} queued in {took:.0f} s")


def _truncate(connection) -> None:
    with connection.cursor() as cursor:
        if connection.vendor == "sqlite":
            cursor.execute("DELETE FROM bgtask_task")
        else:
            cursor.execute("TRUNCATE bgtask_task")


def pages() -> list[tuple[str, str]]:
    from bgtask.models import Task

    failed = Task.objects.filter(status="failed").order_by("-id").values_list("id", flat=True)[0]
    return [
        ("list: default", "/admin/bgtask/task/"),
        ("list: status=queued", "/admin/bgtask/task/?status__exact=queued"),
        ("list: status=running", "/admin/bgtask/task/?status__exact=running"),
        ("list: status=succeeded", "/admin/bgtask/task/?status__exact=succeeded"),
        ("list: status=failed", "/admin/bgtask/task/?status__exact=failed"),
        ("list: queue=mail", "/admin/bgtask/task/?queue__exact=mail"),
        ("list: task name", "/admin/bgtask/task/?task_name__exact=app.job_7"),
        (
            "list: failed + task name",
            "/admin/bgtask/task/?status__exact=failed&task_name__exact=app.job_0",
        ),
        ("list: search name", "/admin/bgtask/task/?q=app.job_7"),
        ("list: search id", f"/admin/bgtask/task/?q={failed}"),
        ("list: page 50", "/admin/bgtask/task/?p=50"),
        ("task page (failed)", f"/admin/bgtask/task/{failed}/change/"),
        ("dashboard", "/admin/bgtask/task/dashboard/"),
        ("status JSON", "/bgtask/status/"),
    ]


def measure(runs: int) -> None:
    from django.contrib.auth.models import User
    from django.db import connection
    from django.test import Client

    user = User.objects.filter(username="bench").first() or User.objects.create_superuser(
        "bench", "bench@example.invalid", "bench"
    )
    client = Client()
    client.force_login(user)
    print(f"  {'page':<28} {'median ms':>10} {'max ms':>8} {'queries':>8}")
    for label, url in pages():
        queries: list[str] = []

        def count(run, sql, *rest, queries=queries):
            queries.append(sql)
            return run(sql, *rest)

        # Counted by a wrapper: Django clears its own query log when a request starts.
        with connection.execute_wrapper(count):
            response = client.get(url)  # warm-up, and the query count
        if response.status_code != 200:
            raise SystemExit(f"{url} answered {response.status_code}")
        times = []
        for _ in range(runs):
            started = time.perf_counter()
            client.get(url)
            times.append((time.perf_counter() - started) * 1000)
        print(
            f"  {label:<28} {statistics.median(times):>10.1f} {max(times):>8.1f} {len(queries):>8}"
        )


def index_cost(rounds: int = 5, tasks: int = 2000) -> None:
    """Claim and finish ``tasks`` queued rows (batches of 100), with migration 0006's indexes and
    without them; medians of ``rounds``."""
    from datetime import timedelta

    from django.db import connection
    from django.utils import timezone

    from bgtask.models import Task
    from bgtask.store.tasks import TaskStore

    store = TaskStore()
    create = {
        "bgtask_outcome_idx": "CREATE INDEX IF NOT EXISTS bgtask_outcome_idx ON bgtask_task "
        "(finished_at, status, queue, task_name)",
        "bgtask_failed_idx": "CREATE INDEX IF NOT EXISTS bgtask_failed_idx ON bgtask_task "
        "(id, queue) WHERE status = 'failed'",
    }
    with connection.cursor() as cursor:
        for sql in create.values():
            cursor.execute(sql)

    def one_round() -> float:
        now = timezone.now()
        ids = list(
            Task.objects.bulk_create(
                Task(task_name="bench.noop", queue="cost", run_at=now - timedelta(days=400))
                for _ in range(tasks)
            )
        )
        started = time.perf_counter()
        done = 0
        while done < tasks:
            batch = store.claim_due("cost-worker", 100, now + timedelta(minutes=5), queue="cost")
            for task in batch:
                store.mark_succeeded(task, None, now, timezone.now())
            done += len(batch)
        elapsed = time.perf_counter() - started
        Task.objects.filter(id__in=[t.id for t in ids] if ids[0].id else [], queue="cost").delete()
        Task.objects.filter(queue="cost").delete()
        return elapsed / tasks * 1e6

    with_indexes = statistics.median(one_round() for _ in range(rounds))
    with connection.cursor() as cursor:
        for name in create:
            cursor.execute(f"DROP INDEX IF EXISTS {name}")
    try:
        without = statistics.median(one_round() for _ in range(rounds))
    finally:
        with connection.cursor() as cursor:
            for sql in create.values():
                cursor.execute(sql)
    print(
        f"  claim + outcome per task: {with_indexes:.0f} us with 0006's indexes, "
        f"{without:.0f} us without ({with_indexes - without:+.0f} us)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--db", choices=("sqlite", "postgres"), required=True)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--refill", action="store_true", help="fill again even if filled")
    parser.add_argument("--index-cost", action="store_true", help="time claim+outcome too")
    args = parser.parse_args()
    setup(args.db)
    print(f"== admin at scale on {args.db}")
    fill(args.db, args.refill)
    measure(args.runs)
    if args.index_cost:
        index_cost()


if __name__ == "__main__":
    main()
