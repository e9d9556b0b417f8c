"""@background: calling enqueues a row and returns it; bad input is refused before any write."""

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.db import transaction
from django.utils import timezone

from bgtask import TaskFunction, background, registry
from bgtask.exceptions import TaskNameConflict
from bgtask.models import Task
from tests.sampleapp import tasks
from tests.sampleapp.models import Execution

pytestmark = pytest.mark.django_db


def test_bare_decorator_registers_under_module_and_qualname():
    @background
    def bare(x):
        return x * 2

    try:
        assert isinstance(bare, TaskFunction)
        assert (
            bare.name
            == f"{__name__}.test_bare_decorator_registers_under_module_and_qualname.<locals>.bare"
        )
        assert registry.get(bare.name) is bare
        task = bare(21)
        assert task.task_name == bare.name and task.args == [21]
        assert bare.now(21) == 42
    finally:
        registry.unregister(bare.name)


def test_calling_stores_a_task_and_runs_nothing():
    before = timezone.now()
    task = tasks.record("k1")
    assert isinstance(task, Task) and task.pk is not None
    stored = Task.objects.get(pk=task.pk)
    assert stored.task_name == "sample.record"
    assert stored.args == ["k1"] and stored.kwargs == {}
    assert stored.status == Task.QUEUED and stored.attempts == 0
    assert stored.queue == "default" and stored.priority == 0
    assert before <= stored.run_at <= timezone.now()
    assert Execution.objects.count() == 0


def test_keyword_arguments_are_stored():
    task = tasks.add(a=1, b=2)
    assert Task.objects.get(pk=task.pk).kwargs == {"a": 1, "b": 2}


def test_decorator_schedule_is_the_default_delay():
    before = timezone.now()
    task = tasks.scheduled_later("x")
    assert before + timedelta(seconds=60) <= task.run_at <= timezone.now() + timedelta(seconds=60)


@pytest.mark.parametrize(
    "schedule, expected_delay",
    [(90, 90), (2.5, 2.5), (timedelta(minutes=20), 1200), (-5, -5), (0, 0)],
)
def test_call_time_schedule_overrides_the_decorator(schedule, expected_delay):
    before = timezone.now()
    task = tasks.scheduled_later("x", schedule=schedule)
    after = timezone.now()
    delay = timedelta(seconds=expected_delay)
    assert before + delay <= Task.objects.get(pk=task.pk).run_at <= after + delay


def test_aware_datetime_schedule_is_kept_as_the_instant():
    when = datetime(2031, 3, 4, 5, 6, 7, tzinfo=ZoneInfo("America/New_York"))
    task = tasks.record("x", schedule=when)
    assert Task.objects.get(pk=task.pk).run_at == when
    assert Task.objects.get(pk=task.pk).run_at == datetime(2031, 3, 4, 10, 6, 7, tzinfo=UTC)


def test_naive_datetime_is_read_in_the_current_time_zone():
    with timezone.override(ZoneInfo("Europe/Paris")):
        task = tasks.record("x", schedule=datetime(2031, 7, 1, 12, 0))
    assert Task.objects.get(pk=task.pk).run_at == datetime(2031, 7, 1, 10, 0, tzinfo=UTC)


def test_queue_and_priority_at_call_time():
    task = tasks.record("x", queue="emails", priority=7)
    stored = Task.objects.get(pk=task.pk)
    assert (stored.queue, stored.priority) == ("emails", 7)


def test_decorator_queue_and_priority_defaults():
    @background(name="test.defaults", queue="reports", priority=-3)
    def report():
        pass

    try:
        task = report()
        assert (task.queue, task.priority) == ("reports", -3)
        assert report(priority=4, queue="other").priority == 4
    finally:
        registry.unregister("test.defaults")


@pytest.mark.parametrize(
    "bad, fragment",
    [
        (object(), "object is not JSON"),
        (datetime(2030, 1, 1), "datetime is not JSON"),
        ({1: "a"}, "dict key 1 is not a string"),
        ((1, 2), "tuple would come back as a list"),
        ({1, 2}, "set is not JSON"),
        (float("nan"), "NaN and infinity"),
        ([1, [2, {"deep": b"bytes"}]], "bytes is not JSON"),
    ],
)
def test_non_json_arguments_raise_type_error_and_write_nothing(bad, fragment):
    with pytest.raises(TypeError) as info:
        tasks.record(bad)
    assert fragment in str(info.value)
    assert "args[0]" in str(info.value)
    assert Task.objects.count() == 0


def test_non_json_keyword_argument_is_named_in_the_error():
    with pytest.raises(TypeError, match=r"kwargs\['when'\]"):
        tasks.add(a=1, b=2, when=datetime(2030, 1, 1))
    assert Task.objects.count() == 0


@pytest.mark.parametrize(
    "schedule, error",
    [
        ("soon", TypeError),
        (True, TypeError),
        ([1], TypeError),
        (float("inf"), ValueError),
        (10**20, ValueError),
    ],
)
def test_bad_schedule_is_refused_before_writing(schedule, error):
    with pytest.raises(error, match="schedule"):
        tasks.record("x", schedule=schedule)
    assert Task.objects.count() == 0


@pytest.mark.parametrize(
    "options, error",
    [
        ({"queue": ""}, TypeError),
        ({"queue": 3}, TypeError),
        ({"queue": "q" * 101}, ValueError),
        ({"priority": "high"}, TypeError),
        ({"priority": 1.5}, TypeError),
        ({"priority": 2**40}, ValueError),
    ],
)
def test_bad_queue_or_priority_is_refused_before_writing(options, error):
    with pytest.raises(error):
        tasks.record("x", **options)
    assert Task.objects.count() == 0


def test_oversized_arguments_are_refused(settings):
    settings.BGTASK_MAX_ARGS_BYTES = 100
    with pytest.raises(ValueError, match="BGTASK_MAX_ARGS_BYTES"):
        tasks.record("x" * 200)
    assert Task.objects.count() == 0


def test_now_runs_synchronously_and_writes_nothing():
    assert tasks.add.now(2, 3) == 5
    assert tasks.record.now("direct") == "direct"
    assert Task.objects.count() == 0
    assert Execution.objects.filter(key="direct").count() == 1


def test_enqueue_rolls_back_with_the_callers_transaction():
    with pytest.raises(RuntimeError), transaction.atomic():
        tasks.record("x")
        raise RuntimeError("caller fails")
    assert Task.objects.count() == 0


def test_explicit_enqueue_for_functions_whose_parameters_shadow_options():
    @background(name="test.shadow")
    def shadow(schedule, queue):
        return schedule, queue

    try:
        task = shadow.enqueue(["weekly", "mine"], {}, schedule=30, queue="q1")
        assert task.args == ["weekly", "mine"] and task.queue == "q1"
    finally:
        registry.unregister("test.shadow")


def test_two_functions_cannot_share_a_task_name():
    with pytest.raises(TaskNameConflict, match=r"sample\.noop"):

        @background(name="sample.noop")
        def impostor():
            pass


def test_decorator_refuses_a_non_function_and_bad_defaults():
    with pytest.raises(TypeError, match="needs a function"):
        background(60)
    with pytest.raises(TypeError, match="schedule"):
        background(schedule="later")(lambda: None)
