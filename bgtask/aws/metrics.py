"""CloudWatch Embedded Metric Format: metrics as one JSON log line, no API call, no VPC endpoint.

CloudWatch Logs turns each line into metrics in ``BGTASK_METRICS_NAMESPACE`` (dimension
``Queue``; ``all`` when the worker drains every queue). The line also carries the invocation's
``requestId``, under the same name as every other log line of the function, so one filter
(``{ $.requestId = "..." }``) finds them all.

>>> emf_line("bgtask", "all", {"Succeeded": 3}, {"Succeeded": "Count"}, timestamp_ms=0)
'{"_aws": {"Timestamp": 0, ...}, "Queue": "all", "Succeeded": 3}'
"""

from __future__ import annotations

import json
import sys
import time
from typing import IO, Any

from bgtask.web.status import queue_stats
from bgtask.worker.batch import BatchResult

ALL_QUEUES = "all"


def emf_line(
    namespace: str,
    queue: str,
    values: dict[str, float],
    units: dict[str, str],
    *,
    timestamp_ms: int | None = None,
    request_id: str | None = None,
) -> str:
    document: dict[str, object] = {
        "_aws": {
            "Timestamp": int(time.time() * 1000) if timestamp_ms is None else timestamp_ms,
            "CloudWatchMetrics": [
                {
                    "Namespace": namespace,
                    "Dimensions": [["Queue"]],
                    "Metrics": [{"Name": name, "Unit": units[name]} for name in values],
                }
            ],
        },
        "Queue": queue,
        **values,
    }
    if request_id is not None:
        # A property, not a dimension: CloudWatch keeps it in the log event only.
        document["requestId"] = request_id
    return json.dumps(document)


def batch_metrics(
    result: BatchResult, queue: str | None
) -> tuple[dict[str, float], dict[str, Any]]:
    """Queue depth and oldest due age (after the batch) plus what the batch did."""
    stats = queue_stats(include_history=False)  # depth and lag only: cheap after every batch
    chosen = [stats[queue]] if queue is not None and queue in stats else []
    if queue is None:
        chosen = list(stats.values())
    values = {
        "QueueDepth": sum(s["due"] for s in chosen),
        "OldestDueAge": max((s["oldest_due_age"] for s in chosen), default=0.0),
        "Succeeded": result.succeeded,
        "Failed": result.failed,
        "Retried": result.retried,
        "BatchDuration": round(result.elapsed, 3),
    }
    units = {
        "QueueDepth": "Count",
        "OldestDueAge": "Seconds",
        "Succeeded": "Count",
        "Failed": "Count",
        "Retried": "Count",
        "BatchDuration": "Seconds",
    }
    return values, units


def emit_batch_metrics(
    namespace: str,
    result: BatchResult,
    queue: str | None,
    stream: IO[str] | None = None,
    *,
    request_id: str | None = None,
) -> dict[str, float]:
    """Write one EMF line to stdout (Lambda ships stdout to CloudWatch Logs); return the values."""
    values, units = batch_metrics(result, queue)
    out = stream or sys.stdout
    line = emf_line(namespace, queue or ALL_QUEUES, values, units, request_id=request_id)
    out.write(line + "\n")
    out.flush()
    return values
