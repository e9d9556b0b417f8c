"""One clock: a worker whose clock is two minutes off (tests/reliability/skewed_clock.py) against
correct ones. Leases,
due times and rescue are compared on the database's clock, so the skewed worker neither runs a
task early nor rescues a live lease, and its own leases are not taken as expired by others."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from datetime import timedelta

import pytest
from django.db import connection

from bgtask import clock, run_batch
from bgtask.models import Task
from tests.conftest import REPO_ROOT, batch_result, start_batch_process, wait_for, worker_env
from tests.sampleapp import tasks
from tests.sampleapp.models import Execution

pytestmark = [
    pytest.mark.django_db(transaction=True),
]
SKEW = 120  # seconds
LEASE = 3.0


@pytest.fixture(autouse=True)
def _server_clock_only():
    if connection.vendor == "sqlite":
        pytest.skip("SQLite has no server clock: every process on the host shares one")


def start_skewed(skew: int, duration: float, **env: str) -> subprocess.Popen:
    """``tests/run_batch_process.py`` with its wall clock ``skew`` seconds off."""
    return subprocess.Popen(
        [
            sys.executable,
            str(REPO_ROOT / "tests" / "reliability" / "skewed_clock.py"),
            str(REPO_ROOT / "tests" / "run_batch_process.py"),
            str(duration),
        ],
        env=worker_env(BGTASK_TEST_CLOCK_SKEW=str(skew), **env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO_ROOT,
    )


def test_the_skew_is_real(tmp_path):
    """Guards the tests below against a skew that does nothing."""
    script = tmp_path / "print_clock.py"
    script.write_text(
        "import time\nfrom django.utils import timezone\n"
        "print(time.time(), timezone.now().timestamp())\n"
    )
    done = subprocess.run(
        [sys.executable, str(REPO_ROOT / "tests" / "reliability" / "skewed_clock.py"), script],
        env=worker_env(BGTASK_TEST_CLOCK_SKEW=str(-SKEW)),
        capture_output=True,
        text=True,
        check=True,
    )
    now = time.time()
    assert all(abs(float(t) - now + SKEW) < 10 for t in done.stdout.split()), done.stdout


def test_a_fast_clock_neither_runs_a_task_early_nor_rescues_a_live_lease(tmp_path):
    early = tasks.record("not-yet", schedule=60)  # due in a minute; the fast clock says now
    started, release = tmp_path / "started", tmp_path / "release"
    long = tasks.block_until_file("live", str(started), str(release), schedule=0)
    live = start_batch_process(120, BGTASK_TEST_LEASE_SECONDS="60")
    wait_for(started.exists, message="the correct worker to start its task")
    long.refresh_from_db()
    assert long.locked_until < clock.now() + timedelta(seconds=SKEW)  # expired on the fast clock

    out, err = start_skewed(+SKEW, 3).communicate(timeout=120)
    result = json.loads(out.strip().splitlines()[-1])
    assert (result["rescued"], result["succeeded"], result["failed"]) == (0, 0, 0)
    assert "120.0 s ahead of the database's" in err  # measured, and said once
    early.refresh_from_db()
    long.refresh_from_db()
    assert early.status == Task.QUEUED and early.attempts == 0
    assert long.status == Task.RUNNING and long.attempts == 0

    release.touch()
    assert batch_result(live)["succeeded"] == 1
    assert Execution.objects.filter(key="live").count() == 1
    assert not Execution.objects.filter(key="not-yet").exists()


def test_a_slow_clocks_lease_holds_and_a_correct_worker_rescues_it_once_it_is_dead(tmp_path):
    started, release = tmp_path / "started", tmp_path / "release"
    task = tasks.block_until_file("slow-clock", str(started), str(release), schedule=0)
    skewed = start_skewed(-SKEW, 120, BGTASK_TEST_LEASE_SECONDS=str(LEASE))
    wait_for(started.exists, 60, message="the skewed worker to start its task")
    task.refresh_from_db()
    # On its own clock the lease would have ended two minutes ago; on the database's it has not.
    assert task.locked_until > clock.now()
    assert (run_batch(1).rescued, Execution.objects.filter(key="slow-clock").count()) == (0, 1)

    skewed.send_signal(signal.SIGKILL)
    skewed.wait(timeout=30)
    release.touch()

    def rescued() -> bool:
        return run_batch(5).rescued == 1

    wait_for(rescued, 60, interval=0.2, message="a correct worker to rescue the dead one's task")
    task.refresh_from_db()
    assert task.status == Task.SUCCEEDED and task.attempts == 1
    assert Execution.objects.filter(key="slow-clock").count() == 2
