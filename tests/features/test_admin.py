"""The Task admin: filters, search, readable errors, counts per status, and the actions."""

import pytest
from django.contrib.auth.models import Permission, User
from django.urls import reverse

from bgtask.models import Task
from bgtask.web.admin import error_summary

pytestmark = pytest.mark.django_db

CHANGELIST = "admin:bgtask_task_changelist"
TRACEBACK = (
    "Traceback (most recent call last):\n"
    '  File "x.py", line 1, in f\n'
    "    boom()\n"
    "RuntimeError: <b>boom</b>\n"
)


@pytest.fixture
def admin_client(client):
    user = User.objects.create_superuser("admin", "admin@example.invalid", "pw")
    client.force_login(user)
    return client


@pytest.fixture
def rows():
    return {
        "queued": Task.objects.create(task_name="mail.send", queue="mail"),
        "failed": Task.objects.create(
            task_name="report.build", status=Task.FAILED, attempts=25, last_error=TRACEBACK
        ),
        "succeeded": Task.objects.create(task_name="report.build", status=Task.SUCCEEDED),
        "running": Task.objects.create(task_name="mail.send", status=Task.RUNNING),
    }


def test_the_list_shows_counts_per_status_and_error_summaries(admin_client, rows):
    response = admin_client.get(reverse(CHANGELIST))
    assert response.status_code == 200
    assert response.context["status_counts"] == [
        ("Queued", 1),
        ("Running", 1),
        ("Succeeded", 1),
        ("Failed", 1),
        ("Cancelled", 0),
    ]
    html = response.content.decode()
    assert "<strong>Failed</strong>: 1" in html
    assert "RuntimeError: &lt;b&gt;boom&lt;/b&gt;" in html  # summarised and escaped


def test_filters_and_search(admin_client, rows):
    by_status = admin_client.get(reverse(CHANGELIST), {"status__exact": "failed"})
    assert [t.pk for t in by_status.context["cl"].result_list] == [rows["failed"].pk]
    by_queue = admin_client.get(reverse(CHANGELIST), {"queue__exact": "mail"})
    assert [t.pk for t in by_queue.context["cl"].result_list] == [rows["queued"].pk]
    by_name = admin_client.get(reverse(CHANGELIST), {"task_name__exact": "mail.send"})
    assert len(by_name.context["cl"].result_list) == 2
    by_id = admin_client.get(reverse(CHANGELIST), {"q": str(rows["failed"].pk)})
    assert [t.pk for t in by_id.context["cl"].result_list] == [rows["failed"].pk]
    by_exact_name = admin_client.get(reverse(CHANGELIST), {"q": "report.build"})
    assert len(by_exact_name.context["cl"].result_list) == 2
    # Substring search reads every row: off unless BGTASK_ADMIN_FULL_SEARCH opts in.
    assert not admin_client.get(reverse(CHANGELIST), {"q": "boom"}).context["cl"].result_list


def test_full_search_is_opt_in(admin_client, rows, settings):
    settings.BGTASK_ADMIN_FULL_SEARCH = True
    found = admin_client.get(reverse(CHANGELIST), {"q": "boom"})
    assert [t.pk for t in found.context["cl"].result_list] == [rows["failed"].pk]


def test_the_change_page_shows_the_whole_traceback_readably(admin_client, rows):
    url = reverse("admin:bgtask_task_change", args=[rows["failed"].pk])
    html = admin_client.get(url).content.decode()
    assert '<pre class="bgtask-block">Traceback' in html
    assert "    boom()" in html and "&lt;b&gt;boom&lt;/b&gt;" in html
    # The outcome comes first: the error line before the task's name and queue fields.
    assert html.index("RuntimeError: &lt;b&gt;boom") < html.index("field-task_name")
    form = html.split('id="task_form"')[1].split("</form>")[0]
    assert 'name="_save"' not in form and 'name="_continue"' not in form
    assert "<textarea" not in form and '<input type="text"' not in form
    assert reverse("admin:bgtask_task_act", args=[rows["failed"].pk, "retry"]) in html
    assert "/act/cancel/" not in html  # only what applies to a failed task


def test_the_task_page_is_read_only_and_nobody_adds_tasks(admin_client, rows):
    url = reverse("admin:bgtask_task_change", args=[rows["queued"].pk])
    assert admin_client.post(url, {"task_name": "evil", "status": "running"}).status_code == 405
    assert Task.objects.get(pk=rows["queued"].pk).task_name == "mail.send"
    assert admin_client.get(reverse("admin:bgtask_task_add")).status_code == 403
    assert (
        reverse("admin:bgtask_task_add").encode()
        not in admin_client.get(reverse(CHANGELIST)).content
    )


def test_arguments_and_result_are_pretty_printed(admin_client):
    task = Task.objects.create(
        task_name="x", arguments='{"args": [1], "kwargs": {"to": "a"}}', result='{"ok": true}'
    )
    html = admin_client.get(reverse("admin:bgtask_task_change", args=[task.pk])).content.decode()
    assert "&quot;kwargs&quot;: {\n    &quot;to&quot;: &quot;a&quot;\n  }" in html
    assert "&quot;ok&quot;: true" in html


@pytest.mark.parametrize(
    ("row", "action", "expected_status"),
    [("failed", "retry", Task.QUEUED), ("queued", "cancel", Task.CANCELLED)],
)
def test_page_buttons_run_an_action_on_one_task(admin_client, rows, row, action, expected_status):
    task = rows[row]
    url = reverse("admin:bgtask_task_act", args=[task.pk, action])
    assert admin_client.get(url).status_code == 405
    response = admin_client.post(url, follow=True)
    assert response.redirect_chain[-1][0] == reverse("admin:bgtask_task_change", args=[task.pk])
    assert Task.objects.get(pk=task.pk).status == expected_status
    assert Task.objects.get(pk=rows["running"].pk).status == Task.RUNNING


def test_page_run_now_button(admin_client, rows):
    Task.objects.filter(pk=rows["queued"].pk).update(run_at="2100-01-01T00:00:00Z")
    admin_client.post(reverse("admin:bgtask_task_act", args=[rows["queued"].pk, "run_now"]))
    assert Task.objects.due().filter(pk=rows["queued"].pk).exists()


def test_buttons_need_the_change_permission(client, rows):
    viewer = User.objects.create_user("viewer", password="pw", is_staff=True)
    viewer.user_permissions.add(
        Permission.objects.get(codename="view_task", content_type__app_label="bgtask")
    )
    client.force_login(viewer)
    page = client.get(reverse("admin:bgtask_task_change", args=[rows["failed"].pk]))
    assert page.status_code == 200 and b"/act/" not in page.content
    url = reverse("admin:bgtask_task_act", args=[rows["failed"].pk, "retry"])
    assert client.post(url).status_code == 403
    assert Task.objects.get(pk=rows["failed"].pk).status == Task.FAILED
    assert client.get(reverse("admin:bgtask_task_dashboard")).status_code == 200


def test_the_dashboard_needs_the_view_permission(client):
    staff = User.objects.create_user("staff", password="pw", is_staff=True)
    client.force_login(staff)
    assert client.get(reverse("admin:bgtask_task_dashboard")).status_code == 403


def test_counts_above_the_list_are_capped(admin_client, rows, monkeypatch):
    monkeypatch.setattr("bgtask.web.admin.COUNT_CAP", 1)
    Task.objects.create(task_name="mail.send", queue="mail")
    response = admin_client.get(reverse(CHANGELIST))
    assert "<strong>Queued</strong>: more than 1" in response.content.decode()
    assert "<strong>Failed</strong>: 1" in response.content.decode()


def act(admin_client, action, *tasks):
    return admin_client.post(
        reverse(CHANGELIST),
        {"action": action, "_selected_action": [t.pk for t in tasks]},
        follow=True,
    )


def test_retry_puts_failed_tasks_back_with_attempts_reset(admin_client, rows):
    act(admin_client, "action_retry", rows["failed"], rows["succeeded"])
    failed = Task.objects.get(pk=rows["failed"].pk)
    assert (failed.status, failed.attempts, failed.failed_at) == (Task.QUEUED, 0, None)
    assert Task.objects.get(pk=rows["succeeded"].pk).status == Task.SUCCEEDED


def test_run_now_makes_a_scheduled_task_due(admin_client, rows):
    Task.objects.filter(pk=rows["queued"].pk).update(run_at="2100-01-01T00:00:00Z")
    act(admin_client, "action_run_now", rows["queued"])
    assert Task.objects.due().filter(pk=rows["queued"].pk).exists()


def test_cancel_cancels_queued_and_leaves_running(admin_client, rows):
    response = act(admin_client, "action_cancel", rows["queued"], rows["running"])
    assert "1 queued task(s) cancelled." in response.content.decode()
    queued = Task.objects.get(pk=rows["queued"].pk)
    assert queued.status == Task.CANCELLED
    assert "cancelled in the admin by admin" in queued.last_error
    assert Task.objects.get(pk=rows["running"].pk).status == Task.RUNNING


def test_error_summary():
    assert error_summary(TRACEBACK) == "RuntimeError: <b>boom</b>"
    assert error_summary("Cancelled: x\nmore") == "Cancelled: x"
    assert error_summary("") == ""
    assert len(error_summary("E: " + "x" * 500)) == 80


def test_periodic_occurrences_are_listed_read_only(admin_client):
    from bgtask.models import PeriodicOccurrence

    PeriodicOccurrence.objects.create(name="app.nightly", last_enqueued_at="2026-01-01T03:00:00Z")
    html = admin_client.get(reverse("admin:bgtask_periodicoccurrence_changelist")).content
    assert b"app.nightly" in html
    assert admin_client.get(reverse("admin:bgtask_periodicoccurrence_add")).status_code == 403


def test_the_dashboard_and_the_status_endpoint_show_the_same_figures(admin_client):
    from datetime import timedelta

    from django.utils import timezone

    now = timezone.now()
    ago = now - timedelta(minutes=5)
    Task.objects.create(task_name="a", queue="q1", run_at=now - timedelta(seconds=90))
    Task.objects.create(task_name="a", queue="q1", run_at=now + timedelta(hours=1))
    Task.objects.create(
        task_name="slow",
        status=Task.SUCCEEDED,
        started_at=ago,
        finished_at=ago + timedelta(seconds=2),
    )
    Task.objects.create(
        task_name="slow",
        status=Task.SUCCEEDED,
        started_at=ago,
        finished_at=ago + timedelta(seconds=4),
    )
    Task.objects.create(task_name="bad", status=Task.FAILED, queue="q1", finished_at=ago)
    Task.objects.create(  # waiting for a retry after its worker died
        task_name="a",
        queue="q1",
        attempts=1,
        started_at=ago,
        run_at=now + timedelta(minutes=1),
        last_error="Abandoned: the worker w1 held this task past its lease",
    )
    Task.objects.create(
        task_name="b",
        status=Task.RUNNING,
        locked_by="host:42",
        started_at=ago,
        locked_until=now - timedelta(seconds=1),
    )
    html = admin_client.get(reverse("admin:bgtask_task_dashboard")).content.decode()
    assert '<meta http-equiv="refresh"' in html
    assert "<svg" in html and 'class="bar succeeded"' in html and 'class="bar failed"' in html
    assert "host:42" in html and "1 min 30 s" in html
    assert (
        reverse("admin:bgtask_task_dashboard")
        in admin_client.get(reverse(CHANGELIST)).content.decode()
    )

    data = admin_client.get(reverse("bgtask:status")).json()
    q1 = data["queues"]["q1"]
    assert (q1["due"], q1["scheduled"], q1["failed"], q1["failed_last_hour"]) == (1, 2, 1, 1)
    assert 89 < q1["oldest_due_age"] < 3600
    assert data["queues"]["default"]["succeeded_last_hour"] == 2
    assert data["slowest"] == [
        {"task_name": "slow", "runs": 2, "mean_seconds": 3.0, "max_seconds": 4.0}
    ]
    assert [row["task_name"] for row in data["most_failing"]] == ["bad"]
    assert data["workers"][0]["worker"] == "host:42" and data["workers"][0]["expired_leases"] == 1
    assert data["rescued"] == {"waiting_retry": 1, "failed_last_day": 0, "expired_leases": 1}
    minutes = data["throughput"]["per_minute"]
    assert len(minutes) == 60 and len(data["throughput"]["per_hour"]) == 24
    assert sum(p["failed"] for p in minutes) == 1 and sum(p["retried"] for p in minutes) == 1
