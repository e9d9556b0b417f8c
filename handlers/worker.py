"""Lambda entrypoint of the worker: ``handlers.worker.handler``.

Started by the EventBridge schedule in template.yaml (every minute), by wake-on-enqueue and
fan-out, or by hand (``{"duration": 20, "queue": "emails"}``). It parses the event, runs one
``bgtask.aws.invocation.run_invocation`` sized to the time Lambda has left, prints one JSON line
and returns the same summary.

Every line the worker writes carries the invocation's id as ``requestId``: the runtime's JSON log
lines, this summary line and the metrics (EMF) line, so ``{ $.requestId = "<id>" }`` finds all of
one invocation's lines.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

from handlers.bootstrap import close_connections, ensure_database, init_phase
from handlers.events import parse_worker_event

init_phase()  # Lambda's init phase: Django set up and settings read before the first event

from bgtask.aws.invocation import run_invocation  # noqa: E402 (needs the apps loaded)


def fan_out_target(context: Any) -> str | None:
    """What fan-out invokes: the alias this invocation runs as (its qualified ARN,
    ``arn:aws:lambda:<region>:<account>:function:<name>:live``), so helpers run the same version;
    else the function's name."""
    arn = getattr(context, "invoked_function_arn", None)
    if isinstance(arn, str) and arn.count(":") == 7:
        return arn
    return getattr(context, "function_name", None)


def handler(event: Any, context: Any) -> dict[str, Any]:
    """Run due tasks within this invocation's time; return what was done (JSON-serialisable)."""
    request = parse_worker_event(event)  # refuses a bad event before touching the database
    started = time.monotonic()
    request_id = getattr(context, "aws_request_id", None)
    close_connections()
    try:
        ensure_database()  # an unreachable database ends the invocation now, with a clear error
        summary = run_invocation(
            context.get_remaining_time_in_millis() / 1000,
            queue=request.queue,
            duration=request.duration,
            function_name=fan_out_target(context),
            allow_fanout=request.allow_fanout,
            request_id=request_id,
        )
    finally:
        close_connections()
    summary = {
        "handler": "worker",
        "source": request.source,
        "scheduled_time": request.scheduled_time,
        "requestId": request_id,
        **summary,
        "invocation_seconds": round(time.monotonic() - started, 3),
    }
    # One line per invocation on stdout, which Lambda sends to CloudWatch Logs as is.
    sys.stdout.write(json.dumps(summary) + "\n")
    sys.stdout.flush()
    return summary
