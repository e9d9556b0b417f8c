"""The admin and dashboard findings of issue 19 item 7, each checked on the rendered pages."""

import re
from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.test import override_settings
from django.urls import reverse
from django.utils import timezone

from bgtask import run_batch
from bgtask.models import Task, WorkerBatch
from bgtask.status import health
from bgtask.store import TaskStore
from tests.features import tasks

pytestmark = pytest.mark.django_db(transaction=True)

CHANGELIST = "admin:bgtask_task_changelist"
DASHBOARD = "admin:bgtask_task_dashboard"
ONE_FORMAT = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC")


@pytest.fixture
def admin_client(client):
    client.force_login(User.objects.create_superuser("admin", "a@example.invalid", "pw"))
    return client


def _page(client, task):
    return client.get(reverse("admin:bgtask_task_change", args=[task.pk])).content.decode()


def test_finished_rows_show_when_they_finished_and_their_attempts(admin_client):
    now = timezone.now()
    task = Task.objects.create(
        task_name="mail.send",
        status=Task.FAILED,
        attempts=3,
        run_at=now + timedelta(days=30),  # a retry's run_at, in the future
        started_at=now - timedelta(hours=2, seconds=4),
        finished_at=now - timedelta(hours=2),
    )
    response = admin_client.get(reverse(CHANGELIST))
    html = response.content.decode()
    # The date and the time may wrap apart (two spans), in the one format.
    day, time = timezone.localtime(task.finished_at).strftime("%Y-%m-%d|%H:%M:%S %Z").split("|")
    assert f'{day}</span> <span class="bgtask-nowrap">{time}</span>' in html
    assert timezone.localtime(task.run_at).strftime("%Y-%m-%d") not in html
    assert '<td class="field-attempts_cell">3</td>' in html
    assert "<th" in html and ">Attempts<" in html


def test_the_facets_are_off_even_when_asked_for(admin_client):
    Task.objects.create(task_name="a")
    response = admin_client.get(reverse(CHANGELIST), {"_facets": "True"})
    assert response.status_code == 200
    assert response.context["cl"].add_facets is False
    assert "Show counts" not in response.content.decode()


def test_the_task_page_is_a_view_with_one_date_format(admin_client):
    now = timezone.now()
    task = Task.objects.create(
        task_name="reports.build",
        verbose_name="Monthly report for ACME",
        status=Task.SUCCEEDED,
        attempts=0,
        created_at=now - timedelta(minutes=5),
        run_at=now - timedelta(minutes=5),
        started_at=now - timedelta(seconds=75),
        finished_at=now - timedelta(seconds=12.5),
    )
    html = _page(admin_client, task)
    assert "<h1>View task</h1>" in html and "Change task" not in html
    assert "Monthly report for ACME" in html
    assert "1 of at most 25" in html  # it ran once, although attempts (failed runs) is 0
    assert "1 min 2 s" in html  # run time: finished_at - started_at
    assert "a.m." not in html and "p.m." not in html
    assert len(ONE_FORMAT.findall(html)) >= 4  # run at, created, started, finished, when


def test_an_old_error_after_a_retry_is_labelled_as_earlier(admin_client):
    queued = Task.objects.create(
        task_name="mail.send", attempts=1, last_error="RuntimeError: smtp down"
    )
    html = _page(admin_client, queued)
    assert "From an earlier attempt: RuntimeError: smtp down" in html
    assert '<span class="bgtask-error-now">' not in html
    listing = admin_client.get(reverse(CHANGELIST)).content.decode()
    assert "Earlier attempt: RuntimeError: smtp down" in listing
    failed = Task.objects.create(task_name="x", status=Task.FAILED, last_error="KeyError: 'a'")
    html = _page(admin_client, failed)
    assert '<span class="bgtask-error-now">KeyError: &#x27;a&#x27;</span>' in html
    assert "earlier attempt" not in html


def test_a_batch_records_its_host_and_the_dashboard_warns_when_it_is_stale(admin_client):
    html = admin_client.get(reverse(DASHBOARD)).content.decode()
    assert "No batch has been recorded yet" in html
    result = run_batch(1)
    [row] = WorkerBatch.objects.all()
    assert row.worker_id == result.worker_id
    assert result.worker_id.startswith(row.host[:32])
    html = admin_client.get(reverse(DASHBOARD)).content.decode()
    assert f"<code>{row.host}</code>" in html and "No batch has" not in html
    [batch] = admin_client.get(reverse("bgtask:status")).json()["batches"]
    assert (batch["host"], batch["stale"], batch["counts"]["succeeded"]) == (row.host, False, 0)
    WorkerBatch.objects.update(finished_at=timezone.now() - timedelta(minutes=10))
    html = admin_client.get(reverse(DASHBOARD)).content.decode()
    assert "No batch has finished for 10 min" in html and "stale</span>" in html
    with override_settings(BGTASK_WORKER_STALE_AFTER=3600):
        assert health()["batches"][0]["stale"] is False


def test_record_batch_keeps_one_row_per_host_and_forgets_old_hosts():
    store = TaskStore()
    now = timezone.now()
    assert store.record_batch("gone", "gone:1:a", now - timedelta(days=8), {"succeeded": 1})
    assert store.record_batch("box-1", "box-1:2:b", now - timedelta(seconds=5), {"succeeded": 2})
    assert store.record_batch("box-1", "box-1:3:c", now, {"succeeded": 3})
    rows = {row.host: row for row in WorkerBatch.objects.all()}
    assert set(rows) == {"box-1"}  # a new host appeared: the one gone for 8 days is forgotten
    assert rows["box-1"].worker_id == "box-1:3:c"
    assert health()["batches"][0]["counts"] == {"succeeded": 3}


def test_most_failing_shows_the_latest_error_line_and_numbers_link(admin_client):
    now = timezone.now()
    for error in ("ValueError: old", "ConnectionError: warehouse refused"):
        Task.objects.create(
            task_name="reports.build",
            queue="q1",
            status=Task.FAILED,
            last_error=f"Traceback (most recent call last):\n  x\n{error}\n",
            finished_at=now,
        )
    tasks.record("a", queue="q1")
    [row] = health()["most_failing"]
    assert row["error_line"] == "ConnectionError: warehouse refused"
    html = admin_client.get(reverse(DASHBOARD)).content.decode()
    assert 'title="ConnectionError: warehouse refused"' in html
    changelist = reverse(CHANGELIST)
    assert f'href="{changelist}?queue__exact=q1&amp;status__exact=queued">1</a>' in html
    assert f'href="{changelist}?queue__exact=q1&amp;status__exact=failed">2</a>' in html
    assert 'preserveAspectRatio="none"' not in html


def test_the_cancel_button_is_a_labelled_button(admin_client):
    task = tasks.record("c")
    html = _page(admin_client, task)
    assert re.search(r'class="button bgtask-cancel"[^>]*>\s*Cancel\s*</button>', html)
    assert "button deletelink" not in html
