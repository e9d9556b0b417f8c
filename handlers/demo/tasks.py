"""Sample tasks of the demo: a greeting, a sum, a flaky task that fails once, a slow one."""

import time

from django.core.cache import cache

from bgtask import background


@background(name="demo.greet")
def greet(name):
    return f"Hello, {name}!"


@background(name="demo.add", priority=5)
def add(a, b):
    return a + b


@background(name="demo.flaky")
def flaky(key):
    """Fails on its first run and succeeds when retried (attempts ** 4 + 5 = 6 s later)."""
    from bgtask.models import Task

    if not Task.objects.filter(
        task_name="demo.flaky", attempts__gte=1, arguments__contains=key
    ).exists():
        raise ConnectionError(f"{key}: the upstream service is having a bad moment")
    return f"{key} worked on the second try"


@background(name="demo.slow")
def slow(seconds):
    time.sleep(seconds)
    cache.set("demo.slow", seconds)
    return seconds
