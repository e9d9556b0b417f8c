"""Database servers of a test's own, to stop, crash and restart without touching the shared ones.

``PostgresServer`` runs ``initdb`` into a temporary data directory and a postmaster on a free port
of 127.0.0.1 with trust authentication; ``PgBouncer`` runs a pooler in front of any PostgreSQL;
``MariaDBServer`` runs ``mariadb-install-db`` and a ``mariadbd`` on its own port and socket.
PostgreSQL and PgBouncer refuse to run as root, so as root both run as the ``postgres`` OS user
(``runuser``) and their directories are handed to that user; ``mariadbd`` runs as ``mysql``.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

PG_BIN = Path(os.environ.get("BGTASK_TEST_PG_BIN", "/usr/lib/postgresql/15/bin"))
PGBOUNCER = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"
SERVICE_USER = "postgres"


class ServerUnavailable(RuntimeError):
    """The binaries or the OS user a test server needs are missing on this machine."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _as_service_user() -> list[str]:
    """The command prefix that drops root to the service user (nothing when not root)."""
    if os.geteuid() != 0:
        return []
    try:
        pwd.getpwnam(SERVICE_USER)
    except KeyError:
        raise ServerUnavailable(f"running as root needs an OS user {SERVICE_USER!r}") from None
    return ["runuser", "-u", SERVICE_USER, "--"]


def _private_dir(prefix: str) -> Path:
    """A fresh directory the service user owns (pytest's tmp_path is root-only, 0700)."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    if os.geteuid() == 0:
        entry = pwd.getpwnam(SERVICE_USER)
        os.chown(path, entry.pw_uid, entry.pw_gid)
    path.chmod(0o700)
    return path


def accepts_connections(port: int, dbname: str = "postgres") -> bool:
    """True when a PostgreSQL (or a pooler) on ``port`` completes a trivial query."""
    import psycopg

    try:
        with psycopg.connect(
            host="127.0.0.1", port=port, user="postgres", dbname=dbname, connect_timeout=2
        ) as conn:
            conn.execute("SELECT 1")
        return True
    except psycopg.Error:
        return False


def _tail(logfile: Path, chars: int) -> str:
    """The end of a server's log file, for failure messages ("" if it cannot be read)."""
    try:
        return logfile.read_text(errors="replace")[-chars:]
    except OSError:
        return ""


def wait_until(condition, timeout: float, what: str, interval: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"Timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


class PostgresServer:
    """A throw-away PostgreSQL cluster: ``start()``, ``stop(mode)``, ``restart(mode)``.

    ``mode`` is pg_ctl's shutdown mode: ``fast`` (disconnect everyone, clean shutdown) or
    ``immediate`` (kill every backend, crash recovery on the next start: what a power cut or an
    OOM kill of the postmaster looks like to clients).
    """

    def __init__(self, port: int | None = None, settings: dict[str, str] | None = None) -> None:
        for tool in ("initdb", "pg_ctl"):
            if not (PG_BIN / tool).exists():
                raise ServerUnavailable(f"{PG_BIN / tool} is not installed")
        self.prefix = _as_service_user()
        self.port = port or free_port()
        self.root = _private_dir("bgtask-pg-")
        self.datadir = self.root / "data"
        self.logfile = self.root / "server.log"
        self._initdb(settings or {})

    @property
    def url(self) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}"

    def _run(self, *command: str, timeout: float = 120) -> subprocess.CompletedProcess:
        return subprocess.run(
            [*self.prefix, *command],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=True,
            cwd=self.root,
        )

    def _initdb(self, settings: dict[str, str]) -> None:
        self._run(
            str(PG_BIN / "initdb"),
            "-D",
            str(self.datadir),
            "-U",
            "postgres",
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--no-sync",
        )
        conf = {
            "listen_addresses": "'127.0.0.1'",
            "port": str(self.port),
            # Our own socket directory: nothing shared with the system cluster's /run/postgresql.
            "unix_socket_directories": f"'{self.root}'",
            # The data directory is thrown away; fsync off only spares the disk. An immediate
            # shutdown still loses what sat in the WAL buffers (asynchronous commits), as a crash
            # would, because the buffers are in the killed processes' shared memory.
            "fsync": "off",
            "max_connections": "100",
            "log_min_messages": "warning",
        } | settings
        with (self.datadir / "postgresql.conf").open("a") as file:
            file.write("\n# bgtask fault tests\n")
            for name, value in conf.items():
                file.write(f"{name} = {value}\n")

    def pg_ctl(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        return self._run(str(PG_BIN / "pg_ctl"), "-D", str(self.datadir), *args, timeout=timeout)

    def is_running(self) -> bool:
        status = subprocess.run(
            [*self.prefix, str(PG_BIN / "pg_ctl"), "-D", str(self.datadir), "status"],
            capture_output=True,
            cwd=self.root,
        )
        return status.returncode == 0

    def start(self, timeout: float = 120) -> None:
        # -w: pg_ctl returns once the server accepts connections (or fails); then we check from
        # the client side too, through TCP as the workers connect.
        self.pg_ctl(
            "-l", str(self.logfile), "-w", "-t", str(int(timeout)), "start", timeout=timeout
        )
        self.wait_ready(timeout)

    def stop(self, mode: str = "fast", timeout: float = 120) -> None:
        if mode not in ("smart", "fast", "immediate"):
            raise ValueError(f"mode must be smart, fast or immediate, got {mode!r}")
        self.pg_ctl("-m", mode, "-w", "-t", str(int(timeout)), "stop", timeout=timeout)

    def restart(self, mode: str = "fast", timeout: float = 120) -> None:
        self.stop(mode, timeout)
        self.start(timeout)

    def wait_ready(self, timeout: float = 120) -> None:
        wait_until(lambda: accepts_connections(self.port), timeout, f"PostgreSQL on {self.port}")

    def create_database(self, name: str) -> str:
        import psycopg

        with psycopg.connect(
            host="127.0.0.1", port=self.port, user="postgres", dbname="postgres", autocommit=True
        ) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return f"{self.url}/{name}"

    def log_tail(self, chars: int = 3000) -> str:
        return _tail(self.logfile, chars)

    def destroy(self) -> None:
        if self.is_running():
            with contextlib.suppress(subprocess.SubprocessError):
                self.stop("immediate", timeout=60)
        shutil.rmtree(self.root, ignore_errors=True)


class PgBouncer:
    """PgBouncer in transaction pooling mode on a free port, in front of ``upstream_port``.

    Every database name maps to the same name upstream (``* =``), so Django's test database works
    unchanged. ``pool_size`` server connections per database/user pair and no reserve pool: a
    smaller pool than there are workers makes them share server connections between transactions,
    which is exactly what session state would not survive.
    """

    def __init__(self, upstream_port: int, pool_size: int = 2, upstream_host: str = "127.0.0.1"):
        if not Path(PGBOUNCER).exists():
            raise ServerUnavailable("pgbouncer is not installed (apt-get install pgbouncer)")
        self.prefix = _as_service_user()
        self.port = free_port()
        self.root = _private_dir("bgtask-pgbouncer-")
        self.pool_size = pool_size
        self.config = self.root / "pgbouncer.ini"
        self.logfile = self.root / "pgbouncer.log"
        userlist = self.root / "userlist.txt"
        userlist.write_text('"postgres" ""\n')
        self.config.write_text(
            "[databases]\n"
            f"* = host={upstream_host} port={upstream_port}\n"
            "[pgbouncer]\n"
            "listen_addr = 127.0.0.1\n"
            f"listen_port = {self.port}\n"
            "unix_socket_dir =\n"
            "auth_type = trust\n"
            f"auth_file = {userlist}\n"
            "admin_users = postgres\n"
            "pool_mode = transaction\n"
            f"default_pool_size = {pool_size}\n"
            "min_pool_size = 0\n"
            "reserve_pool_size = 0\n"
            "max_client_conn = 500\n"
            "max_db_connections = 0\n"
            # Django and psycopg send these on connect; PgBouncer keeps them per client.
            "ignore_startup_parameters = extra_float_digits,options\n"
            f"logfile = {self.logfile}\n"
            f"pidfile = {self.root / 'pgbouncer.pid'}\n"
        )
        if os.geteuid() == 0:
            entry = pwd.getpwnam(SERVICE_USER)
            for path in (self.config, userlist):
                os.chown(path, entry.pw_uid, entry.pw_gid)

    @property
    def url(self) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}"

    def start(self, timeout: float = 60) -> None:
        # -d: PgBouncer daemonizes, so it is no child of the test process (the reliability
        # tests kill every child left after a test) and is stopped through its pid file. As root
        # it switches to the service user itself (-u).
        user = ["-u", SERVICE_USER] if self.prefix else []
        started = subprocess.run(
            [PGBOUNCER, "-d", *user, str(self.config)],
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=self.root,
        )
        if started.returncode != 0:
            raise RuntimeError(f"pgbouncer did not start: {started.stderr} {self.log_tail()}")
        wait_until(lambda: self._pid() is not None, timeout, "PgBouncer's pid file")
        wait_until(lambda: accepts_connections(self.port), timeout, f"PgBouncer on {self.port}")

    def _pid(self) -> int | None:
        try:
            return int((self.root / "pgbouncer.pid").read_text())
        except (OSError, ValueError):
            return None

    def stop(self, timeout: float = 30) -> None:
        pid = self._pid()
        if pid is None:
            return

        def gone() -> bool:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return True
            return False

        # SIGTERM: immediate shutdown, client and server connections closed at once (SIGINT
        # would wait for every client to finish).
        for sig in (signal.SIGTERM, signal.SIGKILL):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
            try:
                wait_until(gone, timeout, "PgBouncer to exit")
                return
            except TimeoutError:
                continue

    def transactions(self, dbname: str) -> int:
        """Transactions PgBouncer has passed to ``dbname`` so far (its admin console's STATS)."""
        import psycopg

        # The admin console speaks only the simple query protocol: a client-side cursor.
        with psycopg.connect(
            host="127.0.0.1",
            port=self.port,
            user="postgres",
            dbname="pgbouncer",
            autocommit=True,
            cursor_factory=psycopg.ClientCursor,
        ) as conn:
            rows = conn.execute("SHOW STATS").fetchall()
        return sum(int(row[1]) for row in rows if row[0] == dbname)

    def log_tail(self, chars: int = 3000) -> str:
        return _tail(self.logfile, chars)

    def destroy(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


MARIADBD = shutil.which("mariadbd") or "/usr/sbin/mariadbd"
MARIADB_INSTALL_DB = shutil.which("mariadb-install-db") or "/usr/bin/mariadb-install-db"
MARIADB_USER = "mysql"


def mariadb_accepts_connections(port: int) -> bool:
    """True when a MariaDB on ``port`` of 127.0.0.1 completes a trivial query as root."""
    import MySQLdb

    try:
        conn = MySQLdb.connect(host="127.0.0.1", port=port, user="root", connect_timeout=2)
    except MySQLdb.Error:
        return False
    try:
        conn.cursor().execute("SELECT 1")
        return True
    except MySQLdb.Error:
        return False
    finally:
        conn.close()


class MariaDBServer:
    """A throw-away MariaDB: its own data directory (``mariadb-install-db``), port and socket.

    ``stop("fast")`` is a clean shutdown (SIGTERM: the server closes every connection and flushes
    InnoDB); ``stop("immediate")`` is SIGKILL (InnoDB crash recovery on the next start), the two
    modes of ``PostgresServer``. ``root`` has no password and is reached over TCP. As root,
    ``mariadbd`` runs as the ``mysql`` OS user (``--user``), which owns the data directory.
    """

    def __init__(self, port: int | None = None) -> None:
        for tool in (MARIADBD, MARIADB_INSTALL_DB):
            if not Path(tool).exists():
                raise ServerUnavailable(f"{tool} is not installed (apt-get install mariadb-server)")
        self.user: list[str] = []
        if os.geteuid() == 0:
            try:
                entry = pwd.getpwnam(MARIADB_USER)
            except KeyError:
                raise ServerUnavailable(
                    f"running as root needs an OS user {MARIADB_USER!r}"
                ) from None
            self.user = [f"--user={MARIADB_USER}"]
        self.port = port or free_port()
        self.root = Path(tempfile.mkdtemp(prefix="bgtask-mariadb-"))
        if self.user:
            os.chown(self.root, entry.pw_uid, entry.pw_gid)
        self.root.chmod(0o700)
        self.datadir = self.root / "data"
        self.socket = self.root / "mysqld.sock"
        self.logfile = self.root / "server.log"
        self.process: subprocess.Popen | None = None
        subprocess.run(
            [
                MARIADB_INSTALL_DB,
                "--no-defaults",
                f"--datadir={self.datadir}",
                *self.user,
                # root logs in without a password (not through the unix_socket plugin, which
                # would want the OS user to be called root too).
                "--auth-root-authentication-method=normal",
                "--skip-test-db",
            ],
            capture_output=True,
            text=True,
            timeout=300,
            check=True,
            cwd=self.root,
        )

    @property
    def url(self) -> str:
        return f"mysql://root@127.0.0.1:{self.port}"

    def is_running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self, timeout: float = 120) -> None:
        if self.is_running():
            return
        log = self.logfile.open("a")
        # --no-defaults: nothing from /etc/mysql (the shared server's port, socket and datadir).
        self.process = subprocess.Popen(
            [
                MARIADBD,
                "--no-defaults",
                f"--datadir={self.datadir}",
                *self.user,
                f"--port={self.port}",
                "--bind-address=127.0.0.1",
                f"--socket={self.socket}",
                f"--pid-file={self.root / 'mysqld.pid'}",
                f"--log-error={self.logfile}",
                "--skip-log-bin",
                # Small: the data is thrown away and the machine is shared.
                "--innodb-buffer-pool-size=64M",
                "--innodb-log-file-size=32M",
                "--max-connections=200",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=self.root,
        )
        log.close()
        self.wait_ready(timeout)

    def wait_ready(self, timeout: float = 120) -> None:
        def ready() -> bool:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"mariadbd exited {self.process.returncode}: {self.log_tail()}")
            return mariadb_accepts_connections(self.port)

        wait_until(ready, timeout, f"MariaDB on {self.port}")

    def stop(self, mode: str = "fast", timeout: float = 120) -> None:
        if mode not in ("fast", "immediate"):
            raise ValueError(f"mode must be fast or immediate, got {mode!r}")
        if not self.is_running():
            return
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM if mode == "fast" else signal.SIGKILL)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(30)

    def restart(self, mode: str = "fast", timeout: float = 120) -> None:
        self.stop(mode, timeout)
        self.start(timeout)

    def create_database(self, name: str) -> str:
        import MySQLdb

        conn = MySQLdb.connect(host="127.0.0.1", port=self.port, user="root")
        try:
            conn.cursor().execute(
                f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"
            )
        finally:
            conn.close()
        return f"{self.url}/{name}"

    def log_tail(self, chars: int = 3000) -> str:
        return _tail(self.logfile, chars)

    def destroy(self) -> None:
        self.stop("immediate", timeout=60)
        shutil.rmtree(self.root, ignore_errors=True)
