"""The benchmark's own databases (never the test databases), named by a short key.

BENCH_SQLITE_PATH, BENCH_POSTGRES_URL and BENCH_MARIADB_URL override the defaults; the peers get a
second database on each server so neither schema disturbs the other.
"""

from __future__ import annotations

import os
from pathlib import Path

HERE = Path(__file__).resolve().parent
DATA_DIR = HERE / ".data"
VENDORS = ("sqlite", "postgres", "mariadb")


def url(vendor: str, *, peers: bool = False) -> str:
    suffix = "_peers" if peers else ""
    if vendor == "sqlite":
        default = DATA_DIR / f"bench{suffix}.sqlite3"
        return f"sqlite:///{os.environ.get('BENCH_SQLITE_PATH' + suffix.upper(), default)}"
    if vendor == "postgres":
        base = os.environ.get(
            "BENCH_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/bgtask_bench"
        )
        return base + suffix
    if vendor == "mariadb":
        base = os.environ.get("BENCH_MARIADB_URL", "mysql://root@127.0.0.1:3306/bgtask_bench")
        return base + suffix
    raise ValueError(f"unknown database {vendor!r}; choose from {', '.join(VENDORS)}")


def database_settings(vendor: str, *, peers: bool = False) -> dict:
    import dj_database_url

    config = dj_database_url.parse(url(vendor, peers=peers), conn_max_age=0)
    if config["ENGINE"].endswith("mysql"):
        config.setdefault("OPTIONS", {})["charset"] = "utf8mb4"
    return config


def create_database(vendor: str, *, peers: bool = False, database_url: str | None = None) -> None:
    """Create the server-side database when missing (SQLite files create themselves);
    ``database_url`` names another database on the same kind of server."""
    from urllib.parse import urlparse

    if vendor == "sqlite":
        DATA_DIR.mkdir(exist_ok=True)
        return
    parts = urlparse(database_url or url(vendor, peers=peers))
    name = parts.path.lstrip("/")
    if vendor == "postgres":
        import psycopg

        with psycopg.connect(
            host=parts.hostname,
            port=parts.port or 5432,
            user=parts.username,
            password=parts.password,
            dbname="postgres",
            autocommit=True,
        ) as conn:
            if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
                conn.execute(f'CREATE DATABASE "{name}"')
    else:
        import MySQLdb

        conn = MySQLdb.connect(
            host=parts.hostname,
            port=parts.port or 3306,
            user=parts.username,
            password=parts.password or "",
        )
        conn.cursor().execute(
            f"CREATE DATABASE IF NOT EXISTS `{name}` "
            "CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"
        )
        conn.close()
