"""Hostile tasks for the reliability suite (autodiscovered: tests.reliability is installed)."""

import json
import os
import sys

from django.conf import settings

from bgtask import background


@background(name="rel.always_raise")
def always_raise():
    raise RuntimeError("poison: always raises")


@background(name="rel.raise_system_exit")
def raise_system_exit():
    sys.exit(3)


@background(name="rel.raise_keyboard_interrupt")
def raise_keyboard_interrupt():
    raise KeyboardInterrupt("poison: Ctrl-C from inside a task")


@background(name="rel.return_non_json")
def return_non_json():
    return {"when": object(), "items": {1, 2}}


@background(name="rel.recurse_forever")
def recurse_forever(depth=0):
    return recurse_forever.func(depth + 1)


@background(name="rel.leak_secrets")
def leak_secrets():
    """Fails with every secret it can reach in its message, the way a careless client library
    would quote a connection string or a header."""
    password = settings.DATABASES["default"].get("PASSWORD") or ""
    raise RuntimeError(
        f"could not authenticate: key={settings.SECRET_KEY} db_password={password} "
        f"token={os.environ.get('BGTASK_TEST_API_TOKEN', '')} "
        f"url=postgres://app:{os.environ.get('BGTASK_TEST_URL_PASSWORD', 'hunter2-url')}@db/app"
    )


class _UnprintableError(Exception):
    def __str__(self):
        raise ValueError("this exception cannot be shown")


@background(name="rel.raise_unprintable")
def raise_unprintable():
    raise _UnprintableError()


@background(name="rel.raise_huge_message")
def raise_huge_message(megabytes=20):
    raise RuntimeError("x" * (megabytes * 1024 * 1024))


@background(name="rel.return_huge_result")
def return_huge_result(megabytes=20):
    return "y" * (megabytes * 1024 * 1024)


@background(name="rel.exit_process_once")
def exit_process_once(key, marker_path):
    """The first run ends its whole process with os._exit (no cleanup at all); later runs
    return."""
    from pathlib import Path

    from tests.sampleapp.models import Execution

    Execution.objects.create(key=key, pid=os.getpid())
    marker = Path(marker_path)
    if not marker.exists():
        marker.write_text(str(os.getpid()))
        os._exit(3)
    return "second run"


@background(name="rel.observe_unwritten")
def observe_unwritten(key):
    """Record how many sample.record tasks have run (their side effect exists) while their row is
    still ``running`` (their success not written yet), and how many rows are running in all."""
    import json

    from bgtask.models import Task
    from tests.sampleapp.models import Execution

    running = list(Task.objects.running().values_list("task_name", "arguments"))
    running_keys = {json.loads(a)["args"][0] for name, a in running if name == "sample.record"}
    unwritten = Execution.objects.filter(key__in=running_keys).count()
    Execution.objects.create(key=f"{key}:unwritten={unwritten}:running={len(running)}")


@background(name="rel.leak_escaped_secret")
def leak_escaped_secret():
    """Fails quoting the database password the ways libraries do: with ``!r``, inside a JSON
    error body, and as the repr of a dict holding that JSON."""
    password = settings.DATABASES["default"].get("PASSWORD") or ""
    body = json.dumps({"error": "auth failed", "password": password})
    raise RuntimeError(
        f"could not authenticate with password={password!r} response={body} "
        f"context={ {'body': body, 'password': password}!r} ascii={password!a}"
    )
