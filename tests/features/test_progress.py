"""Progress of a running task (issue 19 item 3, the part outside the worker): the store verb
only the lease holder can write through, and where the progress shows."""

import math
from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.urls import reverse
from django.utils import timezone

from bgtask.features.retrying import retry_failed
from bgtask.models import Task
from bgtask.status import health
from bgtask.store import TaskStore
from bgtask.worker.completer import Completer
from bgtask.worker.execution import execute
from tests.features import tasks

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def claimed():
    tasks.record("p")
    store = TaskStore()
    [task] = store.claim_due("worker-1", 1, timezone.now() + timedelta(minutes=5))
    return store, task


def test_only_the_lease_holder_writes_progress(claimed):
    store, task = claimed
    assert store.set_progress(task.id, "worker-1", 0.4, "page 4 of 10") is True
    row = Task.objects.get(pk=task.pk)
    assert (row.progress, row.progress_note) == (0.4, "page 4 of 10")
    assert store.set_progress(task.id, "worker-2", 0.9, "not mine") is False
    assert Task.objects.get(pk=task.pk).progress == 0.4
    assert store.set_progress(task.id, "worker-1", 1) is True
    row = Task.objects.get(pk=task.pk)
    assert (row.progress, row.progress_note) == (1.0, None)
    Completer(store, "worker-1", group_size=1, max_delay=0).record(
        execute(task)
    )  # finished: the lease is gone, so nothing is written any more
    assert store.set_progress(task.id, "worker-1", 0.1, "late") is False
    assert Task.objects.get(pk=task.pk).progress_note is None


@pytest.mark.parametrize(
    ("fraction", "note", "error"),
    [
        (1.5, "", ValueError),
        (-0.1, "", ValueError),
        (math.nan, "", ValueError),
        (True, "", TypeError),
        ("0.5", "", TypeError),
        (0.5, 7, TypeError),
    ],
)
def test_bad_progress_is_refused(claimed, fraction, note, error):
    store, task = claimed
    with pytest.raises(error):
        store.set_progress(task.id, "worker-1", fraction, note)
    assert Task.objects.get(pk=task.pk).progress is None


def test_a_long_note_is_cut(claimed):
    store, task = claimed
    store.set_progress(task.id, "worker-1", 0.5, "x" * 1000)
    note = Task.objects.get(pk=task.pk).progress_note
    assert len(note) == 255 and note.endswith("…")


def test_progress_shows_in_the_list_the_page_and_the_status_json(client, claimed):
    store, task = claimed
    store.set_progress(task.id, "worker-1", 0.423, "page 4 of 10")
    client.force_login(User.objects.create_superuser("admin", "a@example.invalid", "pw"))
    html = client.get(reverse("admin:bgtask_task_changelist")).content.decode()
    assert "42 % page 4 of 10" in html
    page = client.get(reverse("admin:bgtask_task_change", args=[task.pk])).content.decode()
    assert '<progress class="bgtask-progress-bar" max="1" value="0.423"></progress>' in page
    [row] = client.get(reverse("bgtask:status")).json()["in_progress"]
    assert (row["id"], row["progress"], row["progress_note"]) == (task.pk, 0.423, "page 4 of 10")
    assert row["locked_by"] == "worker-1"


def test_a_hand_retry_clears_the_old_progress(claimed):
    store, task = claimed
    store.set_progress(task.id, "worker-1", 0.7, "almost")
    Task.objects.filter(pk=task.pk).update(status=Task.FAILED, locked_by=None)
    retry_failed(Task.objects.filter(pk=task.pk))
    row = Task.objects.get(pk=task.pk)
    assert (row.status, row.progress, row.progress_note) == (Task.QUEUED, None, None)
    assert health()["in_progress"] == []
