"""The web function's own middleware: a Content-Security-Policy header on every page, and an
unreachable database answered with 503 and a plain message, not a 500 page.

The web function opens a connection per request; when the server is down, restarting or out of
connections, the caller learns that it is temporary (``Retry-After``) and nothing about the
server (the error itself goes to the log, as Django logs any failed request).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse, JsonResponse

logger = logging.getLogger("bgtask.web")

RETRY_AFTER_SECONDS = 30


class DatabaseUnavailableMiddleware:
    """``MIDDLEWARE`` entry: database connection errors become ``503 Service Unavailable``.

    >>> MIDDLEWARE = ["handlers.project.middleware.DatabaseUnavailableMiddleware", ...]

    Covers the view and the lazy session and user look-ups it triggers.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if isinstance(exception, (OperationalError, InterfaceError)):
            return self.unavailable(request, exception)
        return None

    @staticmethod
    def unavailable(request: HttpRequest, exc: Exception) -> HttpResponse:
        logger.error("Database unavailable for %s %s: %s", request.method, request.path, exc)
        # The secret may have been rotated since start-up: the next request uses its new value.
        from handlers.secrets import refresh_database_credentials

        refresh_database_credentials()
        response = JsonResponse(
            {"error": "The database is unavailable; try again shortly."}, status=503
        )
        response["Retry-After"] = str(RETRY_AFTER_SECONDS)
        return response


class ContentSecurityPolicyMiddleware:
    """``MIDDLEWARE`` entry: the ``CONTENT_SECURITY_POLICY`` setting as a response header.

    Django 6's own CSP middleware is not in Django 5.2, which the project supports too. A view
    that set its own policy keeps its directives, and gets the project's for the directives it
    does not name (bgtask's views set only ``frame-ancestors``; the rest of the policy must still
    apply to them).
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        from django.conf import settings

        self.get_response = get_response
        self.policy = getattr(settings, "CONTENT_SECURITY_POLICY", "")

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if self.policy:
            own = response.get("Content-Security-Policy")
            response["Content-Security-Policy"] = (
                merge_policies(own, self.policy) if own else self.policy
            )
        return response


def _directives(policy: str) -> dict[str, str]:
    """``"a x; b y"`` -> ``{"a": "a x", "b": "b y"}`` (directive name -> the whole directive)."""
    parts = (part.strip() for part in policy.split(";"))
    return {part.split()[0].lower(): part for part in parts if part}


def merge_policies(own: str, project: str) -> str:
    """The view's directives, then the project's for every directive the view does not name."""
    merged = _directives(own)
    for name, directive in _directives(project).items():
        merged.setdefault(name, directive)
    return "; ".join(merged.values())
