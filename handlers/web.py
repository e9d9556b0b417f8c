"""Lambda entrypoint of the web function: ``handlers.web.handler``.

Mangum serves Django's ASGI application (the admin with bgtask's task admin, and the JSON status
endpoint at ``/bgtask/status/``) behind an API Gateway HTTP API. Lifespan is off: Django has no
lifespan events to run.
"""

from __future__ import annotations

import asyncio
from typing import Any

from handlers.bootstrap import init_phase
from handlers.events import UnexpectedEvent

HTTP_EVENTS = (
    "an HTTP request event: API Gateway HTTP API (payload 2.0 or 1.0), REST API, "
    "an Application Load Balancer or Lambda@Edge"
)

_adapter = None


def _mangum():
    global _adapter
    if _adapter is None:
        from django.core.asgi import get_asgi_application
        from mangum import Mangum

        # Mangum runs each request on the thread's event loop; give it one of its own rather than
        # let it fall back on asyncio's deprecated implicit loop creation.
        asyncio.set_event_loop(asyncio.new_event_loop())
        _adapter = Mangum(get_asgi_application(), lifespan="off")
    return _adapter


# Lambda's init phase: Django set up, settings (and secrets) read, the ASGI application and its
# middleware built, all before the first request.
init_phase()
_mangum()


def handler(event: Any, context: Any) -> dict[str, Any]:
    """Answer one HTTP request; raise ``UnexpectedEvent`` for anything that is not one."""
    adapter = _mangum()
    if not isinstance(event, dict):
        raise UnexpectedEvent(
            f"The web function got a {type(event).__name__} event; expected {HTTP_EVENTS}."
        )
    try:
        request = adapter.infer(event, context)
    except (RuntimeError, KeyError, TypeError) as exc:
        keys = sorted(map(str, event))[:8]
        raise UnexpectedEvent(
            f"The web function got an event with keys {keys}, which is not {HTTP_EVENTS}. "
            "Scheduled and direct invocations belong to the worker function."
        ) from exc
    _check_request(request)
    return adapter(event, context)


def _check_request(request: Any) -> None:
    """Build the request Mangum will hand Django now, so that a malformed one is refused here
    instead of crashing Mangum (headers not a mapping, a body that is not base64) or Django (a
    method that is not a string)."""
    try:
        scope, _body = request.scope, request.body
        problem = next(
            (
                f"{key!r} must be a string"
                for key in ("method", "path")
                if not isinstance(scope.get(key), str) or not scope[key]
            ),
            None,
        )
    except (KeyError, TypeError, AttributeError, ValueError) as exc:
        problem = f"{type(exc).__name__}: {str(exc)[:120]}"
    if problem is not None:
        raise UnexpectedEvent(
            f"The web function got a malformed {type(request).__name__} event ({problem}); "
            f"expected {HTTP_EVENTS}, as AWS sends it."
        )
