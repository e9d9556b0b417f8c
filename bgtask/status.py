"""Documented import path of the health figures: ``from bgtask.status import health, queue_stats``.

They live with the web side that shows them, ``bgtask.web.status``.
"""

from bgtask.web.status import QueueStats, due_count, health, queue_stats

__all__ = ["QueueStats", "due_count", "health", "queue_stats"]
