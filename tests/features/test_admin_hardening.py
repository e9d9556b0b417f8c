"""Issue 20, A3/A4/A6/A7/C2: the web side under hostile or odd requests.

One permission rule for the dashboard and the status endpoint; no bgtask page can be framed; the
list sorts by id only, whatever ``?o=`` says; odd search terms, ids and rows give a page or a 404,
never a 500; the dashboard's pointer to the status endpoint never leads to a 404.
"""

import json

import pytest
from django.contrib.auth.models import Permission, User
from django.db import connection
from django.test import override_settings
from django.test.utils import CaptureQueriesContext
from django.urls import clear_url_caches, reverse

from bgtask.models import Task

pytestmark = pytest.mark.django_db

TOKEN = "a-status-token-of-32-characters!"
CHANGELIST = "admin:bgtask_task_changelist"
DASHBOARD = "admin:bgtask_task_dashboard"
# Beyond a BigAutoField (2**63 - 1), and beyond what int() converts by default (4,300 digits).
HOSTILE_TERMS = ["²", "٣", "9" * 5000, str(2**63), str(2**64 + 1), "1" * 40]


@pytest.fixture
def admin_client(client):
    client.force_login(User.objects.create_superuser("admin", "admin@example.invalid", "pw"))
    return client


def staff_with(*codenames: str) -> User:
    user = User.objects.create_user(f"staff-{'-'.join(codenames) or 'none'}", is_staff=True)
    for codename in codenames:
        user.user_permissions.add(
            Permission.objects.get(codename=codename, content_type__app_label="bgtask")
        )
    return user


# -- A3: one permission rule -------------------------------------------------------------------


@override_settings(BGTASK_STATUS_TOKEN=TOKEN)
def test_staff_without_the_task_permission_is_refused_by_the_dashboard_and_the_endpoint(client):
    Task.objects.create(task_name="payroll.secret_job", queue="payroll")
    client.force_login(staff_with())
    assert client.get(reverse(DASHBOARD)).status_code == 403
    response = client.get(reverse("bgtask:status"))
    assert response.status_code == 403
    assert b"payroll" not in response.content


@pytest.mark.parametrize("codename", ["view_task", "change_task"])
@override_settings(BGTASK_STATUS_TOKEN=TOKEN)
def test_staff_with_the_view_or_change_permission_is_let_in_by_both(client, codename):
    client.force_login(staff_with(codename))
    assert client.get(reverse(DASHBOARD)).status_code == 200
    assert "queues" in client.get(reverse("bgtask:status")).json()


@override_settings(BGTASK_STATUS_TOKEN=TOKEN)
def test_the_token_still_opens_the_endpoint_without_a_session(client):
    response = client.get(reverse("bgtask:status"), headers={"authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 200 and "queues" in response.json()


@override_settings(BGTASK_STATUS_TOKEN="short-token")
def test_a_too_short_configured_token_opens_nothing(client):
    response = client.get(reverse("bgtask:status"), headers={"authorization": "Bearer short-token"})
    assert response.status_code == 401


# -- A4: no bgtask page can be framed ------------------------------------------------------------


def _pages(task: Task) -> list[str]:
    return [
        reverse(CHANGELIST),
        reverse("admin:bgtask_task_change", args=[task.pk]),
        reverse("admin:bgtask_task_history", args=[task.pk]),
        reverse(DASHBOARD),
        reverse("bgtask:status"),
        reverse("admin:bgtask_periodicoccurrence_changelist"),
    ]


def _assert_not_frameable(response) -> None:
    assert response["X-Frame-Options"] == "DENY"
    assert "frame-ancestors 'none'" in response["Content-Security-Policy"]


def test_bgtask_pages_forbid_framing(admin_client):
    task = Task.objects.create(task_name="mail.send")
    for url in _pages(task):
        response = admin_client.get(url)
        assert response.status_code == 200, url
        _assert_not_frameable(response)
    act = admin_client.post(reverse("admin:bgtask_task_act", args=[task.pk, "run_now"]))
    assert act.status_code == 302
    _assert_not_frameable(act)


def test_framing_is_forbidden_without_the_middleware_too(admin_client, settings):
    settings.MIDDLEWARE = [
        m
        for m in settings.MIDDLEWARE
        if m != "django.middleware.clickjacking.XFrameOptionsMiddleware"
    ]
    _assert_not_frameable(admin_client.get(reverse(DASHBOARD)))


def test_a_project_csp_is_kept_and_gets_frame_ancestors(admin_client, settings):
    csp = pytest.importorskip("django.utils.csp", reason="Django's CSP needs Django >= 6.0")
    CSP = csp.CSP

    settings.MIDDLEWARE = [
        *settings.MIDDLEWARE,
        "django.middleware.csp.ContentSecurityPolicyMiddleware",
    ]
    settings.SECURE_CSP = {"default-src": [CSP.SELF]}
    policy = admin_client.get(reverse(DASHBOARD))["Content-Security-Policy"]
    assert "default-src 'self'" in policy and "frame-ancestors 'none'" in policy


# -- A6: the list sorts by id only -------------------------------------------------------------


@pytest.mark.parametrize("order", ["3", "-3", "4", "3.1", "4.3.1", "-4", "4.0"])
def test_ordering_by_another_column_is_ignored(admin_client, order):
    for queue in ("c", "a", "b"):
        Task.objects.create(task_name="t", queue=queue)
    with CaptureQueriesContext(connection) as queries:
        response = admin_client.get(reverse(CHANGELIST), {"o": order})
    assert response.status_code == 200
    listed = [task.pk for task in response.context["cl"].result_list]
    # Columns: 0 the checkbox, 1 id, 2 task, 3 queue, 4 status: by id (either way), never queue.
    assert listed in (sorted(listed), sorted(listed, reverse=True))
    for query in queries.captured_queries:
        if "ORDER BY" in query["sql"] and '"bgtask_task"' in query["sql"].replace("`", '"'):
            order_by = query["sql"].rsplit("ORDER BY", 1)[1].lower()
            assert "queue" not in order_by and "status" not in order_by, query["sql"]


def test_ordering_by_id_still_works(admin_client):
    ids = [Task.objects.create(task_name="t").pk for _ in range(3)]
    response = admin_client.get(reverse(CHANGELIST), {"o": "1"})
    assert [task.pk for task in response.context["cl"].result_list] == ids


# -- A7: no 500 from odd input -------------------------------------------------------------------


@pytest.mark.parametrize("term", HOSTILE_TERMS, ids=lambda t: t if len(t) < 12 else f"{len(t)}d")
def test_search_terms_that_look_numeric_but_are_no_id_list_nothing(admin_client, term):
    Task.objects.create(task_name="mail.send")
    response = admin_client.get(reverse(CHANGELIST), {"q": term})
    assert response.status_code == 200
    assert list(response.context["cl"].result_list) == []


def test_a_numeric_search_still_finds_the_id(admin_client):
    task = Task.objects.create(task_name="mail.send")
    response = admin_client.get(reverse(CHANGELIST), {"q": str(task.pk)})
    assert [t.pk for t in response.context["cl"].result_list] == [task.pk]


def _nested(depth: int) -> str:
    return "[" * depth + "]" * depth


@pytest.mark.parametrize(
    "fields",
    [
        {"arguments": _nested(100_000)},
        {"arguments": '{"args": ' + _nested(100_000) + ', "kwargs": {}}'},
        {"result": _nested(100_000), "status": Task.SUCCEEDED},
        {"arguments": json.dumps({"args": ["x" * 3_000_000], "kwargs": {}})},
        {"result": '{"a": ' * 50_000 + "1" + "}" * 50_000, "status": Task.SUCCEEDED},
    ],
    ids=["nested-args", "nested-in-object", "nested-result", "huge-args", "nested-objects"],
)
def test_the_page_of_a_row_with_hostile_arguments_or_result_is_shown(admin_client, fields):
    task = Task.objects.create(task_name="mail.send", **fields)
    response = admin_client.get(reverse("admin:bgtask_task_change", args=[task.pk]))
    assert response.status_code == 200
    assert "mail.send" in response.content.decode()
    assert admin_client.get(reverse(CHANGELIST)).status_code == 200


def test_pretty_json_cuts_huge_text_and_survives_recursion():
    from bgtask.web.admin import PRETTY_JSON_LIMIT, _pretty_json

    assert _pretty_json(_nested(100_000)).startswith("[[[")
    shown = _pretty_json('"' + "x" * (PRETTY_JSON_LIMIT * 2) + '"')
    assert len(shown) < PRETTY_JSON_LIMIT + 200 and "cut" in shown
    assert _pretty_json('{"b": 1, "a": [1]}') == '{\n  "a": [\n    1\n  ],\n  "b": 1\n}'


@pytest.mark.parametrize("object_id", ["abc", "1x", "²", "9" * 5000, str(2**63), "-1", "1.5"])
def test_an_odd_id_in_an_action_url_is_a_404(admin_client, object_id):
    response = admin_client.post(f"/admin/bgtask/task/{object_id}/act/run_now/")
    assert response.status_code == 404


@pytest.mark.parametrize("object_id", ["abc", "9" * 5000, str(2**63)])
def test_an_odd_id_on_the_task_page_is_no_500(admin_client, object_id):
    response = admin_client.get(f"/admin/bgtask/task/{object_id}/change/")
    assert response.status_code in (302, 404)


# -- C2: the dashboard's pointer to the status endpoint ------------------------------------------


def test_the_dashboard_links_the_status_endpoint_where_it_is_served(admin_client):
    html = admin_client.get(reverse(DASHBOARD)).content.decode()
    assert f'href="{reverse("bgtask:status")}"' in html


@override_settings(ROOT_URLCONF="tests.urls_admin_only")
def test_without_bgtask_urls_the_dashboard_says_how_to_serve_the_endpoint(admin_client):
    clear_url_caches()
    try:
        html = admin_client.get("/admin/bgtask/task/dashboard/").content.decode()
    finally:
        clear_url_caches()
    assert "/bgtask/status/" not in html  # no link (nor text) pointing at a 404
    assert 'include("bgtask.urls")' in html or "include(&quot;bgtask.urls&quot;)" in html
