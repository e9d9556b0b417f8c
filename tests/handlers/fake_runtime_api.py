"""A small stand-in for the Lambda Runtime API, for running a handler under the real runtime
client (``python -m awslambdaric handlers.worker.handler``) as Lambda does.

It serves the calls the runtime client makes: ``GET /2018-06-01/runtime/invocation/next`` (held
until the test queues an event; answered with the request id and deadline headers),
``POST .../invocation/<id>/response``, ``POST .../invocation/<id>/error`` and
``POST .../init/error``. The test queues events with ``invoke`` and waits for their outcome.
"""

from __future__ import annotations

import json
import queue
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

PREFIX = "/2018-06-01/runtime"
FUNCTION_ARN = "arn:aws:lambda:us-east-1:123456789012:function:bgtask-test-worker"


@dataclass
class Invocation:
    request_id: str
    event: Any
    deadline_ms: int  # epoch milliseconds, as the Lambda-Runtime-Deadline-Ms header
    done: threading.Event = field(default_factory=threading.Event)
    kind: str | None = None  # "response" or "error"
    body: Any = None
    answered_ms: int | None = None  # when the answer arrived (epoch milliseconds)
    sent_at: float | None = None  # time.time() when the event was handed to the runtime client
    answered_at: float | None = None  # time.time() when its answer arrived
    delivered_ms: int | None = None  # when the runtime client got the event (epoch milliseconds)


class FakeRuntimeApi:
    def __init__(self) -> None:
        self._pending: queue.Queue[Invocation] = queue.Queue()
        self.invocations: dict[str, Invocation] = {}
        self.init_errors: list[Any] = []
        # The runtime client asks for its first event once the handler module is imported: the
        # end of Lambda's init phase.
        self.init_done = threading.Event()
        self.init_done_at: float | None = None
        api = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # keep the test output clean
                pass

            def _answer(self, status: int, body: bytes = b"", headers: dict | None = None):
                self.send_response(status)
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                if self.path != f"{PREFIX}/invocation/next":
                    self._answer(404)
                    return
                if not api.init_done.is_set():
                    api.init_done_at = time.time()
                    api.init_done.set()
                invocation = api._pending.get()  # held until the test queues an event
                invocation.sent_at = time.time()
                invocation.delivered_ms = int(time.time() * 1000)
                self._answer(
                    200,
                    json.dumps(invocation.event).encode(),
                    {
                        "Content-Type": "application/json",
                        "Lambda-Runtime-Aws-Request-Id": invocation.request_id,
                        "Lambda-Runtime-Deadline-Ms": str(invocation.deadline_ms),
                        "Lambda-Runtime-Invoked-Function-Arn": FUNCTION_ARN,
                        "Lambda-Runtime-Trace-Id": f"Root=1-{uuid.uuid4().hex[:8]}-x",
                    },
                )

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                body = json.loads(raw) if raw else None
                parts = self.path[len(PREFIX) :].strip("/").split("/")
                if parts == ["init", "error"]:
                    api.init_errors.append(body)
                    self._answer(202)
                    return
                if (
                    len(parts) == 3
                    and parts[0] == "invocation"
                    and parts[2]
                    in (
                        "response",
                        "error",
                    )
                ):
                    invocation = api.invocations.get(parts[1])
                    if invocation is None:
                        self._answer(400)
                        return
                    invocation.answered_at = time.time()
                    invocation.answered_ms = int(invocation.answered_at * 1000)
                    invocation.kind, invocation.body = parts[2], body
                    invocation.done.set()
                    self._answer(202)
                    return
                self._answer(404)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.address = f"127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def invoke(self, event: Any, timeout: float) -> Invocation:
        """Queue ``event`` for the runtime client with ``timeout`` seconds before its deadline."""
        invocation = Invocation(
            request_id=str(uuid.uuid4()),
            event=event,
            deadline_ms=int((time.time() + timeout) * 1000),
        )
        self.invocations[invocation.request_id] = invocation
        self._pending.put(invocation)
        return invocation

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
