"""Init happens at import (Lambda's init phase), and a SnapStart restore gets a fresh start: the
handler module sets Django up when it is imported; the hooks registered with the runtime's
snapshot_restore_py close the database connection before the snapshot, and after a restore
re-seed ``random``, forget the clock offset, and the next invocation reconnects and runs."""

from __future__ import annotations

import json

import pytest

from tests.conftest import run_python
from tests.serverless_faults.conftest import direct_database_url

pytestmark = pytest.mark.django_db(transaction=True)

SNAPSHOT_AND_RESTORE = """
import json, random
from django.apps import apps
import handlers.worker  # the init phase
ready_at_import = apps.ready

from django.db import connection
from snapshot_restore_py import get_after_restore, get_before_snapshot
from bgtask import clock
from handlers.local_context import LocalContext

handlers.worker.handler({"duration": 1}, LocalContext(timeout=30))  # a warm container's work
connection.ensure_connection()
clock.now()
measured = bool(clock._offsets)

for hook, args, kwargs in get_before_snapshot():  # as the runtime calls them
    hook(*args, **kwargs)
in_snapshot = {"connection": connection.connection is not None, "offsets": len(clock._offsets)}

# Two containers restored from one snapshot start with the same random state ...
snapshot_state = random.getstate()
for hook, args, kwargs in get_after_restore():
    hook(*args, **kwargs)
restored_state = random.getstate()
answer = handlers.worker.handler({"duration": 1}, LocalContext(timeout=30))
print(json.dumps({
    "ready_at_import": ready_at_import,
    "measured": measured,
    "in_snapshot": in_snapshot,
    "reseeded": restored_state != snapshot_state,
    "hooks": [len(get_before_snapshot()), len(get_after_restore())],
    "ran_after_restore": answer["ran"],
}))
"""


def test_init_at_import_and_a_restored_snapshot_reconnects_reseeds_and_remeasures():
    child = run_python(
        SNAPSHOT_AND_RESTORE,
        DJANGO_SETTINGS_MODULE="tests.serverless_faults.project_settings",
        DATABASE_URL=direct_database_url(),
        DJANGO_SECRET_KEY="snapstart-test-" + "k" * 40,
    )
    assert child.returncode == 0, child.stderr
    result = json.loads(child.stdout.strip().splitlines()[-1])
    assert result == {
        "ready_at_import": True,
        "measured": True,
        "in_snapshot": {"connection": False, "offsets": 0},
        "reseeded": True,
        "hooks": [1, 1],
        "ran_after_restore": True,
    }
