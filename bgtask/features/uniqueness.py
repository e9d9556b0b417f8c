"""Unique tasks: at most one *pending* task per task name and arguments.

"Pending" means the row is ``queued`` (due now, scheduled for later, or waiting for a retry) or
``running``: the row holds ``unique_key`` from its enqueue until it succeeds, fails for good or is
cancelled, when the key is cleared. The database's unique constraint on ``unique_key`` is the only
arbiter, so two processes enqueueing the same call at the same instant can never both win.

- ``unique="refuse"`` (or ``True``): a pending duplicate makes the call raise ``DuplicateTask``
  (carrying the pending task's id); nothing is written.
- ``unique="replace"``: a *queued* duplicate is deleted and the new call takes its place, in one
  transaction. A *running* duplicate cannot be replaced (it finishes), so the call raises
  ``DuplicateTask`` too.

>>> rebuild_index(shop_id=3, unique="replace")
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from django.db import IntegrityError, OperationalError, router, transaction

from bgtask.exceptions import DuplicateTask
from bgtask.models import Task
from bgtask.store import TaskStore

REFUSE, REPLACE = "refuse", "replace"
# Attempts at a unique insert when concurrent enqueuers keep taking the key from under us.
INSERT_ATTEMPTS = 5


def check_unique(unique: Any) -> str | None:
    """``None``/``False`` (not unique), ``True``/``"refuse"`` or ``"replace"``."""
    if unique is None or unique is False:
        return None
    if unique is True:
        return REFUSE
    if unique in (REFUSE, REPLACE):
        return str(unique)
    raise ValueError(f'unique must be True, False, "refuse" or "replace", got {unique!r}.')


def unique_key_for(task_name: str, arguments: str) -> str:
    """The key a pending call holds: a digest of its task name and arguments, with keyword
    arguments in sorted order (``f(a=1, b=2)`` and ``f(b=2, a=1)`` are the same call)."""
    canonical = json.dumps(json.loads(arguments), sort_keys=True, separators=(",", ":"))
    digest = hashlib.sha256(f"{task_name}\0{canonical}".encode()).hexdigest()
    return f"sha256:{digest}"


def _holder(key: str, using: str) -> Task | None:
    return Task.objects.using(using).filter(unique_key=key).only("id", "status").first()


def insert_unique(task: Task, mode: str, using: str | None = None) -> Task:
    """Insert ``task`` (whose ``unique_key`` is set) honouring ``mode``; return it saved."""
    using = using or router.db_for_write(Task)
    key = task.unique_key
    assert key, "insert_unique needs a row with a unique_key"
    for _ in range(INSERT_ATTEMPTS):
        try:
            with transaction.atomic(using=using):
                store = TaskStore(using)
                if mode == REPLACE:
                    store.delete_queued_with_key(key)
                task.pk = None
                return store.insert(task)
        except IntegrityError:
            holder = _holder(key, using)
            if holder is None:
                continue  # it finished between our insert and this look-up: try again
            if mode == REFUSE or holder.status == Task.RUNNING:
                raise DuplicateTask(
                    f"Task {task.task_name} with these arguments is already pending as "
                    f"#{holder.id} ({holder.status}); unique={mode!r} refuses a second one.",
                    existing_id=holder.id,
                ) from None
            # replace: another enqueuer slipped a new queued row in after our delete; go again.
        except OperationalError as exc:
            # MariaDB may pick one of two concurrent replacers as a deadlock victim.
            if "deadlock" not in str(exc).lower():
                raise
    holder = _holder(key, using)
    raise DuplicateTask(
        f"Task {task.task_name}: gave up after {INSERT_ATTEMPTS} attempts to replace a pending "
        "duplicate that concurrent enqueuers kept replacing.",
        existing_id=holder.id if holder else None,
    )
