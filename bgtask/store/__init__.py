"""The one layer that speaks SQL. The rest of bgtask calls these domain verbs.

Every write that finishes a run is guarded by the lease holder (``locked_by``), so a worker whose
lease expired and whose task was taken over can never overwrite the newer run's outcome.
"""

from bgtask.store.tasks import TaskStore

__all__ = ["TaskStore"]
