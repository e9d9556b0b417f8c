"""Huey on SQLite (SqliteHuey), results off.

``BENCH_HUEY_SYNC=normal`` (the ``huey-normal`` peer) gives its connections the durability bgtask
gives SQLite (WAL, ``synchronous=NORMAL``); by default SqliteHuey keeps SQLite's own
``synchronous`` (FULL: an fsync per commit), which is what its users get.
"""

import os

from huey import Huey
from huey.storage import SqliteStorage

from benchmarks.peerqueues import DATA_DIR, HUEY_PATH, io_body, noop_body


class NormalSyncStorage(SqliteStorage):
    def _create_connection(self):
        conn = super()._create_connection()
        conn.execute("pragma synchronous=NORMAL")
        return conn


DATA_DIR.mkdir(exist_ok=True)
storage = NormalSyncStorage if os.environ.get("BENCH_HUEY_SYNC") == "normal" else SqliteStorage
huey = Huey("bench", storage_class=storage, filename=HUEY_PATH, results=False)


@huey.task(name="bench.noop")
def noop(number: int) -> None:
    noop_body(number)


@huey.task(name="bench.io")
def io(number: int) -> None:
    io_body(number)
