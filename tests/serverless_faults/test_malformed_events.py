"""Malformed Lambda events at every entrypoint (worker, web, manage): each gets an
``UnexpectedEvent`` whose message says what was expected, and nothing reaches the database."""

from __future__ import annotations

import copy

import pytest
from django.contrib.auth import get_user_model
from django.db import connection

from bgtask.models import Task
from handlers import manage, web, worker
from handlers.events import UnexpectedEvent
from handlers.local_context import LocalContext
from tests.handlers.conftest import load_event
from tests.sampleapp import tasks
from tests.sampleapp.models import Execution

pytestmark = pytest.mark.django_db(transaction=True)

HUGE = "x" * 6_000_000  # Lambda's synchronous payload limit is 6 MB


def database_snapshot() -> tuple:
    """Everything an invocation could have written: tasks (state, lease, attempts), side effects,
    users and applied migrations."""
    from django.db.migrations.recorder import MigrationRecorder

    return (
        sorted(Task.objects.values_list("id", "status", "attempts", "locked_by", "run_at")),
        Execution.objects.count(),
        sorted(get_user_model().objects.values_list("username", flat=True)),
        MigrationRecorder(connection).applied_migrations().keys(),
    )


@pytest.fixture
def untouched_database():
    """A due task that must not run and a user that must stay alone; asserts nothing changed."""
    tasks.record("must-not-run", schedule=0)
    get_user_model().objects.create_user("existing")
    before = database_snapshot()
    yield
    assert database_snapshot() == before
    assert Execution.objects.count() == 0


WORKER_EVENTS = [
    (None, None),  # None is the empty direct invocation: accepted (see the last test)
    (42, "got a int event"),
    (3.5, "got a float event"),
    (True, "got a bool event"),
    ("", "got a str event"),
    (HUGE, "got a str event"),
    ([], "got a list event"),
    ({"duration": 10**400}, "at most 900"),
    ({"duration": 1e308}, "at most 900"),
    ({"duration": float("inf")}, '"duration" must be'),
    ({"duration": float("nan")}, '"duration" must be'),
    ({"duration": 0}, "above 0"),
    ({"duration": -0.5}, "above 0"),
    ({"duration": 901}, "at most 900"),
    ({"duration": [5]}, '"duration" must be'),
    ({"duration": {"seconds": 5}}, '"duration" must be'),
    ({"duration": None, "queue": None, "extra": 1}, "keys ['duration', 'extra', 'queue']"),
    ({"queue": "q" * 101}, '"queue" must be a queue name'),
    ({"queue": HUGE}, "characters)"),
    ({"queue": "   "}, '"queue" must be a queue name'),
    ({"queue": "emails\x00"}, "printable"),
    ({"queue": "emails\n"}, "printable"),
    ({"queue": ["emails"]}, '"queue" must be a queue name'),
    ({"queue": {"name": "emails"}}, '"queue" must be a queue name'),
    ({"source": None, "queue": 1}, "keys ['queue', 'source']"),
    ({"source": 7}, "from source 7"),
    ({"source": HUGE}, "characters)"),
    ({"source": "aws.events"}, 'only "Scheduled Event"'),
    ({"source": "aws.events", "detail-type": ["Scheduled Event"]}, 'only "Scheduled Event"'),
    (
        {"source": "aws.events", "detail-type": "Scheduled Event", "time": {"t": 1}},
        '"time" must be a timestamp string',
    ),
    ({"source": "bgtask.schedule", "scheduled_time": HUGE}, '"scheduled_time" must be'),
    ({"source": "bgtask.schedule", "duration": "55"}, '"duration" must be'),
    ({"source": "bgtask.schedule", "queue": "", "duration": 5}, '"queue" must be'),
    ({"source": "bgtask.wake", "duration": 5}, "Unexpected key(s) ['duration']"),
    ({"source": "bgtask.fanout", "allow_fanout": True}, "Unexpected key(s) ['allow_fanout']"),
    ({"source": "bgtask.fanout", "queue": "\x00"}, "printable"),
    ({f"k{i}": i for i in range(10_000)}, "characters)"),
    ({"Records": [{"eventSource": "aws:sqs", "body": "{}"}]}, "keys ['Records']"),
]


@pytest.mark.parametrize(("event", "words"), WORKER_EVENTS[1:], ids=range(1, len(WORKER_EVENTS)))
def test_the_worker_refuses_a_malformed_event(event, words, untouched_database):
    with pytest.raises(UnexpectedEvent) as raised:
        worker.handler(event, LocalContext(timeout=30))
    message = str(raised.value)
    assert words in message
    assert "expected" in message.lower() or "must be" in message or "takes only" in message
    assert len(message) < 2000, "an error message must not echo a huge event"


def test_the_worker_refuses_sample_events_of_the_other_functions(untouched_database):
    for name in ("web-status", "web-admin-login", "manage-migrate", "manage-check"):
        with pytest.raises(UnexpectedEvent, match="expected an EventBridge Scheduler Input"):
            worker.handler(load_event(name), LocalContext(timeout=30))


def http_event(mutate) -> dict:
    event = load_event("web-status")
    mutate(event)
    return event


WEB_EVENTS = {
    "int": 5,
    "str": "GET /bgtask/status/",
    "list": [load_event("web-status")],
    "empty": {},
    "worker event": load_event("worker-schedule"),
    "manage event": load_event("manage-migrate"),
    "huge non-http": {"data": HUGE},
    "unknown version": http_event(lambda e: e.update(version="3.0")),
    "headers null": http_event(lambda e: e.update(headers=None)),
    "headers list": http_event(lambda e: e.update(headers=["authorization: Bearer x"])),
    "header value int": http_event(lambda e: e["headers"].update({"x-count": 5})),
    "body object": http_event(lambda e: e.update(body={"json": "as object"})),
    "body not base64": http_event(lambda e: e.update(isBase64Encoded=True, body="%%%not-b64")),
    "no requestContext.http": http_event(lambda e: e["requestContext"].pop("http")),
    "no method": http_event(lambda e: e["requestContext"]["http"].pop("method")),
    "method null": http_event(lambda e: e["requestContext"]["http"].update(method=None)),
    "method list": http_event(lambda e: e["requestContext"]["http"].update(method=["GET"])),
    "path list": http_event(lambda e: e["requestContext"]["http"].update(path=["/a"])),
    "no sourceIp": http_event(lambda e: e["requestContext"]["http"].pop("sourceIp")),
    "query string int": http_event(lambda e: e.update(rawQueryString=12)),
}


@pytest.mark.parametrize("name", WEB_EVENTS)
def test_the_web_function_refuses_a_malformed_event(name, untouched_database):
    event = copy.deepcopy(WEB_EVENTS[name])
    with pytest.raises(UnexpectedEvent) as raised:
        web.handler(event, LocalContext(timeout=30))
    message = str(raised.value)
    assert "expected an HTTP request event" in message or "which is not an HTTP request" in message
    assert len(message) < 2000


MANAGE_EVENTS = [
    (None, "got a NoneType event"),
    ("migrate", "got a str event"),
    (HUGE, "got a str event"),
    (["migrate"], "got a list event"),
    ({}, "got a dict event (keys [])"),
    ({"command": None}, "Command a NoneType is not allowed"),
    ({"command": ["migrate"]}, "Command a list is not allowed"),
    ({"command": {"name": "migrate"}}, "Command a dict is not allowed"),
    ({"command": 1}, "Command a int is not allowed"),
    ({"command": HUGE}, "is not allowed here"),
    ({"command": "migrate", "args": "--plan"}, '"args" must be a list of strings, got a str'),
    ({"command": "migrate", "args": [["--plan"]]}, "got a list holding ['list']"),
    ({"command": "migrate", "args": [None]}, "holding ['NoneType']"),
    ({"command": "migrate", "args": {"plan": True}}, "got a dict"),
    ({"command": "check", "password": "pw"}, 'only for "createsuperuser"'),
    ({"command": "createsuperuser", "password": 12345}, '"password" is a string'),
    ({"command": "migrate", "options": {"fake": True}}, "Unexpected key(s) ['options']"),
    ({"command": "migrate", **{f"k{i}": i for i in range(10_000)}}, "Unexpected key(s)"),
]


@pytest.mark.parametrize(("event", "words"), MANAGE_EVENTS, ids=range(len(MANAGE_EVENTS)))
def test_the_management_function_refuses_a_malformed_event(event, words, untouched_database):
    with pytest.raises(UnexpectedEvent) as raised:
        manage.handler(event, LocalContext(timeout=30))
    message = str(raised.value)
    assert words in message
    assert len(message) < 2000


def test_an_empty_direct_invocation_is_the_one_event_that_is_not_malformed():
    """The counterpart of the refusals above: None and {} are an ordinary drain of every queue."""
    tasks.record("runs", schedule=0)
    assert worker.handler(None, LocalContext(timeout=30))["succeeded"] == 1
