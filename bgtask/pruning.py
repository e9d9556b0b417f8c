"""Public import path of ``prune`` and ``prunable``: ``from bgtask.pruning import prune``.

The feature lives in ``bgtask.features.pruning``.
"""

from bgtask.features.pruning import prunable, prune

__all__ = ["prunable", "prune"]
