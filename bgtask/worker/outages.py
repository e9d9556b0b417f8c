"""What bgtask does when its database goes away: tell an outage from a configuration or schema
error, and say it in one line. (What a batch could not write or hand back is owed by the
completer: ``bgtask.worker.completer.Owed``.)

An *outage* (connection refused or dropped, server shutting down or restarting, too many
connections, a lock wait that timed out) is worth waiting out: ``process_tasks`` retries with
backoff. A wrong password, a missing database, table or column is not: waiting cannot fix it, so
it ends ``process_tasks`` with one line saying what to check.
"""

from __future__ import annotations

import logging

from django.db import InterfaceError, OperationalError, connections

from bgtask.exceptions import DatabaseUnavailable
from bgtask.redaction import redact

logger = logging.getLogger("bgtask.outages")

# Driver errors that waiting will not fix. Everything else an OperationalError or InterfaceError
# says is taken as the database being away for a while.
# MySQL/MariaDB error codes: access denied (1044, 1045, 1698), unknown database (1049), unknown
# column (1054), no such table (1146), unknown server host (2005).
MYSQL_PERMANENT_CODES = frozenset({1044, 1045, 1049, 1054, 1146, 1698, 2005})
# PostgreSQL SQLSTATE classes: invalid authorization (28), unknown database (3D), syntax error or
# undefined object (42).
POSTGRES_PERMANENT_CLASSES = ("28", "3D", "42")
# What a failed PostgreSQL connect says (it carries no SQLSTATE) and what SQLite says when the
# schema is wrong.
PERMANENT_MESSAGES = (
    "password authentication failed",
    "no password supplied",
    "does not exist",  # database "x" / role "x" does not exist
    "no such table",
    "no such column",
    "syntax error",
)


def is_outage(error: BaseException) -> bool:
    """True when ``error`` says the database is unreachable for now, not misconfigured."""
    if isinstance(error, DatabaseUnavailable):
        return True
    if not isinstance(error, (OperationalError, InterfaceError)):
        return False
    cause = error.__cause__ or error
    code = getattr(cause, "args", (None,))[0] if getattr(cause, "args", None) else None
    if isinstance(code, int) and code in MYSQL_PERMANENT_CODES:
        return False
    sqlstate = getattr(cause, "sqlstate", None)
    if isinstance(sqlstate, str) and sqlstate.startswith(POSTGRES_PERMANENT_CLASSES):
        return False
    text = str(cause).lower()
    return not any(message in text for message in PERMANENT_MESSAGES)


def where(alias: str) -> str:
    """``'default' (postgresql at db.internal:5432)``: the alias and server, never credentials."""
    connection = connections[alias]
    settings = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"{alias!r} (sqlite {settings.get('NAME')})"
    host = settings.get("HOST") or "localhost"
    port = settings.get("PORT") or "default port"
    return f"{alias!r} ({connection.vendor} at {host}:{port})"


def first_line(error: BaseException) -> str:
    """The driver's message on one line, short, with any secret it quotes redacted."""
    text = " ".join(str(error).split()) or type(error).__name__
    return redact(text)[:300]


def unavailable(alias: str, error: BaseException) -> DatabaseUnavailable:
    """The one-line ``DatabaseUnavailable`` for ``error`` (raise it ``from None``)."""
    if isinstance(error, DatabaseUnavailable):
        return error
    return DatabaseUnavailable(f"Database {where(alias)} is unavailable: {first_line(error)}")


def close_quietly(alias: str) -> None:
    """Drop this thread's connection to ``alias`` so the next attempt opens a new one."""
    try:
        connections[alias].close()
    except Exception:  # a dead connection may fail to close; it is gone either way
        logger.debug("Closing the connection to %r failed.", alias, exc_info=True)


def log_housekeeping_failure(log: logging.Logger, what: str, error: BaseException) -> None:
    """Log a failed piece of housekeeping (pruning, periodic enqueue): one INFO line when the
    database is away (whoever needs it next reports the outage), the traceback otherwise."""
    if is_outage(error):
        log.info("%s skipped, the database is unavailable: %s", what, first_line(error))
    else:
        log.exception("%s failed; the next batch will try again.", what)
