"""Procrastinate on PostgreSQL, in its own database."""

from procrastinate import App, PsycopgConnector

from benchmarks.peerqueues import PROCRASTINATE_URL, io_body, noop_body


def conninfo() -> str:
    return PROCRASTINATE_URL  # libpq takes a postgres:// URI as it is


app = App(connector=PsycopgConnector(conninfo=conninfo()))


@app.task(name="bench.noop")
def noop(number: int) -> None:
    noop_body(number)


@app.task(name="bench.io")
def io(number: int) -> None:
    io_body(number)
