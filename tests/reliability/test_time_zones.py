"""Schedules across DST changes and in other time zones run at the instant they name.

The clock is moved with ``timezone.now`` patched (every bgtask read of "now" goes through it), so a
DST change months away can be crossed in a test; the database stores and compares the instants.
"""

from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from unittest import mock
from zoneinfo import ZoneInfo

import pytest
from django.test import override_settings
from django.utils import timezone

from bgtask import run_batch
from bgtask.models import Task
from tests.reliability.helpers import execution_counts
from tests.sampleapp import tasks

NEW_YORK = ZoneInfo("America/New_York")  # 2026-03-08 02:00 -> 03:00; 2026-11-01 02:00 -> 01:00


@contextmanager
def clock(at: datetime):
    with mock.patch("django.utils.timezone.now", return_value=at.astimezone(UTC)):
        yield


def _runs_exactly_at(instant: datetime) -> None:
    """Not a second early, and at the instant itself."""
    with clock(instant - timedelta(seconds=1)):
        assert run_batch(10).ran == 0
    with clock(instant):
        assert run_batch(10).succeeded == 1


@pytest.mark.parametrize(
    ("zone", "wall_time"),
    [
        ("America/New_York", datetime(2026, 3, 8, 3, 30)),  # first hour of summer time
        ("America/New_York", datetime(2026, 11, 1, 1, 30)),  # repeated hour (first pass)
        ("Europe/London", datetime(2026, 3, 29, 2, 0)),
        ("Australia/Lord_Howe", datetime(2026, 4, 5, 1, 45)),  # a 30-minute DST shift
        ("Asia/Kathmandu", datetime(2026, 6, 1, 9, 15)),  # UTC+5:45
        ("Pacific/Chatham", datetime(2026, 1, 1, 0, 0)),  # UTC+13:45
        ("America/St_Johns", datetime(2026, 7, 1, 23, 59)),  # UTC-2:30
        ("Pacific/Kiritimati", datetime(2026, 12, 31, 23, 0)),  # UTC+14, a day ahead of UTC
    ],
)
@pytest.mark.django_db(transaction=True)
def test_an_aware_schedule_runs_at_the_instant_it_names(zone, wall_time):
    target = wall_time.replace(tzinfo=ZoneInfo(zone))
    instant = target.astimezone(UTC)
    with clock(instant - timedelta(days=2)):
        task = tasks.record("tz", schedule=target)
    task.refresh_from_db()
    assert task.run_at == instant  # stored as the same instant, whatever the database
    _runs_exactly_at(instant)
    assert execution_counts() == {"tz": 1}


@pytest.mark.parametrize(
    ("naive", "utc", "why"),
    [
        (datetime(2026, 3, 8, 1, 59), datetime(2026, 3, 8, 6, 59), "last minute of winter time"),
        (datetime(2026, 3, 8, 3, 0), datetime(2026, 3, 8, 7, 0), "first minute of summer time"),
        # 02:30 does not exist that night; like zoneinfo (fold=0), it is read with the offset in
        # force before the change: 07:30 UTC, i.e. 03:30 summer time.
        (datetime(2026, 3, 8, 2, 30), datetime(2026, 3, 8, 7, 30), "a wall time in the gap"),
        # 01:30 happens twice that night; fold=0 means its first pass (summer time).
        (datetime(2026, 11, 1, 1, 30), datetime(2026, 11, 1, 5, 30), "the repeated hour"),
        (datetime(2026, 11, 1, 2, 30), datetime(2026, 11, 1, 7, 30), "after falling back"),
    ],
)
@pytest.mark.django_db(transaction=True)
def test_a_naive_schedule_is_read_in_the_current_time_zone_across_dst(naive, utc, why):
    instant = utc.replace(tzinfo=UTC)
    with override_settings(TIME_ZONE="America/New_York"), clock(instant - timedelta(hours=12)):
        task = tasks.record("naive", schedule=naive)
    task.refresh_from_db()
    assert task.run_at == instant, why
    _runs_exactly_at(instant)


@pytest.mark.django_db(transaction=True)
def test_a_delay_across_a_dst_change_is_elapsed_time():
    """schedule=timedelta(days=1) means 24 hours from now, which on the day the clocks go forward
    is 13:00 local, not noon; pass an aware datetime for a wall-clock time."""
    enqueued_at = datetime(2026, 3, 7, 12, 0, tzinfo=NEW_YORK)
    with clock(enqueued_at):
        by_delay = tasks.record("delay", schedule=timedelta(days=1))
        by_wall_clock = tasks.record("wall", schedule=datetime(2026, 3, 8, 12, 0, tzinfo=NEW_YORK))
    by_delay.refresh_from_db()
    by_wall_clock.refresh_from_db()
    assert by_delay.run_at == datetime(2026, 3, 8, 17, 0, tzinfo=UTC)  # 13:00 EDT
    assert by_wall_clock.run_at == datetime(2026, 3, 8, 16, 0, tzinfo=UTC)  # 12:00 EDT
    with clock(datetime(2026, 3, 8, 16, 0, tzinfo=UTC)):
        assert run_batch(10).succeeded == 1
    with clock(datetime(2026, 3, 8, 17, 0, tzinfo=UTC)):
        assert run_batch(10).succeeded == 1
    assert execution_counts() == {"wall": 1, "delay": 1}


@pytest.mark.django_db(transaction=True)
def test_the_workers_time_zone_setting_does_not_move_due_tasks():
    instant = datetime(2026, 10, 25, 1, 30, tzinfo=UTC)  # Europe's fall-back night
    with clock(instant - timedelta(hours=1)):
        tasks.record("anywhere", schedule=instant)
    for zone in ("Europe/Berlin", "Pacific/Auckland", "America/Los_Angeles"):
        with (
            override_settings(TIME_ZONE=zone),
            timezone.override(zone),
            clock(instant - timedelta(seconds=1)),
        ):
            assert run_batch(10).ran == 0
    with override_settings(TIME_ZONE="Europe/Berlin"), clock(instant):
        assert run_batch(10).succeeded == 1
    assert Task.objects.get().status == Task.SUCCEEDED
