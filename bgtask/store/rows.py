"""Claimed rows into ``Task`` instances, without the ORM's per-row machinery.

A claim returns every column of up to ``BGTASK_CLAIM_LIMIT`` rows. Through ``Manager.raw()`` each
row costs a model ``__init__`` (a setattr and default lookup per field), a ``post_init`` dispatch
and a converter call per column: measured on SQLite, more Python per task than the rest of the hot
path together. The rows come straight from the bgtask table, so the only conversion they need is
of datetimes (``USE_TZ`` is required by check bgtask.E001): aware on PostgreSQL, naive in the
connection's time zone (UTC unless ``DATABASES[...]["TIME_ZONE"]`` says otherwise) on MariaDB and
SQLite, where they may also arrive as ISO text. The instances built here are ordinary saved
``Task`` objects (``_state.adding`` False, ``_state.db`` the alias), as ``raw()`` would build, so
signal receivers and ``refresh_from_db()`` see no difference.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, tzinfo
from typing import Any

from django.db import connections, models
from django.db.models.base import ModelState

from bgtask.models import Task

FIELDS = tuple(Task._meta.concrete_fields)
ATTNAMES = tuple(f.attname for f in FIELDS)
DATETIME_POSITIONS = tuple(i for i, f in enumerate(FIELDS) if isinstance(f, models.DateTimeField))


# zone None: a connection without a time zone (USE_TZ off, refused by check bgtask.E001).
def to_aware(value: datetime | str, zone: tzinfo | None) -> datetime:
    """A datetime column as an aware datetime, whichever form the driver returned."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if value.tzinfo is None:
        value = value.replace(tzinfo=zone)
    return value


# Any: the driver's column values (int, str, datetime, float, None, ...).
def tasks_from_rows(alias: str, rows: Iterable[Sequence[Any]]) -> list[Task]:
    """``Task`` instances from rows holding every concrete column, in ``FIELDS`` order."""
    zone = connections[alias].timezone
    tasks = []
    new = Task.__new__
    for row in rows:
        values = list(row)
        for i in DATETIME_POSITIONS:
            value = values[i]
            # Aware already (PostgreSQL) or NULL: nothing to call.
            if value is not None and (type(value) is str or value.tzinfo is None):
                values[i] = to_aware(value, zone)
        task = new(Task)
        task.__dict__.update(zip(ATTNAMES, values, strict=True))
        state = ModelState()
        state.adding = False
        state.db = alias
        task._state = state
        tasks.append(task)
    return tasks
