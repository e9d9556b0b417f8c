"""The soak's judgement on made-up evidence: what counts as lost, stuck, and an allowed repeat."""

from __future__ import annotations

from tests.soak.ledger import (
    RESTART_FAST,
    SIGKILL,
    SIGSTOP,
    STOP,
    Evidence,
    Fault,
    Worker,
    judge,
    read_ledger,
    render,
)

T0 = 1_000_000.0


def evidence(runs, rows=None, faults=(), workers=(), batch=50) -> Evidence:
    rows = rows if rows is not None else dict.fromkeys(runs, "succeeded")
    return Evidence(
        acks=dict.fromkeys(rows, "+"),
        rows=rows,
        runs=runs,
        faults=list(faults),
        workers=list(workers),
        origin=T0,
        lease=10.0,
        outcome_batch=batch,
    )


def test_every_key_once_passes():
    ev = evidence({1: [(T0 + 1, 11)], 2: [(T0 + 2, 12)]})
    verdict = judge(ev)
    assert (verdict.total.keys, verdict.total.once, verdict.problems) == (2, 2, [])
    assert "verdict: PASS" in render(ev, verdict, "t")


def test_lost_stuck_and_failed_keys_are_problems():
    rows = {1: "succeeded", 2: "queued", 3: "running", 4: "failed"}
    verdict = judge(evidence({}, rows=rows))
    assert (verdict.total.lost, verdict.total.stuck, verdict.total.failed) == (1, 2, 1)
    assert len(verdict.problems) == 3


def test_an_acknowledged_enqueue_without_a_row_is_lost():
    ev = evidence({}, rows={})
    ev.acks = {7: "+", 8: "?"}
    verdict = judge(ev)
    assert (verdict.total.keys, verdict.total.lost, verdict.not_enqueued) == (1, 1, 1)


def test_a_sigkill_repeat_is_allowed_up_to_one_group_per_kill():
    kill = Fault(SIGKILL, T0 + 10, T0 + 10, pid=11)
    runs = {k: [(T0 + 9.9, 11), (T0 + 21, 12)] for k in (1, 2, 3)}
    workers = [Worker(11, "cron", T0, T0 + 10, -9, killed=True)]
    assert judge(evidence(runs, faults=[kill], workers=workers, batch=3)).problems == []
    problems = judge(evidence(runs, faults=[kill], workers=workers, batch=2)).problems
    assert len(problems) == 1 and "more than one group" in problems[0]


def test_a_kill_explains_only_runs_of_the_killed_worker_shortly_before_it():
    kill = Fault(SIGKILL, T0 + 200, T0 + 200, pid=11)
    workers = [Worker(11, "long", T0, T0 + 200, -9, killed=True)]
    # pid 11 ran key 1 long before it was killed (three leases are 30 s): not the kill's doing.
    verdict = judge(evidence({1: [(T0 + 100, 11), (T0 + 120, 12)]}, faults=[kill], workers=workers))
    assert verdict.repeats[0].reason == "unexplained"


def test_a_freeze_explains_a_repeat_only_if_the_other_run_fell_in_it():
    freeze = Fault(SIGSTOP, T0 + 10, T0 + 80, pid=11)
    # pid 11 ran key 1 after its thaw, the other run came later: no overlap with the freeze.
    verdict = judge(evidence({1: [(T0 + 85, 11), (T0 + 200, 12)]}, faults=[freeze]))
    assert verdict.repeats[0].reason == "unexplained"


def test_a_task_enqueued_during_a_freeze_is_not_the_frozen_workers():
    freeze = Fault(SIGSTOP, T0 + 10, T0 + 80, pid=11)
    outage = Fault(STOP, T0 + 50, T0 + 66)
    workers = [Worker(21, "long", T0, None, None)]
    ev = evidence({1: [(T0 + 50.1, 21), (T0 + 81, 11)]}, faults=[freeze, outage], workers=workers)
    ev.enqueued_at = {1: T0 + 49}
    assert [r.reason for r in judge(ev).repeats] == ["outage_over_lease"]


def test_a_success_owed_across_an_outage_longer_than_the_lease_is_reported_apart():
    outage = Fault(STOP, T0 + 100, T0 + 116)
    workers = [Worker(21, "long", T0, None, None)]  # alive throughout
    verdict = judge(
        evidence({1: [(T0 + 100.1, 21), (T0 + 118, 22)]}, faults=[outage], workers=workers)
    )
    assert [r.reason for r in verdict.repeats] == ["outage_over_lease"]
    assert verdict.problems == [] and verdict.pending == []


def test_a_repeat_no_fault_explains_fails():
    verdict = judge(evidence({1: [(T0 + 1, 11), (T0 + 2, 12)]}))
    assert verdict.repeats[0].reason == "unexplained"
    assert "no guarantee allows" in verdict.problems[0]


def test_frozen_and_clean_exit_during_outage_repeats_are_allowed_within_one_group():
    freeze = Fault(SIGSTOP, T0 + 10, T0 + 80, pid=11)
    outage = Fault(RESTART_FAST, T0 + 100, T0 + 101)
    workers = [Worker(21, "cron", T0 + 90, T0 + 100.5, 0)]
    runs = {
        1: [(T0 + 25, 12), (T0 + 80.1, 11)],  # re-run while 11 was frozen, then 11 finished it
        2: [(T0 + 99.9, 21), (T0 + 115, 22)],  # 21 exited during the outage owing it
    }
    verdict = judge(evidence(runs, faults=[freeze, outage], workers=workers))
    assert [r.reason for r in verdict.repeats] == ["B3", "B1"]
    assert verdict.problems == [] and verdict.pending == []


def test_a_worker_that_died_on_its_own_is_a_problem():
    workers = [Worker(11, "long", T0, T0 + 5, 1), Worker(12, "cron", T0, T0 + 5, -15)]
    problems = judge(evidence({}, workers=workers)).problems
    assert len(problems) == 1 and "pid 11 exit 1, pid 12 exit -15" in problems[0]


def test_dying_of_the_soaks_own_closing_sigterm_is_not_a_crash():
    workers = [Worker(12, "cron", T0, T0 + 5, -15, terminated=True)]
    assert judge(evidence({}, workers=workers)).problems == []


def test_ledger_lines_are_read_per_key_in_time_order(tmp_path):
    path = tmp_path / "ledger.txt"
    path.write_text("5 20.5 12\n5 10.0 11\n6 11.0 11\n")
    assert read_ledger(path) == {5: [(10.0, 11), (20.5, 12)], 6: [(11.0, 11)]}
