"""Django set up once per Lambda container, in the init phase, and connections checked around
each invocation."""

from __future__ import annotations

import os

DEFAULT_SETTINGS = "handlers.project.settings"


def setup_django() -> None:
    """Configure Django the first time it is called in this process (a no-op afterwards).

    ``DJANGO_SETTINGS_MODULE`` is honoured when set; otherwise the project in handlers/project.
    """
    from django.apps import apps

    if apps.ready:
        return
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", DEFAULT_SETTINGS)
    import django

    django.setup()


def init_phase() -> None:
    """What every handler module does when it is imported, i.e. in Lambda's init phase: set
    Django up (which reads the settings, and so the secrets) and register the SnapStart hooks.

    Done here rather than in the first invocation, so that its cost is billed as init (and, with
    SnapStart, paid once per version, before the snapshot), not added to the first request.
    """
    setup_django()
    check_model_references()
    load_database_backends()
    from handlers import snapstart

    snapstart.register()


def load_database_backends() -> None:
    """Import each configured database's backend (psycopg, PyMySQL or sqlite3, and Django's
    backend modules) and the SQL compiler, without connecting.

    Django loads them on the first query otherwise, i.e. in the first invocation; here they are
    part of the init phase (and of a SnapStart snapshot). No connection is opened: the network
    belongs to the invocations (and a snapshot must not hold one).
    """
    from django.db import connections
    from django.db.models.sql import compiler  # noqa: F401  (every query needs it)

    for alias in connections:
        connections[alias]  # creating the wrapper imports the backend; it does not connect


class ModelOutsideTheApps(RuntimeError):
    """A model of the function's apps refers to a model whose app its settings leave out."""


def check_model_references() -> None:
    """Refuse to start when a model refers to a model of an app that is not installed.

    The worker's settings leave ``django.contrib.auth`` out (handlers/project/worker_settings.py);
    a project model with a ``ForeignKey`` to the user model would then load without complaint
    (Django only reports it in ``manage.py check``, which a function never runs) and fail in
    whichever task first follows it. Django keeps such unresolved references as pending
    operations of the app registry; this looks at them once, after set-up.
    """
    from django.apps import apps

    pending = sorted(f"{app}.{model}" for app, model in apps._pending_operations)
    if pending:
        raise ModelOutsideTheApps(
            f"Models refer to {', '.join(pending)}, whose app is not in INSTALLED_APPS of "
            f"{os.environ.get('DJANGO_SETTINGS_MODULE')}. Add the app (for the user model: "
            "django.contrib.auth and django.contrib.contenttypes) back to the function's "
            "settings."
        )


def close_connections() -> None:
    """Close this thread's database connections, except one a caller's transaction still uses.

    Called at the start of an invocation (a connection from a frozen container may be dead) and at
    its end (a frozen container must not hold a server connection slot).
    """
    from django.db import connections

    for connection in connections.all(initialized_only=True):
        if not connection.in_atomic_block:
            connection.close()


class DatabaseUnavailable(RuntimeError):
    """The database could not be reached; nothing was read or written, the next invocation
    tries again. The message names the server, never the credentials."""


def ensure_database(alias: str = "default") -> None:
    """Connect to the database now, or raise ``DatabaseUnavailable`` saying which one failed.

    >>> ensure_database()  # returns at once when the database answers

    Called before an invocation does any work, so that an unreachable database ends it within the
    connect timeout (``DATABASE_CONNECT_TIMEOUT``), not after a half-done batch. With a database
    secret (``DATABASE_SECRET_ARN``), a refused connection re-reads it and, if it changed, tries
    the new credentials once.
    """
    from django.db import DatabaseError, InterfaceError, connections

    connection = connections[alias]
    try:
        try:
            connection.ensure_connection()
        except (DatabaseError, InterfaceError):
            # Refused: maybe the secret was rotated since start-up. Try once more if it changed.
            from handlers.secrets import refresh_database_credentials

            if not refresh_database_credentials(alias):
                raise
            connection.ensure_connection()
    except (DatabaseError, InterfaceError) as exc:
        settings = connection.settings_dict
        where = (
            f" at {settings.get('HOST') or 'localhost'}:{settings.get('PORT') or 'default port'}"
            if connection.vendor != "sqlite"
            else ""
        )
        raise DatabaseUnavailable(
            f"Could not reach the {connection.vendor} database {str(settings.get('NAME'))!r}"
            f"{where} ({type(exc).__name__}: {str(exc).strip()[:300]}). Nothing was run; check "
            "DATABASE_URL and that the server is up and reachable from the function."
        ) from exc
