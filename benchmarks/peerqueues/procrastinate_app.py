"""Procrastinate on PostgreSQL, in its own database."""

from procrastinate import App, PsycopgConnector

from benchmarks.peerqueues import PROCRASTINATE_URL, noop_body


def conninfo() -> str:
    return PROCRASTINATE_URL  # libpq takes a postgres:// URI as it is


app = App(connector=PsycopgConnector(conninfo=conninfo()))


@app.task(name="bench.noop")
def noop(number: int) -> None:
    noop_body(number)
