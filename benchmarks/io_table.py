"""The I/O-bound section of ``make bench`` (issue 17): ``run.py --only io``.

One interleaved run (3 rounds, every job a fresh process, each round rotated and every other one
reversed as in ``peer_table.py``; the median of the rounds is kept) of:

- **I/O-bound**: N tasks that each wait 50 ms (``time.sleep(0.05)``, or ``await
  asyncio.sleep(0.05)`` in an ``async def`` task) are queued first, untimed; then ONE worker
  process is started: ``manage.py process_tasks --concurrency C`` for bgtask, ``celery worker
  --pool threads -c C`` (Redis broker), ``huey_consumer -w C -k thread`` (SqliteHuey),
  Procrastinate's ``run_worker(concurrency=C)``. **Timed from the first task's start to the last
  success**: every task's body stamps its start and end (``iomarks.py``), and the clock stops at
  the later of the last end and the moment no job is left queued or running where the queue
  records it (bgtask's table, Procrastinate's jobs; Celery and Huey keep no result, so the last
  body's end is their last success). The worker's start-up (spawn to first task) is reported
  apart, and so is the rate from the spawn. The limit of C at a time is C / 0.05 s.
- **No-op drain** (``workloads.py drain``, one ``run_batch`` timed in-process) at concurrency 1,
  4, 8, 16 beside the baseline commit (the code before the concurrency rewrite, extracted by
  ``git archive`` under ``benchmarks/.baseline/``), on PostgreSQL and SQLite.

Then, once each (they are checks and costs, not races):

- **Exactly once** under 4 processes x concurrency 8 (``run.py``'s ``parallel``, ``record``
  tasks), on PostgreSQL and MariaDB: duplicates, lost rows, and every worker's RSS when ready
  and at the end.
- **Lambda cost** (``lambda_cost.py``): billed GB-seconds per 1,000 of the 50 ms tasks at
  concurrency 1 and 8, under the runtime client.

Nothing here asserts a timing: each target is reported met or missed.
"""

from __future__ import annotations

import collections
import statistics
import sys
import time

from benchmarks import dbs, peer_table
from benchmarks.peerqueues import PROCRASTINATE_URL
from benchmarks.procs import bgtask_cmd, load, log, peer_python, run_json

#: The code before the concurrency rewrite (issue 17): the drain baseline.
BASELINE_COMMIT = "1fe4ed6"
WAIT_SECONDS = 0.05
NAMES = {"sqlite": "SQLite", "postgres": "PostgreSQL", "mariadb": "MariaDB"}
PEER_LABELS = {
    "celery-threads": "Celery / Redis, --pool threads",
    "huey-threads": "Huey / SQLite, -k thread",
    "procrastinate": "Procrastinate / PostgreSQL",
}
DRAIN_CONCURRENCY = (1, 4, 8, 16)
#: Full sizes; ``--quick`` divides the I/O and drain sizes by 10 (not below 40).
SIZES = {"io_small": 400, "io_large": 2_000, "io_drain": 5_000, "io_parallel": 10_000}
LAMBDA_TASKS = 1_000


def limit(concurrency: int) -> float:
    return concurrency / WAIT_SECONDS


def jobs(vendors: list[str], sizes: dict) -> list[tuple[str, dict]]:
    """Every (key, spec) of one round."""
    small, large = sizes["io_small"], sizes["io_large"]
    todo: list[tuple[str, dict]] = []
    for vendor in vendors:
        runs = [(16, small)] + ([(64, large)] if vendor == "postgres" else [])
        for concurrency, n in runs:
            for kind in ("sync", "async"):
                todo.append(
                    (
                        f"io/bgtask/{vendor}/{kind}/c{concurrency}",
                        {"n": n, "concurrency": concurrency, "kind": kind, "vendor": vendor},
                    )
                )
    for peer, concurrency, n in (
        ("celery-threads", 16, small),
        ("celery-threads", 64, large),
        ("huey-threads", 16, small),
        ("procrastinate", 16, small),
    ):
        todo.append((f"io/{peer}/c{concurrency}", {"n": n, "concurrency": concurrency}))
    for vendor in vendors:
        if vendor == "mariadb":
            continue
        for concurrency in DRAIN_CONCURRENCY:
            todo.append(
                (
                    f"drain/bgtask/{vendor}/c{concurrency}",
                    {"n": sizes["io_drain"], "concurrency": concurrency, "vendor": vendor},
                )
            )
        todo.append((f"drain/baseline/{vendor}", {"n": sizes["io_drain"], "vendor": vendor}))
    return todo


def run_job(key: str, spec: dict) -> dict:
    parts = key.split("/")
    n = spec["n"]
    if parts[0] == "drain":
        vendor = spec["vendor"]
        args = ["benchmarks.workloads", "drain", "--n", n, "--repeats", 1]
        if parts[1] == "baseline":
            return peer_table.run_baseline([str(a) for a in args], vendor, BASELINE_COMMIT)
        return run_json(
            bgtask_cmd("drain", "--n", n, "--repeats", 1, "--concurrency", spec["concurrency"]),
            vendor,
            env=peer_table.table_env("bgtask", vendor),
        )
    if parts[1] == "bgtask":
        vendor = spec["vendor"]
        command = bgtask_cmd(
            "io", "--n", n, "--concurrency", spec["concurrency"], "--kind", spec["kind"]
        )
        return run_json(command, vendor, env=peer_table.table_env("bgtask", vendor))
    command = [
        peer_python(),
        "-m",
        "benchmarks.peerqueues.workloads",
        parts[1],
        "io",
        "--n",
        n,
        "--concurrency",
        spec["concurrency"],
    ]
    return run_json(command, "postgres")


def prepare(vendors: list[str]) -> dict:
    peer_table.extract_baseline(BASELINE_COMMIT)
    for vendor in vendors:
        peer_table.prepare_database("bgtask", vendor)
        if vendor != "mariadb":
            peer_table.prepare_database("baseline", vendor, BASELINE_COMMIT)
    dbs.create_database("postgres", database_url=PROCRASTINATE_URL)
    for peer in ("celery-solo", "huey", "procrastinate"):
        run_json([peer_python(), "-m", "benchmarks.peerqueues.workloads", peer, "prepare"], "")
    return run_json([peer_python(), "-m", "benchmarks.peerqueues.workloads", "all", "versions"], "")


def default_concurrency() -> int:
    from bgtask.conf import DEFAULTS

    return DEFAULTS["BGTASK_CONCURRENCY"][0]


def measure(vendors: list[str], sizes: dict, rounds: int, workers: int = 4) -> dict:
    versions = prepare(vendors)
    todo = jobs(vendors, sizes)
    samples: dict = collections.defaultdict(list)
    loads = []
    started = time.time()
    for round_number in range(rounds):
        shift = round_number * len(todo) // rounds
        order = todo[shift:] + todo[:shift]
        if round_number % 2:
            order.reverse()
        loads.append(load())
        log(f"I/O section round {round_number + 1}/{rounds}, load {loads[-1]}")
        for key, spec in order:
            figures = run_job(key, spec)
            extra = ""
            if "startup_seconds" in figures:
                extra = f" (start-up {figures['startup_seconds']:.1f} s)"
            log(f"  {key} n={spec['n']}: {figures['rate']:,.0f}/s{extra}")
            samples[key].append(figures)
    loads.append(load())
    figures = {}
    for key, runs in samples.items():
        rates = sorted(r["rate"] for r in runs)
        figures[key] = {
            "n": runs[0]["n"],
            "rate": statistics.median(rates),
            "samples": [r["rate"] for r in runs],
            "runs": runs,
        }
        for extra in ("startup_seconds", "spawn_rate", "mean_in_flight", "write_lag_seconds"):
            values = [r[extra] for r in runs if extra in r]
            if values:
                figures[key][extra] = statistics.median(values)
    checks = {}
    for vendor in ("postgres", "mariadb"):
        if vendor in vendors:
            log(f"exactly once: {workers} processes x concurrency 8 on {vendor}")
            checks[f"parallel/{vendor}"] = parallel(vendor, sizes["io_parallel"], workers, 8)
    if "postgres" in vendors:
        for concurrency in (1, 8):
            log(f"Lambda cost: {sizes['lambda']} tasks at concurrency {concurrency}")
            checks[f"lambda/c{concurrency}"] = run_json(
                [
                    sys.executable,
                    "-m",
                    "benchmarks.lambda_cost",
                    *("--n", sizes["lambda"], "--concurrency", concurrency),
                ],
                "postgres",
                env=peer_table.table_env("bgtask", "postgres"),
            )
    loads.append(load())
    return {
        "vendors": vendors,
        "rounds": rounds,
        "loads": loads,
        "seconds": time.time() - started,
        "versions": versions,
        "default_concurrency": default_concurrency(),
        "figures": figures,
        "checks": checks,
    }


def parallel(vendor: str, n: int, workers: int, concurrency: int) -> dict:
    """``workers`` processes of ``concurrency`` each start together on ``n`` ``record`` tasks;
    each reports the rows it ran and its RSS when ready and at the end."""
    import os
    import subprocess

    from benchmarks.procs import ROOT, last_json

    env = peer_table.table_env("bgtask", vendor)
    run_json(bgtask_cmd("seed", "--n", n), vendor, env=env | {"BENCH_SEED_TASK": "record"})
    full_env = dict(os.environ, BENCH_DB=vendor) | env
    procs = [
        subprocess.Popen(
            bgtask_cmd("worker", "--n", 0, "--concurrency", concurrency),
            env=full_env,
            cwd=ROOT,
            text=True,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        for _ in range(workers)
    ]
    for proc in procs:
        if proc.stdout.readline().strip() != "ready":
            raise RuntimeError("a parallel worker did not start")
    for proc in procs:
        proc.stdin.write("go\n")
        proc.stdin.flush()
    reports = []
    for proc in procs:
        out, _ = proc.communicate()
        if proc.returncode != 0:
            raise RuntimeError(f"parallel worker exited {proc.returncode}")
        reports.append(last_json(out))
    seconds = max(r["finished"] for r in reports) - min(r["started"] for r in reports)
    counts = collections.Counter(i for r in reports for i in r["ran"])
    db = run_json(bgtask_cmd("check_parallel", "--n", n), vendor, env=env)
    duplicates = sum(c - 1 for c in counts.values())
    lost = n - len(counts)
    return {
        "n": n,
        "workers": workers,
        "concurrency": concurrency,
        "seconds": seconds,
        "rate": n / seconds,
        "duplicates": duplicates,
        "lost": lost,
        "db_succeeded": db["succeeded"],
        "db_other": db["other"],
        "exactly_once": duplicates == 0 and lost == 0 and db["succeeded"] == n,
        "per_worker": [len(r["ran"]) for r in reports],
        "rss_ready_mb": [round(r["rss_ready_mb"], 1) for r in reports],
        "rss_end_mb": [round(r["rss_end_mb"], 1) for r in reports],
        "peak_rss_mb": [round(r["peak_rss_mb"], 1) for r in reports],
    }


# -- the tables -------------------------------------------------------------------------------


def verdict(ok: bool | None) -> str:
    return "" if ok is None else ("met" if ok else "**missed**")


def render(io: dict) -> str:
    figures, checks = io["figures"], io["checks"]
    default = io["default_concurrency"]

    def rate(key: str) -> float | None:
        return figures[key]["rate"] if key in figures else None

    def in_flight(f: dict) -> str:
        return f"{f['mean_in_flight']:.1f}" if "mean_in_flight" in f else "-"

    def lag(f: dict) -> str:
        return f"{f['write_lag_seconds'] * 1000:.0f}" if "write_lag_seconds" in f else "-"

    def samples(key: str) -> str:
        return ", ".join(f"{s:,.0f}" for s in sorted(figures[key]["samples"]))

    lines = [
        f"### I/O-bound: tasks that wait 50 ms, one worker process (median of {io['rounds']} "
        "interleaved rounds)",
        "",
        "Timed from the first task's start to the last success (all bodies ended and nothing "
        "queued or running where the queue records it); the worker's start-up (spawn to first "
        "task) is apart. Mean in flight: the tasks' summed spans over that time (the gap to the "
        "concurrency is time slots sat idle between tasks); last end to success: from the last "
        "body's end to the last row written (0 where the queue keeps no result). Versions: "
        + ", ".join(f"{k} {v}" for k, v in io["versions"].items()),
        "",
        "| tasks | worker | tasks/s (samples) | % of limit | mean in flight | last end to "
        "success ms | start-up s | from spawn /s | x Celery threads | target | |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    rows = []
    for vendor in io["vendors"]:
        for concurrency in (16, 64):
            for kind in ("sync", "async"):
                key = f"io/bgtask/{vendor}/{kind}/c{concurrency}"
                if key in figures:
                    rows.append((key, vendor, concurrency, kind))
    for key, vendor, concurrency, kind in rows:
        f = figures[key]
        ours = f["rate"]
        celery = rate(f"io/celery-threads/c{concurrency}")
        x = ours / celery if celery else None
        runs = f["runs"]
        locked = sum(r["locked"] for r in runs)
        noted = sum(r["noted_count"] for r in runs)
        clean = all(
            r["succeeded"] == r["n"] and r["ran"] == r["n"] and r["duplicates"] == 0 for r in runs
        )
        target, ok = "all succeeded once, log clean", clean and noted == 0
        if vendor == "postgres" and concurrency == 16:
            target = ">= 288/s (90%), >= 1x Celery"
            ok = ours >= 0.9 * limit(16) and x is not None and x >= 1 and clean
        elif vendor == "postgres" and concurrency == 64:
            target = ">= 1.2x Celery"
            ok = x is not None and x >= 1.2 and clean
        elif vendor == "sqlite":
            target = 'no "database is locked"; all succeeded once'
            ok = locked == 0 and clean
        task = "`async def`, asyncio.sleep" if kind == "async" else "sync, time.sleep"
        worker = f"bgtask / {NAMES[vendor]}, process_tasks --concurrency {concurrency}"
        lines.append(
            f"| {f['n']:,} {task} | {worker} | {ours:,.0f}/s ({samples(key)}) "
            f"| {ours / limit(concurrency):.0%} | {in_flight(f)} | {lag(f)} "
            f"| {f.get('startup_seconds', 0):.1f} "
            f"| {f.get('spawn_rate', 0):,.0f} | {'-' if x is None else f'{x:.2f}x'} "
            f"| {target} | {verdict(ok)} |"
        )
    for peer, concurrency in (
        ("celery-threads", 16),
        ("celery-threads", 64),
        ("huey-threads", 16),
        ("procrastinate", 16),
    ):
        key = f"io/{peer}/c{concurrency}"
        if key not in figures:
            continue
        f = figures[key]
        how = {"celery-threads": "-c", "huey-threads": "-w", "procrastinate": "concurrency"}[peer]
        lines.append(
            f"| {f['n']:,} sync, time.sleep | {PEER_LABELS[peer]} {how} {concurrency} "
            f"| {f['rate']:,.0f}/s ({samples(key)}) | {f['rate'] / limit(concurrency):.0%} "
            f"| {in_flight(f)} | {lag(f)} "
            f"| {f.get('startup_seconds', 0):.1f} | {f.get('spawn_rate', 0):,.0f} | | | |"
        )
    problems = []
    for key, f in figures.items():
        for r in f["runs"]:
            for line in r.get("noted_lines", []):
                problems.append(f"{key}: {line}")
    lines += [
        "",
        "Worker log lines (WARNING, ERROR, Traceback, locked) over all rounds: "
        + (f"{len(problems)}:" if problems else "none."),
    ]
    lines += [f"    {line[:300]}" for line in problems[:20]]

    lines += [
        "",
        f"### No-op drain beside the baseline {BASELINE_COMMIT} (before the rewrite), "
        f"one run_batch (median of {io['rounds']})",
        "",
        "| database | concurrency | this checkout | baseline | ratio | target | |",
        "|---|---|---|---|---|---|---|",
    ]
    for vendor in io["vendors"]:
        base = rate(f"drain/baseline/{vendor}")
        if base is None:
            continue
        for concurrency in DRAIN_CONCURRENCY:
            key = f"drain/bgtask/{vendor}/c{concurrency}"
            if key not in figures:
                continue
            ours = rate(key)
            ratio = ours / base
            target, ok = "", None
            if concurrency == 1:
                target, ok = ">= 0.95x", ratio >= 0.95
            elif concurrency == default:
                target, ok = ">= 0.8x (the default)", ratio >= 0.8
            label = f"{concurrency}{' (default)' if concurrency == default else ''}"
            lines.append(
                f"| {NAMES[vendor]} | {label} | {ours:,.0f}/s ({samples(key)}) "
                f"| {base:,.0f}/s ({samples(f'drain/baseline/{vendor}')}) | {ratio:.2f}x "
                f"| {target} | {verdict(ok)} |"
            )
    parallel_rows = [(k, v) for k, v in checks.items() if k.startswith("parallel/")]
    if parallel_rows:
        lines += [
            "",
            "### Exactly once: processes x concurrency on `record` tasks (one run)",
            "",
            "| database | workers | tasks | tasks/s | split | duplicates | lost | RSS ready -> end "
            "(MB, each worker) | peak RSS | target | |",
            "|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for key, p in parallel_rows:
            growth = max(e - r for e, r in zip(p["rss_end_mb"], p["rss_ready_mb"], strict=True))
            flat = growth < 10
            rss = ", ".join(
                f"{r:.0f}->{e:.0f}" for r, e in zip(p["rss_ready_mb"], p["rss_end_mb"], strict=True)
            )
            lines.append(
                f"| {NAMES[key.split('/')[1]]} | {p['workers']} x {p['concurrency']} "
                f"| {p['n']:,} | {p['rate']:,.0f} | {'/'.join(map(str, p['per_worker']))} "
                f"| {p['duplicates']} | {p['lost']} | {rss} "
                f"| {max(p['peak_rss_mb']):.0f} MB | exactly once; RSS flat (< 10 MB growth) "
                f"| {verdict(p['exactly_once'] and flat)} |"
            )
    lambda_rows = [(k, v) for k, v in checks.items() if k.startswith("lambda/")]
    if lambda_rows:
        lines += [
            "",
            "### Lambda cost of 50 ms tasks (worker under awslambdaric, fake Runtime API; one run)",
            "",
            "| concurrency | tasks | invocations | billed ms | memory | GB-s per 1,000 tasks "
            "| $ per million tasks (arm64) | tasks per billed s | cold start ms (apart) |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for _, c in lambda_rows:
            lines.append(
                f"| {c['concurrency']} | {c['n']:,} ({c['succeeded']:,} succeeded) "
                f"| {c['invocations']} | {sum(c['billed_ms']):,} | {c['memory_mb']} MB "
                f"| {c['gb_seconds_per_1000']:.2f} | {c['usd_per_million_tasks']:.2f} "
                f"| {c['rate']:,.0f} | {c['cold_invocation_ms']:,} |"
            )
    loads = "; ".join(", ".join(f"{x:.2f}" for x in one) for one in io["loads"])
    lines += [
        "",
        f"Load average (1, 5, 15 min) before each round, after the last and after the checks: "
        f"{loads}. The section took {io['seconds']:.0f} s.",
    ]
    return "\n".join(lines)
