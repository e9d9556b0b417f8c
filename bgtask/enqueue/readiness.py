"""Refuse an enqueue the worker could not honour, with the message a check would give.

``manage.py check``, ``migrate`` and ``process_tasks`` stop on check bgtask.E001 (``USE_TZ``), but
an enqueue from the shell, a view or a script runs no checks: without this, it would write a row
with a naive ``run_at``. And on a database where bgtask's migrations are not all applied, an
insert fails with the driver's words (``no column named verbose_name``); this says what to do.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import Error, OperationalError, ProgrammingError, connections, router

from bgtask.checks import USE_TZ_MESSAGE
from bgtask.exceptions import DatabaseNotMigrated
from bgtask.models import Task

# Words of every supported driver's "no such table/column" errors (SQLite: "no such table",
# "has no column named"; MySQL: "Unknown column", "Table ... doesn't exist"; PostgreSQL:
# "column ... does not exist", "relation ... does not exist"), and of none of their
# lost-connection or lock errors.
SCHEMA_ERROR_WORDS = re.compile(r"\b(column|table|relation)\b", re.IGNORECASE)


def check_use_tz() -> None:
    """Raise ``ImproperlyConfigured`` (check bgtask.E001's message) when ``USE_TZ`` is off."""
    if not settings.USE_TZ:
        raise ImproperlyConfigured(f"{USE_TZ_MESSAGE} Set USE_TZ = True (Django's default).")


def unapplied_migrations(using: str) -> list[str] | None:
    """bgtask's migrations not applied on ``using`` (``[]``: all applied), or ``None`` when the
    database cannot say (its transaction is broken by the error being explained)."""
    # Imported here: only an enqueue that failed needs it (a Lambda cold start does not).
    from django.db.migrations.executor import MigrationExecutor

    app_label = Task._meta.app_label
    try:
        executor = MigrationExecutor(connections[using])
        targets = [key for key in executor.loader.graph.leaf_nodes() if key[0] == app_label]
        plan = executor.migration_plan(targets)
    except Error:  # a broken transaction, or a lost connection (InterfaceError)
        return None
    return [migration.name for migration, backwards in plan if not backwards]


@contextmanager
def writing_tasks(using: str | None = None, *, aware_time: bool = True) -> Iterator[None]:
    """Around every insert of task rows: refuse naive time first (unless ``aware_time=False``:
    the Django Tasks backend follows Django's rules there), and turn a database error caused by
    missing migrations into ``DatabaseNotMigrated``."""
    if aware_time:
        check_use_tz()
    try:
        yield
    # What a missing table or column raises (sqlite3 and MySQL: OperationalError; PostgreSQL:
    # ProgrammingError). A lost connection or a lock is an OperationalError too: its words
    # differ, and it goes on unchanged, without a query to a database that is not answering.
    except (OperationalError, ProgrammingError) as exc:
        if not SCHEMA_ERROR_WORDS.search(str(exc)):
            raise
        alias = using or router.db_for_write(Task)
        missing = unapplied_migrations(alias)
        if missing:
            raise DatabaseNotMigrated(
                f"Could not write the task: database {alias!r} lacks bgtask's migrations "
                f"{', '.join(missing)} ({exc}). Run `python manage.py migrate`."
            ) from exc
        if missing is None:  # inside a transaction the error broke (PostgreSQL): a hint only
            exc.add_note(
                "bgtask: if `python manage.py showmigrations bgtask` lists migrations not "
                "applied, run `python manage.py migrate`."
            )
        raise
