"""The database connection killed from the server side while run_batch works."""

import random
import threading
import time
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from bgtask import conf
from bgtask.models import Task
from tests.conftest import batch_result, start_batch_process, wait_for
from tests.reliability.helpers import (
    backend_id,
    enqueue_records,
    execution_counts,
    kill_backend,
    other_backends,
    size,
)
from tests.sampleapp import tasks

LEASE = 3.0


@pytest.fixture(autouse=True)
def _server_database():
    if connection.vendor == "sqlite":
        pytest.skip("SQLite has no server connection to kill")


@pytest.mark.django_db(transaction=True)
def test_connection_killed_during_a_task_is_reopened_and_the_batch_carries_on(tmp_path):
    started, release = tmp_path / "started", tmp_path / "release"
    tasks.block_until_file("long", str(started), str(release), schedule=0, priority=10)
    enqueue_records([f"after-{i}" for i in range(20)])
    worker = start_batch_process(60, BGTASK_TEST_MAX_RUN_TIME=str(LEASE))
    wait_for(started.exists, message="the long task to start")
    victims = wait_for(other_backends, message="the worker's connection")
    for backend in victims:
        kill_backend(backend)
    release.touch()

    result = batch_result(worker)
    assert result["succeeded"] == 21
    assert Task.objects.succeeded().count() == 21
    assert set(execution_counts()) == {"long", *(f"after-{i}" for i in range(20))}


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_connections_killed_at_random_lose_nothing_and_no_lock_outlives_its_lease(full_count):
    rounds = size(full_count, 20, 3)
    rng = random.Random(7)
    keys, kills, clean_exits, error_exits = [], 0, 0, []
    test_backend = backend_id()  # the killer must spare the test's own connection
    for round_no in range(rounds):
        round_keys = [f"r{round_no}-{i}" for i in range(150)]
        keys += round_keys
        enqueue_records(round_keys)
        worker = start_batch_process(60, BGTASK_TEST_MAX_RUN_TIME=str(LEASE))
        stop = threading.Event()

        killed: list[int] = []

        def killer(worker=worker, stop=stop, killed=killed):
            # Its own connection: Django connections belong to one thread.
            spare = (test_backend, backend_id())
            try:
                while worker.poll() is None and not stop.is_set():
                    time.sleep(rng.uniform(0.02, 0.15))
                    for backend in other_backends(exclude=spare):
                        kill_backend(backend)
                        killed.append(backend)
            finally:
                connection.close()

        thread = threading.Thread(target=killer)
        thread.start()
        _out, err = worker.communicate(timeout=120)
        stop.set()
        thread.join()
        kills += len(killed)
        ended_at = timezone.now()
        if worker.returncode == 0:
            clean_exits += 1
        else:
            # Ending is allowed, but only with a clear database error, not a confusing one.
            clear = ("DatabaseUnavailable", "OperationalError", "InterfaceError")
            assert any(name in err for name in clear), err[-2000:]
            error_exits.append(err.strip().splitlines()[-1])
        # No lock outlives the lease it was taken with.
        assert (
            not Task.objects.running()
            .filter(locked_until__gt=ended_at + timedelta(seconds=LEASE))
            .exists()
        )

    wait_for(
        lambda: not Task.objects.running().filter(locked_until__gte=timezone.now()).exists(),
        timeout=LEASE + 30,
        message="every lease to expire",
    )
    # Tasks whose own query was cut were retried with backoff; make them due now to drain.
    Task.objects.queued().update(run_at=timezone.now())
    final = batch_result(start_batch_process(120))
    counts = execution_counts()
    assert set(counts) == set(keys), "a task was lost"
    assert Task.objects.succeeded().count() == len(keys)
    assert not Task.objects.filter(status__in=[Task.QUEUED, Task.RUNNING]).exists()
    # A statement can commit and lose its reply to the kill; the task then runs again (at least
    # once). A batch that ends on the kill leaves its unwritten group of successes to be rescued:
    # per kill, at most one group (BGTASK_OUTCOME_BATCH tasks with the running one) runs again.
    assert sum(n - 1 for n in counts.values()) <= kills * conf.outcome_batch()
    print(
        f"\n[connection-kill] {connection.vendor}: {rounds} rounds, {kills} connections killed, "
        f"{clean_exits} batches reconnected and finished, {len(error_exits)} ended with an "
        f"error {sorted(set(error_exits))[:3]}, final drain {final}, "
        f"{sum(n - 1 for n in counts.values())} side effects repeated"
    )
