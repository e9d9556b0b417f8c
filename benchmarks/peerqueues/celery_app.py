"""Celery with the local Redis as broker and no result backend."""

from celery import Celery

from benchmarks.peerqueues import REDIS_URL, io_body, noop_body

app = Celery("bench", broker=REDIS_URL)
app.conf.update(
    task_ignore_result=True,  # no result backend: nothing is written after a task
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
)


@app.task(name="bench.noop")
def noop(number: int) -> None:
    noop_body(number)


@app.task(name="bench.io")
def io(number: int) -> None:
    io_body(number)
