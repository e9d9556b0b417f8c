"""A stand-in for one warm Lambda container: a process that imports the handlers once and serves
invocations one after another, as Lambda reuses a container between invocations.

Reads one JSON request a line on stdin: ``{"handler": "worker", "event": {...}, "timeout": 30}``.
Answers each with one line on stdout, ``RESULT_PREFIX`` then JSON: ``{"ok": true, "answer": ...}``
or ``{"ok": false, "error_type": ..., "error": ..., "remaining_ms": ...}``. Anything else the
handlers print (the worker's structured line) comes out on stdout as it is.
"""

from __future__ import annotations

import importlib
import json
import sys

from handlers.local_context import LocalContext

RESULT_PREFIX = "@@invocation-result "


def serve() -> None:
    for line in sys.stdin:
        request = json.loads(line)
        module = importlib.import_module(f"handlers.{request['handler']}")
        context = LocalContext(timeout=request.get("timeout", 30))
        try:
            answer = module.handler(request["event"], context)
            result = {"ok": True, "answer": answer}
        except Exception as exc:  # what Lambda would report as the invocation's error
            result = {"ok": False, "error_type": type(exc).__name__, "error": str(exc)}
        result["remaining_ms"] = context.get_remaining_time_in_millis()
        sys.stdout.write(RESULT_PREFIX + json.dumps(result, default=str) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    serve()
