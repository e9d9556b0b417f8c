"""The management entrypoint runs its five commands and nothing else, however the request is
spelled: no other command, no shell, no prompt, no option that reaches past the allowlist."""

from __future__ import annotations

import sys

import pytest
from django.contrib.auth import get_user_model
from django.core.management.base import CommandError
from django.db import connection

from bgtask.models import Task
from handlers import manage
from handlers.events import UnexpectedEvent
from handlers.local_context import LocalContext
from tests.sampleapp import tasks

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def precious_data():
    """A user and a task that flush, migrate zero or a shell would destroy; asserts they survive."""
    get_user_model().objects.create_user("keep-me", password="pw-keep")
    task = tasks.record("keep-me-queued", schedule=3600)
    tables_before = set(connection.introspection.table_names())
    yield
    assert get_user_model().objects.filter(username="keep-me").exists()
    assert Task.objects.filter(pk=task.pk, status=Task.QUEUED).exists()
    assert set(connection.introspection.table_names()) == tables_before


REFUSED_COMMANDS = [
    "flush",
    "shell",
    "dbshell",
    "sqlflush",
    "loaddata",
    "dumpdata",
    "diffsettings",  # would print SECRET_KEY and DATABASES
    "changepassword",
    "runserver",
    "process_tasks",
    "bgtask_demo",
    "sendtestemail",
    "migrate; flush",
    "migrate && flush",
    "migrate | sh",
    "migrate\nflush",
    "migrate flush",
    "$(flush)",
    "`flush`",
    "MIGRATE",
    "Migrate",
    " migrate",
    "migrate ",
    "migrate\x00",
    "migrate\u200b",  # zero-width space
    "".join(chr(ord(c) + 0xFEE0) for c in "migrate"),  # full-width letters
    "createsuperuser --interactive",
    "check --deploy",
    "django.core.management.commands.flush",
    "../flush",
    "",
]


def test_a_command_outside_the_allowlist_is_refused_however_it_is_spelled(precious_data):
    # One test, one database set-up, every spelling: each must be refused before anything runs.
    for command in REFUSED_COMMANDS:
        with pytest.raises(manage.CommandRefused, match="is not allowed here; allowed: "):
            manage.handler({"command": command}, LocalContext(timeout=30))
        with pytest.raises(manage.CommandRefused):
            manage.handler({"command": command, "args": ["--no-input"]}, LocalContext(timeout=30))


REFUSED_OPTIONS = [
    ("migrate", ["--settings", "tests.serverless_faults.tripwire"]),
    ("migrate", ["--settings=tests.serverless_faults.tripwire"]),
    ("check", ["--sett", "tests.serverless_faults.tripwire"]),
    ("check", ["--pythonpath", "/tmp"]),
    ("check", ["--py=/tmp"]),
    ("createsuperuser", ["--username", "x", "--password", "hunter2-in-args"]),
    ("createsuperuser", ["--username", "x", "--pass=hunter2-in-args"]),
    ("showmigrations", ["--help"]),
    ("migrate", ["-h"]),
    ("check", ["--version"]),
    ("check", ["--he"]),
    ("bgtask", ["list", "-h"]),
    ("bgtask", ["stats", "--help"]),
    ("bgtask", ["show", "1", "--settings", "tests.serverless_faults.tripwire"]),
]


def test_options_that_reach_past_the_allowlist_are_refused(precious_data):
    for command, args in REFUSED_OPTIONS:
        with pytest.raises(UnexpectedEvent, match="is refused here") as raised:
            manage.handler({"command": command, "args": args}, LocalContext(timeout=30))
        assert "hunter2" not in str(raised.value)
    assert "tests.serverless_faults.tripwire" not in sys.modules


@pytest.mark.parametrize(
    ("command", "args"),
    [
        ("migrate", ["flush"]),  # another command smuggled as an app label
        ("migrate", [";", "flush"]),
        ("migrate", ["--database", "other"]),
        ("showmigrations", ["&&", "flush"]),
        ("createsuperuser", ["--interactive"]),
        ("createsuperuser", ["--no-input=false", "--username", "x"]),
        ("createsuperuser", ["--username", "x", "--email", "x@example.com", "flush"]),
        ("createsuperuser", ["--username", "bad;name", "--email", "x@example.com"]),
        ("createsuperuser", ["--email", "nobody@example.com"]),  # no username, no prompt
    ],
)
def test_arguments_smuggling_another_command_or_a_prompt_fail_as_the_command(
    command, args, precious_data
):
    """Arguments go to the allowed command's own parser, never to a shell: another command's name
    is just a wrong argument, and nothing ever waits for a prompt."""
    with pytest.raises(CommandError):
        manage.handler({"command": command, "args": args}, LocalContext(timeout=30))
    assert not get_user_model().objects.exclude(username="keep-me").exists()


def test_check_with_a_smuggled_app_label_fails_without_running_anything_else(precious_data):
    with pytest.raises((CommandError, LookupError)):
        manage.handler({"command": "check", "args": [";", "flush"]}, LocalContext(timeout=30))


def test_an_allowed_command_still_runs(precious_data):
    answer = manage.handler({"command": "showmigrations", "args": ["bgtask"]}, LocalContext(30))
    assert "[X] 0001_initial" in answer["output"]
