"""The soak's producer: enqueue ``soak.ledger(key)`` at a steady rate until SIGTERM.

``python -m tests.soak.producer --rate 20 --out acks.txt`` with ``DJANGO_SETTINGS_MODULE`` and
``DATABASE_URL`` set. Keys count up from 1 and are never reused. Each enqueue that returned is
written to ``--out`` as ``+ <key> <time>``; one that raised is written as ``? <key> <time>``: its
commit may or may not have happened (the connection can drop after the server committed), so
the checker looks for its row instead of counting it. During an outage the producer keeps its
pace of attempts (one per tick, no burst to catch up afterwards).
"""

from __future__ import annotations

import argparse
import os
import signal
import threading
import time


def _append(fd: int, line: str) -> None:
    os.write(fd, line.encode())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, required=True, help="Enqueues per second.")
    parser.add_argument("--out", required=True, help="File the enqueued keys are appended to.")
    args = parser.parse_args(argv)
    if not args.rate > 0:
        parser.error(f"--rate must be > 0, got {args.rate}")

    import django

    django.setup()
    from django.db import DatabaseError, connection

    from tests.soak.tasks import ledger

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    fd = os.open(args.out, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    interval = 1.0 / args.rate
    key = 0
    next_at = time.monotonic()
    while not stop.is_set():
        key += 1
        try:
            ledger(key)
        except DatabaseError as exc:
            _append(fd, f"? {key} {time.time():.3f} {type(exc).__name__}\n")
            # A dropped connection stays broken in this process until it is closed.
            connection.close()
        else:
            _append(fd, f"+ {key} {time.time():.3f}\n")
        next_at = max(next_at + interval, time.monotonic())
        stop.wait(max(0.0, next_at - time.monotonic()))
    os.close(fd)


if __name__ == "__main__":
    main()
