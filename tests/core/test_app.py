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


@pytest.mark.django_db
def test_check_and_worker_start_on_mariadb_print_no_w037_for_bgtasks_own_indexes():
    """Issue 20 B4: ``models.W037`` was printed once per conditional index of Task (5 times) by
    ``check`` and at every worker start on MariaDB. The conditions are deliberate (migration 0002
    gives MariaDB full indexes instead), so bgtask's model drops the warning for itself."""
    from django.db import connection

    if connection.features.supports_partial_indexes:
        pytest.skip("W037 is MariaDB/MySQL's: this database supports partial indexes")
    done = subprocess.run(
        [sys.executable, "-m", "django", "check"],
        env=worker_env(),
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "W037" not in done.stdout + done.stderr


@pytest.mark.django_db
def test_a_users_own_conditional_index_still_gets_w037_on_mariadb():
    """The filter is for bgtask's model only: a user's model keeps Django's warning."""
    from django.db import connection, models
    from django.test.utils import isolate_apps

    if connection.features.supports_partial_indexes:
        pytest.skip("W037 is MariaDB/MySQL's: this database supports partial indexes")
    with isolate_apps("tests.sampleapp"):

        class Invoice(models.Model):
            paid = models.BooleanField(default=False)

            class Meta:
                app_label = "sampleapp"
                indexes = [
                    models.Index(fields=["id"], condition=models.Q(paid=False), name="unpaid_idx")
                ]

            def __str__(self) -> str:
                return str(self.pk)

        ids = [error.id for error in Invoice.check(databases=["default"])]
    assert ids == ["models.W037"]
