"""The web handler: API Gateway HTTP API events through Mangum into Django, and the status
endpoint's answers to anonymous, non-staff, staff and token requests."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.test import Client, override_settings

from bgtask.models import Task
from handlers import web
from handlers.events import UnexpectedEvent
from tests.handlers.conftest import load_event
from tests.sampleapp import tasks

pytestmark = pytest.mark.django_db(transaction=True)
TOKEN = "local-status-token"  # the one in infra/events/web-status.json


def status_event(authorization: str | None = None, session: str | None = None) -> dict:
    event = load_event("web-status")
    event["headers"].pop("authorization")
    if authorization is not None:
        event["headers"]["authorization"] = authorization
    if session is not None:
        event["cookies"] = [f"sessionid={session}"]
    return event


def session_of(*, staff: bool, can_view_tasks: bool = False) -> str:
    user = get_user_model().objects.create_user(
        username="staff" if staff else "member", password="pw-not-used", is_staff=staff
    )
    if can_view_tasks:
        user.user_permissions.add(
            Permission.objects.get(codename="view_task", content_type__app_label="bgtask")
        )
    client = Client()
    client.force_login(user)
    return client.cookies["sessionid"].value


def make_queues() -> None:
    tasks.record("due-1", schedule=0)
    tasks.record("due-2", schedule=0)
    tasks.record("later", schedule=3600)
    tasks.record.enqueue(["mail"], schedule=0, queue="emails")
    Task.objects.filter(arguments__contains="due-2").update(run_at=datetime(2000, 1, 1, tzinfo=UTC))


@override_settings(BGTASK_STATUS_TOKEN=TOKEN)
def test_the_sample_status_event_with_the_token_gets_the_per_queue_counts(context):
    make_queues()

    response = web.handler(load_event("web-status"), context)

    assert response["statusCode"] == 200
    assert response["headers"]["content-type"] == "application/json"
    queues = json.loads(response["body"])["queues"]
    assert set(queues) == {"default", "emails"}
    default = queues["default"]
    assert (default["due"], default["scheduled"], default["running"], default["failed"]) == (
        2,
        1,
        0,
        0,
    )
    assert default["oldest_due_age"] > 365 * 24 * 3600  # the row due since 2000
    assert queues["emails"]["due"] == 1


@override_settings(BGTASK_STATUS_TOKEN=TOKEN)
def test_a_staff_session_gets_the_status(context):
    session = session_of(staff=True, can_view_tasks=True)
    response = web.handler(status_event(session=session), context)
    assert response["statusCode"] == 200
    assert "queues" in json.loads(response["body"])


@override_settings(BGTASK_STATUS_TOKEN=TOKEN)
def test_a_staff_session_without_the_task_permission_is_refused_as_by_the_dashboard(context):
    response = web.handler(status_event(session=session_of(staff=True)), context)
    assert response["statusCode"] == 403
    assert "queues" not in json.loads(response["body"])


@override_settings(BGTASK_STATUS_TOKEN=TOKEN)
def test_an_anonymous_request_is_refused_with_401(context):
    response = web.handler(status_event(), context)
    assert response["statusCode"] == 401
    assert response["headers"]["www-authenticate"].startswith("Bearer")
    assert "queues" not in json.loads(response["body"])


@override_settings(BGTASK_STATUS_TOKEN=TOKEN)
def test_a_non_staff_session_is_refused_with_403(context):
    response = web.handler(status_event(session=session_of(staff=False)), context)
    assert response["statusCode"] == 403
    assert "queues" not in json.loads(response["body"])


@pytest.mark.parametrize(
    "authorization",
    ["Bearer wrong-token", f"Bearer {TOKEN}x", f"Basic {TOKEN}", "Bearer "],
)
@override_settings(BGTASK_STATUS_TOKEN=TOKEN)
def test_a_wrong_token_is_refused(authorization, context):
    response = web.handler(status_event(authorization=authorization), context)
    assert response["statusCode"] == 401


def test_any_token_is_refused_when_none_is_configured(context):
    response = web.handler(load_event("web-status"), context)  # carries a bearer token
    assert response["statusCode"] == 401


def test_the_admin_login_page_is_served(context):
    response = web.handler(load_event("web-admin-login"), context)
    assert response["statusCode"] == 200
    assert "Log in" in response["body"]


def test_a_staff_user_sees_the_tasks_in_the_admin(context):
    get_user_model().objects.create_superuser("admin", "admin@example.com", "pw")
    client = Client()
    client.login(username="admin", password="pw")
    tasks.record("shown-in-admin", schedule=0)
    event = load_event("web-admin-login")
    event["rawPath"] = event["requestContext"]["http"]["path"] = "/admin/bgtask/task/"
    event["rawQueryString"] = ""
    event.pop("queryStringParameters")
    event["cookies"] = [f"sessionid={client.cookies['sessionid'].value}"]

    response = web.handler(event, context)

    assert response["statusCode"] == 200
    assert "sample.record" in response["body"]


@pytest.mark.parametrize(
    "event_name_or_value",
    ["worker-schedule", "worker-scheduled-event", "worker-direct", "manage-migrate", "text"],
)
def test_a_non_http_event_gets_a_clear_error(event_name_or_value, context):
    event = "text" if event_name_or_value == "text" else load_event(event_name_or_value)
    with pytest.raises(UnexpectedEvent) as raised:
        web.handler(event, context)
    assert "an HTTP request event: API Gateway HTTP API" in str(raised.value)


def test_an_admin_can_log_in_through_the_http_api(context):
    """The admin's login form, CSRF check included, works behind API Gateway and Mangum."""
    import re
    from urllib.parse import urlencode

    get_user_model().objects.create_superuser("admin", "admin@example.com", "pw-for-login")
    page = web.handler(load_event("web-admin-login"), context)
    csrf_cookie = next(c for c in page["cookies"] if c.startswith("csrftoken="))
    form_token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page["body"]).group(1)

    event = load_event("web-admin-login")
    event["requestContext"]["http"]["method"] = "POST"
    host = event["headers"]["host"]
    event["headers"].update(
        {
            "content-type": "application/x-www-form-urlencoded",
            "origin": f"https://{host}",
            "referer": f"https://{host}/admin/login/?next=/admin/",
        }
    )
    event["cookies"] = [csrf_cookie.split(";", 1)[0]]
    event["body"] = urlencode(
        {
            "csrfmiddlewaretoken": form_token,
            "username": "admin",
            "password": "pw-for-login",
            "next": "/admin/",
        }
    )

    response = web.handler(event, context)

    assert response["statusCode"] == 302, response["body"][:500]
    assert response["headers"]["location"] == "/admin/"
    assert any(c.startswith("sessionid=") for c in response["cookies"])
