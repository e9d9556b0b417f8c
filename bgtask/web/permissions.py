"""Who may read the queue: one rule for the dashboard and the status endpoint.

The figures name queues, tasks and workers, so reading them takes what reading the tasks in the
admin takes: an active staff user with bgtask's ``view_task`` or ``change_task`` permission (a
superuser has both). Being staff alone is not enough; a staff user who may only edit, say, blog
posts sees neither the tasks nor their figures. (The status endpoint's bearer token is the other
way in; see ``bgtask.web.views``.)
"""

from __future__ import annotations

from typing import Any

from bgtask.models import Task


def can_read_queue(user: Any) -> bool:
    """Whether ``user`` may see the dashboard and the status endpoint's figures."""
    if user is None or not user.is_authenticated or not (user.is_active and user.is_staff):
        return False
    label = Task._meta.app_label
    # user is Any (any auth user model, or a bare object in a test); has_perm returns a bool.
    return user.has_perm(f"{label}.view_task") or user.has_perm(f"{label}.change_task")  # type: ignore[no-any-return]
