"""Pausing a queue (issue 19 item 4): the claim statement itself leaves a paused queue out, so
every worker obeys at its next claim; enqueueing still works; tasks in flight finish."""

from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission, User
from django.urls import reverse
from django.utils import timezone

import bgtask
from bgtask import run_batch
from bgtask.features.pausing import paused_queues
from bgtask.models import QueueState, Task
from bgtask.status import queue_stats
from bgtask.store import TaskStore
from bgtask.worker.completer import Completer
from bgtask.worker.execution import execute
from tests.conftest import start_process_tasks, wait_for
from tests.features import tasks
from tests.sampleapp import tasks as sample_tasks
from tests.sampleapp.models import Execution

pytestmark = pytest.mark.django_db(transaction=True)


def _keys():
    return set(Execution.objects.values_list("key", flat=True))


def test_a_paused_queue_is_not_claimed_and_takes_new_tasks():
    assert bgtask.pause_queue("reports") is True
    assert bgtask.pause_queue("reports") is False  # already paused
    tasks.record("r1", queue="reports", priority=5)  # enqueueing into a paused queue works
    tasks.record("d1")
    assert run_batch(5).ran == 1
    assert _keys() == {"d1"}
    # Asked for by name, the paused queue still gives nothing.
    assert run_batch(5, queue="reports").ran == 0
    assert Task.objects.due().filter(queue="reports").count() == 1
    assert bgtask.resume_queue("reports") is True
    assert bgtask.resume_queue("reports") is False
    assert run_batch(5).ran == 1
    assert _keys() == {"d1", "r1"}


def test_every_claim_path_skips_a_paused_queue_at_every_priority():
    # The walks over priorities (SQLite, MariaDB) must go on past a priority whose due tasks
    # are all paused, and a claim of many must take only the other queue's tasks.
    for i in range(3):
        tasks.record(f"p{i}", queue="paused", priority=9)
        tasks.record(f"o{i}", queue="open", priority=9 - i)
    bgtask.pause_queue("paused")
    claimed = TaskStore().claim_due("w", 50, timezone.now() + timedelta(minutes=5))
    assert sorted(task.queue for task in claimed) == ["open"] * 3


def test_a_running_task_finishes_when_its_queue_is_paused():
    task = tasks.record("running", queue="reports")
    store = TaskStore()
    [claimed] = store.claim_due("w", 1, timezone.now() + timedelta(minutes=5))
    bgtask.pause_queue("reports")
    Completer(store, claimed.locked_by, group_size=1, max_delay=0).record(execute(claimed))
    assert Task.objects.get(pk=task.pk).status == Task.SUCCEEDED


def test_bad_queue_names_are_refused():
    with pytest.raises(TypeError, match="non-empty string"):
        bgtask.pause_queue("")
    with pytest.raises(ValueError, match="at most"):
        bgtask.resume_queue("x" * 200)
    assert not QueueState.objects.exists()


def test_the_state_shows_in_the_status_figures():
    bgtask.pause_queue("idle")  # no task at all: still listed, as paused
    tasks.record("a")
    stats = queue_stats()
    assert stats["idle"]["paused"] is True and stats["default"]["paused"] is False
    assert set(paused_queues()) == {"idle"}


def test_workers_in_other_processes_stop_at_their_next_claim(tmp_path):
    started, release = tmp_path / "started", tmp_path / "release"
    in_flight = sample_tasks.block_until_file(
        "in-flight", str(started), str(release), queue="reports"
    )
    workers = [
        start_process_tasks("--duration", "120", "--sleep", "0.1", "--log-level", "INFO")
        for _ in range(2)
    ]
    try:
        wait_for(started.exists, timeout=60, message="the reports task to start")
        bgtask.pause_queue("reports")
        # Older and of higher priority than the default queue's, so a worker that ignored the
        # pause would have run them before the default tasks.
        for i in range(5):
            tasks.record(f"r{i}", queue="reports", priority=5)
        for i in range(5):
            tasks.record(f"d{i}")
        wait_for(
            lambda: {f"d{i}" for i in range(5)} <= _keys(), timeout=60, message="default tasks"
        )
        release.touch()  # the task in flight finishes although its queue is paused
        wait_for(
            lambda: Task.objects.get(pk=in_flight.pk).status == Task.SUCCEEDED,
            timeout=60,
            message="the task in flight to finish",
        )
        assert not {f"r{i}" for i in range(5)} & _keys()
        assert Task.objects.due().filter(queue="reports").count() == 5
        bgtask.resume_queue("reports")
        wait_for(
            lambda: {f"r{i}" for i in range(5)} <= _keys(), timeout=60, message="resumed tasks"
        )
    finally:
        for worker in workers:
            worker.terminate()
        for worker in workers:
            _out, err = worker.communicate(timeout=60)
            assert worker.returncode == 0, err[-3000:]


def test_the_dashboard_buttons_pause_and_resume(client):
    client.force_login(User.objects.create_superuser("admin", "a@example.invalid", "pw"))
    tasks.record("a", queue="mail")
    dashboard = reverse("admin:bgtask_task_dashboard")
    pause = reverse("admin:bgtask_task_queue", args=["pause"])
    html = client.get(dashboard).content.decode()
    assert f'action="{pause}"' in html and "csrfmiddlewaretoken" in html
    assert client.get(pause).status_code == 405
    response = client.post(pause, {"queue": "mail"}, follow=True)
    assert response.redirect_chain[-1][0] == dashboard
    assert "Queue &#x27;mail&#x27; paused." in response.content.decode()
    assert set(paused_queues()) == {"mail"}
    assert "bgtask-paused" in response.content.decode()
    client.post(reverse("admin:bgtask_task_queue", args=["resume"]), {"queue": "mail"})
    assert paused_queues() == {}
    response = client.post(pause, {"queue": ""}, follow=True)
    assert "non-empty string" in response.content.decode()
    assert paused_queues() == {}


def test_the_dashboard_buttons_need_the_change_permission_and_csrf(client):
    viewer = User.objects.create_user("viewer", password="pw", is_staff=True)
    viewer.user_permissions.add(
        Permission.objects.get(codename="view_task", content_type__app_label="bgtask")
    )
    client.force_login(viewer)
    tasks.record("a", queue="mail")
    pause = reverse("admin:bgtask_task_queue", args=["pause"])
    assert (
        f'action="{pause}"'
        not in client.get(reverse("admin:bgtask_task_dashboard")).content.decode()
    )
    assert client.post(pause, {"queue": "mail"}).status_code == 403
    assert paused_queues() == {}
    client.logout()
    client.force_login(User.objects.create_superuser("admin", "a@example.invalid", "pw"))
    client.handler.enforce_csrf_checks = True
    assert client.post(pause, {"queue": "mail"}).status_code == 403
    assert paused_queues() == {}
