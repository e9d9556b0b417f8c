"""Run one soak: a server of its own, a producer, three workers, random faults, a drain.

``run_soak(SoakConfig(...))`` returns the evidence, its verdict and the printed report; the
command line is ``python -m tests.soak`` (``make soak``). Every process it starts is its own
child, stopped by pid at the end; the shared database servers are never touched.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.faults.servers import MariaDBServer, PostgresServer, wait_until
from tests.soak import ledger
from tests.soak.ledger import LEDGER_ENV, Evidence, Fault, Worker

REPO_ROOT = Path(__file__).resolve().parent.parent.parent
DATABASE_NAME = "bgtask_soak"


@dataclass
class SoakConfig:
    db: str  # "postgres" or "mariadb"
    duration: float = 60.0  # seconds of faults (and of producing)
    seed: int = 1
    concurrency: int = 1  # passed as process_tasks --concurrency N only when N > 1
    rate: float = 20.0  # enqueues per second
    lease: float = 10.0  # BGTASK_LEASE_SECONDS of the workers
    fault_gap: tuple[float, float] = (10.0, 20.0)
    outage: float = 15.0  # the "server stopped" fault
    freeze: float = 70.0  # the SIGSTOP fault
    cron_duration: float = 20.0  # the cron-style workers' --duration
    worker_sleep: float = 0.5  # process_tasks --sleep
    drain_ceiling: float = 600.0
    workdir: Path | None = None
    keep_server: bool = False

    def __post_init__(self) -> None:
        if self.db not in ("postgres", "mariadb"):
            raise ValueError(f"db must be postgres or mariadb, got {self.db!r}")
        if not self.duration > 0:
            raise ValueError(f"duration must be > 0 seconds, got {self.duration}")
        if self.concurrency < 1:
            raise ValueError(f"concurrency must be >= 1, got {self.concurrency}")
        low, high = self.fault_gap
        if not 0 < low <= high:
            raise ValueError(f"fault_gap must be 0 < low <= high, got {self.fault_gap}")


@dataclass
class _Slot:
    """A worker position: "long" (process_tasks, no --duration) or "cron" (--duration, rerun)."""

    kind: str
    process: subprocess.Popen | None = None
    record: Worker | None = None


@dataclass
class _State:
    faults: list[Fault] = field(default_factory=list)
    workers: list[Worker] = field(default_factory=list)
    # pid -> (when to SIGCONT it, its fault)
    frozen: dict[int, tuple[float, Fault]] = field(default_factory=dict)
    server_busy: threading.Event = field(default_factory=threading.Event)
    server_error: list[BaseException] = field(default_factory=list)


class Soak:
    def __init__(self, config: SoakConfig) -> None:
        self.config = config
        self.random = random.Random(config.seed)
        self.workdir = config.workdir or Path(tempfile.mkdtemp(prefix=f"bgtask-soak-{config.db}-"))
        self.workdir.mkdir(parents=True, exist_ok=True)
        (self.workdir / "workers").mkdir(exist_ok=True)
        self.ledger_path = self.workdir / "ledger.txt"
        self.acks_path = self.workdir / "enqueued.txt"
        self.state = _State()
        self.slots = [_Slot("long"), _Slot("cron"), _Slot("cron")]
        self.producer: subprocess.Popen | None = None
        self.server: PostgresServer | MariaDBServer | None = None
        self.url = ""
        self.deck: list[str] = []
        self.supervising = True

    # --- setup -------------------------------------------------------------------------------

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        for name in ("BGTASK_TEST_DB_NAME", "BGTASK_TEST_PGBOUNCER", "BGTASK_TEST_OUTCOME_BATCH"):
            env.pop(name, None)
        env["DATABASE_URL"] = self.url
        env["DJANGO_SETTINGS_MODULE"] = "tests.soak.settings"
        env["PYTHONPATH"] = str(REPO_ROOT) + os.pathsep + env.get("PYTHONPATH", "")
        env["BGTASK_TEST_LEASE_SECONDS"] = str(self.config.lease)
        env[LEDGER_ENV] = str(self.ledger_path)
        return env

    def _django(self, *args: str, timeout: float = 600) -> str:
        done = subprocess.run(
            [sys.executable, *args],
            env=self.env(),
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if done.returncode != 0:
            raise RuntimeError(f"{args} exited {done.returncode}: {done.stderr[-3000:]}")
        return done.stdout

    def set_up(self) -> None:
        server_class = PostgresServer if self.config.db == "postgres" else MariaDBServer
        self.server = server_class()
        self.server.start()
        self.url = self.server.create_database(DATABASE_NAME)
        self._django("-m", "django", "migrate", "--noinput", "-v", "0")
        # The settings the workers will run with, read by Django itself.
        settings = json.loads(
            self._django(
                "-c",
                "import django, json; django.setup(); from bgtask import conf; "
                "print(json.dumps([conf.lease_seconds(), conf.outcome_batch()]))",
            )
        )
        self.lease, self.outcome_batch = float(settings[0]), int(settings[1])

    # --- processes ---------------------------------------------------------------------------

    def _start_worker(self, slot: _Slot) -> None:
        args = ["--sleep", str(self.config.worker_sleep), "--log-level", "INFO"]
        if slot.kind == "cron":
            args += ["--duration", str(self.config.cron_duration)]
        if self.config.concurrency > 1:
            args += ["--concurrency", str(self.config.concurrency)]
        number = len(self.state.workers)
        log = (self.workdir / "workers" / f"{number:04d}-{slot.kind}.log").open("w")
        slot.process = subprocess.Popen(
            [sys.executable, "-m", "django", "process_tasks", *args],
            env=self.env(),
            cwd=REPO_ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        slot.record = Worker(pid=slot.process.pid, kind=slot.kind, started=time.time())
        self.state.workers.append(slot.record)

    def _supervise(self) -> None:
        """Note exits and start a worker in each slot whose process ended; send due SIGCONTs."""
        now = time.time()
        for pid, (cont_at, fault) in list(self.state.frozen.items()):
            if now >= cont_at:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGCONT)
                fault.end = time.time()
                del self.state.frozen[pid]
        for slot in self.slots:
            if slot.process is not None and slot.process.poll() is not None:
                assert slot.record is not None
                slot.record.ended = time.time()
                slot.record.returncode = slot.process.returncode
                slot.process = None
            if slot.process is None and self.supervising:
                self._start_worker(slot)

    def _live_unfrozen(self) -> list[_Slot]:
        return [
            s
            for s in self.slots
            if s.process is not None
            and s.process.poll() is None
            and s.process.pid not in self.state.frozen
        ]

    # --- faults ------------------------------------------------------------------------------

    def _next_kind(self) -> str:
        """The fault types dealt from a shuffled deck: every type once per five faults."""
        if not self.deck:
            self.deck = list(ledger.FAULT_TYPES)
            self.random.shuffle(self.deck)
        return self.deck[-1]

    def _inject(self) -> bool:
        """Inject the next fault; False if it has to wait (a server fault still under way)."""
        kind = self._next_kind()
        if kind in ledger.SERVER_FAULTS:
            if self.state.server_busy.is_set():
                return False
            self.deck.pop()
            self.state.server_busy.set()
            threading.Thread(target=self._server_fault, args=(kind,), daemon=True).start()
            return True
        candidates = self._live_unfrozen()
        if not candidates:
            return False
        self.deck.pop()
        slot = self.random.choice(candidates)
        assert slot.process is not None and slot.record is not None
        pid, now = slot.process.pid, time.time()
        if kind == ledger.SIGKILL:
            slot.record.killed = True
            os.kill(pid, signal.SIGKILL)
            self.state.faults.append(Fault(kind, now, now, pid))
        else:
            os.kill(pid, signal.SIGSTOP)
            fault = Fault(kind, now, now + self.config.freeze, pid)
            self.state.faults.append(fault)
            self.state.frozen[pid] = (now + self.config.freeze, fault)
        return True

    def _server_fault(self, kind: str) -> None:
        assert self.server is not None
        fault = Fault(kind, time.time(), time.time())
        self.state.faults.append(fault)
        try:
            if kind == ledger.STOP:
                self.server.stop("fast")
                time.sleep(self.config.outage)  # the outage is the fault itself
                self.server.start()
            else:
                self.server.restart("fast" if kind == ledger.RESTART_FAST else "immediate")
        except BaseException as exc:  # reported by the main loop, which owns the run
            self.state.server_error.append(exc)
        finally:
            fault.end = time.time()
            self.state.server_busy.clear()

    # --- the run -----------------------------------------------------------------------------

    def _tick(self) -> None:
        if self.state.server_error:
            raise RuntimeError(f"the server fault failed: {self.state.server_error[0]!r}")
        self._supervise()
        time.sleep(0.1)

    def _pending_count(self) -> int:
        return int(
            self.query(
                "SELECT count(*) FROM bgtask_task WHERE task_name = 'soak.ledger' "
                "AND status IN ('queued', 'running')"
            )[0][0]
        )

    def query(self, sql: str) -> list[tuple]:
        assert self.server is not None
        if self.config.db == "postgres":
            import psycopg

            with psycopg.connect(self.url, connect_timeout=5, autocommit=True) as conn:
                return conn.execute(sql).fetchall()
        import MySQLdb

        conn = MySQLdb.connect(
            host="127.0.0.1", port=self.server.port, user="root", db=DATABASE_NAME
        )
        try:
            cursor = conn.cursor()
            cursor.execute(sql)
            return list(cursor.fetchall())
        finally:
            conn.close()

    def run(self) -> tuple[Evidence, ledger.Verdict, str]:
        config = self.config
        try:
            self.set_up()
            self.origin = time.time()
            self.producer = subprocess.Popen(
                [
                    *(sys.executable, "-m", "tests.soak.producer"),
                    *("--rate", str(config.rate), "--out", str(self.acks_path)),
                ],
                env=self.env(),
                cwd=REPO_ROOT,
                stdout=(self.workdir / "producer.log").open("w"),
                stderr=subprocess.STDOUT,
            )
            self._supervise()
            # The clock starts with the first enqueue: Django's start-up on a loaded machine
            # takes seconds, which would otherwise come out of the faults' time.
            wait_until(
                lambda: self.acks_path.exists() or self.producer.poll() is not None,
                300,
                "the producer's first enqueue",
            )
            self.origin = time.time()
            end = time.monotonic() + config.duration
            next_fault = time.monotonic() + self.random.uniform(*config.fault_gap)
            while time.monotonic() < end:
                if self.producer.poll() is not None:
                    raise RuntimeError(f"the producer exited {self.producer.returncode}")
                if time.monotonic() >= next_fault and self._inject():
                    next_fault = time.monotonic() + self.random.uniform(*config.fault_gap)
                self._tick()
            self.producer.send_signal(signal.SIGTERM)
            self.producer.wait(120)
            # The faults under way run their course: a frozen worker is thawed on time, a
            # stopped server comes back. Then the drain waits for every task to settle.
            while self.state.frozen or self.state.server_busy.is_set():
                self._tick()
            drain_started = time.monotonic()
            deadline = drain_started + config.drain_ceiling
            while time.monotonic() < deadline and self._pending_count():
                for _ in range(10):
                    self._tick()
            self.drain_seconds = time.monotonic() - drain_started
            self.supervising = False
            self._stop_workers()
            return self._judge()
        finally:
            self._clean_up()

    def _stop_workers(self) -> None:
        for slot in self.slots:
            if slot.process is not None and slot.process.poll() is None:
                assert slot.record is not None
                slot.record.terminated = True
                slot.process.send_signal(signal.SIGTERM)
        for slot in self.slots:
            if slot.process is None:
                continue
            try:
                slot.process.wait(120)
            except subprocess.TimeoutExpired:
                slot.process.kill()
                slot.process.wait(30)
            assert slot.record is not None
            slot.record.ended = time.time()
            slot.record.returncode = slot.process.returncode
            slot.process = None

    def _judge(self) -> tuple[Evidence, ledger.Verdict, str]:
        rows: dict[int, str] = {}
        for arguments, status in self.query(
            "SELECT arguments, status FROM bgtask_task WHERE task_name = 'soak.ledger'"
        ):
            rows[int(json.loads(arguments)["args"][0])] = status
        acks, enqueued_at = ledger.read_acks(self.acks_path)
        evidence = Evidence(
            acks=acks,
            rows=rows,
            runs=ledger.read_ledger(self.ledger_path),
            faults=self.state.faults,
            workers=self.state.workers,
            origin=self.origin,
            lease=self.lease,
            outcome_batch=self.outcome_batch,
            enqueued_at=enqueued_at,
        )
        verdict = ledger.judge(evidence)
        # The raw timeline, absolute times (time.time()), for reading the logs beside it.
        (self.workdir / "timeline.json").write_text(
            json.dumps(
                {
                    "origin": self.origin,
                    "faults": [vars(f) for f in self.state.faults],
                    "workers": [vars(w) for w in self.state.workers],
                },
                indent=1,
            )
        )
        config = self.config
        title = (
            f"soak on {config.db}: {config.duration:g} s of faults, seed {config.seed}, "
            f"concurrency {config.concurrency}, {config.rate:g} enqueues/s, "
            f"lease {self.lease:g} s, "
            f"BGTASK_OUTCOME_BATCH {self.outcome_batch}, drained in {self.drain_seconds:.0f} s "
            f"(ceiling {config.drain_ceiling:g} s); logs in {self.workdir}"
        )
        report = ledger.render(evidence, verdict, title)
        (self.workdir / "report.txt").write_text(report + "\n")
        return evidence, verdict, report

    def _clean_up(self) -> None:
        self.supervising = False
        for pid in list(self.state.frozen):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)
        for process in [self.producer, *(s.process for s in self.slots)]:
            if process is not None and process.poll() is None:
                process.kill()
                process.wait(30)
        if self.server is not None:
            # A server fault thread may still be bringing it back; wait for it first.
            wait_until(lambda: not self.state.server_busy.is_set(), 300, "the server fault")
            if self.config.keep_server:
                print(f"server kept: {self.url}", file=sys.stderr)
            else:
                self.server.destroy()


def run_soak(config: SoakConfig) -> tuple[Evidence, ledger.Verdict, str]:
    """Run one soak to its end and return (evidence, verdict, report)."""
    return Soak(config).run()
