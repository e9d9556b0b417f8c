"""Limits across workers (issue 19 item 5): what they cost and whether they hold. Prints figures,
asserts nothing (timing belongs here, not in the tests).

    .venv/bin/python benchmarks/limits_bench.py [--dbs sqlite,postgres,mariadb] [--n 5000]
    make bench BENCH_ARGS="--only limits"

(a) No-op drain throughput (one process, ``benchmarks.workloads drain``, median of 3, each condition
    once per round in a turning order, the median of ``--rounds``): no limit
    set; a limit set on another queue (so every claim takes the limited path); a paused queue
    existing; and, with ``--main PATH`` (a checkout of the code before limits, e.g. a ``git
    worktree`` of an older commit), the same workload run by that code on the same database, as
    the baseline.
(b) ``rate="60/m"`` on a queue, 3 ``process_tasks`` processes: starts within the first minute.
(c) 4 ``process_tasks --concurrency 8`` processes draining a queue limited to 3 tasks of 20 ms:
    the most seen running at once (sampled from the table every few ms, and from the rows'
    start/finish times), and the throughput.

It uses its own databases (``*_limits``), never the benchmark's or the tests'.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

from benchmarks import dbs  # noqa: E402
from benchmarks.procs import last_json, load, log  # noqa: E402

OWN_DATABASES = {
    "BENCH_SQLITE_PATH": str(dbs.DATA_DIR / "limits.sqlite3"),
    "BENCH_POSTGRES_URL": "postgres://postgres@127.0.0.1:5432/bgtask_bench_limits",
    "BENCH_MARIADB_URL": "mysql://root@127.0.0.1:3306/bgtask_bench_limits",
}
for _key, _value in OWN_DATABASES.items():
    os.environ.setdefault(_key, _value)


def env_for(vendor: str, root: Path = ROOT, **extra: str) -> dict[str, str]:
    return dict(
        os.environ,
        BENCH_DB=vendor,
        PYTHONPATH=str(root),
        DJANGO_SETTINGS_MODULE="benchmarks.settings",
        **extra,
    )


def python(vendor: str, code: str, **extra: str) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()\n" + code],
        env=env_for(vendor, **extra),
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-3000:])
    return last_json(done.stdout) if done.stdout.strip() else {}


def prepare(vendor: str) -> None:
    dbs.create_database(vendor)
    subprocess.run(
        [sys.executable, "-m", "django", "migrate", "-v0"],
        env=env_for(vendor),
        cwd=ROOT,
        check=True,
    )


def drain(vendor: str, n: int, root: Path = ROOT, **extra: str) -> float:
    """One median of 3 drains of ``n`` no-op tasks, by the code of checkout ``root``."""
    command = [sys.executable, "-m", "benchmarks.workloads", "drain", "--n", str(n)]
    done = subprocess.run(
        [*command, "--repeats", "3"],
        env=env_for(vendor, root, **extra),
        cwd=root,
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-3000:])
    return float(last_json(done.stdout)["rate"])


SET_PAUSED = """
import json
from bgtask.features.pausing import pause_queue, resume_queue
{verb}_queue("elsewhere")
print(json.dumps({{}}))
"""


def drain_costs(vendor: str, n: int, main: Path | None, rounds: int) -> dict:
    """Each condition once per round, the order turned round every round (the machine is shared
    and its load drifts); the median of each condition's rounds."""
    other_limit = json.dumps({"elsewhere": {"max_running": 3}})
    conditions: list[tuple[str, Path, dict[str, str], str]] = [
        ("no limit", ROOT, {}, "resume"),
        ("limit on another queue", ROOT, {"BENCH_QUEUE_LIMITS": other_limit}, "resume"),
        ("a paused queue exists", ROOT, {}, "pause"),
    ]
    if main is not None:
        conditions += [
            ("main (baseline)", main, {}, "resume"),
            ("main, a paused queue exists", main, {}, "pause"),
        ]
    samples: dict[str, list[float]] = {name: [] for name, *_ in conditions}
    for round_ in range(rounds):
        shift = round_ % len(conditions)
        for name, root, extra, verb in conditions[shift:] + conditions[:shift]:
            python(vendor, SET_PAUSED.format(verb=verb))
            samples[name].append(drain(vendor, n, root, **extra))
    python(vendor, SET_PAUSED.format(verb="resume"))
    return {name: statistics.median(values) for name, values in samples.items()}


SEED = """
import json
from bgtask.models import Task, LimitState
from benchmarks.benchapp.tasks import {task}
from benchmarks.workloads import reset
reset()
LimitState.objects.all().delete()
rows = [Task(**{task}.build_row([i], {{}}, 0, "{queue}", None)) for i in range({n})]
Task.objects.bulk_create(rows)
print(json.dumps({{}}))
"""

INTERVALS = """
import json
from bgtask.models import Task
rows = Task.objects.filter(queue="{queue}", status="succeeded").values_list(
    "started_at", "finished_at")
print(json.dumps([[s.timestamp(), f.timestamp()] for s, f in rows]))
"""


def workers(vendor: str, count: int, limits: dict, *args: str) -> list[subprocess.Popen]:
    command = [sys.executable, "-m", "django", "process_tasks", *args]
    environment = env_for(vendor, BENCH_QUEUE_LIMITS=json.dumps(limits))
    return [
        subprocess.Popen(
            command, env=environment, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        for _ in range(count)
    ]


def rate_run(vendor: str) -> dict:
    """rate 60/m over 3 processes for a little more than a minute."""
    python(vendor, SEED.format(task="noop", queue="rated", n=150))
    procs = workers(vendor, 3, {"rated": {"rate": "60/m"}}, "--duration", "75", "--queue", "rated")
    for proc in procs:
        proc.wait()
    starts = sorted(s for s, _ in python(vendor, INTERVALS.format(queue="rated")))
    first = starts[0]
    in_minute = sum(1 for s in starts if s < first + 60.0)
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    return {
        "started in the first minute": in_minute,
        "started in 75 s": len(starts),
        "smallest gap (s)": round(min(gaps), 3) if gaps else None,
    }


SAMPLE = """
import json, time
from django.db import connection
from bgtask.models import Task
most, samples, end = 0, 0, time.monotonic() + {seconds}
queued = Task.objects.filter(queue="{queue}", status__in=["queued", "running"])
running = Task.objects.filter(queue="{queue}", status="running")
while time.monotonic() < end:
    seen = running.count()
    most, samples = max(most, seen), samples + 1
    if seen == 0 and not queued.exists():
        break
    time.sleep(0.003)
print(json.dumps({{"most": most, "samples": samples}}))
"""


def most_at_once(intervals: list[list[float]]) -> int:
    events = sorted([(s, 1) for s, _ in intervals] + [(f, -1) for _, f in intervals])
    now = most = 0
    for _, step in events:  # a finish at the same instant as a start is taken first
        now += step
        most = max(most, now)
    return most


def concurrency_run(vendor: str, n: int) -> dict:
    python(vendor, SEED.format(task="wait", queue="capped", n=n))
    started = time.perf_counter()
    procs = workers(
        vendor,
        4,
        {"capped": {"max_running": 3}},
        "--duration",
        "600",
        "--concurrency",
        "8",
        "--queue",
        "capped",
        "--sleep",
        "0.2",
    )
    try:
        sampled = python(vendor, SAMPLE.format(queue="capped", seconds=600))
        seconds = time.perf_counter() - started
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait()
    intervals = python(vendor, INTERVALS.format(queue="capped"))
    return {
        "tasks": len(intervals),
        "most running, sampled": sampled["most"],
        "samples": sampled["samples"],
        "most running, from rows' times": most_at_once(intervals),
        "tasks/s": round(len(intervals) / seconds, 1),
        "ideal tasks/s (3 slots / task seconds)": round(
            3 / statistics.mean(f - s for s, f in intervals), 1
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dbs", default="sqlite,postgres,mariadb")
    parser.add_argument("--n", type=int, default=5000, help="No-op tasks per drain.")
    parser.add_argument("--capped", type=int, default=300, help="Tasks of the capped queue.")
    parser.add_argument(
        "--main", default="", help="A checkout of the code to compare with (default: none)."
    )
    parser.add_argument("--skip-rate", action="store_true", help="Leave out (b) (75 s per DB).")
    parser.add_argument("--skip-capped", action="store_true", help="Leave out (c).")
    parser.add_argument("--rounds", type=int, default=3, help="Rounds of (a) (median shown).")
    options = parser.parse_args()
    main_root = Path(options.main) if options.main else None
    results: dict = {"load before": load()}
    for vendor in [v.strip() for v in options.dbs.split(",") if v.strip()]:
        log(f"limits: preparing {vendor}")
        prepare(vendor)
        log(f"limits: (a) drain {options.n} on {vendor}")
        results[f"{vendor} (a) no-op drain tasks/s"] = drain_costs(
            vendor, options.n, main_root, options.rounds
        )
        if not options.skip_rate:
            log(f"limits: (b) rate 60/m on {vendor}")
            results[f"{vendor} (b) rate 60/m, 3 processes"] = rate_run(vendor)
        if not options.skip_capped:
            log(f"limits: (c) 4 x 8 on a queue limited to 3, {vendor}")
            results[f"{vendor} (c) 4 processes x 8, max_running 3"] = concurrency_run(
                vendor, options.capped
            )
        results["load after " + vendor] = load()
    for key, value in results.items():
        if isinstance(value, dict) and "no limit" in value:
            base = value.get("main (baseline)")
            value = {
                k: f"{v:,.0f}" + (f" ({(v / base - 1) * 100:+.1f}% vs main)" if base else "")
                for k, v in value.items()
            }
        print(f"{key}: {json.dumps(value)}")


if __name__ == "__main__":
    main()
