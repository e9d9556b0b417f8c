"""Malformed and hostile HTTP requests through the web handler get a deliberate 4xx (or the page
they would get anyway): never a 5xx, never a traceback, never a crash of the handler."""

from __future__ import annotations

import base64
import json
from urllib.parse import urlencode

import pytest
from django.contrib.auth import get_user_model
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
TOKEN = "status-token-for-request-tests"
FORM = "application/x-www-form-urlencoded"
SAME_ORIGIN = {"origin": f"https://{HOST}", "referer": f"https://{HOST}/admin/login/"}


@override_settings(BGTASK_STATUS_TOKEN=TOKEN)
@pytest.mark.parametrize(
    ("method", "body", "content_type"),
    [
        ("POST", "{not json", "application/json"),
        ("POST", '{"queues": ', "application/json"),
        ("POST", "\x00\xff garbage", "application/octet-stream"),
        ("PUT", '{"status": "failed"}', "application/json"),
        ("PATCH", "[]", "application/json"),
        ("DELETE", "", "application/json"),
        ("GET", "{not json", "application/json"),  # a body on a GET is ignored
        ("BREW", "", "text/plain"),
        ("OPTIONS", "", "text/plain"),
        ("TRACE", "", "text/plain"),
    ],
)
def test_the_status_endpoint_answers_bad_methods_and_bodies_with_4xx(method, body, content_type):
    tasks.record("counted", schedule=0)
    event = request_event(
        method,
        "/bgtask/status/",
        headers={"authorization": f"Bearer {TOKEN}", "content-type": content_type},
        body=body,
    )
    response = send(event)
    if method == "GET":
        assert_handled(response, 200)
    else:
        # 403: Django's CSRF check refuses an unsafe method first; 405: the view is GET only.
        assert_handled(response, 403, 405)
        assert "queues" not in response["body"]
    assert Task.objects.get().status == Task.QUEUED


@override_settings(BGTASK_STATUS_TOKEN=TOKEN)
@pytest.mark.parametrize(
    "authorization",
    [
        "Bearer",
        "Bearer ",
        "Bearer\t" + TOKEN,
        "bearer  ",
        f"Bearer {TOKEN} extra",
        f"Bearer {TOKEN}\x00",
        f"Bearer \x00{TOKEN}",
        f"Bearer {TOKEN.upper()}",
        f"Token {TOKEN}",
        f"Basic {base64.b64encode(f'user:{TOKEN}'.encode()).decode()}",
        f"{TOKEN}",
        "Bearer ü中文🔑",
        "Bearer " + "A" * 1_000_000,
        "Bearer " + "\r\n".join(["x"] * 3),
        ", ".join([f"Bearer {TOKEN}x"] * 50),
    ],
)
def test_a_bad_bearer_token_gets_401(authorization):
    response = send(
        request_event("GET", "/bgtask/status/", headers={"authorization": authorization})
    )
    assert_handled(response, 401)
    assert "queues" not in json.loads(response["body"])


@override_settings(BGTASK_STATUS_TOKEN=TOKEN)
def test_the_token_in_the_query_string_or_a_cookie_opens_nothing():
    by_query = request_event("GET", "/bgtask/status/", query=f"token={TOKEN}&access_token={TOKEN}")
    by_cookie = request_event("GET", "/bgtask/status/", cookies=[f"token={TOKEN}"])
    for event in (by_query, by_cookie):
        assert_handled(send(event), 401)


@pytest.mark.parametrize(
    ("path", "headers"),
    [
        ("/bgtask/status/", {"x-padding": "p" * 200_000}),
        ("/bgtask/status/", {f"x-h{i}": "v" * 100 for i in range(500)}),
        ("/bgtask/status/", {"cookie": "; ".join(f"c{i}={'v' * 50}" for i in range(2000))}),
        ("/admin/login/", {"cookie": "sessionid=" + "s" * 100_000}),
        ("/admin/login/", {"cookie": "sessionid=../../etc/passwd; csrftoken=\x00"}),
        ("/admin/login/", {"host": "evil.example.com/../x"}),
        ("/admin/login/", {"content-length": "-1"}),
        ("/admin/login/", {"content-length": "99999999999999999999"}),
        ("/admin/login/", {"x-forwarded-proto": "javascript"}),
    ],
)
def test_oversized_and_odd_headers_get_an_ordinary_answer(path, headers):
    response = send(request_event("GET", path, headers=headers))
    assert_handled(response, 200, 400, 401)


@pytest.mark.parametrize(
    "path",
    [
        "/admin/../bgtask/status/",
        "/bgtask/status/%00",
        "/admin/%2e%2e/bgtask/status/",
        "/" + "a" * 100_000,
        "/admin/bgtask/task/1%27%20OR%201=1--/change/",
        "/admin/bgtask/task/99999999999999999999999/change/",
    ],
)
def test_odd_paths_get_404_or_the_login_page(path):
    response = send(request_event("GET", path))
    assert_handled(response, 302, 404)
    assert "queues" not in response["body"]


def login_post(cookies: list[str], fields: dict[str, str], headers: dict | None = None) -> dict:
    return send(
        request_event(
            "POST",
            "/admin/login/",
            cookies=cookies,
            headers={"content-type": FORM, **SAME_ORIGIN, **(headers or {})},
            body=urlencode(fields),
        )
    )


def test_csrf_less_posts_to_the_admin_are_refused_with_403():
    get_user_model().objects.create_superuser("admin", "admin@example.com", "right-pw")
    csrf_cookie, csrf_token = csrf_pair()
    fields = {"username": "admin", "password": "right-pw", "next": "/admin/"}
    for cookies, extra in [
        ([], {}),  # no cookie, no token
        ([csrf_cookie], {}),  # cookie, no form token
        ([], {"csrfmiddlewaretoken": csrf_token}),  # form token, no cookie
        ([csrf_cookie], {"csrfmiddlewaretoken": csrf_token[:-2] + "xx"}),  # tampered token
    ]:
        response = login_post(cookies, {**fields, **extra})
        assert_handled(response, 403)
        assert "CSRF verification failed" in response["body"]
        assert not any(c.startswith("sessionid=") for c in response.get("cookies", []))

    # A cross-site origin with a valid pair is refused too.
    response = login_post(
        [csrf_cookie],
        {**fields, "csrfmiddlewaretoken": csrf_token},
        {"origin": "https://evil.example.com", "referer": "https://evil.example.com/"},
    )
    assert_handled(response, 403)


def test_csrf_less_admin_actions_of_a_staff_session_are_refused_and_change_nothing():
    staff = session_cookie("boss", is_staff=True, is_superuser=True)
    task = tasks.record("keep", schedule=3600)
    body = urlencode({"action": "delete_selected", "_selected_action": task.pk, "post": "yes"})
    for path in ("/admin/bgtask/task/", "/admin/logout/", f"/admin/bgtask/task/{task.pk}/delete/"):
        response = send(
            request_event(
                "POST",
                path,
                cookies=[staff],
                headers={"content-type": FORM, **SAME_ORIGIN},
                body=body,
            )
        )
        assert_handled(response, 403)
    assert Task.objects.filter(pk=task.pk).exists()


@pytest.mark.parametrize(
    "body",
    [
        "username=admin&password=" + "p" * 3_000_000,  # over DATA_UPLOAD_MAX_MEMORY_SIZE (2.5 MB)
        "&".join(f"f{i}=v" for i in range(1_500)),  # over DATA_UPLOAD_MAX_NUMBER_FIELDS (1000)
        "%%%%=%%%%&&&==&",
        "\x00\x01\x02" * 1000,
    ],
    ids=["3 MB", "1500 fields", "bad encoding", "binary"],
)
def test_oversized_and_garbled_login_bodies_get_4xx(body):
    csrf_cookie, csrf_token = csrf_pair()
    response = send(
        request_event(
            "POST",
            "/admin/login/",
            cookies=[csrf_cookie],
            headers={"content-type": FORM, "x-csrftoken": csrf_token, **SAME_ORIGIN},
            body=body,
        )
    )
    # 400: too big or too many fields; 200: the login form again with its error (a failed login).
    assert_handled(response, 200, 400)
    assert not any(c.startswith("sessionid=") for c in response.get("cookies", []))


def test_a_base64_body_that_decodes_to_garbage_is_answered():
    event = request_event(
        "POST", "/admin/login/", headers={"content-type": FORM, **SAME_ORIGIN}, body=""
    )
    event.update(isBase64Encoded=True, body=base64.b64encode(b"\xff\xfe\x00" * 100).decode())
    assert_handled(send(event), 403)


def test_the_deployed_projects_middleware_answers_hostile_requests_the_same_way(
    switchable_database, start_container
):
    """The tests above run the web handler under the test settings; here the same kinds of
    request go through a container running handlers/project/settings.py (its own middleware)."""
    from tests.handlers.conftest import load_event

    switchable_database.set_state("up")
    container = start_container(DATABASE_URL=switchable_database.url, BGTASK_STATUS_TOKEN=TOKEN)
    login_post_event = request_event(
        "POST",
        "/admin/login/",
        headers={"content-type": FORM, **SAME_ORIGIN},
        body=urlencode({"username": "admin", "password": "x"}),
    )
    bad_token = load_event("web-status")
    bad_token["headers"]["authorization"] = f"Bearer {TOKEN}x"
    expected = [
        (login_post_event, 403),
        (request_event("BREW", "/bgtask/status/"), 403),
        (request_event("GET", "/admin/bgtask/task/"), 302),
        (request_event("GET", "/bgtask/status/", headers={"x-pad": "p" * 200_000}), 401),
        (bad_token, 401),
    ]
    for event, status in expected:
        result = container.invoke("web", event)
        assert result["ok"], result
        assert_handled(result["answer"], status)
