"""Measure the Lambda build: each function's artifact size, and the worker's first invocation.

    python infra/measure_lambda.py            # make lambda-measure
    python infra/measure_lambda.py --time-only   # time the last worker build again

Builds the three functions for the template's architecture (arm64: the sizes that ship) and the
worker for this machine, then starts the worker from its build folder in a fresh process five
times, as a cold Lambda container would, with only the build folder and the standard library on
``sys.path``. Each run times ``import handlers.worker`` + ``django.setup()`` + one empty batch on
a migrated SQLite database, and the median is printed. Targets (issue 12): <= 500 ms and
<= 40 MB unzipped per function. Prints figures; asserts nothing (a loaded machine is slower).
"""

from __future__ import annotations

import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from build import FUNCTIONS, REPO, build

RUNS = 5
OUT = REPO / "build" / "lambda"

# Runs in the fresh process, from the build folder only (python -I -S: no site-packages).
FIRST_INVOCATION = """
import sys, time
started, cpu_started = time.perf_counter(), time.process_time()
sys.path.insert(0, sys.argv[1])
import handlers.worker
from handlers.local_context import LocalContext
summary = handlers.worker.handler({"source": "bgtask.schedule"}, LocalContext(timeout=60))
elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu_started
assert summary["ran"] and summary["succeeded"] == 0, summary
print("@@first-invocation-ms", round(elapsed * 1000, 1), round(cpu * 1000, 1))
"""
MIGRATE = """
import sys
sys.path.insert(0, sys.argv[1])
import django
django.setup()
from django.core.management import call_command
call_command("migrate", verbosity=0)
"""


def zipped_size(folder: Path) -> int:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                archive.write(path, path.relative_to(folder))
    return buffer.tell()


def first_invocations(folder: Path, database: Path) -> tuple[list[float], list[float]]:
    """Wall-clock and CPU milliseconds of each run (CPU time says less about a busy machine)."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "AWS_LAMBDA_FUNCTION_NAME": "bgtask-measure-worker",
        "DJANGO_SETTINGS_MODULE": "handlers.project.worker_settings",
        "DATABASE_URL": f"sqlite:///{database}",
        "DJANGO_SECRET_KEY": "measure-" + "x" * 40,
    }
    subprocess.run([sys.executable, "-I", "-S", "-c", MIGRATE, str(folder)], env=env, check=True)
    timings, cpu_timings = [], []
    for _ in range(RUNS):
        done = subprocess.run(
            [sys.executable, "-I", "-S", "-c", FIRST_INVOCATION, str(folder)],
            env=env,
            check=True,
            capture_output=True,
            text=True,
        )
        line = next(x for x in done.stdout.splitlines() if x.startswith("@@first-invocation-ms"))
        timings.append(float(line.split()[1]))
        cpu_timings.append(float(line.split()[2]))
    return timings, cpu_timings


def main() -> None:
    time_only = "--time-only" in sys.argv[1:]
    figures: dict[str, object] = {}
    for function in () if time_only else FUNCTIONS:
        folder = OUT / f"{function}-arm64"
        size = build(function, folder, "arm64")
        figures[f"{function}_unzipped_mb"] = round(size / 1e6, 1)
        figures[f"{function}_zipped_mb"] = round(zipped_size(folder) / 1e6, 1)
    worker = OUT / "worker-host"
    if not time_only:
        build("worker", worker, "host")
    with tempfile.TemporaryDirectory() as scratch:
        timings, cpu_timings = first_invocations(worker, Path(scratch) / "measure.sqlite3")
    figures["worker_first_invocation_ms"] = timings
    figures["worker_first_invocation_median_ms"] = statistics.median(timings)
    figures["worker_first_invocation_cpu_median_ms"] = statistics.median(cpu_timings)
    figures["load_average_1min"] = os.getloadavg()[0]
    for function in () if time_only else FUNCTIONS:
        print(
            f"{function:>7}: {figures[f'{function}_unzipped_mb']} MB unzipped, "
            f"{figures[f'{function}_zipped_mb']} MB zipped (arm64 build; target <= 40 MB unzipped)"
        )
    print(
        f" worker: first invocation (import + django.setup + one empty batch), median of {RUNS} "
        f"fresh processes: {figures['worker_first_invocation_median_ms']:.0f} ms "
        f"(runs: {', '.join(f'{t:.0f}' for t in timings)}; target <= 500 ms); CPU time median "
        f"{figures['worker_first_invocation_cpu_median_ms']:.0f} ms; load average "
        f"{figures['load_average_1min']:.2f} on {os.cpu_count()} CPUs"
    )
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
