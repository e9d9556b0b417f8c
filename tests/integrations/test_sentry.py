"""The Sentry integration against the real SDK: sentry_sdk.init with a Transport that keeps the
envelopes the client would send, read back as events, breadcrumbs and Crons check-ins."""

import logging

import pytest
import sentry_sdk
from django.test import override_settings
from sentry_sdk.integrations.logging import LoggingIntegration
from sentry_sdk.transport import Transport

from bgtask import registry, run_batch
from bgtask.features import periodic as periodic_registry
from bgtask.models import Task
from bgtask.periodic import periodic
from tests.integrations import tasks


class KeepingTransport(Transport):
    """Keeps every envelope instead of sending it."""

    envelopes: list = []

    def capture_envelope(self, envelope):
        KeepingTransport.envelopes.append(envelope)


def items(kind):
    sentry_sdk.flush()
    found = []
    for envelope in KeepingTransport.envelopes:
        for item in envelope.items:
            if item.type == kind:
                found.append(item.payload.json)
    return found


@pytest.fixture(autouse=True)
def sentry():
    KeepingTransport.envelopes = []
    # ERROR log records as events, as sentry-sdk 2.x does by default (3.x no longer does): the
    # failure must still arrive once, not again from bgtask's own log line.
    sentry_sdk.init(
        dsn="https://public@sentry.invalid/1",
        transport=KeepingTransport,
        integrations=[LoggingIntegration(event_level=logging.ERROR)],
    )
    yield
    sentry_sdk.init()  # no DSN: an inactive client, as before
    KeepingTransport.envelopes = []


@pytest.fixture
def periodic_tasks():
    @periodic("*/5 * * * *", name="integrations.nightly", timezone="Europe/Paris")
    def nightly():
        return "done"

    @periodic("0 3 * * *", name="integrations.broken_nightly")
    def broken_nightly():
        raise RuntimeError("the export failed")

    yield nightly, broken_nightly
    for name in ("integrations.nightly", "integrations.broken_nightly"):
        periodic_registry.unregister(name)
        registry.unregister(name)


@pytest.mark.django_db
@override_settings(MAX_ATTEMPTS=1)
def test_a_failed_task_is_one_event_with_its_tags():
    task = tasks.boom(7)
    assert run_batch(10).failed == 1
    (event,) = items("event")  # not a second one from bgtask's own log line
    assert event["tags"] == {
        "bgtask.task_name": "integrations.boom",
        "bgtask.task_id": str(task.pk),
        "bgtask.queue": "default",
        "bgtask.attempt": "1",
    }
    (exception,) = event["exception"]["values"]
    assert (exception["type"], exception["value"]) == ("ValueError", "boom 7")


@pytest.mark.django_db
@override_settings(MAX_ATTEMPTS=2)
def test_a_retry_is_a_breadcrumb_not_an_event():
    task = tasks.boom(8)
    assert run_batch(10).retried == 1
    assert items("event") == []
    Task.objects.filter(pk=task.pk).update(run_at=Task.objects.get(pk=task.pk).created_at)
    assert run_batch(10).failed == 1
    (event,) = items("event")
    crumbs = [c for c in event["breadcrumbs"]["values"] if c.get("category") == "bgtask"]
    assert len(crumbs) == 1
    assert crumbs[0]["message"] == f"Task integrations.boom #{task.pk} failed, will retry"
    assert crumbs[0]["data"]["bgtask.task_id"] == str(task.pk)


@pytest.mark.django_db
def test_a_success_sends_nothing():
    tasks.ok(1, schedule=0)
    assert run_batch(10).succeeded == 1
    assert items("event") == [] and items("check_in") == []


@pytest.mark.django_db
@override_settings(MAX_ATTEMPTS=1)
def test_periodic_tasks_check_in_to_sentry_crons(periodic_tasks):
    nightly, broken_nightly = periodic_tasks
    nightly()  # a periodic task is also a task: enqueued now
    broken_nightly()
    run_batch(10)
    checkins = items("check_in")
    by_slug = {}
    for checkin in checkins:
        by_slug.setdefault(checkin["monitor_slug"], []).append(checkin)
    started, finished = by_slug["integrations-nightly"]
    assert started["status"] == "in_progress"
    assert started["monitor_config"] == {
        "schedule": {"type": "crontab", "value": "*/5 * * * *"},
        "timezone": "Europe/Paris",
    }
    assert (finished["status"], finished["check_in_id"]) == ("ok", started["check_in_id"])
    assert finished["duration"] >= 0
    started, finished = by_slug["integrations-broken_nightly"]
    assert (started["status"], finished["status"]) == ("in_progress", "error")
    assert finished["check_in_id"] == started["check_in_id"]


@pytest.mark.django_db
@override_settings(BGTASK_SENTRY=False, MAX_ATTEMPTS=1)
def test_the_setting_turns_it_off():
    tasks.boom(1)
    run_batch(10)
    assert [e for e in items("event") if "bgtask.task_id" in e.get("tags", {})] == []
