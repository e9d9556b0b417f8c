"""The Task admin: filters, search, readable errors, counts per status, and the actions."""

import pytest
from django.contrib.auth.models import User
from django.urls import reverse

from bgtask.admin import error_summary
from bgtask.models import Task

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
    found = admin_client.get(reverse(CHANGELIST), {"q": "boom"})
    assert [t.pk for t in found.context["cl"].result_list] == [rows["failed"].pk]


def test_the_change_page_shows_the_whole_traceback_readably(admin_client, rows):
    url = reverse("admin:bgtask_task_change", args=[rows["failed"].pk])
    html = admin_client.get(url).content.decode()
    assert '<pre style="white-space: pre-wrap;' in html
    assert "    boom()" in html and "&lt;b&gt;boom&lt;/b&gt;" in html


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
    assert queued.status == Task.FAILED and "cancelled in the admin by admin" in queued.last_error
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
