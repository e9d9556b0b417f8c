"""The benchmark's tasks: a no-op, and one that notes which row ran (for exactly-once checks)."""

from bgtask import background

#: Arguments of every ``record`` call this process ran, in order.
RAN: list[int] = []


@background(name="bench.noop")
def noop(number: int) -> None:
    pass


@background(name="bench.record")
def record(number: int) -> None:
    RAN.append(number)
