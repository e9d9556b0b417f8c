"""Lambda kills an invocation in the middle of a task, again and again: nothing is lost, each
killed task runs again once the dead invocation's deadline plus grace have passed (not before), and
nothing stays stuck. (A task still running at the deadline less the margin is stopped and retried
by the worker itself, see tests/handlers/test_worker_deadline.py; a kill mid-task is what is left:
running out of memory, a crash, or a task blocked where the time limit cannot interrupt it.)
Reduced count by default; ``pytest --full-count`` runs 20."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest
from django.test import override_settings
from django.utils import timezone

from bgtask.models import Task
from handlers import worker
from handlers.local_context import LocalContext
from tests.conftest import REPO_ROOT, wait_for, worker_env
from tests.sampleapp import tasks
from tests.sampleapp.models import Execution
from tests.serverless_faults.conftest import SECRET_KEY, SECRETS, STATUS_TOKEN

TIMEOUT = 3.0  # each killed invocation's Lambda timeout
MARGIN = 1.0
GRACE = 2.0
QUICK_PER_INVOCATION = 2  # tasks each invocation finishes before it reaches its victim
REDUCED_COUNT, FULL_COUNT = 3, 20


def launch_invocation(event_file) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "handlers.invoke_local", str(event_file), "--timeout", str(TIMEOUT)],
        env=worker_env(
            DJANGO_SETTINGS_MODULE="tests.handlers.lambda_settings",
            BGTASK_LAMBDA_SAFETY_MARGIN=str(MARGIN),
            BGTASK_LAMBDA_LEASE_GRACE=str(GRACE),
            DJANGO_SECRET_KEY=SECRET_KEY,
            BGTASK_STATUS_TOKEN=STATUS_TOKEN,
        ),
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def kill_mid_task(process: subprocess.Popen, victim: Task, started) -> Task:
    """Wait for the victim to start, then SIGKILL the invocation while the task runs."""
    try:
        wait_for(
            lambda: started.exists() or process.poll() is not None,
            timeout=60,
            message="the victim task to start in the Lambda process",
        )
        assert process.poll() is None, process.communicate()[1].decode()[-3000:]
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    victim.refresh_from_db()
    return victim


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
@override_settings(BGTASK_LAMBDA_LEASE_GRACE=GRACE, MAX_RUN_TIME=3600, MAX_ATTEMPTS=5)
def test_invocations_killed_mid_task_lose_nothing(tmp_path, full_count):
    count = FULL_COUNT if full_count else REDUCED_COUNT
    event_file = tmp_path / "worker-schedule.json"
    event_file.write_text(json.dumps({"source": "bgtask.schedule"}))
    early_checks = 0

    for round_number in range(count):
        started, release = (
            tmp_path / f"started-{round_number}",
            tmp_path / f"release-{round_number}",
        )
        for j in range(QUICK_PER_INVOCATION):
            tasks.record.enqueue([f"quick-{round_number}-{j}"], schedule=0, priority=10)
        victim = tasks.block_until_file(
            f"victim-{round_number}", str(started), str(release), schedule=0
        )

        victim = kill_mid_task(launch_invocation(event_file), victim, started)

        # Killed mid-task: the row still says running, leased until the deadline plus grace.
        assert victim.status == Task.RUNNING and victim.locked_by is not None
        lease_end = victim.locked_until
        for j in range(QUICK_PER_INVOCATION):
            assert Execution.objects.filter(key=f"quick-{round_number}-{j}").count() == 1
        release.write_text("go")  # the rerun returns at once

        if (lease_end - timezone.now()).total_seconds() > 1.0:
            # Before the lease ends, the next invocation leaves the victim alone.
            early = worker.handler({}, LocalContext(timeout=20))
            assert early["rescued"] == 0
            assert Execution.objects.filter(key=f"victim-{round_number}").count() == 1
            early_checks += 1

        wait_for(lambda: timezone.now() > lease_end, timeout=TIMEOUT + GRACE + 10)  # noqa: B023
        summary = worker.handler({}, LocalContext(timeout=20))

        assert summary["rescued"] == 1 and summary["succeeded"] == 1, summary
        runs = list(Execution.objects.filter(key=f"victim-{round_number}").order_by("id"))
        assert len(runs) == 2  # the killed run and the rerun
        assert runs[1].created_at > lease_end, "rerun before the dead invocation's lease ended"

    # Nothing lost, nothing stuck, nothing ran twice that should not have.
    assert not Task.objects.exclude(status=Task.SUCCEEDED).exists()
    assert not Task.objects.exclude(locked_by=None).exists()
    assert Execution.objects.filter(key__startswith="quick-").count() == count * 2
    assert Execution.objects.filter(key__startswith="victim-").count() == count * 2
    assert set(
        Task.objects.filter(task_name="sample.block_until_file").values_list("attempts", flat=True)
    ) == {1}
    for last_error in Task.objects.exclude(last_error="").values_list("last_error", flat=True):
        assert not any(secret in (last_error or "") for secret in SECRETS)
    print(f"\nkilled invocations: {count}, early checks: {early_checks}")
