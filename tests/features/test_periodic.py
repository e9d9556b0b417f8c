"""@periodic: cron occurrences enqueued exactly once by run_batch, with the catch-up rule."""

from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from bgtask import registry, run_batch
from bgtask.features import periodic
from bgtask.models import PeriodicOccurrence, Task
from tests.conftest import batch_result, start_batch_process
from tests.sampleapp.models import Execution

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def hourly():
    @periodic.periodic("0 * * * *", name="features.hourly", timezone="UTC")
    def hourly_job():
        Execution.objects.create(key="hourly")

    yield hourly_job
    periodic.unregister("features.hourly")
    registry.unregister("features.hourly")


def at(hour: int, minute: int = 0, second: int = 0) -> datetime:
    return datetime(2026, 3, 2, hour, minute, second, tzinfo=UTC)


def test_first_sight_records_the_latest_occurrence_without_enqueueing(hourly):
    assert periodic.enqueue_due(now=at(10, 30)) == 0
    assert PeriodicOccurrence.objects.get().last_enqueued_at == at(10)
    assert not Task.objects.exists()


def test_each_occurrence_is_enqueued_once(hourly):
    periodic.enqueue_due(now=at(10, 30))
    assert periodic.enqueue_due(now=at(10, 59)) == 0
    assert periodic.enqueue_due(now=at(11, 0, 0)) == 1  # exactly on the occurrence: due
    assert periodic.enqueue_due(now=at(11, 40)) == 0
    task = Task.objects.get()
    assert (task.task_name, task.run_at) == ("features.hourly", at(11))


def test_after_downtime_only_the_latest_missed_occurrence_is_caught_up(hourly):
    periodic.enqueue_due(now=at(10, 30))
    assert periodic.enqueue_due(now=at(15, 10)) == 1  # 11:00 .. 15:00 were missed
    assert list(Task.objects.values_list("run_at", flat=True)) == [at(15)]


def test_the_expression_is_read_in_its_time_zone():
    @periodic.periodic("0 3 * * *", name="features.paris", timezone="Europe/Paris")
    def paris():
        pass

    try:
        entry = next(p for p in periodic.registered() if p.name == "features.paris")
        winter = datetime(2026, 1, 15, 12, 0, tzinfo=UTC)
        summer = datetime(2026, 7, 15, 12, 0, tzinfo=UTC)
        assert entry.latest_occurrence(winter) == datetime(2026, 1, 15, 2, 0, tzinfo=UTC)
        assert entry.latest_occurrence(summer) == datetime(2026, 7, 15, 1, 0, tzinfo=UTC)
    finally:
        periodic.unregister("features.paris")
        registry.unregister("features.paris")


def test_bad_expressions_and_zones_are_refused_at_declaration():
    with pytest.raises(ValueError, match="cron expression"):
        periodic.periodic("every minute")
    with pytest.raises(ValueError, match="time zone"):
        periodic.periodic("* * * * *", timezone="Mars/Olympus")


def test_run_batch_enqueues_and_runs_a_due_occurrence(hourly):
    PeriodicOccurrence.objects.create(
        name="features.hourly", last_enqueued_at=timezone.now() - timedelta(hours=3)
    )
    assert run_batch(10).succeeded == 1
    assert Execution.objects.filter(key="hourly").count() == 1
    assert run_batch(10).ran == 0


def test_concurrent_batches_in_separate_processes_enqueue_an_occurrence_once():
    # Workers register "features.yearly" (tests/features/tasks.py); its last occurrence is two
    # years old, so this year's is due for every one of them at once.
    PeriodicOccurrence.objects.create(
        name="features.yearly", last_enqueued_at=timezone.now() - timedelta(days=800)
    )
    workers = [start_batch_process(20, BGTASK_TEST_PERIODIC="1") for _ in range(4)]
    results = [batch_result(worker) for worker in workers]
    assert sum(result["succeeded"] for result in results) == 1
    assert Execution.objects.filter(key="yearly").count() == 1
    assert Task.objects.filter(task_name="features.yearly").count() == 1
