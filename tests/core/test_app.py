"""The app itself: autodiscovery, checks, migrations."""

import subprocess
import sys
from io import StringIO

import pytest
from django.core.management import call_command

from bgtask import registry
from bgtask.checks import check_settings
from tests.conftest import REPO_ROOT, run_python, worker_env


def test_tasks_modules_of_installed_apps_are_imported_at_start_up():
    code = "import django; django.setup(); from bgtask import registry; print(registry.names())"
    done = run_python(code)
    assert done.returncode == 0, done.stderr
    assert "sample.record" in done.stdout and "sample.noop" in done.stdout


def test_an_error_inside_a_tasks_module_propagates():
    done = subprocess.run(
        [sys.executable, "-m", "django", "check"],
        env=worker_env(DJANGO_SETTINGS_MODULE="tests.settings_broken"),
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    assert "tasks module of brokenapp exploded on import" in done.stderr


def test_registry_is_populated_in_this_process_too():
    assert "sample.record" in registry.names()


@pytest.mark.django_db
def test_migrations_match_the_models():
    out = StringIO()
    call_command("makemigrations", "bgtask", "--check", "--dry-run", stdout=out)


def test_checks_refuse_naive_time_and_bad_settings(settings):
    settings.USE_TZ = False
    settings.MAX_ATTEMPTS = 0
    settings.MAX_RUN_TIME = "an hour"
    ids = sorted(error.id for error in check_settings())
    assert ids == ["bgtask.E001", "bgtask.E002", "bgtask.E002"]


@pytest.mark.parametrize(
    "name, value",
    [
        ("BGTASK_OUTCOME_BATCH", 0),
        ("BGTASK_OUTCOME_BATCH", "50"),
        ("BGTASK_OUTCOME_MAX_DELAY", -0.01),
        ("BGTASK_ASYNC_COMMIT", "yes"),
        ("BGTASK_LISTEN", "on"),
        ("BGTASK_IDLE_POLL", 0),
    ],
)
def test_checks_refuse_bad_outcome_settings(settings, name, value):
    setattr(settings, name, value)
    errors = check_settings()
    assert [error.id for error in errors] == ["bgtask.E002"]
    assert name in errors[0].msg
