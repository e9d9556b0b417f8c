"""Django set up once per Lambda container, and connections checked around each invocation."""

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


def close_connections() -> None:
    """Close this thread's database connections, except one a caller's transaction still uses.

    Called at the start of an invocation (a connection from a frozen container may be dead) and at
    its end (a frozen container must not hold a server connection slot).
    """
    from django.db import connections

    for connection in connections.all(initialized_only=True):
        if not connection.in_atomic_block:
            connection.close()
