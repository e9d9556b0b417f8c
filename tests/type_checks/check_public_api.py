"""What a type checker sees of bgtask's public API: `make lint` runs mypy --strict on this file.

Never imported by the tests (its name does not start with test_); each ``assert_type`` is checked
by mypy, and each ``# type: ignore[...]`` marks a call that must stay an error: with
``warn_unused_ignores`` (part of --strict), mypy fails if such a call stops being refused.
"""

from __future__ import annotations

from collections.abc import Coroutine
from datetime import timedelta
from typing import Any, assert_type

from bgtask import Call, TaskFunction, background, enqueue_many
from bgtask.models import Task


@background
def add(a: int, b: int = 0) -> int:
    return a + b


@background(schedule=60, queue="emails", priority=5)
def send_receipt(order_id: int, *, resend: bool = False) -> str:
    return f"receipt {order_id}"


@background(name="typing.fetch")
async def fetch(url: str) -> bytes:
    return url.encode()


def check_decorated() -> None:
    # @background, bare or with options, keeps the parameters and the return type.
    assert isinstance(send_receipt, TaskFunction)
    assert_type(send_receipt.now(1), str)
    assert_type(add.now(1, 2), int)
    # An async task's .now() returns the coroutine, to await.
    coroutine = assert_type(fetch.now("https://example.com"), Coroutine[Any, Any, bytes])
    coroutine.close()

    # Calling enqueues: a Task row, arguments checked against the function's parameters.
    assert_type(add(1, 2), Task)
    assert_type(send_receipt(42, resend=True), Task)
    # (A mismatch is reported as "no overload variant matches": see TaskFunction.__call__.)
    add("1")  # type: ignore[call-overload]
    add(1, 2, 3)  # type: ignore[call-overload]
    send_receipt(42, resent=True)  # type: ignore[call-overload]
    add.now("1")  # type: ignore[arg-type]

    # A call option beside the arguments: the option's type is checked.
    assert_type(add(1, schedule=timedelta(minutes=5)), Task)
    assert_type(send_receipt(42, queue="urgent", priority=9), Task)
    add(1, priority="high")  # type: ignore[call-overload]

    # .using(): options first, then a call checked against the parameters.
    assert_type(add.using(schedule=60, queue="math")(1, 2), Task)
    add.using(queue="math")("x")  # type: ignore[arg-type]

    # .enqueue(): explicit arguments and options (for parameters named like an option).
    assert_type(add.enqueue((1, 2), {}, schedule=0, queue="math"), Task)


def check_bulk() -> None:
    # bulk and enqueue_many: the Task rows, or their number on the fast path.
    assert_type(add.bulk([(1, 2), (3, 4)]), list[Task])
    assert_type(add.bulk([(1, 2)], return_tasks=False), int)
    call = add.call(1, b=2)
    assert_type(call, Call)
    assert_type(add.using(queue="math").call(1, 2), Call)
    assert_type(enqueue_many([call, send_receipt.call(7)]), list[Task])
    assert_type(enqueue_many([call], return_tasks=False), int)
    enqueue_many([(1, 2)])  # type: ignore[list-item]
