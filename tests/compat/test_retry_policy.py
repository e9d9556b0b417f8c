"""Per-task retry policy: @background(max_attempts=, retry_on=, backoff=), max_attempts= per call,
validated where it enters; the seed's MAX_ATTEMPTS and attempts ** 4 + 5 stay the defaults."""

import logging
import math
from datetime import timedelta

import pytest
from django.test import override_settings
from django.utils import timezone

from bgtask import background, run_batch
from bgtask.models import Task
from bgtask.registry import unregister
from bgtask.retry_policy import RetryPolicy
from bgtask.store import TaskStore
from tests.compat import tasks
from tests.sampleapp import tasks as sample
from tests.sampleapp.models import Execution

pytestmark = pytest.mark.django_db(transaction=True)


def _fail_once(task):
    """Run the batch that fails ``task`` once; return (row, earliest, latest) failure times."""
    before = timezone.now()
    run_batch(10)
    after = timezone.now()
    return Task.objects.get(pk=task.pk), before, after


def test_defaults_are_the_seeds_backoff_and_max_attempts():
    task = sample.always_fail()
    assert Task.objects.get(pk=task.pk).max_attempts is None
    row, before, after = _fail_once(task)
    assert (row.status, row.attempts) == (Task.QUEUED, 1)
    assert before + timedelta(seconds=6) <= row.run_at <= after + timedelta(seconds=6)
    Task.objects.filter(pk=task.pk).update(run_at=timezone.now(), attempts=3)
    row, before, after = _fail_once(task)
    assert before + timedelta(seconds=4**4 + 5) <= row.run_at <= after + timedelta(seconds=261)
    with override_settings(MAX_ATTEMPTS=5):
        Task.objects.filter(pk=task.pk).update(run_at=timezone.now())
        row, _, _ = _fail_once(task)
    assert (row.status, row.attempts) == (Task.FAILED, 5)


def test_a_retryable_error_waits_the_tasks_backoff_and_stops_at_its_max_attempts():
    task = tasks.picky("p", "transient")
    assert Task.objects.get(pk=task.pk).max_attempts == 3
    for attempt in (1, 2):
        row, before, after = _fail_once(task)
        assert (row.status, row.attempts) == (Task.QUEUED, attempt)
        delay = timedelta(seconds=60 * attempt)
        assert before + delay <= row.run_at <= after + delay
        Task.objects.filter(pk=task.pk).update(run_at=timezone.now())
    row, _, _ = _fail_once(task)
    assert (row.status, row.attempts) == (Task.FAILED, 3)  # MAX_ATTEMPTS (25) does not apply
    assert "Transient: p" in row.last_error


@pytest.mark.parametrize("kind", ["other", "value"])
def test_an_error_outside_retry_on_fails_at_once(kind):
    task = tasks.picky("x", kind)
    row, _, _ = _fail_once(task)
    assert (row.status, row.attempts) == (Task.FAILED, 1)


@pytest.mark.django_db  # no worker involved: a test transaction is enough
def test_a_subclass_of_a_retry_on_class_is_retried():
    # ConnectionRefusedError is a ConnectionError.
    assert RetryPolicy(retry_on=(ConnectionError,)).should_retry(ConnectionRefusedError(), 1, 3)
    assert not RetryPolicy(retry_on=(ConnectionError,)).should_retry(ValueError(), 1, 3)


def test_max_attempts_per_call_overrides_the_decorator():
    once = tasks.picky("once", "transient", max_attempts=1)
    assert Task.objects.get(pk=once.pk).max_attempts == 1
    row, _, _ = _fail_once(once)
    assert (row.status, row.attempts) == (Task.FAILED, 1)
    more = sample.always_fail.enqueue([], max_attempts=2)
    row, _, _ = _fail_once(more)
    assert row.status == Task.QUEUED
    Task.objects.filter(pk=more.pk).update(run_at=timezone.now())
    row, _, _ = _fail_once(more)
    assert (row.status, row.attempts) == (Task.FAILED, 2)


def test_a_zero_backoff_retries_in_the_same_batch():
    task = tasks.two_attempts("z")
    outcome = run_batch(30)
    assert (outcome.retried, outcome.failed) == (1, 1)
    assert Task.objects.get(pk=task.pk).status == Task.FAILED
    assert Execution.objects.filter(key="z").count() == 2


def test_a_broken_backoff_callable_falls_back_to_the_seeds_backoff(caplog):
    task = tasks.broken_backoff("b")
    with caplog.at_level(logging.ERROR, logger="bgtask.retry_policy"):
        row, before, after = _fail_once(task)
    assert row.status == Task.QUEUED
    assert before + timedelta(seconds=6) <= row.run_at <= after + timedelta(seconds=6)
    assert "broken backoff" in caplog.text


@pytest.mark.django_db  # no worker involved: a test transaction is enough
def test_backoff_forms():
    assert RetryPolicy(backoff=30).delay(5) == timedelta(seconds=30)
    assert RetryPolicy(backoff=timedelta(minutes=2)).delay(1) == timedelta(minutes=2)
    assert RetryPolicy(backoff=lambda n: timedelta(seconds=2**n)).delay(3) == timedelta(seconds=8)
    assert RetryPolicy().delay(2) == timedelta(seconds=21)
    # A callable returning nonsense is not trusted.
    assert RetryPolicy(backoff=lambda n: -5).delay(2) == timedelta(seconds=21)
    assert RetryPolicy(backoff=lambda n: "soon").delay(2) == timedelta(seconds=21)


def test_repetitions_keep_the_rows_max_attempts():
    task = sample.noop(repeat=Task.HOURLY, max_attempts=4)
    run_batch(10)
    repetition = Task.objects.exclude(pk=task.pk).get()
    assert repetition.max_attempts == 4


def _abandon(task, attempts):
    Task.objects.filter(pk=task.pk).update(
        status=Task.RUNNING,
        attempts=attempts,
        locked_by="dead-worker",
        locked_until=timezone.now() - timedelta(minutes=1),
        run_at=timezone.now() + timedelta(days=1),  # not run again by this batch
    )


def test_the_rescue_of_an_abandoned_task_counts_against_its_own_max_attempts():
    own = tasks.picky("abandoned", "transient")  # max_attempts=3
    seed = sample.always_fail()
    _abandon(own, attempts=2)
    _abandon(seed, attempts=2)
    assert TaskStore().rescue_abandoned() == 2
    own_row, seed_row = Task.objects.get(pk=own.pk), Task.objects.get(pk=seed.pk)
    assert (own_row.status, own_row.attempts) == (Task.FAILED, 3)
    assert (seed_row.status, seed_row.attempts) == (Task.QUEUED, 3)  # MAX_ATTEMPTS is 25


# -- bad input: a clear error naming the option, and nothing written ---------------------------

DECORATION_ERRORS = [
    ({"max_attempts": 0}, ValueError, "max_attempts must be between 1"),
    ({"max_attempts": -3}, ValueError, "max_attempts must be between 1"),
    ({"max_attempts": "3"}, TypeError, "max_attempts must be a whole number"),
    ({"max_attempts": 2.5}, TypeError, "max_attempts must be a whole number"),
    ({"max_attempts": True}, TypeError, "max_attempts must be a whole number"),
    ({"retry_on": "ValueError"}, TypeError, "retry_on takes exception classes"),
    ({"retry_on": (ValueError, 3)}, TypeError, "retry_on takes exception classes"),
    ({"retry_on": int}, TypeError, "retry_on takes exception classes"),
    ({"retry_on": ()}, ValueError, "retry_on must name at least one exception class"),
    ({"backoff": "fast"}, TypeError, "backoff must be seconds"),
    ({"backoff": True}, TypeError, "backoff must be seconds"),
    ({"backoff": -1}, ValueError, "backoff must be a finite number of seconds"),
    ({"backoff": math.inf}, ValueError, "backoff must be a finite number of seconds"),
    ({"backoff": timedelta(seconds=-1)}, ValueError, "backoff must be a finite number"),
    ({"retries": 3}, TypeError, "unexpected option.*retries"),
]


@pytest.mark.parametrize(("options", "error", "message"), DECORATION_ERRORS)
@pytest.mark.django_db  # no worker involved: a test transaction is enough
def test_bad_policies_are_refused_at_decoration(options, error, message):
    with pytest.raises(error, match=message):

        @background(name="compat.bad_policy", **options)
        def bad_policy(): ...

    with pytest.raises(error, match=message):
        # Bare functions decorated later, and @periodic, go through the same check.
        background(name="compat.bad_policy", **options)(lambda: None)
    unregister("compat.bad_policy")
    from bgtask import registry

    assert "compat.bad_policy" not in registry.names()


CALL_ERRORS = [
    ({"max_attempts": 0}, ValueError, "max_attempts must be between 1"),
    ({"max_attempts": "many"}, TypeError, "max_attempts must be a whole number"),
    ({"retry_on": (ValueError,)}, TypeError, "retry_on can only be given to @background"),
    ({"backoff": 5}, TypeError, "backoff can only be given to @background"),
]


@pytest.mark.parametrize(("options", "error", "message"), CALL_ERRORS)
@pytest.mark.django_db  # no worker involved: a test transaction is enough
def test_bad_call_options_are_refused_and_nothing_is_written(options, error, message):
    with pytest.raises(error, match=message):
        sample.record("k", **options)
    with pytest.raises(error, match=message):
        sample.record.bulk([("a",), ("b",)], **options)
    with pytest.raises(error, match=message):
        sample.record.bulk([sample.record.call("a"), sample.record.call("b", **options)])
    assert Task.objects.count() == 0


@pytest.mark.django_db  # no worker involved: a test transaction is enough
def test_unknown_enqueue_options_are_refused():
    with pytest.raises(TypeError, match=r"unexpected enqueue option.*verbose_nam\b"):
        sample.record.enqueue(["k"], verbose_nam="typo")
    assert Task.objects.count() == 0


@pytest.mark.django_db  # no worker involved: a test transaction is enough
def test_a_function_with_its_own_retry_parameters_keeps_them():
    @background(name="compat.own_params")
    def own_params(backoff, max_attempts=1):
        return backoff * max_attempts

    try:
        task = own_params(backoff=3, max_attempts=2)
        task.refresh_from_db()
        assert task.kwargs == {"backoff": 3, "max_attempts": 2}
        assert task.max_attempts is None
    finally:
        unregister("compat.own_params")


@pytest.mark.django_db
def test_periodic_tasks_take_the_policy_and_the_label():
    from bgtask.features import periodic as periodic_module

    try:
        nightly = periodic_module.periodic(
            "0 3 * * *",
            name="compat.nightly",
            verbose_name="Nightly",
            max_attempts=2,
            retry_on=ConnectionError,
        )(lambda: None)
        assert nightly.retry_policy.retry_on == (ConnectionError,)
        row = nightly.build_row([], {})
        assert (row["verbose_name"], row["max_attempts"]) == ("Nightly", 2)
        with pytest.raises(ValueError, match="max_attempts must be between 1"):
            periodic_module.periodic("0 3 * * *", name="compat.bad_nightly", max_attempts=0)(
                lambda: None
            )
    finally:
        periodic_module.unregister("compat.nightly")
        unregister("compat.nightly")
        unregister("compat.bad_nightly")
