"""What 1,000 tasks that wait 50 ms cost on Lambda: billed GB-seconds, from a run of the worker
function under the real runtime client (``python -m awslambdaric handlers.worker.handler``)
against the fake Runtime API of the tests (``tests/handlers/fake_runtime_api.py``).

    python -m benchmarks.lambda_cost --n 1000 --concurrency 8      (BENCH_DB=postgres)

One warm-up invocation on an empty queue first (the cold start: reported apart, not in the
cost), then ``n`` ``bench.wait`` tasks queued and scheduled invocations (``WorkerTimeout``'s
default deadline) until none is left. Each invocation's billed duration is the time from the
runtime client getting the event to its answer, rounded up to the millisecond as Lambda bills;
GB-seconds are that times the worker function's ``MemorySize`` in template.yaml. JSON on the
last line.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import django

ROOT = Path(__file__).resolve().parents[1]
#: Lambda's arm64 price per GB-second (us-east-1, first tier), for the $ column only.
ARM64_PRICE_PER_GB_SECOND = 0.0000133334


def template_figure(name: str) -> int:
    """``MemorySize`` or ``WorkerTimeout``'s default, as template.yaml gives the worker function
    (its own ``MemorySize`` when set, else the ``Globals`` one)."""
    text = (ROOT / "template.yaml").read_text()
    if name == "WorkerTimeout":
        block = text.split("  WorkerTimeout:", 1)[1]
        return int(re.search(r"Default: (\d+)", block).group(1))
    worker = text.split("  WorkerFunction:", 1)[1].split("\n  ", 1)[0]
    own = re.search(r"MemorySize: (\d+)", worker)
    if own:
        return int(own.group(1))
    globals_block = text.split("Globals:", 1)[1].split("\nResources:", 1)[0]
    return int(re.search(r"MemorySize: (\d+)", globals_block).group(1))


def measure(n: int, concurrency: int) -> dict:
    from django.db import connection

    from benchmarks.benchapp.tasks import wait
    from benchmarks.workloads import reset, seed_due
    from bgtask.models import Task
    from tests.handlers.fake_runtime_api import FakeRuntimeApi

    memory_mb = template_figure("MemorySize")
    timeout = template_figure("WorkerTimeout")
    settings = connection.settings_dict
    database_url = (
        f"postgres://{settings['USER']}@{settings['HOST']}:{settings['PORT']}/{settings['NAME']}"
        if connection.vendor == "postgresql"
        else None
    )
    if database_url is None:
        raise SystemExit("the Lambda cost run wants BENCH_DB=postgres")
    reset()
    api = FakeRuntimeApi()
    env = dict(
        os.environ,
        PYTHONPATH=str(ROOT),
        DJANGO_SETTINGS_MODULE="benchmarks.lambda_settings",
        DATABASE_URL=database_url,
        # The deployed settings refuse to start on Lambda without a key (issue 21 reads it from a
        # secret there); the plain variable is their local form.
        DJANGO_SECRET_KEY="bench-only-not-secret-" + "x" * 40,
        AWS_LAMBDA_RUNTIME_API=api.address,
        AWS_LAMBDA_FUNCTION_NAME="bgtask-bench-worker",
        AWS_EXECUTION_ENV="AWS_Lambda_python3.12",
        AWS_LAMBDA_LOG_FORMAT="JSON",
        AWS_LAMBDA_LOG_LEVEL="INFO",
        BENCH_CONCURRENCY=str(concurrency),
    )
    env.pop("BENCH_IO_MARKS", None)
    runtime = subprocess.Popen(
        [sys.executable, "-m", "awslambdaric", "handlers.worker.handler"],
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(runtime.stdout), daemon=True)
    reader.start()
    event = json.loads((ROOT / "infra" / "events" / "worker-schedule.json").read_text())

    def invoke():
        invocation = api.invoke(event, timeout)
        if not invocation.done.wait(timeout + 120):
            raise RuntimeError("no answer from the runtime client:\n" + "".join(lines[-30:]))
        if invocation.kind != "response":
            raise RuntimeError(f"invocation failed: {invocation.body}")
        return invocation

    try:
        cold = invoke()
        seed_due(n, wait)
        invocations = []
        started = time.time()
        while Task.objects.filter(status__in=[Task.QUEUED, Task.RUNNING]).exists():
            invocations.append(invoke())
            if len(invocations) > 50:
                raise RuntimeError("more than 50 invocations: the worker is not draining")
        wall = time.time() - started
    finally:
        runtime.kill()
        runtime.wait()
        api.close()
    billed_ms = [math.ceil(i.answered_ms - i.delivered_ms) for i in invocations]
    succeeded = Task.objects.filter(status=Task.SUCCEEDED).count()
    gb_seconds = sum(billed_ms) / 1000 * memory_mb / 1024
    per_thousand = gb_seconds * 1000 / n
    return {
        "n": n,
        "concurrency": concurrency,
        "memory_mb": memory_mb,
        "invocation_timeout": timeout,
        "invocations": len(invocations),
        "billed_ms": billed_ms,
        "succeeded": succeeded,
        "by_invocation": [i.body.get("succeeded") for i in invocations],
        "gb_seconds": gb_seconds,
        "gb_seconds_per_1000": per_thousand,
        "usd_per_million_tasks": per_thousand * 1000 * ARM64_PRICE_PER_GB_SECOND,
        "rate": n / (sum(billed_ms) / 1000),
        "wall_seconds": wall,
        "cold_invocation_ms": cold.answered_ms - cold.delivered_ms,
        "error_lines": [line for line in lines if '"ERROR"' in line or "Traceback" in line][:10],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=1)
    options = parser.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "benchmarks.settings")
    sys.path.insert(0, str(ROOT))
    django.setup()
    print(json.dumps(measure(options.n, options.concurrency)), flush=True)


if __name__ == "__main__":
    main()
