"""RQ: the queue and its no-op (RQ imports the function by its dotted path)."""

from redis import Redis
from rq import Queue

from benchmarks.peerqueues import REDIS_URL, noop_body


def noop(number: int) -> None:
    noop_body(number)


def queue() -> Queue:
    return Queue("bench", connection=Redis.from_url(REDIS_URL))
