"""API Gateway HTTP API (payload 2.0) request events, built from infra/events' admin sample, and
sessions of real users to put in them."""

from __future__ import annotations

import re
from typing import Any

from django.contrib.auth import get_user_model
from django.test import Client

from handlers import web
from handlers.local_context import LocalContext
from tests.handlers.conftest import load_event

HOST = "abcdef1234.execute-api.us-east-1.amazonaws.com"


def request_event(
    method: str = "GET",
    path: str = "/",
    *,
    headers: dict[str, str] | None = None,
    cookies: list[str] | None = None,
    body: str | None = None,
    query: str = "",
) -> dict[str, Any]:
    event = load_event("web-admin-login")
    event["rawPath"] = event["requestContext"]["http"]["path"] = path
    event["requestContext"]["http"]["method"] = method
    event["rawQueryString"] = query
    event.pop("queryStringParameters")
    event["headers"].update(headers or {})
    if cookies:
        event["cookies"] = cookies
    if body is not None:
        event["body"] = body
        event["headers"]["content-length"] = str(len(body.encode()))
    return event


def send(event: dict[str, Any]) -> dict[str, Any]:
    """The web handler's answer to one request, through Mangum and Django."""
    return web.handler(event, LocalContext(timeout=30))


def session_cookie(username: str, **flags: bool) -> str:
    """Log a new user in (flags: is_staff, is_superuser, is_active); return the cookie."""
    user = get_user_model().objects.create_user(username, password="pw-unused", **flags)
    client = Client()
    client.force_login(user)
    return f"sessionid={client.cookies['sessionid'].value}"


def csrf_pair() -> tuple[str, str]:
    """A CSRF cookie and the matching form token, as the admin's login page hands them out."""
    page = send(request_event("GET", "/admin/login/"))
    cookie = next(c for c in page["cookies"] if c.startswith("csrftoken=")).split(";", 1)[0]
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page["body"]).group(1)
    return cookie, token


def assert_handled(response: dict[str, Any], *allowed: int) -> None:
    """A deliberate answer: an expected status, no 5xx, no traceback, no debug page."""
    assert response["statusCode"] in allowed, (response["statusCode"], response["body"][:300])
    assert "Traceback" not in response["body"]
    assert "technical_500" not in response["body"] and "DJANGO_SETTINGS" not in response["body"]
