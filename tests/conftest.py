"""Shared fixtures: worker processes against the test database, and waiting for conditions."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from django.db import connection

REPO_ROOT = Path(__file__).resolve().parent.parent


def pytest_addoption(parser):
    parser.addoption(
        "--full-count",
        action="store_true",
        default=False,
        help="Run the long fault loops at their full size (CI runs a reduced count).",
    )
    parser.addoption(
        "--vendor-independent-everywhere",
        action="store_true",
        default=False,
        help="Run the vendor_independent tests on PostgreSQL and MariaDB too (by default they "
        "run only on SQLite).",
    )


# Tests whose subject does not depend on the database vendor, with the reason: they run in the
# SQLite pass only (marker ``vendor_independent``), not again on PostgreSQL and MariaDB; with
# ``--vendor-independent-everywhere`` they run on every database. Whatever they touch that does
# depend on the database is tested on every database by the tests named here.
VENDOR_INDEPENDENT = {
    "tests/test_readme.py": "compares README.md with bgtask.conf; no database",
    "tests/core/test_layers.py": "reads the package's import graph from its source; no database",
    "tests/aws/test_template.py": "translates and checks template.yaml; no database",
    "tests/aws/test_boundaries.py": "which modules import boto3, and settings validation",
    "tests/features/test_deadline_limits.py": "arithmetic of limit_before; no database",
    "tests/soak/test_ledger.py": (
        "the soak's judgement of made-up evidence; no database (the soak itself runs in the "
        "PostgreSQL and MariaDB passes, tests/soak/test_soak.py)"
    ),
    "tests/browser/test_admin_browser.py": (
        "the admin's pages, styles and buttons in Chromium; the admin's queries and actions run "
        "on every database in tests/features/test_admin.py and tests/reliability/test_security.py"
    ),
    "tests/handlers/test_awslambdaric.py": (
        "the Lambda runtime client's protocol (deadline header, error reports, JSON log lines); "
        "the worker's database work under a deadline runs on every database in "
        "tests/handlers/test_worker.py and tests/handlers/test_worker_deadline.py"
    ),
    "tests/serverless_faults/test_malformed_events.py": (
        "event shapes are refused before any database access; the check is that nothing changed"
    ),
    "tests/serverless_faults/test_manage_allowlist.py": (
        "the management entrypoint's allowlist is parsed before any command runs; the allowed "
        "commands themselves run on every database in tests/handlers/test_manage.py"
    ),
    "tests/serverless_faults/test_access.py": (
        "who may see the admin and the status endpoint is decided by Django's auth and the "
        "token check; hostile requests, whose queries can differ per database, run on every "
        "database in tests/serverless_faults/test_http_requests.py"
    ),
}


def pytest_configure(config):
    """A SQLite test database left by a run that was killed may leave its ``-wal`` and ``-shm``
    files behind; pytest-django recreates the database file but not those, and the new file with
    the old shared-memory index fails with "disk I/O error". Remove them before the run."""
    from django.conf import settings

    database = settings.DATABASES["default"]
    if database["ENGINE"].endswith("sqlite3"):
        name = Path(database["TEST"]["NAME"])
        for leftover in (name, Path(f"{name}-wal"), Path(f"{name}-shm")):
            leftover.unlink(missing_ok=True)


def pytest_collection_modifyitems(config, items):
    """Mark the VENDOR_INDEPENDENT tests; leave them out (deselected, counted in the summary)
    on any database but SQLite unless --vendor-independent-everywhere."""
    missing = [path for path in VENDOR_INDEPENDENT if not (REPO_ROOT / path).is_file()]
    if missing:
        raise pytest.UsageError(f"tests/conftest.py VENDOR_INDEPENDENT names no file: {missing}")
    for item in items:
        if item.nodeid.split("::", 1)[0] in VENDOR_INDEPENDENT:
            item.add_marker(pytest.mark.vendor_independent)
    if connection.vendor == "sqlite" or config.getoption("--vendor-independent-everywhere"):
        return
    left_out = [item for item in items if item.get_closest_marker("vendor_independent")]
    if left_out:
        config.hook.pytest_deselected(items=left_out)
        items[:] = [item for item in items if not item.get_closest_marker("vendor_independent")]


@pytest.fixture(scope="session", autouse=True)
def pgbouncer(request):
    """With BGTASK_TEST_PGBOUNCER=1 (``make test-pgbouncer``): after the test database is created
    directly, the test process and every worker it starts talk to it through a PgBouncer in
    transaction pooling mode whose pool is smaller than the workers. None otherwise."""
    if not os.environ.get("BGTASK_TEST_PGBOUNCER"):
        yield None
        return
    request.getfixturevalue("django_db_setup")
    if connection.vendor != "postgresql":
        pytest.exit("BGTASK_TEST_PGBOUNCER needs DATABASE_URL=postgres://...", returncode=2)
    from tests.faults.servers import PgBouncer

    settings = connection.settings_dict
    original = settings["HOST"], settings["PORT"], os.environ.get("DATABASE_URL")
    bouncer = PgBouncer(int(settings["PORT"] or 5432), pool_size=2, upstream_host=settings["HOST"])
    bouncer.start()
    connection.close()
    settings["HOST"], settings["PORT"] = "127.0.0.1", bouncer.port
    # Worker processes read DATABASE_URL (and BGTASK_TEST_DB_NAME picks the test database).
    os.environ["DATABASE_URL"] = f"postgres://{settings['USER']}@127.0.0.1:{bouncer.port}/postgres"
    yield bouncer
    connection.close()
    settings["HOST"], settings["PORT"] = original[:2]
    if original[2] is None:
        os.environ.pop("DATABASE_URL", None)
    else:
        os.environ["DATABASE_URL"] = original[2]
    # Stopped before the test database is dropped: PgBouncer's server connections would block it,
    # and their backends end a moment after PgBouncer closes them.
    bouncer.destroy()
    import psycopg

    def test_database_released() -> bool:
        with psycopg.connect(
            host=settings["HOST"] or "127.0.0.1",
            port=settings["PORT"] or 5432,
            user=settings["USER"],
            dbname="postgres",
            autocommit=True,
        ) as conn:
            sql = "SELECT count(*) FROM pg_stat_activity WHERE datname = %s"
            return conn.execute(sql, [settings["NAME"]]).fetchone()[0] == 0

    wait_for(test_database_released, timeout=60, message="PgBouncer's server connections to end")


@pytest.fixture
def full_count(request) -> bool:
    return request.config.getoption("--full-count")


def wait_for(
    condition: Callable[[], object],
    timeout: float = 30.0,
    interval: float = 0.02,
    message: str = "condition",
) -> object:
    """Poll ``condition`` until it returns something truthy; fail the test after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"Timed out after {timeout}s waiting for {message}")
        time.sleep(interval)


def worker_env(**extra: str) -> dict[str, str]:
    """Environment for a child process that must use this test run's database."""
    env = dict(os.environ)
    env["DJANGO_SETTINGS_MODULE"] = "tests.settings"
    env["PYTHONPATH"] = str(REPO_ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env["BGTASK_TEST_DB_NAME"] = str(connection.settings_dict["NAME"])
    env.update(extra)
    return env


def run_python(code: str, timeout: float = 60, **env: str) -> subprocess.CompletedProcess:
    """Run ``python -c code`` in a child process on this test run's database; wait for it."""
    return subprocess.run(
        [sys.executable, "-c", code],
        env=worker_env(**env),
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def start_batch_process(
    duration: float, *, queue: str | None = None, concurrency: int | None = None, **env: str
) -> subprocess.Popen:
    """Start ``tests/run_batch_process.py``: one run_batch call in a fresh process; it prints
    the BatchResult as JSON on its last line."""
    command = [sys.executable, str(REPO_ROOT / "tests" / "run_batch_process.py"), str(duration)]
    if queue:
        command += ["--queue", queue]
    if concurrency:
        command += ["--concurrency", str(concurrency)]
    return subprocess.Popen(
        command,
        env=worker_env(**env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO_ROOT,
    )


def batch_result(process: subprocess.Popen, timeout: float = 120) -> dict:
    out, err = process.communicate(timeout=timeout)
    assert process.returncode == 0, f"worker exited {process.returncode}: {err[-3000:]}"
    return json.loads(out.strip().splitlines()[-1])


def start_process_tasks(*args: str, **env: str) -> subprocess.Popen:
    command = [sys.executable, "-m", "django", "process_tasks", *args]
    return subprocess.Popen(
        command,
        env=worker_env(**env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO_ROOT,
    )
