"""The soak's evidence and its verdict: what was enqueued, what ran how often, which fault a
repeat belongs to, and whether each repeat is one that docs/explanation/guarantees.md allows.

Pure functions over plain data (no processes, no database), so the judgement can be read and
tested apart from the chaos that produced the data.
"""

from __future__ import annotations

import signal
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

#: The environment variable that tells the soak's task where the ledger is.
LEDGER_ENV = "BGTASK_SOAK_LEDGER"

#: The fault types, as the report names them.
SIGKILL = "sigkill"
RESTART_FAST = "restart_fast"
RESTART_IMMEDIATE = "restart_immediate"
STOP = "stop"
SIGSTOP = "sigstop"
FAULT_TYPES = (SIGKILL, RESTART_FAST, RESTART_IMMEDIATE, STOP, SIGSTOP)
SERVER_FAULTS = (RESTART_FAST, RESTART_IMMEDIATE, STOP)

#: Why a task may run twice, as guarantees.md states it today ("Leases": a worker that dies
#: makes at most one group run again: the running task and the successes not yet written).
ALLOWED = {
    SIGKILL: "guarantees.md, Leases: a dead worker re-runs at most one group "
    "(the running task + at most BGTASK_OUTCOME_BATCH - 1 unwritten successes)",
    # A worker that stayed alive but could not write its outcomes for longer than its lease: the
    # same bound as a dead worker, per fault (guarantees.md, "A worker cut off past its lease").
    "B1": "guarantees.md: a clean exit during an outage longer than BGTASK_EXIT_GRACE leaves "
    "what it owes to the lease: at most one group",
    "B3": "guarantees.md: a worker frozen past its lease re-runs at most one group (a task in "
    "flight is stopped with TaskAbandoned; a success not yet written is re-run)",
    "outage_over_lease": "guarantees.md: a success owed across an outage longer than the lease "
    "may lose the race against another worker's rescue: at most one group",
}
#: Repeats that break a promise of the docs and are known: reported, not failed. Empty since the
#: worker changes of issue 20 B1-B3 landed (their remaining repeats have a bound, in ALLOWED).
PENDING: dict[str, str] = {}
OUTAGE_OVER_LEASE = "outage_over_lease"
#: Seconds around a fault within which a run is taken to belong to it.
SLACK = 5.0


@dataclass
class Fault:
    kind: str
    start: float
    end: float
    pid: int | None = None  # the worker a signal went to; None for server faults

    def label(self, origin: float) -> str:
        where = f" pid {self.pid}" if self.pid else ""
        return f"{self.kind}{where} at {self.start - origin:.1f}-{self.end - origin:.1f} s"


@dataclass
class Worker:
    pid: int
    kind: str  # "long" or "cron"
    started: float
    ended: float | None = None
    returncode: int | None = None
    killed: bool = False  # by the soak's SIGKILL fault
    # Sent SIGTERM by the soak at the end; dying of it (exit -15, before process_tasks installs
    # its handler or after it restores the default) is then the soak's doing, not a crash.
    terminated: bool = False


@dataclass
class Repeat:
    key: int
    runs: list[tuple[float, int]]
    fault: Fault | None
    reason: str  # a key of ALLOWED or PENDING, or "unexplained"


@dataclass
class Evidence:
    acks: dict[int, str]  # key -> "+" (enqueue returned) or "?" (enqueue raised)
    rows: dict[int, str]  # key -> status of its row
    runs: dict[int, list[tuple[float, int]]]  # key -> [(time, pid)] from the ledger
    faults: list[Fault]
    workers: list[Worker]
    origin: float  # the soak's start (time.time())
    lease: float
    outcome_batch: int
    enqueued_at: dict[int, float] = field(default_factory=dict)


def read_ledger(path: Path) -> dict[int, list[tuple[float, int]]]:
    runs: dict[int, list[tuple[float, int]]] = defaultdict(list)
    if path.exists():
        for line in path.read_text().splitlines():
            key, at, pid = line.split()
            runs[int(key)].append((float(at), int(pid)))
    for key_runs in runs.values():
        key_runs.sort()
    return dict(runs)


def read_acks(path: Path) -> tuple[dict[int, str], dict[int, float]]:
    acks: dict[int, str] = {}
    times: dict[int, float] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            mark, key, at, *_ = line.split()
            acks[int(key)] = mark
            times[int(key)] = float(at)
    return acks, times


def _window_fault(faults: list[Fault], at: float, lease: float) -> Fault | None:
    """The latest fault whose window (its span, then two leases for rescue) holds ``at``."""
    hits = [f for f in faults if f.start - SLACK <= at <= f.end + 2 * lease + SLACK]
    return max(hits, key=lambda f: f.start) if hits else None


def explain(key: int, runs: list[tuple[float, int]], ev: Evidence) -> Repeat:
    """Which fault made ``key`` run more than once, and whether that is allowed.

    A SIGKILL explains a repeat when the killed worker ran the key in the three leases before it
    died (the running task, or a success it had not written yet: across an outage that can be
    a while). A SIGSTOP explains it when the frozen worker ran the key just before its freeze or
    just after its SIGCONT, and another worker ran it meanwhile. A server fault explains it when
    the first run was at its start and that worker then either exited cleanly during the outage
    (B1) or lived through an outage longer than the lease (OUTAGE_OVER_LEASE).
    """
    workers = {w.pid: w for w in ev.workers}
    earlier = runs[:-1]
    for at, pid in earlier:
        for fault in ev.faults:
            if (
                fault.kind == SIGKILL
                and fault.pid == pid
                and fault.start - 3 * ev.lease <= at <= fault.start + 1
            ):
                return Repeat(key, runs, fault, SIGKILL)
    for fault in ev.faults:
        if fault.kind != SIGSTOP:
            continue
        frozen = [
            at
            for at, pid in runs
            if pid == fault.pid
            and (fault.start - ev.lease <= at <= fault.start + 1 or fault.end - 1 <= at)
            and at <= fault.end + ev.lease
        ]
        others = [
            at for at, pid in runs if pid != fault.pid and fault.start <= at <= fault.end + ev.lease
        ]
        # The frozen worker can only have held a task enqueued before its freeze.
        enqueued_before = ev.enqueued_at.get(key, fault.start) <= fault.start
        if frozen and others and enqueued_before:
            return Repeat(key, runs, fault, "B3")
    for at, pid in earlier:
        worker = workers.get(pid)
        for fault in ev.faults:
            if fault.kind not in SERVER_FAULTS or worker is None:
                continue
            if not fault.start - SLACK <= at <= fault.end + SLACK:
                continue
            exited = worker.ended is not None and worker.ended <= fault.end + SLACK
            if exited and worker.returncode == 0 and worker.ended >= fault.start:
                return Repeat(key, runs, fault, "B1")
            if not exited and fault.end - fault.start > ev.lease:
                return Repeat(key, runs, fault, OUTAGE_OVER_LEASE)
    return Repeat(key, runs, _window_fault(ev.faults, runs[0][0], ev.lease), "unexplained")


@dataclass
class Row:
    keys: int = 0
    once: int = 0
    repeated: int = 0
    lost: int = 0
    stuck: int = 0
    failed: int = 0


@dataclass
class Verdict:
    total: Row
    per_fault: dict[str, Row]  # fault type (or "no fault") -> counts
    repeats: list[Repeat]
    not_enqueued: int  # enqueues that raised and left no row
    uncertain_committed: int  # enqueues that raised but whose row is there
    problems: list[str]  # what breaks the guarantees; empty: the soak passed
    pending: list[Repeat]  # repeats of issue 20 B1/B3, tolerated until their fix lands
    died: list[Worker]  # workers that exited non-zero without the soak killing them


def judge(ev: Evidence) -> Verdict:
    keys = set(ev.rows) | {k for k, mark in ev.acks.items() if mark == "+"}
    total = Row()
    per_fault: dict[str, Row] = defaultdict(Row)
    repeats: list[Repeat] = []
    problems: list[str] = []
    for key in sorted(keys):
        runs = ev.runs.get(key, [])
        status = ev.rows.get(key)
        repeat = explain(key, runs, ev) if len(runs) > 1 else None
        if repeat is not None:
            fault = repeat.fault
            repeats.append(repeat)
        elif runs:
            fault = _window_fault(ev.faults, runs[0][0], ev.lease)
        else:
            fault = _window_fault(ev.faults, ev.enqueued_at.get(key, 0.0), ev.lease)
        bucket = per_fault[fault.kind if fault else "no fault"]
        for row in (total, bucket):
            row.keys += 1
            if status in ("queued", "running"):
                row.stuck += 1
            elif status == "failed":
                row.failed += 1
            elif not runs:
                row.lost += 1
            elif len(runs) == 1:
                row.once += 1
            else:
                row.repeated += 1
    if total.lost:
        problems.append(f"{total.lost} task(s) lost (enqueued, never ran, no longer queued)")
    if total.stuck:
        problems.append(f"{total.stuck} task(s) stuck (still queued or running after the drain)")
    if total.failed:
        problems.append(f"{total.failed} task(s) failed (the soak's task never raises)")
    unexplained = [r for r in repeats if r.reason == "unexplained"]
    if unexplained:
        problems.append(
            f"{len(unexplained)} repeat(s) no guarantee allows: "
            + ", ".join(str(r.key) for r in unexplained)
        )
    # Every allowed kind of repeat has the same bound: one group per fault.
    per_fault_repeats = Counter(id(r.fault) for r in repeats if r.reason in ALLOWED)
    for repeat in repeats:
        if repeat.reason in ALLOWED and per_fault_repeats[id(repeat.fault)] > ev.outcome_batch:
            problems.append(
                f"{per_fault_repeats[id(repeat.fault)]} repeats from one fault "
                f"({repeat.fault.label(ev.origin)}, {repeat.reason}): more than one group "
                f"(BGTASK_OUTCOME_BATCH = {ev.outcome_batch})"
            )
            per_fault_repeats[id(repeat.fault)] = 0  # said once
    died = [
        w
        for w in ev.workers
        if w.returncode not in (None, 0)
        and not w.killed
        and not (w.terminated and w.returncode == -signal.SIGTERM)
    ]
    if died:
        problems.append(
            f"{len(died)} worker(s) died on their own: "
            + ", ".join(f"pid {w.pid} exit {w.returncode}" for w in died)
        )
    uncertain = [k for k, mark in ev.acks.items() if mark == "?"]
    return Verdict(
        total=total,
        per_fault=dict(per_fault),
        repeats=repeats,
        not_enqueued=sum(1 for k in uncertain if k not in ev.rows),
        uncertain_committed=sum(1 for k in uncertain if k in ev.rows),
        problems=problems,
        pending=[r for r in repeats if r.reason in PENDING],
        died=died,
    )


def render(ev: Evidence, verdict: Verdict, title: str) -> str:
    lines = [title]
    kinds = Counter(f.kind for f in ev.faults)
    lines.append(
        f"faults: {len(ev.faults)} ("
        + ", ".join(f"{kind} {kinds[kind]}" for kind in FAULT_TYPES if kinds[kind])
        + ")"
    )
    header = f"{'':24}{'enqueued':>9}{'once':>8}{'twice+':>8}{'lost':>6}{'stuck':>7}{'failed':>8}"
    lines.append(header)

    def fmt(name: str, row: Row) -> str:
        return (
            f"{name:24}{row.keys:>9}{row.once:>8}{row.repeated:>8}{row.lost:>6}"
            f"{row.stuck:>7}{row.failed:>8}"
        )

    lines.append(fmt("total", verdict.total))
    for kind in (*FAULT_TYPES, "no fault"):
        if kind in verdict.per_fault:
            count = f" ({kinds[kind]})" if kind in kinds else ""
            lines.append(fmt(f"  {kind}{count}", verdict.per_fault[kind]))
    lines.append(
        f"enqueues that raised: {verdict.not_enqueued} left no row, "
        f"{verdict.uncertain_committed} committed anyway (counted as enqueued)"
    )
    exits = Counter(
        "SIGKILL (fault)"
        if w.killed
        else "SIGTERM (end)"
        if w.terminated and w.returncode == -signal.SIGTERM
        else f"exit {w.returncode}"
        for w in ev.workers
        if w.ended is not None
    )
    lines.append(
        f"worker processes: {len(ev.workers)} started; "
        + ", ".join(f"{what} x{n}" for what, n in sorted(exits.items()))
    )
    lines.append(f"repeated keys: {len(verdict.repeats)}")
    for repeat in verdict.repeats:
        runs = ", ".join(f"{at - ev.origin:.1f} s pid {pid}" for at, pid in repeat.runs)
        fault = repeat.fault.label(ev.origin) if repeat.fault else "no fault window"
        why = ALLOWED.get(repeat.reason) or PENDING.get(repeat.reason) or "NOT ALLOWED"
        lines.append(f"  key {repeat.key}: runs at {runs}; {fault}; {repeat.reason}: {why}")
    kill_rescues = [
        r.runs[-1][0] - r.fault.start for r in verdict.repeats if r.reason == SIGKILL and r.fault
    ]
    if kill_rescues:
        lines.append(
            f"SIGKILLed workers' tasks ran again {min(kill_rescues):.1f}-"
            f"{max(kill_rescues):.1f} s after the kill (lease {ev.lease:g} s)"
        )
    lines.append("fault log:")
    lines.extend(f"  {f.label(ev.origin)}" for f in ev.faults)
    if verdict.pending:
        lines.append(
            f"tolerated while their fixes land: {len(verdict.pending)} repeat(s) "
            f"({', '.join(sorted({r.reason for r in verdict.pending}))})"
        )
    lines.append("verdict: " + ("; ".join(verdict.problems) if verdict.problems else "PASS"))
    return "\n".join(lines)
