"""Run a handler with a sample event and a local context, no AWS and no Docker needed.

    python -m handlers.invoke_local infra/events/worker-schedule.json
    python -m handlers.invoke_local infra/events/manage-migrate.json --timeout 300

The handler is picked from the event file's name (worker-*, web-*, manage-*) unless --handler is
given. The database is the project's: DATABASE_URL, or a SQLite file beside manage.py.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from pathlib import Path

from handlers.local_context import LocalContext

HANDLERS = ("worker", "web", "manage")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m handlers.invoke_local", description=__doc__)
    parser.add_argument("event", type=Path, help="JSON file holding the event")
    parser.add_argument("--handler", choices=HANDLERS, help="default: from the file name")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds the context has")
    options = parser.parse_args(argv)

    name = options.handler or options.event.name.split("-", 1)[0]
    if name not in HANDLERS:
        parser.error(f"cannot tell the handler from {options.event.name!r}; pass --handler.")
    event = json.loads(options.event.read_text())
    module = importlib.import_module(f"handlers.{name}")
    answer = module.handler(event, LocalContext(timeout=options.timeout))
    print(json.dumps(answer, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
