"""Who may see what through the real web handler (Mangum, API Gateway v2 events): the admin and
the status endpoint refuse anonymous, non-staff and inactive users; the token is compared in
constant time, and only that comparison decides."""

from __future__ import annotations

import hmac
import json
from urllib.parse import urlencode

import pytest
from django.test import override_settings

from bgtask.models import Task
from tests.sampleapp import tasks
from tests.serverless_faults.http_events import (
    HOST,
    assert_handled,
    csrf_pair,
    request_event,
    send,
    session_cookie,
)

pytestmark = pytest.mark.django_db(transaction=True)
TOKEN = "status-token-for-access-tests"
ADMIN_PAGES = ["/admin/", "/admin/bgtask/task/", "/admin/auth/user/", "/admin/bgtask/task/add/"]


@pytest.fixture
def secret_task():
    return tasks.record("secret-argument-value", schedule=3600)


@pytest.mark.parametrize("path", ADMIN_PAGES)
def test_the_admin_sends_anonymous_users_to_the_login_page(path, secret_task):
    response = send(request_event("GET", path))
    assert_handled(response, 302)
    assert response["headers"]["location"].startswith("/admin/login/?next=")
    assert "secret-argument-value" not in response["body"]


@pytest.mark.parametrize(
    ("flags", "status"),
    [
        ({}, 302),  # logged in, not staff: back to the login page
        ({"is_staff": True, "is_active": False}, 302),  # deactivated staff: the session is void
        ({"is_superuser": True, "is_staff": False}, 302),  # superuser flag without staff
    ],
)
@pytest.mark.parametrize("path", ADMIN_PAGES)
def test_the_admin_refuses_users_who_are_not_active_staff(path, flags, status, secret_task):
    response = send(request_event("GET", path, cookies=[session_cookie("someone", **flags)]))
    assert_handled(response, status)
    assert "secret-argument-value" not in response["body"]


def test_staff_without_the_task_permissions_cannot_see_the_tasks(secret_task):
    cookie = session_cookie("plain-staff", is_staff=True)
    response = send(request_event("GET", "/admin/bgtask/task/", cookies=[cookie]))
    assert_handled(response, 403)
    assert "secret-argument-value" not in response["body"]


def test_a_non_staff_user_cannot_run_an_admin_action_even_with_a_valid_csrf_token(secret_task):
    csrf_cookie, csrf_token = csrf_pair()
    body = urlencode(
        {
            "csrfmiddlewaretoken": csrf_token,
            "action": "delete_selected",
            "_selected_action": secret_task.pk,
            "post": "yes",
        }
    )
    response = send(
        request_event(
            "POST",
            "/admin/bgtask/task/",
            cookies=[csrf_cookie, session_cookie("member")],
            headers={
                "content-type": "application/x-www-form-urlencoded",
                "origin": f"https://{HOST}",
                "referer": f"https://{HOST}/admin/bgtask/task/",
            },
            body=body,
        )
    )
    assert_handled(response, 302)
    assert Task.objects.filter(pk=secret_task.pk).exists()


def status_request(authorization: str | None = None, cookie: str | None = None) -> dict:
    headers = {"accept": "application/json"}
    if authorization is not None:
        headers["authorization"] = authorization
    return request_event(
        "GET", "/bgtask/status/", headers=headers, cookies=[cookie] if cookie else None
    )


@override_settings(BGTASK_STATUS_TOKEN=TOKEN)
@pytest.mark.parametrize(
    ("who", "status"),
    [
        ("anonymous", 401),
        ("member", 403),
        ("inactive-staff", 401),
        ("staff-with-wrong-token", 401),  # a token, once sent, decides alone
        ("member-with-wrong-token", 401),
    ],
)
def test_the_status_endpoint_refuses_everyone_but_staff_and_token_holders(who, status):
    cookie = {
        "anonymous": None,
        "member": session_cookie("member"),
        "inactive-staff": session_cookie("gone", is_staff=True, is_active=False),
        "staff-with-wrong-token": session_cookie("staff", is_staff=True),
        "member-with-wrong-token": session_cookie("member2"),
    }[who]
    authorization = f"Bearer {TOKEN[:-1]}" if "wrong-token" in who else None
    tasks.record("counted", schedule=0)

    response = send(status_request(authorization, cookie))

    assert_handled(response, status)
    assert "queues" not in json.loads(response["body"])


@override_settings(BGTASK_STATUS_TOKEN="")
def test_an_empty_configured_token_opens_nothing():
    """template.yaml's StatusToken defaults to "": that must mean "no token", not "any"."""
    for authorization in ("Bearer ", "Bearer", 'Bearer ""', "Bearer  "):
        assert_handled(send(status_request(authorization)), 401)


@override_settings(BGTASK_STATUS_TOKEN=TOKEN)
def test_the_token_comparison_is_hmac_compare_digest_and_it_alone_decides(monkeypatch):
    """Read through the code path: the view must hand the token to hmac.compare_digest and obey
    its verdict. A plain ``==`` (timing leak) or any second check makes this test fail."""
    calls = []
    verdict = {"value": True}

    def spy(a, b):
        calls.append((a, b))
        return verdict["value"]

    monkeypatch.setattr(hmac, "compare_digest", spy)

    # compare_digest says yes to a wrong token: the view lets it in, so nothing else compared.
    granted = send(status_request("Bearer not-the-token"))
    assert granted["statusCode"] == 200
    assert calls == [(b"not-the-token", TOKEN.encode())]

    # ... and says no to the right one: refused.
    verdict["value"] = False
    assert send(status_request(f"Bearer {TOKEN}"))["statusCode"] == 401
    assert calls[-1] == (TOKEN.encode(), TOKEN.encode())
    monkeypatch.undo()

    # The real function, for the record: the right token is let in.
    assert send(status_request(f"Bearer {TOKEN}"))["statusCode"] == 200
