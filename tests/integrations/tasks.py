"""Tasks of the integration tests. The periodic ones are registered by the Sentry tests for their
own duration: once registered, every run_batch would enqueue their occurrences."""

from bgtask import background


@background(name="integrations.ok", queue="reports")
def ok(n):
    return n * 2


@background(name="integrations.boom")
def boom(n):
    raise ValueError(f"boom {n}")


class Unprintable(Exception):
    def __str__(self):
        raise ValueError("this exception cannot be shown")


@background(name="integrations.unprintable")
def unprintable():
    raise Unprintable()
