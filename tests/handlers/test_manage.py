"""The management entrypoint: allowed commands run without a prompt, the rest are refused."""

from __future__ import annotations

import json
import os

import pytest
from django.contrib.auth import get_user_model

from handlers import manage
from handlers.events import UnexpectedEvent
from tests.handlers.conftest import load_event

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_migrate_sample_event_migrates(context):
    answer = manage.handler(load_event("manage-migrate"), context)
    assert answer["command"] == "migrate"
    assert "No migrations to apply" in answer["output"]


def test_the_check_sample_event_runs_the_system_checks(context):
    answer = manage.handler(load_event("manage-check"), context)
    assert "System check identified" in answer["output"]


def test_createsuperuser_runs_without_a_prompt_and_keeps_the_password_out_of_the_answer(context):
    before = os.environ.get("DJANGO_SUPERUSER_PASSWORD")
    answer = manage.handler(
        {
            "command": "createsuperuser",
            "args": ["--username", "root", "--email", "root@example.com"],
            "password": "s3cret-Pass-phrase",
        },
        context,
    )
    user = get_user_model().objects.get(username="root")
    assert user.is_superuser and user.is_staff
    assert user.check_password("s3cret-Pass-phrase")
    assert "s3cret" not in str(answer)
    assert os.environ.get("DJANGO_SUPERUSER_PASSWORD") == before  # not left behind


@pytest.mark.parametrize("command", ["flush", "shell", "dbshell", "loaddata", "process_tasks"])
def test_commands_outside_the_allowlist_are_refused(command, context):
    get_user_model().objects.create_user("keep-me")
    with pytest.raises(manage.CommandRefused, match=f"'{command}' is not allowed"):
        manage.handler({"command": command}, context)
    assert get_user_model().objects.filter(username="keep-me").exists()


@pytest.mark.parametrize(
    ("event", "words"),
    [
        ("migrate", "expects"),
        ({"cmd": "migrate"}, "expects"),
        ({"command": "migrate", "args": "--plan"}, '"args" must be a list of strings'),
        ({"command": "migrate", "args": [1]}, '"args" must be a list of strings'),
        ({"command": "migrate", "password": "x"}, 'only for "createsuperuser"'),
        ({"command": "migrate", "verbose": True}, "Unexpected key(s) ['verbose']"),
    ],
)
def test_malformed_management_events_get_a_clear_error(event, words, context):
    with pytest.raises(UnexpectedEvent) as raised:
        manage.handler(event, context)
    assert words in str(raised.value)


def test_a_failing_command_raises_so_the_invocation_reports_an_error(context):
    from django.core.management.base import CommandError

    with pytest.raises(CommandError):
        manage.handler({"command": "migrate", "args": ["no_such_app"]}, context)


def test_the_bgtask_operations_command_lists_and_cancels_through_the_handler(context):
    from bgtask.models import Task
    from tests.sampleapp import tasks

    queued = tasks.record("listed-by-manage", schedule=3600)
    listed = manage.handler({"command": "bgtask", "args": ["list", "--json"]}, context)
    assert [row["id"] for row in json.loads(listed["output"])] == [queued.pk]
    assert "exit_code" not in listed  # a full success looks like every other command's answer

    cancelled = manage.handler({"command": "bgtask", "args": ["cancel", str(queued.pk)]}, context)
    assert f"Task {queued.pk}: cancelled." in cancelled["output"]
    assert Task.objects.get(pk=queued.pk).status == Task.CANCELLED

    stats = manage.handler({"command": "bgtask", "args": ["stats", "--json"]}, context)
    assert "queues" in json.loads(stats["output"])


def test_a_partial_bgtask_outcome_answers_with_its_exit_code_and_what_was_done(context):
    from bgtask.models import Task
    from tests.sampleapp import tasks

    queued = tasks.record("half-of-a-cancel", schedule=3600)
    missing = queued.pk + 1000
    answer = manage.handler(
        {"command": "bgtask", "args": ["cancel", str(queued.pk), str(missing)]}, context
    )
    assert answer["exit_code"] == 3  # bgtask's "not found": the other ID was still acted on
    assert "1 of 2 task id(s) not found" in answer["error"]
    assert f"Task {queued.pk}: cancelled." in answer["output"]
    assert f"Task {missing}: not found." in answer["output"]
    assert Task.objects.get(pk=queued.pk).status == Task.CANCELLED


@pytest.mark.parametrize("args", [["frobnicate"], ["show"], ["show", "abc"], []])
def test_a_bgtask_usage_error_fails_the_invocation(args, context):
    from django.core.management.base import CommandError

    with pytest.raises(CommandError):
        manage.handler({"command": "bgtask", "args": args}, context)
