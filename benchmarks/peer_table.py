"""The peer table: bgtask (this checkout and a baseline commit) beside Celery, Huey, RQ and
Procrastinate on one workload, in interleaved rounds; driven by ``run.py --only peers``.

Every sample is a fresh process. A round runs every (implementation, workload) pair once, each
round starting further along the list and every other round going backwards, so that a slow
spell on the shared machine, or what one job leaves behind for the next (a checkpoint, a busy
disk), is spread over everyone rather than landing on one implementation; the figure kept is the
median of the rounds. The load average is read before every round and after the last.

- bgtask (this checkout) and the baseline run ``benchmarks/workloads.py`` ``drain --repeats 1``
  (200 warm-up tasks, then one ``run_batch`` timed in-process) and ``enqueue``.
- The baseline is ``git archive BASELINE_COMMIT bgtask benchmarks`` extracted under
  ``benchmarks/.baseline/`` and run with its own ``benchmarks`` code from there, on its own
  databases (``*_baseline``), so a later change to this checkout's workloads or schema cannot
  touch it.
- The peers run ``benchmarks/peerqueues/workloads.py`` in the peers venv (one worker process,
  timed from its first task to its last; see that module).
"""

from __future__ import annotations

import collections
import os
import subprocess
import sys
import time
from pathlib import Path

from benchmarks import dbs
from benchmarks.peerqueues import PROCRASTINATE_URL
from benchmarks.procs import bgtask_cmd, peer_python, run_json

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
#: The code before issue 9 ("Performance II"): the baseline every ratio "x baseline" is against.
BASELINE_COMMIT = "4687a3c"
BASELINE_DIR = HERE / ".baseline" / BASELINE_COMMIT

#: Queue peers: key -> (label, settings), in the order the table shows them.
QUEUE_PEERS = {
    "celery-solo": ("Celery / Redis, solo pool", "no result backend, prefetch 4, early ack"),
    "celery-prefork": (
        "Celery / Redis, prefork pool",
        f"default concurrency ({os.cpu_count()} children), no result backend",
    ),
    "huey": ("Huey / SQLite", "SqliteHuey defaults: WAL, synchronous=FULL; 1 thread"),
    "huey-normal": ("Huey / SQLite, synchronous=NORMAL", "WAL, synchronous=NORMAL as bgtask"),
    "rq": ("RQ / Redis", "SimpleWorker, burst, default result_ttl"),
    "procrastinate": ("Procrastinate / PostgreSQL", "concurrency 1, wait=False, listen_notify"),
}
#: Peers slow enough to be given the smaller N (``--peers-slow-drain``); rates are per second.
SLOW = {"rq", "procrastinate"}
NAMES = {"sqlite": "SQLite", "postgres": "PostgreSQL", "mariadb": "MariaDB"}


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


# -- databases and the baseline ---------------------------------------------------------------
#
# bgtask and the baseline each get databases used by this table alone (``*_peertable`` and
# ``*_baseline``), so both start from the same history: the main benchmark's database keeps the
# planner statistics of its backlog run (an ANALYZE of many future rows, which TRUNCATE does not
# reset), and in two runs identical code drained about 0.7x as fast there as the baseline did.


def baseline_dir(commit: str = BASELINE_COMMIT) -> Path:
    return HERE / ".baseline" / commit


def table_url(kind: str, vendor: str, commit: str = BASELINE_COMMIT) -> str:
    suffix = "_peertable"
    if kind == "baseline":
        # Each baseline commit has its own databases, migrated by its own code.
        suffix = "_baseline" if commit == BASELINE_COMMIT else f"_baseline_{commit}"
    if vendor == "sqlite":
        return f"sqlite:///{dbs.DATA_DIR / f'bench{suffix}.sqlite3'}"
    return dbs.url(vendor) + suffix


def table_env(kind: str, vendor: str, commit: str = BASELINE_COMMIT) -> dict:
    """Point ``benchmarks/dbs.py`` (this checkout's or the baseline's) at the table's databases."""
    env = {"PYTHONPATH": str(baseline_dir(commit) if kind == "baseline" else ROOT)}
    if vendor == "sqlite":
        env["BENCH_SQLITE_PATH"] = table_url(kind, vendor, commit).removeprefix("sqlite:///")
    else:
        env[f"BENCH_{vendor.upper()}_URL"] = table_url(kind, vendor, commit)
    return env


def extract_baseline(commit: str = BASELINE_COMMIT) -> None:
    """``git archive COMMIT bgtask benchmarks`` under ``benchmarks/.baseline/COMMIT`` (once).
    It runs with this checkout's venv: its cwd comes first on ``sys.path``."""
    where = baseline_dir(commit)
    marker = where / ".extracted"
    if marker.exists():
        return
    log(f"extracting bgtask {commit} into {where.relative_to(ROOT)}")
    where.mkdir(parents=True, exist_ok=True)
    archive = subprocess.run(
        ["git", "archive", commit, "bgtask", "benchmarks"],
        cwd=ROOT,
        check=True,
        capture_output=True,
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(where)], input=archive, check=True)
    marker.write_text(commit)


def run_baseline(args: list[str], vendor: str, commit: str = BASELINE_COMMIT) -> dict:
    # cwd first on sys.path (``-m``): the baseline's bgtask wins over this checkout's install.
    return run_json(
        [sys.executable, "-m", *args],
        vendor,
        env=table_env("baseline", vendor, commit),
        cwd=baseline_dir(commit),
    )


def prepare_database(kind: str, vendor: str, commit: str = BASELINE_COMMIT) -> None:
    """Create and migrate the table's database of ``kind`` (bgtask or baseline) with its code."""
    dbs.create_database(vendor, database_url=table_url(kind, vendor, commit))
    env = dict(
        os.environ, BENCH_DB=vendor, DJANGO_SETTINGS_MODULE="benchmarks.settings"
    ) | table_env(kind, vendor, commit)
    cwd = baseline_dir(commit) if kind == "baseline" else ROOT
    subprocess.run(
        [sys.executable, "-m", "django", "migrate", "-v0"],
        env=env,
        cwd=cwd,
        check=True,
        stderr=subprocess.DEVNULL,
    )
    if kind != "baseline":
        return
    where = subprocess.run(
        [sys.executable, "-c", "import bgtask; print(bgtask.__file__)"],
        env=env,
        cwd=baseline_dir(commit),
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    if not Path(where).is_relative_to(baseline_dir(commit)):
        raise RuntimeError(f"the baseline run imports bgtask from {where}, not the baseline")


# -- the rounds -------------------------------------------------------------------------------


def implementations(vendors: list[str]) -> list[str]:
    return [
        *(f"bgtask/{v}" for v in vendors),
        *(f"baseline/{v}" for v in vendors),
        *QUEUE_PEERS,
    ]


def jobs(vendors: list[str]) -> list[tuple[str, str]]:
    drains = [(impl, "drain") for impl in implementations(vendors)]
    # One Celery enqueue: the pool is the worker's business, the client is the same.
    enqueues = [(i, "enqueue") for i in implementations(vendors) if i != "celery-prefork"]
    return drains + enqueues


def size(impl: str, workload: str, sizes: dict) -> int:
    if workload == "enqueue":
        return sizes["peers_enqueue"]
    return sizes["peers_slow_drain"] if impl in SLOW else sizes["peers_drain"]


def run_job(impl: str, workload: str, n: int) -> dict:
    kind, _, vendor = impl.partition("/")
    args = [workload, "--n", str(n)] + (["--repeats", "1"] if workload == "drain" else [])
    if kind == "bgtask":
        return run_json(bgtask_cmd(*args), vendor, env=table_env("bgtask", vendor))
    if kind == "baseline":
        return run_baseline(["benchmarks.workloads", *args], vendor)
    command = [peer_python(), "-m", "benchmarks.peerqueues.workloads", impl, workload, "--n", n]
    return run_json([str(c) for c in command], "postgres")


def prepare(vendors: list[str]) -> dict:
    extract_baseline()
    for vendor in vendors:
        prepare_database("bgtask", vendor)
        prepare_database("baseline", vendor)
    dbs.create_database("postgres", database_url=PROCRASTINATE_URL)
    for peer in QUEUE_PEERS:
        run_json([peer_python(), "-m", "benchmarks.peerqueues.workloads", peer, "prepare"], "")
    return run_json([peer_python(), "-m", "benchmarks.peerqueues.workloads", "all", "versions"], "")


def measure(vendors: list[str], sizes: dict, rounds: int) -> dict:
    """Every job once per round, each round rotated; the median rate of each job."""
    versions = prepare(vendors)
    todo = jobs(vendors)
    samples: dict = collections.defaultdict(list)
    loads = []
    started = time.time()
    for round_number in range(rounds):
        shift = round_number * len(todo) // rounds
        order = todo[shift:] + todo[:shift]
        if round_number % 2:
            order.reverse()  # new neighbours too: no job always follows the same one
        loads.append(load())
        log(f"peer table round {round_number + 1}/{rounds}, load {loads[-1]}")
        for impl, workload in order:
            n = size(impl, workload, sizes)
            figures = run_job(impl, workload, n)
            log(f"  {workload} {n} {impl}: {figures['rate']:,.0f}/s")
            samples[f"{workload}/{impl}"].append(figures)
    loads.append(load())
    results = {}
    for key, runs in samples.items():
        rates = sorted(r["rate"] for r in runs)
        results[key] = {
            "n": runs[0]["n"],
            "rate": rates[len(rates) // 2],
            "samples": [r["rate"] for r in runs],
        }
        startups = [r["startup_seconds"] for r in runs if "startup_seconds" in r]
        if startups:
            results[key]["startup_seconds"] = sorted(startups)[len(startups) // 2]
    return {
        "vendors": vendors,
        "rounds": rounds,
        "loads": loads,
        "seconds": time.time() - started,
        "versions": versions,
        "figures": results,
    }


# -- the tables -------------------------------------------------------------------------------


def label(impl: str) -> tuple[str, str]:
    kind, _, vendor = impl.partition("/")
    if kind == "bgtask":
        return f"bgtask (this checkout) / {NAMES[vendor]}", "run_batch, defaults"
    if kind == "baseline":
        return f"bgtask {BASELINE_COMMIT} (baseline) / {NAMES[vendor]}", "run_batch, defaults"
    return QUEUE_PEERS[impl]


def render(peers: dict) -> str:
    figures = peers["figures"]
    vendors = peers["vendors"]
    versions = peers["versions"]
    rounds = peers["rounds"]

    def rate(key: str) -> float | None:
        return figures[key]["rate"] if key in figures else None

    def cell(key: str) -> str:
        f = figures.get(key)
        if not f:
            return "-"
        samples = ", ".join(f"{s:,.0f}" for s in sorted(f["samples"]))
        return f"{f['rate']:,.0f}/s (n={f['n']:,}; {samples})"

    lines = [
        f"Drain: one worker process, no-op tasks; enqueue: one task per call. Median of {rounds} "
        "interleaved rounds (all samples in brackets). Versions: "
        + ", ".join(f"{k} {v}" for k, v in versions.items())
        + ".",
        "",
        "| implementation | settings | drain | enqueue |",
        "|---|---|---|---|",
    ]
    for impl in implementations(vendors):
        name, settings = label(impl)
        enqueue_key = "enqueue/celery-solo" if impl == "celery-prefork" else f"enqueue/{impl}"
        lines.append(f"| {name} | {settings} | {cell(f'drain/{impl}')} | {cell(enqueue_key)} |")

    def ratio(ours: float | None, theirs: float | None, target: float | None = None) -> str:
        if not ours or not theirs:
            return "-"
        x = ours / theirs
        if target is None:
            return f"{x:,.2f}x"
        return f"{x:,.2f}x {'met' if x >= target else '**missed**'} (>= {target:g}x)"

    baseline_target = {"postgres": 3, "sqlite": 2.5}
    lines += [
        "",
        "Ratios: bgtask (this checkout) on each database over the other implementation "
        "(drain rates, except the last column).",
        "",
        "| bgtask on | x Celery solo | x Huey SQLite (same durability) | x Huey SQLite "
        "(defaults) | x baseline | x Celery prefork | x RQ | x Procrastinate "
        "| enqueue x Celery |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for vendor in vendors:
        ours = rate(f"drain/bgtask/{vendor}")
        enqueue_target = 1 if vendor == "postgres" else None
        lines.append(
            "| "
            + " | ".join(
                [
                    NAMES[vendor],
                    ratio(ours, rate("drain/celery-solo"), 10 if vendor != "mariadb" else None),
                    ratio(ours, rate("drain/huey-normal"), 3 if vendor != "mariadb" else None),
                    ratio(ours, rate("drain/huey")),
                    ratio(ours, rate(f"drain/baseline/{vendor}"), baseline_target.get(vendor)),
                    ratio(ours, rate("drain/celery-prefork")),
                    ratio(ours, rate("drain/rq")),
                    ratio(ours, rate("drain/procrastinate")),
                    ratio(
                        rate(f"enqueue/bgtask/{vendor}"),
                        rate("enqueue/celery-solo"),
                        enqueue_target,
                    ),
                ]
            )
            + " |"
        )
    loads = "; ".join(", ".join(f"{x:.2f}" for x in one) for one in peers["loads"])
    lines += [
        "",
        f"Load average (1, 5, 15 min) before each round and after the last: {loads}. "
        f"The peer table took {peers['seconds']:.0f} s.",
    ]
    return "\n".join(lines)


def redis_db() -> str:
    from benchmarks.peerqueues import REDIS_URL

    return REDIS_URL.rsplit("/", 1)[-1]
