"""Lambda entrypoint for deploy-time management commands: ``handlers.manage.handler``.

Event: ``{"command": "migrate", "args": ["--plan"]}``. Only the commands in ``ALLOWED_COMMANDS``
run, never interactively: Django's ``migrate``, ``showmigrations``, ``check`` and
``createsuperuser``, and bgtask's operations command (``{"command": "bgtask", "args": ["list",
"--status", "failed"]}``: list, show, retry, cancel, pause, resume, stats). ``createsuperuser``
takes its password from the event's ``"password"`` (or the function's
``DJANGO_SUPERUSER_PASSWORD``), which is never echoed back or logged:

    {"command": "createsuperuser",
     "args": ["--username", "admin", "--email", "admin@example.com"], "password": "..."}
"""

from __future__ import annotations

import io
import os
from typing import Any

from handlers.bootstrap import close_connections, ensure_database, init_phase
from handlers.events import UnexpectedEvent

init_phase()  # Lambda's init phase: Django set up and settings read before the first event

# command -> arguments always added: nothing may wait for a prompt on Lambda.
ALLOWED_COMMANDS: dict[str, list[str]] = {
    "migrate": ["--no-input"],
    "showmigrations": [],
    "check": [],
    "createsuperuser": ["--no-input"],
    "bgtask": [],  # the operations command (bgtask/management/commands/bgtask.py); never prompts
}
# The commands that need the database: checked first, so an unreachable one fails fast and clearly.
DATABASE_COMMANDS = {"migrate", "showmigrations", "createsuperuser", "bgtask"}
# Exit codes of ``bgtask`` that are outcomes, not failures: some task IDs named no task (3) or a
# task not in a state the verb applies to (4), while the others were acted on. The answer says so
# (``exit_code``, ``error``) with the output of what was done; an invocation error would hide it.
PARTIAL_EXIT_CODES = {"bgtask": {3, 4}}
MANAGE_EVENT = (
    '{"command": one of ' + str(sorted(ALLOWED_COMMANDS)) + ', "args": [strings] (optional), '
    '"password": string (createsuperuser only, optional)}'
)


# Options refused in "args": --settings and --pythonpath, which Django's parser accepts but
# call_command ignores (the function's settings come from its environment); --password, which
# createsuperuser does not have (Django would echo the value back in its "unrecognized arguments"
# error; the password belongs in the event's "password"); --help and --version, which make argparse
# print to the process's stdout and raise SystemExit. argparse also takes any unambiguous prefix
# ("--sett", "--he"), so a prefix of these is refused too.
REFUSED_OPTIONS = ("--settings", "--pythonpath", "--password", "--help", "--version")
REFUSED_SHORT_OPTIONS = ("-h",)


def _refused_option(arg: str) -> str | None:
    name = arg.split("=", 1)[0]
    if name in REFUSED_SHORT_OPTIONS:
        return name
    if name.startswith("--") and len(name) > 2:
        return next((full for full in REFUSED_OPTIONS if full.startswith(name)), None)
    return None


class CommandRefused(UnexpectedEvent):
    """The command is not in the allowlist."""


def _shown_command(command: Any) -> str:
    text = repr(command) if isinstance(command, str) else f"a {type(command).__name__}"
    return text if len(text) <= 60 else f"{text[:60]}..."


def _parse(event: Any) -> tuple[str, list[str], str | None]:
    # Error messages name keys and types, never values: an event may carry a password.
    if not isinstance(event, dict) or "command" not in event:
        shape = f"keys {sorted(map(str, event))[:8]}" if isinstance(event, dict) else "a value"
        raise UnexpectedEvent(
            f"The management function expects {MANAGE_EVENT}; "
            f"got a {type(event).__name__} event ({shape})."
        )
    unknown = sorted(map(str, set(event) - {"command", "args", "password"}))
    if unknown:
        raise UnexpectedEvent(f"Unexpected key(s) {unknown[:8]}; expected {MANAGE_EVENT}.")
    command, args, password = event["command"], event.get("args", []), event.get("password")
    if not isinstance(command, str) or command not in ALLOWED_COMMANDS:
        raise CommandRefused(
            f"Command {_shown_command(command)} is not allowed here; "
            f"allowed: {sorted(ALLOWED_COMMANDS)}."
        )
    if not isinstance(args, list) or not all(isinstance(arg, str) for arg in args):
        raise UnexpectedEvent(
            f'"args" must be a list of strings, got a {type(args).__name__}'
            + (
                f" holding {sorted({type(arg).__name__ for arg in args})}"
                if isinstance(args, list)
                else ""
            )
            + "."
        )
    for arg in args:
        refused = _refused_option(arg)
        if refused is not None:
            raise UnexpectedEvent(
                f"Option {refused!r} is refused here: the settings are the function's own, a "
                'password goes in the event\'s "password" key, and help is "manage.py help '
                f'{command}" on your machine.'
            )
    if password is not None and (command != "createsuperuser" or not isinstance(password, str)):
        raise UnexpectedEvent('"password" is a string, and only for "createsuperuser".')
    return command, args, password


def handler(event: Any, context: Any) -> dict[str, Any]:
    """Run one allowed command; return its output. A failing command raises (an invocation
    error, which ``sam remote invoke`` and ``aws lambda invoke`` report), except ``bgtask``'s
    partial outcomes (``PARTIAL_EXIT_CODES``), answered with ``exit_code`` and ``error``."""
    command, args, password = _parse(event)
    from django.core.management import call_command
    from django.core.management.base import CommandError

    output = io.StringIO()
    previous = os.environ.get("DJANGO_SUPERUSER_PASSWORD")
    if password is not None:
        os.environ["DJANGO_SUPERUSER_PASSWORD"] = password
    error: str | None = None
    exit_code = 0
    close_connections()
    try:
        if command in DATABASE_COMMANDS:
            ensure_database()
        call_command(command, *ALLOWED_COMMANDS[command], *args, stdout=output, stderr=output)
    except CommandError as exc:
        if exc.returncode not in PARTIAL_EXIT_CODES.get(command, ()):
            raise
        error, exit_code = str(exc), exc.returncode
    except SystemExit as exc:
        # Whatever still makes a command exit must not end the Lambda runtime with it.
        raise CommandError(f"{command} tried to exit the process (code {exc.code}).") from None
    finally:
        close_connections()
        if password is not None:
            if previous is None:
                os.environ.pop("DJANGO_SUPERUSER_PASSWORD", None)
            else:
                os.environ["DJANGO_SUPERUSER_PASSWORD"] = previous
    answer: dict[str, Any] = {
        "handler": "manage",
        "command": command,
        "args": args,
        "output": output.getvalue(),
    }
    if error is not None:
        answer.update(exit_code=exit_code, error=error)
    return answer
