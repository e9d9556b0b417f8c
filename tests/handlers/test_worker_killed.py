"""A Lambda killed in the middle of a task: the task runs again once the dead invocation's
deadline plus grace have passed, not after MAX_RUN_TIME, and not before."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from datetime import timedelta

import pytest
from django.test import override_settings
from django.utils import timezone

from bgtask.models import Task
from handlers import worker
from handlers.local_context import LocalContext
from tests.conftest import REPO_ROOT, wait_for, worker_env
from tests.sampleapp import tasks
from tests.sampleapp.models import Execution

# The dead invocation's Lambda timeout. Its context starts counting before the handler has
# imported and set up Django, which takes seconds on a loaded machine: at 4 s the invocation
# sometimes had nothing left to run the task with.
TIMEOUT = 10.0
GRACE = 1.0


@pytest.mark.django_db(transaction=True)
@override_settings(BGTASK_LAMBDA_LEASE_GRACE=GRACE, MAX_RUN_TIME=3600)
def test_a_task_of_a_killed_invocation_runs_after_its_deadline_and_grace(tmp_path):
    started, release = tmp_path / "started", tmp_path / "release"
    task = tasks.block_until_file("victim", str(started), str(release), schedule=0)
    event_file = tmp_path / "worker-schedule.json"
    event_file.write_text(json.dumps({"source": "bgtask.schedule"}))
    launched = timezone.now()
    process = subprocess.Popen(
        [sys.executable, "-m", "handlers.invoke_local", str(event_file), "--timeout", str(TIMEOUT)],
        env=worker_env(
            DJANGO_SETTINGS_MODULE="tests.handlers.lambda_settings",
            BGTASK_LAMBDA_SAFETY_MARGIN="1",
            BGTASK_LAMBDA_LEASE_GRACE=str(GRACE),
        ),
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        wait_for(
            lambda: started.exists() or process.poll() is not None,
            timeout=60,
            message="the task to start in the Lambda process",
        )
        assert process.poll() is None, process.communicate()[1].decode()[-3000:]
        os.kill(process.pid, signal.SIGKILL)  # Lambda's timeout kill: no cleanup runs
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()

    task.refresh_from_db()
    assert task.status == Task.RUNNING
    # The lease is the dead invocation's hard deadline plus grace, not MAX_RUN_TIME (an hour); the
    # slack covers the child's start-up before its context began counting.
    assert task.locked_until <= launched + timedelta(seconds=TIMEOUT + GRACE + 10)

    release.write_text("go")  # the next run of the task returns at once
    if timezone.now() < task.locked_until:
        # Before the lease has passed, the next invocation leaves the task alone.
        early = worker.handler({}, LocalContext(timeout=20))
        assert early["succeeded"] == 0 and early["rescued"] == 0
        assert Execution.objects.filter(key="victim").count() == 1

    wait_for(
        lambda: timezone.now() > task.locked_until,
        timeout=TIMEOUT + GRACE + 5,
        message="the dead invocation's lease to pass",
    )
    summary = worker.handler({}, LocalContext(timeout=20))

    assert summary["rescued"] == 1
    assert summary["succeeded"] == 1
    assert Execution.objects.filter(key="victim").count() == 2  # killed run + the rerun
    task.refresh_from_db()
    assert task.status == Task.SUCCEEDED
    assert task.attempts == 1  # the killed run counts as one failed attempt
