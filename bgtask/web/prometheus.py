"""The status figures in Prometheus' exposition format, built with ``prometheus_client``'s
collector interface (``bgtask[prometheus]``). The view is ``bgtask.web.views.metrics``.

Every figure is read from the database at scrape time (``bgtask.web.status.queue_stats``), so any
number of web processes answer the same; nothing is counted in process memory. The outcome counts
are gauges, not counters: they are counts over a sliding window (or over the history kept until
pruning), which can go down.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

from bgtask.web.status import queue_stats

try:
    from prometheus_client import CollectorRegistry, generate_latest
    from prometheus_client.core import GaugeMetricFamily, Metric
except ImportError:  # the extra is not installed: the view says how to install it
    AVAILABLE = False
else:
    AVAILABLE = True

#: The exposition format's media type (prometheus_client's CONTENT_TYPE_LATEST, text format 0.0.4).
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# (metric name, QueueStats key, help text)
GAUGES = (
    ("bgtask_queue_due_tasks", "due", "Queued tasks that are due now."),
    ("bgtask_queue_scheduled_tasks", "scheduled", "Queued tasks due later (scheduled, retrying)."),
    ("bgtask_queue_running_tasks", "running", "Tasks claimed by a worker and running."),
    ("bgtask_queue_lag_seconds", "oldest_due_age", "Seconds the oldest due task has waited."),
    ("bgtask_queue_failed_tasks", "failed", "Tasks failed for good, in the kept history."),
    ("bgtask_queue_failed_last_hour", "failed_last_hour", "Tasks failed for good, last hour."),
    ("bgtask_queue_failed_last_day", "failed_last_day", "Tasks failed for good, last 24 h."),
    ("bgtask_queue_succeeded_last_hour", "succeeded_last_hour", "Tasks succeeded, last hour."),
    ("bgtask_queue_succeeded_last_day", "succeeded_last_day", "Tasks succeeded, last 24 h."),
)


class QueueCollector:
    """A ``prometheus_client`` collector: one gauge family per figure, one sample per queue."""

    def __init__(self, now: datetime | None = None, using: str | None = None) -> None:
        self.now = now
        self.using = using

    def collect(self) -> Iterator[Metric]:
        stats = queue_stats(self.now, self.using)
        for name, key, help_text in GAUGES:
            family = GaugeMetricFamily(name, help_text, labels=["queue"])
            for queue, figures in sorted(stats.items()):
                family.add_metric([queue], float(figures[key]))  # type: ignore[literal-required]
            yield family


def exposition(now: datetime | None = None, using: str | None = None) -> bytes:
    """The text a scrape receives; raises ``ImportError`` without ``prometheus_client``."""
    if not AVAILABLE:
        raise ImportError(
            "The /metrics view needs prometheus_client: pip install 'bgtask[prometheus]'."
        )
    registry: Any = CollectorRegistry(auto_describe=False)
    registry.register(QueueCollector(now, using))
    return bytes(generate_latest(registry))
