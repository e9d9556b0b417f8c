"""Per-task cost of the OpenTelemetry and Sentry integrations: absent, each alone, and both.

python -m benchmarks.integrations_cost [--n 5000] [--repeats 3]   (BENCH_DB=sqlite|postgres|mariadb)

Each mode runs in a fresh process (a tracer provider and a Sentry client are process-wide):

- absent: ``opentelemetry`` and ``sentry_sdk`` cannot be imported, as when the extras are not
  installed (nothing is connected);
- otel: the OTel SDK's ``TracerProvider`` with a ``BatchSpanProcessor`` into an in-memory
  exporter (spans are really built and exported; nothing is sent anywhere);
- sentry-sdk: ``sentry_sdk.init`` with a transport that drops what it is given, bgtask's Sentry
  receivers disconnected: what the SDK itself costs (its Django and logging integrations);
- sentry: the same with bgtask's receivers connected;
- both.

Figures, in microseconds per task: ``execute_us``, bgtask's ``execute()`` of a claimed task with
its writes stubbed out (the per-task Python the integrations add to, best of ``--repeats``);
``drain_cpu_us``, this process's CPU time per task during a real ``run_batch`` drain on the
database; ``context_us``, what an enqueue adds for the row's trace context, inside an active
span. Success path only: a failure's Sentry event costs
what the SDK's capture costs. Not a test, never a timed assertion; the figures are quoted in
docs/how-to/monitoring.md.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
MODES = ("absent", "otel", "sentry-sdk", "sentry", "both")


def _set_up(mode: str) -> None:
    if mode == "absent":
        sys.modules["opentelemetry"] = None  # type: ignore[assignment]
        sys.modules["sentry_sdk"] = None  # type: ignore[assignment]
    if mode in ("otel", "both"):
        from opentelemetry import trace
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

        provider = TracerProvider()
        provider.add_span_processor(BatchSpanProcessor(InMemorySpanExporter()))
        trace.set_tracer_provider(provider)
    if mode in ("sentry-sdk", "sentry", "both"):
        import sentry_sdk
        from sentry_sdk.transport import Transport

        class Drop(Transport):
            def capture_envelope(self, envelope):  # type: ignore[no-untyped-def]
                pass

        sentry_sdk.init(dsn="https://public@sentry.invalid/1", transport=Drop)


def measure(mode: str, n: int, repeats: int) -> dict[str, object]:
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "benchmarks.settings")
    # The benchmark settings turn both off (they measure bgtask alone); here they are connected,
    # and each mode turns them on or off per call.
    os.environ.setdefault("BENCH_OPENTELEMETRY", "1")
    os.environ.setdefault("BENCH_SENTRY", "1")
    os.environ.setdefault(
        "BENCH_SQLITE_PATH", str(ROOT / "benchmarks" / ".data" / "integrations.sqlite3")
    )
    _set_up(mode)
    import django

    from benchmarks.dbs import create_database

    create_database(os.environ.get("BENCH_DB", "sqlite"))
    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    if mode == "sentry-sdk":
        from bgtask.integrations import sentry

        sentry.disconnect()
    from django.test import override_settings

    from benchmarks.benchapp.tasks import noop
    from benchmarks.per_task_python import _NoWrites, best_of
    from benchmarks.workloads import reset, seed_due, timed_drain, warm_up
    from bgtask.store.rows import FIELDS, tasks_from_rows
    from bgtask.worker.completer import Completer
    from bgtask.worker.execution import execute

    settings = {"BGTASK_OPENTELEMETRY": mode in ("otel", "both"), "BGTASK_SENTRY": True}
    with override_settings(**settings):
        from datetime import UTC, datetime

        now = datetime.now(UTC)
        template = {f.attname: f.get_default() for f in FIELDS}
        template.update(
            id=1,
            task_name="bench.noop",
            arguments='{"args":[1],"kwargs":{}}',
            status="running",
            locked_by="w",
            locked_until=now,
            run_at=now,
            created_at=now,
            started_at=now,
        )
        row = tuple(template[f.attname] for f in FIELDS)

        def run_all() -> None:
            tasks = tasks_from_rows("default", [row] * n)
            for i, task in enumerate(tasks):
                task.id = i + 1  # per-task state is keyed by id
            completer = Completer(_NoWrites(), "w", group_size=50, max_delay=600)
            for task in tasks:
                completer.record(execute(task))
            completer.flush()

        figures: dict[str, object] = {"mode": mode, "execute_us": best_of(repeats, run_all, n)}

        warm_up()
        reset()
        seed_due(n, noop)
        cpu = time.process_time()
        ran, _ = timed_drain()
        figures["drain_cpu_us"] = (time.process_time() - cpu) / max(ran, 1) * 1e6

        # What an enqueue adds: the trace context read for the row, inside an active span (the
        # INSERT itself is the same in every mode and its time is the disk's, so it is left out).
        from bgtask.enqueue import trace_context

        if mode in ("otel", "both"):
            from opentelemetry import trace

            span: Any = trace.get_tracer("bench").start_as_current_span("request")
        else:
            span = nullcontext()
        with span:
            figures["context_us"] = best_of(
                repeats, lambda: [trace_context.current() for _ in range(n)], n
            )
        reset()
    from django.db import connection

    figures["db"] = connection.vendor
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=5000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--mode", choices=MODES, help=argparse.SUPPRESS)  # one child's mode
    options = parser.parse_args()
    if options.mode:
        print(json.dumps(measure(options.mode, options.n, options.repeats)))
        return
    rows = []
    for mode in MODES:
        out = subprocess.run(
            [
                sys.executable,
                "-m",
                "benchmarks.integrations_cost",
                "--mode",
                mode,
                "--n",
                str(options.n),
                "--repeats",
                str(options.repeats),
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        rows.append(json.loads(out.strip().splitlines()[-1]))
    base = rows[0]
    print(
        f"{'mode':<8} {'execute µs':>11} {'Δ':>7} {'drain CPU µs':>13} {'Δ':>7} "
        f"{'context µs':>11} {'Δ':>7}   ({base['db']}, n={options.n}, "
        f"load {os.getloadavg()[0]:.2f})"
    )
    for row in rows:
        cells = []
        for key in ("execute_us", "drain_cpu_us", "context_us"):
            value, delta = float(row[key]), float(row[key]) - float(base[key])  # type: ignore[arg-type]
            cells.append(f"{value:>11.1f} {delta:>+7.1f}")
        print(f"{row['mode']:<10} " + "  ".join(cells))


if __name__ == "__main__":
    main()
