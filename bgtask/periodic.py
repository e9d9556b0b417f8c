"""Public import path of ``@periodic``: ``from bgtask.periodic import periodic``.

The feature lives in ``bgtask.features.periodic``.
"""

from bgtask.features.periodic import PeriodicTask, periodic

__all__ = ["PeriodicTask", "periodic"]
