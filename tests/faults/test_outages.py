"""Issue 11, item 1: ``process_tasks`` rides out its database going away and coming back.

Real workers against a PostgreSQL server the test stops and starts (never the shared one). The
outage lasts 10 s in CI and 60 s with ``--full-count``.
"""

from __future__ import annotations

import time

import pytest

from tests.faults.conftest import (
    BACK_LINE,
    LOST_LINE,
    count_lines,
    report,
    stop_worker,
    wait_while_alive,
    worker_log,
)

# A lease far longer than the test: tasks a worker claimed but did not start can only become
# claimable again in time because the worker hands them back, never because the lease ran out.
LONG_LEASE = {"BGTASK_TEST_MAX_RUN_TIME": "3600", "BGTASK_TEST_LEASE_SECONDS": "600"}
# Generous ceilings for a loaded machine; the seconds actually taken are printed.
SIGTERM_CEILING = 20.0
DRAIN_CEILING = 180.0


def outage_seconds(full_count: bool) -> float:
    return 60.0 if full_count else 10.0


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["forever", "duration"])
def test_worker_rides_out_an_outage_logs_it_once_and_finishes_its_claims(
    fault_db, full_count, mode
):
    outage = outage_seconds(full_count)
    count = 600 if full_count else 300
    # 10 ms tasks: claims grow to a dozen or so rows, so an outage finds claimed, unstarted ones.
    fault_db.enqueue_slow_records(count, 0.01)
    args = ["--sleep", "0.2"] + (["--duration", "900"] if mode == "duration" else [])
    worker = fault_db.start_worker(*args, **LONG_LEASE)
    wait_while_alive(
        [worker],
        lambda: fault_db.value("SELECT count(*) FROM sampleapp_execution") >= 50,
        120,
        "the worker to run 50 tasks",
    )

    fault_db.server.stop("fast")
    down_at = time.monotonic()
    # The outage itself is the condition under test: the worker must be alive all through it.
    wait_while_alive(
        [worker], lambda: time.monotonic() - down_at >= outage, outage + 5, "the outage to end"
    )
    lost_during = count_lines(worker, LOST_LINE)
    fault_db.server.start()
    back_at = time.monotonic()

    # Every task must finish well within the 600 s lease: the claimed, unstarted ones are
    # released on reconnect, and so is the one the worker was running when the database went
    # away (its outcome could not be written; bgtask.execution hands it back). None is left to
    # its lease.
    def settled() -> bool:
        statuses = fault_db.status_counts()
        return statuses.get("queued", 0) == 0 and statuses.get("running", 0) == 0

    wait_while_alive([worker], settled, DRAIN_CEILING, "every task to finish", fault_db.describe)
    drained_after = time.monotonic() - back_at
    executions = fault_db.executions()
    statuses = fault_db.status_counts()
    code, exit_seconds = stop_worker(worker)
    log = worker_log(worker)
    lost, back = count_lines(worker, LOST_LINE), count_lines(worker, BACK_LINE)
    report(
        f"[outage {mode}] {outage:.0f} s down: tasks={count} statuses={dict(statuses)} "
        f"ran_twice={sum(1 for n in executions.values() if n > 1)} "
        f"never_ran={count - len(executions)} lost_lines={lost} back_lines={back} "
        f"drained {drained_after:.1f} s after the database came back (lease 600 s); "
        f"worker exit={code} {exit_seconds:.2f} s after SIGTERM; "
        f"tracebacks={log.count('Traceback')}"
    )
    assert count == len(executions), "a task never ran"
    assert statuses.get("succeeded", 0) == count, dict(statuses)
    assert lost_during == 1, f"expected one 'lost' line during the outage:\n{log[-3000:]}"
    assert (lost, back) == (1, 1), f"expected one 'lost' and one 'back' line:\n{log[-3000:]}"
    assert code == 0, log[-3000:]
    assert exit_seconds < SIGTERM_CEILING


@pytest.mark.slow
def test_sigterm_while_the_database_is_down_ends_the_worker_at_once(fault_db):
    fault_db.enqueue_slow_records(300, 0.01)
    worker = fault_db.start_worker("--sleep", "0.2", **LONG_LEASE)
    wait_while_alive(
        [worker],
        lambda: fault_db.value("SELECT count(*) FROM sampleapp_execution") >= 20,
        120,
        "the worker to run 20 tasks",
    )
    fault_db.server.stop("fast")
    wait_while_alive(
        [worker], lambda: count_lines(worker, LOST_LINE) >= 1, 60, "the worker to notice"
    )
    code, seconds = stop_worker(worker)
    log = worker_log(worker)
    report(f"[outage sigterm] worker exit={code} {seconds:.2f} s after SIGTERM while waiting")
    assert code == 0, log[-3000:]
    assert seconds < SIGTERM_CEILING
    assert "Traceback" not in log, log[-3000:]


@pytest.mark.slow
def test_tasks_a_dead_worker_claimed_are_claimable_soon_after_the_database_answers(fault_db):
    """Two workers; one is killed during the outage with claims it never started. After the
    database is back, the other runs everything well within the long lease (the dead worker's
    claims are taken back by the short heartbeat lease, the living one's it releases itself)."""
    count = 400
    fault_db.enqueue_slow_records(count, 0.01)
    short_lease = {"BGTASK_TEST_MAX_RUN_TIME": "3600", "BGTASK_TEST_LEASE_SECONDS": "15"}
    survivor = fault_db.start_worker("--sleep", "0.2", **short_lease)
    victim = fault_db.start_worker("--sleep", "0.2", **short_lease)
    wait_while_alive(
        [survivor, victim],
        lambda: fault_db.value("SELECT count(*) FROM sampleapp_execution") >= 40,
        120,
        "the workers to run 40 tasks",
    )
    fault_db.server.stop("fast")
    victim.kill()
    victim.wait(30)
    fault_db.server.start()
    back_at = time.monotonic()
    wait_while_alive(
        [survivor],
        lambda: fault_db.status_counts().get("succeeded", 0) == count,
        DRAIN_CEILING,
        "every task to succeed",
    )
    drained_after = time.monotonic() - back_at
    executions = fault_db.executions()
    twice = sum(1 for n in executions.values() if n > 1)
    code, seconds = stop_worker(survivor)
    report(
        f"[outage dead worker] tasks={count} ran_twice={twice} "
        f"lost={count - len(executions)} drained {drained_after:.1f} s after the database came "
        f"back (lease 15 s); survivor exit={code} {seconds:.2f} s after SIGTERM"
    )
    assert len(executions) == count
    assert code == 0, worker_log(survivor)[-3000:]
