"""A message-queue peer's workload in a fresh process (peers venv); JSON on the last line.

benchmarks/.peers-venv/bin/python -m benchmarks.peerqueues.workloads PEER WORKLOAD --n N

PEER: celery-solo, celery-prefork, huey, rq, procrastinate; for ``io`` celery-threads,
huey-threads, procrastinate.
WORKLOAD: ``drain`` (queue N no-op tasks untimed, start ONE worker process the way its users
start it, time from the first task to the last, stop the worker once the queue is empty),
``io`` (the same with tasks that wait 50 ms, ``--concurrency`` at once: timed from the first
task's start to the last success, as bgtask's ``workloads.py io``),
``enqueue`` (N single enqueues, one call each, timed after one untimed call opened the
connection) or ``prepare`` (create what the peer needs, idempotently).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PEERS = ("celery-solo", "celery-prefork", "huey", "huey-normal", "rq", "procrastinate")
#: The I/O section's peers: Celery's thread pool, Huey's thread workers, Procrastinate.
IO_PEERS = ("celery-threads", "huey-threads", "procrastinate")
POLL = 0.01  # seconds between the parent's looks at the marker files and the queue
STOP_TIMEOUT = 60


# -- per-peer operations ----------------------------------------------------------------------


def redis():
    from redis import Redis

    from benchmarks.peerqueues import REDIS_URL

    return Redis.from_url(REDIS_URL)


def reset(peer: str) -> None:
    if peer.startswith("celery") or peer == "rq":
        redis().flushdb()  # only the benchmark's own database number
    elif peer.startswith("huey"):
        from benchmarks.peerqueues.huey_app import huey

        huey.flush()
    else:
        with pg() as conn:
            conn.execute("TRUNCATE procrastinate_jobs RESTART IDENTITY CASCADE")


def pg():
    import psycopg

    from benchmarks.peerqueues.procrastinate_app import conninfo

    return psycopg.connect(conninfo(), autocommit=True)


def enqueuer(peer: str):
    """A function that enqueues one no-op task (one call, one round trip or more)."""
    if peer.startswith("celery"):
        from benchmarks.peerqueues.celery_app import noop

        return noop.delay
    if peer.startswith("huey"):
        from benchmarks.peerqueues.huey_app import noop

        return noop
    if peer == "rq":
        from benchmarks.peerqueues.rq_tasks import noop, queue

        q = queue()
        return lambda number: q.enqueue(noop, number)
    from benchmarks.peerqueues.procrastinate_app import app, noop

    app.open()
    return lambda number: noop.defer(number=number)


def fill(peer: str, n: int) -> None:
    """Queue ``n`` tasks, untimed; a bulk call where the peer has one."""
    if peer == "rq":
        from rq import Queue

        from benchmarks.peerqueues.rq_tasks import noop, queue

        q = queue()
        for first in range(0, n, 1000):
            q.enqueue_many(
                [Queue.prepare_data(noop, (i,)) for i in range(first, min(first + 1000, n))]
            )
    elif peer == "procrastinate":
        from benchmarks.peerqueues.procrastinate_app import app, noop

        with app.open():
            for first in range(0, n, 1000):
                noop.batch_defer(*({"number": i} for i in range(first, min(first + 1000, n))))
    else:
        call = enqueuer(peer)
        if peer.startswith("huey"):
            # Filling is untimed: skip the per-commit fsync in this (filling) process only.
            from benchmarks.peerqueues.huey_app import huey

            huey.storage.conn.execute("pragma synchronous=OFF")
        for i in range(n):
            call(i)


def pending(peer: str) -> int:
    """Tasks not yet started (or, for the Redis peers, not yet acknowledged)."""
    if peer.startswith("celery"):
        r = redis()
        return r.llen("celery") + r.hlen("unacked")
    if peer.startswith("huey"):
        from benchmarks.peerqueues.huey_app import huey

        return huey.pending_count()
    if peer == "rq":
        from rq.registry import StartedJobRegistry

        from benchmarks.peerqueues.rq_tasks import queue

        q = queue()
        return q.count + len(StartedJobRegistry(queue=q))
    with pg() as conn:
        return conn.execute(
            "SELECT count(*) FROM procrastinate_jobs WHERE status IN ('todo', 'doing')"
        ).fetchone()[0]


def succeeded(peer: str, n: int) -> int | None:
    """Rows the peer itself records as done, where it records them (None: it keeps no trace of a
    task without a result backend, so an empty queue is the check)."""
    if peer == "rq":
        from rq.registry import FailedJobRegistry, FinishedJobRegistry

        from benchmarks.peerqueues.rq_tasks import queue

        q = queue()
        assert len(FailedJobRegistry(queue=q)) == 0
        return len(FinishedJobRegistry(queue=q))
    if peer == "procrastinate":
        with pg() as conn:
            return conn.execute(
                "SELECT count(*) FROM procrastinate_jobs WHERE status = 'succeeded'"
            ).fetchone()[0]
    return None


def worker_command(peer: str, concurrency: int | None = None) -> list[str]:
    python = sys.executable
    if peer.startswith("celery"):
        return [
            python,
            "-m",
            "celery",
            "-A",
            "benchmarks.peerqueues.celery_app",
            "worker",
            f"--pool={peer.split('-')[1]}",  # prefork: default concurrency (one child per core)
            *([f"--concurrency={concurrency}"] if concurrency else []),
            "--loglevel=WARNING",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
        ]
    if peer.startswith("huey"):
        return [
            python,
            "-m",
            "huey.bin.huey_consumer",
            "benchmarks.peerqueues.huey_app.huey",
            f"--workers={concurrency or 1}",
            "--worker-type=thread",
            "--quiet",
            "--no-periodic",
        ]
    # RQ and Procrastinate: their documented worker APIs in burst / one-shot mode.
    return [
        python,
        "-m",
        "benchmarks.peerqueues.workloads",
        peer,
        "worker",
        "--n",
        "0",
        "--concurrency",
        str(concurrency or 1),
    ]


def run_worker(peer: str, concurrency: int = 1) -> None:
    if peer == "rq":
        from rq import SimpleWorker

        from benchmarks.peerqueues.rq_tasks import queue

        q = queue()
        SimpleWorker([q], connection=q.connection).work(burst=True, logging_level="WARNING")
    else:
        from benchmarks.peerqueues.procrastinate_app import app

        app.run_worker(wait=False, concurrency=concurrency)


# -- workloads --------------------------------------------------------------------------------


def drain(peer: str, n: int) -> dict:
    reset(peer)
    fill(peer, n)
    assert pending(peer) == n, (pending(peer), n)
    marks = Path(tempfile.mkdtemp(prefix="bench-marks-"))
    env = dict(os.environ, BENCH_MARK_DIR=str(marks), BENCH_MARK_LAST=str(n - 1))
    with tempfile.TemporaryFile() as log:
        spawned = time.time()
        worker = subprocess.Popen(
            worker_command(peer), env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT
        )
        try:
            last_mark = marks / str(n - 1)
            while not last_mark.exists():
                if worker.poll() is not None:
                    log.seek(0)
                    output = log.read()[-3000:].decode()
                    raise RuntimeError(f"{peer} worker exited early:\n{output}")
                time.sleep(POLL)
            first = float((marks / "0").read_text())
            last = float(last_mark.read_text())
            while pending(peer):  # the last task queued was not the last to run
                time.sleep(POLL)
                last = time.time()
        finally:
            if worker.poll() is None:
                worker.send_signal(signal.SIGTERM)
            try:
                worker.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.wait()
            shutil.rmtree(marks, ignore_errors=True)
    done = succeeded(peer, n)
    if done is not None and done != n:
        raise RuntimeError(f"{peer}: {done} of {n} tasks recorded as succeeded")
    seconds = last - first
    return {
        "n": n,
        "ran": n,
        "seconds": seconds,
        "rate": n / seconds,
        "startup_seconds": first - spawned,
    }


def fill_io(peer: str, n: int) -> None:
    """Queue ``n`` of the I/O section's tasks, untimed."""
    if peer == "procrastinate":
        from benchmarks.peerqueues.procrastinate_app import app
        from benchmarks.peerqueues.procrastinate_app import io as task

        with app.open():
            for first in range(0, n, 1000):
                task.batch_defer(*({"number": i} for i in range(first, min(first + 1000, n))))
        return
    if peer.startswith("celery"):
        from benchmarks.peerqueues.celery_app import io as task

        call = task.delay
    else:
        from benchmarks.peerqueues.huey_app import huey
        from benchmarks.peerqueues.huey_app import io as call

        huey.storage.conn.execute("pragma synchronous=OFF")  # this filling process only
    for i in range(n):
        call(i)


def io(peer: str, n: int, concurrency: int) -> dict:
    """ONE worker process with ``concurrency`` slots on ``n`` queued 50 ms tasks; timed from the
    first task's start to the last success: every body ended (``iomarks``) and, where the peer
    records it, no job left to do or in progress."""
    from benchmarks import iomarks

    reset(peer)
    fill_io(peer, n)
    assert pending(peer) == n, (pending(peer), n)
    folder = Path(tempfile.mkdtemp(prefix="bench-io-"))
    marks = str(folder / "marks")
    env = dict(os.environ, BENCH_IO_MARKS=marks)
    with tempfile.TemporaryFile() as log:
        spawned = time.time()
        worker = subprocess.Popen(
            worker_command(peer, concurrency),
            env=env,
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            while iomarks.count(marks) < n:
                if worker.poll() is not None or time.time() - spawned > 600:
                    log.seek(0)
                    output = log.read()[-3000:].decode()
                    raise RuntimeError(f"{peer} worker ended or stalled early:\n{output}")
                time.sleep(POLL)
            while pending(peer):
                time.sleep(POLL / 2)
            last_success = time.time()
        finally:
            if worker.poll() is None:
                worker.send_signal(signal.SIGTERM)
            try:
                worker.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.wait()
        log.seek(0)
        log_lines = log.read().decode(errors="replace").splitlines()
    figures = iomarks.read(marks)
    shutil.rmtree(folder, ignore_errors=True)
    done = succeeded(peer, n)
    if done is not None and done != n:
        raise RuntimeError(f"{peer}: {done} of {n} tasks recorded as succeeded")
    last = max(last_success, figures.last_end)
    seconds = last - figures.first_start
    noted = [line for line in log_lines if "ERROR" in line or "Traceback" in line]
    return {
        "n": n,
        "concurrency": concurrency,
        "seconds": seconds,
        "rate": n / seconds,
        "startup_seconds": figures.first_start - spawned,
        "spawn_rate": n / (last - spawned),
        "mean_in_flight": figures.mean_in_flight(last),
        "write_lag_seconds": last - figures.last_end,
        "ran": figures.distinct,
        "duplicates": figures.duplicates,
        "noted_lines": noted[:20],
        "noted_count": len(noted),
    }


def enqueue(peer: str, n: int) -> dict:
    reset(peer)
    call = enqueuer(peer)
    call(-1)  # opens the connection (and imports), untimed
    started = time.perf_counter()
    for i in range(n):
        call(i)
    seconds = time.perf_counter() - started
    queued = pending(peer)
    reset(peer)
    if queued != n + 1:
        raise RuntimeError(f"{peer}: {queued} queued after {n + 1} enqueues")
    return {"n": n, "seconds": seconds, "rate": n / seconds}


def prepare(peer: str, _: int) -> dict:
    """Procrastinate's schema in its own database (created by run.py), applied once."""
    if peer == "procrastinate":
        with pg() as conn:
            missing = conn.execute("SELECT to_regclass('procrastinate_jobs')").fetchone()[0]
        if missing is None:
            from benchmarks.peerqueues.procrastinate_app import app

            with app.open():
                app.schema_manager.apply_schema()
    reset(peer)
    return {"prepared": peer}


def versions() -> dict:
    from importlib.metadata import version

    return {p: version(p) for p in ("celery", "kombu", "redis", "huey", "rq", "procrastinate")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("peer", choices=[*PEERS, *IO_PEERS, "all"])
    parser.add_argument(
        "workload", choices=["drain", "enqueue", "prepare", "worker", "versions", "io"]
    )
    parser.add_argument("--n", type=int, default=0)
    parser.add_argument("--concurrency", type=int, default=1)
    options = parser.parse_args()
    if options.peer == "huey-normal":
        os.environ["BENCH_HUEY_SYNC"] = "normal"  # read by huey_app, inherited by the worker
    if options.workload == "worker":
        run_worker(options.peer, options.concurrency)
        return
    if options.workload == "versions":
        figures = versions()
    elif options.workload == "io":
        figures = io(options.peer, options.n, options.concurrency)
    else:
        figures = globals()[options.workload](options.peer, options.n)
    print(json.dumps(figures), flush=True)


if __name__ == "__main__":
    main()
