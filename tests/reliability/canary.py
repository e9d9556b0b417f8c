"""A module that must never be imported by a worker: a row naming ``tests.reliability.canary.run``
tests that task names are looked up in the registry, never imported from a dotted path."""

import os
from pathlib import Path

_marker = os.environ.get("BGTASK_CANARY_MARKER")
if _marker:
    Path(_marker).write_text("imported")
IMPORTED = True


def run():
    return "the canary ran"
