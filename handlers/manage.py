"""Lambda entrypoint for deploy-time management commands: ``handlers.manage.handler``.

Event: ``{"command": "migrate", "args": ["--plan"]}``. Only the commands in ``ALLOWED_COMMANDS``
run, never interactively. ``createsuperuser`` takes its password from the event's ``"password"``
(or the function's ``DJANGO_SUPERUSER_PASSWORD``), which is never echoed back or logged:

    {"command": "createsuperuser",
     "args": ["--username", "admin", "--email", "admin@example.com"], "password": "..."}
"""

from __future__ import annotations

import io
import os
from typing import Any

from handlers.bootstrap import close_connections, setup_django
from handlers.events import UnexpectedEvent

# command -> arguments always added: nothing may wait for a prompt on Lambda.
ALLOWED_COMMANDS: dict[str, list[str]] = {
    "migrate": ["--no-input"],
    "showmigrations": [],
    "check": [],
    "createsuperuser": ["--no-input"],
}
MANAGE_EVENT = (
    '{"command": one of ' + str(sorted(ALLOWED_COMMANDS)) + ', "args": [strings] (optional), '
    '"password": string (createsuperuser only, optional)}'
)


class CommandRefused(UnexpectedEvent):
    """The command is not in the allowlist."""


def _parse(event: Any) -> tuple[str, list[str], str | None]:
    if not isinstance(event, dict) or "command" not in event:
        raise UnexpectedEvent(
            f"The management function expects {MANAGE_EVENT}; got {event!r:.200}."
        )
    unknown = sorted(set(event) - {"command", "args", "password"})
    if unknown:
        raise UnexpectedEvent(f"Unexpected key(s) {unknown}; expected {MANAGE_EVENT}.")
    command, args, password = event["command"], event.get("args", []), event.get("password")
    if command not in ALLOWED_COMMANDS:
        raise CommandRefused(
            f"Command {command!r} is not allowed here; allowed: {sorted(ALLOWED_COMMANDS)}."
        )
    if not isinstance(args, list) or not all(isinstance(arg, str) for arg in args):
        raise UnexpectedEvent(f'"args" must be a list of strings, got {args!r}.')
    if password is not None and (command != "createsuperuser" or not isinstance(password, str)):
        raise UnexpectedEvent('"password" is a string, and only for "createsuperuser".')
    return command, args, password


def handler(event: Any, context: Any) -> dict[str, Any]:
    """Run one allowed command; return its output. A failing command raises (an invocation
    error, which ``sam remote invoke`` and ``aws lambda invoke`` report)."""
    command, args, password = _parse(event)
    setup_django()
    from django.core.management import call_command

    output = io.StringIO()
    previous = os.environ.get("DJANGO_SUPERUSER_PASSWORD")
    if password is not None:
        os.environ["DJANGO_SUPERUSER_PASSWORD"] = password
    close_connections()
    try:
        call_command(command, *ALLOWED_COMMANDS[command], *args, stdout=output, stderr=output)
    finally:
        close_connections()
        if password is not None:
            if previous is None:
                os.environ.pop("DJANGO_SUPERUSER_PASSWORD", None)
            else:
                os.environ["DJANGO_SUPERUSER_PASSWORD"] = previous
    return {"handler": "manage", "command": command, "args": args, "output": output.getvalue()}
