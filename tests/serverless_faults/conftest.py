"""Fault fixtures for the serverless side: a database that goes away and comes back (a TCP proxy
the test switches, or for SQLite a directory that appears), and warm "Lambda containers" (child
processes serving invocations one after another with the real handlers and project settings)."""

from __future__ import annotations

import contextlib
import json
import queue
import socket
import subprocess
import sys
import threading
from pathlib import Path
from urllib.parse import quote

import pytest
from django.db import connection

from tests.conftest import REPO_ROOT, worker_env
from tests.serverless_faults.container import RESULT_PREFIX

PROJECT_SETTINGS = "tests.serverless_faults.project_settings"
# Secrets the functions hold; no handler answer, log line or stored error may ever show them.
DB_PASSWORD = "db-Pass-9f3e1c"
SECRET_KEY = "django-Secret-Key-5a7d0b2e4c6f8a1b3d5e7f9a"
STATUS_TOKEN = "status-Token-c0ffee77"
SUPERUSER_PASSWORD = "superuser-Pass-31337"
SECRETS = (DB_PASSWORD, SECRET_KEY, STATUS_TOKEN, SUPERUSER_PASSWORD)


class TcpProxy:
    """127.0.0.1:<port> in front of the test database server, in one of three states:

    ``down``: nothing listens (connection refused); ``blackhole``: connections are accepted and
    never answered (a server that drops packets); ``up``: bytes are forwarded to the server.
    """

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.state = "down"
        self._listener: socket.socket | None = None
        self._sockets: list[socket.socket] = []
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]

    def set_state(self, state: str) -> None:
        assert state in ("down", "blackhole", "up")
        self._close_all()
        self.state = state
        if state != "down":
            listener = socket.socket()
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind(("127.0.0.1", self.port))
            listener.listen(16)
            self._listener = listener
            threading.Thread(target=self._accept, args=(listener, state), daemon=True).start()

    def _accept(self, listener: socket.socket, state: str) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # closed by set_state or close
            self._sockets.append(client)
            if state == "up":
                server = socket.create_connection(self.upstream, timeout=10)
                server.settimeout(None)
                self._sockets.append(server)
                threading.Thread(target=self._pump, args=(client, server), daemon=True).start()
                threading.Thread(target=self._pump, args=(server, client), daemon=True).start()
            # blackhole: keep the socket open and never send a byte

    @staticmethod
    def _pump(source: socket.socket, target: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                target.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, target):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    def _close_all(self) -> None:
        if self._listener is not None:
            # shutdown() first: on Linux, close() alone leaves a thread blocked in accept() and
            # the port listening.
            with contextlib.suppress(OSError):
                self._listener.shutdown(socket.SHUT_RDWR)
            self._listener.close()
            self._listener = None
        for sock in self._sockets:
            # shutdown() wakes the pump thread blocked in recv(); close() alone would leave the
            # connection (and the server's session) open until that thread returned.
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        self._sockets.clear()

    def close(self) -> None:
        self._close_all()


class SwitchableDatabase:
    """The test database behind a switch: ``url`` stays the same while ``set_state`` takes it
    down and brings it back. SQLite has no server: there, down is a missing directory."""

    def __init__(self, tmp_path: Path) -> None:
        settings = connection.settings_dict
        self.vendor = connection.vendor
        self.name = str(settings["NAME"])
        self.proxy: TcpProxy | None = None
        if self.vendor == "sqlite":
            self._link = tmp_path / "database-directory"
            self.url = f"sqlite:///{self._link / Path(self.name).name}"
        else:
            self.proxy = TcpProxy((settings["HOST"] or "127.0.0.1", int(settings["PORT"])))
            scheme = "postgres" if self.vendor == "postgresql" else "mysql"
            # PostgreSQL trusts local connections and ignores a password it does not ask for, so
            # the URL can carry one; MariaDB's root has none and would refuse it.
            password = f":{quote(DB_PASSWORD)}" if self.vendor == "postgresql" else ""
            user = settings["USER"] or "root"
            self.url = f"{scheme}://{user}{password}@127.0.0.1:{self.proxy.port}/{self.name}"
        self.set_state("down")

    def set_state(self, state: str) -> None:
        if self.proxy is not None:
            self.proxy.set_state(state)
            return
        assert state in ("down", "up"), "SQLite is a file: it is there or it is not"
        if state == "up" and not self._link.exists():
            self._link.symlink_to(Path(self.name).parent, target_is_directory=True)
        if state == "down" and self._link.is_symlink():
            self._link.unlink()

    def close(self) -> None:
        if self.proxy is not None:
            self.proxy.close()


@pytest.fixture
def switchable_database(tmp_path):
    database = SwitchableDatabase(tmp_path)
    yield database
    database.close()


class LambdaContainer:
    """A child process serving handler invocations one after another (see container.py)."""

    def __init__(self, **env: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.serverless_faults.container"],
            env=worker_env(DJANGO_SETTINGS_MODULE=PROJECT_SETTINGS, **env),
            cwd=REPO_ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.log_lines: list[str] = []  # whatever the handlers printed on stdout
        self._results: queue.Queue[dict] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.process.stdout:
            if line.startswith(RESULT_PREFIX):
                self._results.put(json.loads(line[len(RESULT_PREFIX) :]))
            else:
                self.log_lines.append(line.rstrip("\n"))

    def invoke(self, handler: str, event: object, timeout: float = 30) -> dict:
        """One invocation; its result, or a test failure if it outlives its Lambda timeout."""
        self.process.stdin.write(
            json.dumps({"handler": handler, "event": event, "timeout": timeout}) + "\n"
        )
        self.process.stdin.flush()
        try:
            # Start-up (imports, django.setup) comes on top of the first invocation's timeout.
            return self._results.get(timeout=timeout + 60)
        except queue.Empty:
            pytest.fail(f"the {handler} invocation was still running after its {timeout}s timeout")

    def stop(self) -> str:
        """End the container; return what it wrote on stderr."""
        if self.process.poll() is None:
            self.process.stdin.close()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.stderr.read()


@pytest.fixture
def start_container():
    containers: list[LambdaContainer] = []

    def start(**env: str) -> LambdaContainer:
        container = LambdaContainer(**env)
        containers.append(container)
        return container

    yield start
    for container in containers:
        container.stop()
