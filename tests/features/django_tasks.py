"""django.tasks functions for tests/features/test_backend.py (TASKS uses bgtask's backend)."""

from django.tasks import task

from tests.sampleapp.models import Execution


@task
def add(a, b):
    return a + b


@task(priority=50, queue_name="django-other")
def record(key):
    Execution.objects.create(key=key)
    return key


@task(takes_context=True)
def with_context(context, key):
    return {"id": context.task_result.id, "attempt": context.attempt, "key": key}


@task
async def async_double(n):
    return n * 2


class Refused(Exception):
    pass


@task
def refuse(message):
    raise Refused(message)


@task
def returns_object():
    return object()
