"""Tasks for tests/compat; autodiscovered (``tests.compat`` is an installed app)."""

import os

from bgtask import background
from bgtask.exceptions import InvalidTaskError
from tests.sampleapp.models import Execution


class Transient(Exception):
    pass


class NotWorthRetrying(Exception):
    pass


class OrderGone(InvalidTaskError):
    pass


@background(name="compat.notify", verbose_name="Notify a user")
def notify(user_id):
    Execution.objects.create(key=f"notify-{user_id}", pid=os.getpid())
    return user_id


@background(name="compat.greet")
def greet(person, verbose_name=False):
    """Its own ``verbose_name`` parameter: a call's verbose_name= is its argument."""
    return f"Hello, {person}!" if verbose_name else person


@background(name="compat.invalid")
def invalid(key, subclass=False):
    Execution.objects.create(key=key, pid=os.getpid())
    if subclass:
        raise OrderGone(f"{key}: the order is gone")
    raise InvalidTaskError(f"{key}: cannot ever work")


@background(name="compat.raise_named")
def raise_named(key, kind):
    Execution.objects.create(key=key, pid=os.getpid())
    raise {"transient": Transient, "other": NotWorthRetrying, "value": ValueError}[kind](key)


@background(
    name="compat.picky",
    max_attempts=3,
    retry_on=(Transient, ConnectionError),
    backoff=lambda attempts: 60 * attempts,
)
def picky(key, kind):
    Execution.objects.create(key=key, pid=os.getpid())
    raise {"transient": Transient, "other": NotWorthRetrying, "value": ValueError}[kind](key)


@background(name="compat.two_attempts", max_attempts=2, backoff=0)
def two_attempts(key):
    Execution.objects.create(key=key, pid=os.getpid())
    raise Transient(key)


def _broken_backoff(attempts):
    raise ZeroDivisionError("broken backoff")


@background(name="compat.broken_backoff", backoff=_broken_backoff)
def broken_backoff(key):
    raise Transient(key)
