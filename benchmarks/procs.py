"""How the benchmark's drivers start a workload: a fresh process that prints JSON on its last line.

Shared by ``run.py``, ``peer_table.py`` and ``io_table.py`` (no driver imports another's).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PEERS_VENV = HERE / ".peers-venv"


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def last_json(text: str) -> dict:
    return json.loads(text.strip().splitlines()[-1])


def run_json(command: list[str], vendor: str, *, env: dict | None = None, cwd: Path = ROOT) -> dict:
    full_env = dict(os.environ, BENCH_DB=vendor, PYTHONPATH=str(ROOT)) | (env or {})
    done = subprocess.run(
        [str(part) for part in command], env=full_env, cwd=cwd, capture_output=True, text=True
    )
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, command))} failed:\n{done.stderr[-3000:]}")
    return last_json(done.stdout)


def bgtask_cmd(*args: object) -> list[str]:
    return [sys.executable, "-m", "benchmarks.workloads", *map(str, args)]


def peer_python() -> str:
    return str(PEERS_VENV / "bin" / "python")


def load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]
