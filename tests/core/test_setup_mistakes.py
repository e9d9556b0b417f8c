"""Issue 20, A9/C1/C3: setup mistakes a new user makes are refused with a message that says what
to do: a short status token, django-background-tasks' worker shadowing bgtask's, naive time at
enqueue, and an enqueue on a database that lacks bgtask's latest migrations."""

import subprocess
import sys

import django
import pytest
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from bgtask import enqueue_many
from bgtask.checks import USE_TZ_MESSAGE, check_process_tasks_command, check_settings
from bgtask.conf import MIN_STATUS_TOKEN_LENGTH
from bgtask.exceptions import DatabaseNotMigrated
from bgtask.models import Task
from tests.conftest import REPO_ROOT, worker_env
from tests.sampleapp import tasks

# -- A9: the status token's length ---------------------------------------------------------------


@pytest.mark.parametrize("token", ["Zq9", "Zq9-short-tok", "Z" * (MIN_STATUS_TOKEN_LENGTH - 1)])
def test_a_short_status_token_is_refused_by_a_check(settings, token):
    settings.BGTASK_STATUS_TOKEN = token
    errors = [e for e in check_settings() if e.id == "bgtask.E003"]
    assert len(errors) == 1
    assert f"at least {MIN_STATUS_TOKEN_LENGTH}" in errors[0].msg
    assert token not in errors[0].msg.replace("at least", "")  # the message never quotes it


@pytest.mark.parametrize("token", [None, "", "t" * MIN_STATUS_TOKEN_LENGTH])
def test_no_token_or_a_long_enough_one_passes(settings, token):
    settings.BGTASK_STATUS_TOKEN = token
    assert [e.id for e in check_settings()] == []


# -- C1: django-background-tasks' process_tasks shadowing bgtask's --------------------------------


def test_no_warning_when_bgtask_comes_first():
    assert check_process_tasks_command() == []


@pytest.mark.django_db(transaction=True)
def test_process_tasks_warns_when_django_background_tasks_is_listed_first():
    tasks.record("left-queued", schedule=0)
    done = subprocess.run(
        [sys.executable, "-m", "django", "process_tasks", "--duration", "1"],
        env=worker_env(DJANGO_SETTINGS_MODULE="tests.settings_legacy_first"),
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    # The old library's command ran (the task is still queued), but now it says so.
    assert Task.objects.get().status == Task.QUEUED
    assert "bgtask.W001" in done.stderr
    assert "'background_task' is listed before 'bgtask'" in done.stderr


# -- C3: enqueue with USE_TZ = False ------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    "enqueue",
    [
        lambda: tasks.record("naive"),
        lambda: tasks.record.bulk([("naive",)]),
        lambda: tasks.record.bulk([("naive",)], return_tasks=False),
        lambda: enqueue_many([tasks.record.call("naive")]),
        lambda: tasks.record("naive", unique=True),
    ],
    ids=["call", "bulk", "bulk-count", "enqueue_many", "unique"],
)
def test_an_enqueue_with_use_tz_off_is_refused_like_check_e001(settings, enqueue):
    settings.USE_TZ = False
    with pytest.raises(ImproperlyConfigured) as raised:
        enqueue()
    assert USE_TZ_MESSAGE in str(raised.value)
    [e001] = [e for e in check_settings() if e.id == "bgtask.E001"]
    assert e001.msg == USE_TZ_MESSAGE
    settings.USE_TZ = True
    assert Task.objects.count() == 0


# The Django Tasks backend (bgtask.backends) is left out on purpose: Django's Tasks API lets a
# project with USE_TZ = False enqueue and read back naive run_after values, and
# tests/compat/test_run_after.py keeps that working.


# -- C3: a partly migrated database -------------------------------------------------------------


def _latest_and_previous() -> tuple[str, str]:
    graph = MigrationExecutor(connection).loader.graph
    [latest] = [name for app, name in graph.leaf_nodes() if app == "bgtask"]
    # The migration before the one that added verbose_name (0005): a database one release behind.
    return latest, "0004_claim_friendly_indexes"


@pytest.mark.django_db(transaction=True)
def test_an_enqueue_on_a_partly_migrated_database_says_run_migrate():
    latest, previous = _latest_and_previous()
    call_command("migrate", "bgtask", previous, verbosity=0)
    try:
        with pytest.raises(DatabaseNotMigrated) as raised:
            tasks.record("too-early")
        message = str(raised.value)
        assert "Run `python manage.py migrate`" in message
        assert "0005_compat" in message
        with pytest.raises(DatabaseNotMigrated):
            tasks.record.bulk([("too-early",)], return_tasks=False)
        if django.VERSION >= (6,):
            from tests.features.django_tasks import add

            with pytest.raises(DatabaseNotMigrated):
                add.enqueue(1, 2)  # the Django Tasks backend
    finally:
        call_command("migrate", "bgtask", latest, verbosity=0)
    tasks.record("after-migrate")
    assert Task.objects.count() == 1


@pytest.mark.parametrize(
    "message",
    [
        "server closed the connection unexpectedly",  # PostgreSQL, libpq
        "consuming input failed: terminating connection due to administrator command",
        "(2013, 'Lost connection to MySQL server during query')",
        "(2003, \"Can't connect to MySQL server on '127.0.0.1' (111)\")",
        "(1205, 'Lock wait timeout exceeded; try restarting transaction')",
        "database is locked",  # SQLite
    ],
)
def test_outage_and_lock_errors_are_not_taken_for_missing_migrations(message):
    """Those pass through unchanged, without a query to a database that is not answering (the
    missing-column errors of each database are matched in the test above, on that database)."""
    from bgtask.enqueue.readiness import SCHEMA_ERROR_WORDS

    assert not SCHEMA_ERROR_WORDS.search(message)
