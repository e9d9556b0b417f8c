"""Measure the Lambda build: each function's artifact size, and the worker's first invocation.

    python infra/measure_lambda.py            # make lambda-measure
    python infra/measure_lambda.py --time-only   # time the last worker build again

Builds the three functions for the template's architecture (arm64: the sizes that ship) and the
worker for this machine, then starts the worker from its build folder in a fresh process five
times, as a cold Lambda container would, with only the build folder and the standard library on
``sys.path``. Each run times ``import handlers.worker`` + ``django.setup()`` + one empty batch on
a migrated SQLite database, and the median is printed. Targets (issue 12): <= 500 ms and
<= 40 MB unzipped per function.

Then, as Lambda runs it, under the real runtime client (awslambdaric, pointed at the tests' fake
Runtime API): five fresh processes, each timed for its init phase (process start until the
client asks for its first event: imports, ``django.setup()``, settings read) and for its first
invocation (event handed over until the answer arrives: one empty batch). Targets (issue 21):
init <= 400 ms, first invocation <= 50 ms. Then five more with the secrets where a deploy keeps
them: the database URL and the secret key in Secrets Manager (moto's server, a dev dependency,
in this process), read at init through botocore, which the runtime provides. Prints figures,
with the init's CPU time (less sensitive to a busy machine than the wall clock); asserts nothing
(a loaded machine is slower).
"""

from __future__ import annotations

import importlib.util
import io
import json
import logging
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Any

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


# The runtime client as Lambda starts it, from the build folder plus awslambdaric (which the
# Lambda runtime provides, like boto3): python -I -S, nothing else on sys.path.
RUNTIME_CLIENT = """
import sys
sys.path[:0] = [sys.argv[1], sys.argv[2]]
from awslambdaric.__main__ import main
main(["awslambdaric", "handlers.worker.handler"])
"""
EMPTY_TICK = {"source": "bgtask.schedule"}


def fake_runtime_api():
    """tests/handlers/fake_runtime_api.py, loaded by path (the tests are not a package here)."""
    path = REPO / "tests" / "handlers" / "fake_runtime_api.py"
    spec = importlib.util.spec_from_file_location("fake_runtime_api", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module.FakeRuntimeApi


RUNTIME_MODULES = ("awslambdaric", "runtime_client", "simplejson", "snapshot_restore_py")
# What the Lambda runtime also provides beside the code folder, and the secrets are read with:
# botocore and its dependencies (boto3 is not used: bgtask.aws.client).
BOTOCORE_MODULES = ("botocore", "jmespath", "dateutil", "urllib3", "six")


def runtime_client_shim(scratch: Path, modules: tuple[str, ...] = RUNTIME_MODULES) -> Path:
    """A folder holding only awslambdaric, its compiled client and its two dependencies (and
    ``modules`` beyond them)."""
    shim = scratch / "runtime"
    shim.mkdir()
    for name in modules:
        origin = Path(importlib.util.find_spec(name).origin)
        source = origin.parent if origin.name == "__init__.py" else origin
        (shim / source.name).symlink_to(source)
    return shim


def cpu_ms(pid: int) -> float | None:
    """CPU time (user + system) a process has used so far, from /proc; None elsewhere."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) * 1000 / os.sysconf("SC_CLK_TCK")


def runtime_client_runs(
    folder: Path,
    database: Path,
    scratch: Path,
    secrets: dict[str, str] | None = None,
) -> list[tuple[float, float, float | None]]:
    """(init ms, first invocation ms, init CPU ms) of RUNS fresh runtime-client processes.

    With ``secrets`` (the environment ``secrets_in_moto`` returns), the database URL and the
    secret key are read from Secrets Manager, as deployed, instead of plain variables."""
    api_class = fake_runtime_api()
    shim = runtime_client_shim(scratch, RUNTIME_MODULES + (BOTOCORE_MODULES if secrets else ()))
    runs = []
    for _ in range(RUNS):
        api = api_class()
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "AWS_LAMBDA_RUNTIME_API": api.address,
            "AWS_LAMBDA_FUNCTION_NAME": "bgtask-measure-worker",
            "AWS_LAMBDA_LOG_FORMAT": "JSON",
            "DJANGO_SETTINGS_MODULE": "handlers.project.worker_settings",
            **(
                secrets
                or {
                    "DATABASE_URL": f"sqlite:///{database}",
                    "DJANGO_SECRET_KEY": "measure-" + "x" * 50,
                }
            ),
        }
        started = time.time()
        process = subprocess.Popen(
            [sys.executable, "-I", "-S", "-c", RUNTIME_CLIENT, str(folder), str(shim)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            if not api.init_done.wait(120):
                raise SystemExit("the runtime client never asked for an event (init failed?)")
            init_cpu = cpu_ms(process.pid)  # it now waits for its event: CPU time is init's
            invocation = api.invoke(EMPTY_TICK, 60)
            if not invocation.done.wait(120) or invocation.kind != "response":
                raise SystemExit(f"the first invocation failed: {invocation.body}")
            runs.append(
                (
                    (api.init_done_at - started) * 1000,
                    (invocation.answered_at - invocation.sent_at) * 1000,
                    init_cpu,
                )
            )
        finally:
            process.kill()
            process.wait()
            api.close()
    return runs


def secrets_in_moto(database: Path) -> tuple[Any, dict[str, str]]:
    """moto's server (a dev dependency) holding the secrets as a deploy keeps them; returns the
    server (stop it) and the environment that names them. The runtime's CPU time is its own:
    moto's server runs in this process."""
    import boto3
    from moto.server import ThreadedMotoServer

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's server: no line per request
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    aws = {
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}",
        "AWS_ACCESS_KEY_ID": "measure",
        "AWS_SECRET_ACCESS_KEY": "measure",
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    options = {
        "endpoint_url": aws["AWS_ENDPOINT_URL"],
        "region_name": "us-east-1",
        "aws_access_key_id": "measure",
        "aws_secret_access_key": "measure",
    }
    manager = boto3.client("secretsmanager", **options)
    # What template.yaml gives the worker: the database URL and the Django secret key, in
    # Secrets Manager (the status token is the web function's only).
    database_arn = manager.create_secret(
        Name="bgtask/measure/database", SecretString=f"sqlite:///{database}"
    )["ARN"]
    key_arn = manager.create_secret(
        Name="bgtask/measure/secret-key", SecretString="measure-" + "x" * 50
    )["ARN"]
    return server, {**aws, "DATABASE_SECRET_ARN": database_arn, "DJANGO_SECRET_KEY_ARN": key_arn}


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
        runs = runtime_client_runs(worker, Path(scratch) / "measure.sqlite3", Path(scratch))
        server, secrets = secrets_in_moto(Path(scratch) / "measure.sqlite3")
        try:
            (Path(scratch) / "with-secrets").mkdir()
            secret_runs = runtime_client_runs(
                worker, Path(scratch) / "measure.sqlite3", Path(scratch) / "with-secrets", secrets
            )
        finally:
            server.stop()
    figures["runtime_init_ms"] = [round(run[0], 1) for run in runs]
    figures["runtime_first_invoke_ms"] = [round(run[1], 1) for run in runs]
    figures["runtime_init_median_ms"] = statistics.median(run[0] for run in runs)
    figures["runtime_first_invoke_median_ms"] = statistics.median(run[1] for run in runs)
    cpu = [run[2] for run in runs if run[2] is not None]
    figures["runtime_init_cpu_median_ms"] = statistics.median(cpu) if cpu else None
    figures["secrets_init_ms"] = [round(run[0], 1) for run in secret_runs]
    figures["secrets_init_median_ms"] = statistics.median(run[0] for run in secret_runs)
    secret_cpu = [run[2] for run in secret_runs if run[2] is not None]
    figures["secrets_init_cpu_median_ms"] = statistics.median(secret_cpu) if secret_cpu else None
    figures["secrets_first_invoke_median_ms"] = statistics.median(run[1] for run in secret_runs)
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
    print(
        f" worker under the runtime client, median of {RUNS} fresh processes: init "
        f"{figures['runtime_init_median_ms']:.0f} ms (target <= 400 ms), first invocation "
        f"{figures['runtime_first_invoke_median_ms']:.0f} ms (target <= 50 ms); init CPU time "
        f"median {figures['runtime_init_cpu_median_ms']} ms"
    )
    print(
        f" the same with the secrets read at init from Secrets Manager (moto's server), "
        f"as deployed: init {figures['secrets_init_median_ms']:.0f} ms, first invocation "
        f"{figures['secrets_first_invoke_median_ms']:.0f} ms; init CPU time median "
        f"{figures['secrets_init_cpu_median_ms']} ms"
    )
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
