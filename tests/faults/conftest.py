"""Fixtures for the fault tests: a PostgreSQL server of the test's own, a migrated database on it,
``process_tasks`` workers against it, and a summary of every fault loop's counts at the end of
the run (so the numbers can be quoted without ``-s``).

These tests run in the PostgreSQL pass of the suite (DATABASE_URL=postgres://...), once; on
SQLite and MariaDB they are skipped, as they are through PgBouncer.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from django.db import connection

from tests.conftest import REPO_ROOT
from tests.faults.servers import PostgresServer, ServerUnavailable

#: Every fault loop's printed summary, repeated in the terminal summary at the end of the run.
REPORTS: list[str] = []

# What process_tasks logs when it loses the database (one WARNING) and when it has it back (one
# INFO), issue 11 item 1. Other lines mention an unavailable database too (claims it could not
# release, released afterwards); these two are the worker's own.
LOST_LINE = re.compile(r"^Database .* is unavailable: .*retrying with backoff")
BACK_LINE = re.compile(r"^Database is back after ")


def report(line: str) -> None:
    print(f"\n{line}")
    REPORTS.append(line)


def pytest_terminal_summary(terminalreporter):
    if REPORTS:
        terminalreporter.section("fault loop counts")
        for line in REPORTS:
            terminalreporter.write_line(line)


@pytest.fixture(scope="module")
def pg_server():
    if connection.vendor != "postgresql" or os.environ.get("BGTASK_TEST_PGBOUNCER"):
        pytest.skip("the own-server fault tests run once, in the PostgreSQL pass")
    try:
        server = PostgresServer()
    except ServerUnavailable as exc:
        pytest.skip(str(exc))
    server.start()
    yield server
    server.destroy()


@dataclass
class FaultDatabase:
    """A migrated database on the test's own server, queried with plain psycopg (the test
    process's Django connection stays on the suite's database)."""

    server: PostgresServer
    name: str
    logdir: Path
    workers: list[subprocess.Popen] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"{self.server.url}/{self.name}"

    def env(self, **extra: str) -> dict[str, str]:
        env = dict(os.environ)
        env.pop("BGTASK_TEST_DB_NAME", None)
        env["DATABASE_URL"] = self.url
        env["DJANGO_SETTINGS_MODULE"] = "tests.settings"
        env["PYTHONPATH"] = str(REPO_ROOT) + os.pathsep + env.get("PYTHONPATH", "")
        env.update(extra)
        return env

    def django(self, code: str, timeout: float = 300) -> str:
        """Run ``code`` after django.setup() in a child process on this database."""
        done = subprocess.run(
            [sys.executable, "-c", "import django; django.setup()\n" + code],
            env=self.env(),
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        assert done.returncode == 0, done.stderr[-3000:]
        return done.stdout

    def query(self, sql: str, params: tuple = ()) -> list[tuple]:
        """Rows of one statement; raises psycopg.OperationalError while the server is down."""
        import psycopg

        with psycopg.connect(self.url, connect_timeout=5, autocommit=True) as conn:
            cursor = conn.execute(sql, params)
            return cursor.fetchall() if cursor.description else []

    def value(self, sql: str, params: tuple = ()):
        return self.query(sql, params)[0][0]

    def enqueue_slow_records(self, count: int, seconds: float, prefix: str = "k") -> list[str]:
        keys = [f"{prefix}{i}" for i in range(count)]
        self.django(
            "from tests.sampleapp.tasks import slow_record\n"
            f"slow_record.bulk([(f'{prefix}{{i}}', {seconds!r}) for i in range({count})])\n"
        )
        return keys

    def describe(self) -> str:
        """The task table in a line: statuses, and the rows still running with their leases."""
        running = self.query(
            "SELECT id, locked_by, locked_until - now(), attempts FROM bgtask_task "
            "WHERE status = 'running' ORDER BY id LIMIT 10"
        )
        queued = self.query(
            "SELECT min(run_at - now()), max(run_at - now()), max(attempts) FROM bgtask_task "
            "WHERE status = 'queued'"
        )
        return f"statuses={dict(self.status_counts())} running={running} queued={queued}"

    def status_counts(self) -> Counter:
        return Counter(dict(self.query("SELECT status, count(*) FROM bgtask_task GROUP BY status")))

    def executions(self) -> Counter:
        return Counter(
            dict(self.query("SELECT key, count(*) FROM sampleapp_execution GROUP BY key"))
        )

    def start_worker(self, *args: str, **env: str) -> subprocess.Popen:
        """``manage.py process_tasks`` on this database; its log goes to a file
        (``worker.log_path``) so a chatty worker can never block on a full pipe."""
        log_path = self.logdir / f"worker-{len(self.workers)}.log"
        log = log_path.open("w")
        worker = subprocess.Popen(
            [sys.executable, "-m", "django", "process_tasks", "--log-level", "INFO", *args],
            env=self.env(**env),
            cwd=REPO_ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            text=True,
        )
        log.close()
        worker.log_path = log_path  # type: ignore[attr-defined]
        self.workers.append(worker)
        return worker


def worker_log(worker: subprocess.Popen) -> str:
    return Path(worker.log_path).read_text(errors="replace")  # type: ignore[attr-defined]


def count_lines(worker: subprocess.Popen, pattern: re.Pattern) -> int:
    return sum(1 for line in worker_log(worker).splitlines() if pattern.search(line))


def stop_worker(worker: subprocess.Popen, ceiling: float = 60) -> tuple[int | None, float]:
    """SIGTERM ``worker``; return its exit code and the seconds it took (None: had to kill)."""
    sent = time.monotonic()
    if worker.poll() is None:
        worker.send_signal(signal.SIGTERM)
    try:
        code = worker.wait(ceiling)
    except subprocess.TimeoutExpired:
        worker.kill()
        worker.wait(30)
        code = None
    return code, time.monotonic() - sent


def wait_while_alive(workers, condition, timeout: float, message: str, describe=None):
    """Like ``wait_for``, but fail at once, with the log, when a worker exits meanwhile;
    ``describe()`` adds the state worth seeing to a timeout's message."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        for worker in workers:
            if worker.poll() is not None:
                pytest.fail(
                    f"worker exited {worker.returncode} while waiting for {message}:\n"
                    f"{worker_log(worker)[-3000:]}"
                )
        if time.monotonic() > deadline:
            state = describe() if describe else ""
            logs = "\n".join(worker_log(w)[-2000:] for w in workers)
            pytest.fail(f"Timed out after {timeout}s waiting for {message}: {state}\n{logs}")
        time.sleep(0.05)


@pytest.fixture(scope="module")
def _fault_database_name(pg_server):
    name = "bgtask_faults"
    pg_server.create_database(name)
    migrate = subprocess.run(
        [sys.executable, "-m", "django", "migrate", "--noinput", "-v", "0"],
        env={
            **os.environ,
            "DATABASE_URL": f"{pg_server.url}/{name}",
            "DJANGO_SETTINGS_MODULE": "tests.settings",
            "BGTASK_TEST_DB_NAME": "",
        },
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert migrate.returncode == 0, migrate.stderr[-3000:]
    return name


@pytest.fixture
def fault_db(pg_server, _fault_database_name):
    """The own server's database, emptied, with the server up; every worker is stopped after."""
    if not pg_server.is_running():
        pg_server.start()
    db = FaultDatabase(
        pg_server, _fault_database_name, Path(tempfile.mkdtemp(prefix="bgtask-faults-"))
    )
    db.query("TRUNCATE bgtask_task, sampleapp_execution RESTART IDENTITY")
    yield db
    for worker in db.workers:
        if worker.poll() is None:
            worker.kill()
            worker.wait(30)
    if not pg_server.is_running():
        pg_server.start()
