"""claim_due with limits (issue 19 item 5), in one process on every database: what one claim
takes and leaves, step by step. The same under real concurrent workers is
tests/reliability/test_limits.py."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from bgtask.limits import Limit, LimitSet, Rate
from bgtask.models import Task
from bgtask.store import TaskStore
from tests.sampleapp import tasks

pytestmark = pytest.mark.django_db(transaction=True)


def lease():
    return timezone.now() + timedelta(minutes=5)


def enqueue(label: str, queue: str = "default", key: str | None = None) -> Task:
    task = tasks.record.enqueue([label], queue=queue)
    if key is not None:  # as max_running_key would have stored it at enqueue
        Task.objects.filter(pk=task.pk).update(limit_key=key)
    return task


def labels(claimed):
    return sorted(task.args[0] for task in claimed)


def test_without_limits_the_claim_is_the_statement_it_was():
    enqueue("a")
    store = TaskStore()
    with CaptureQueriesContext(connection) as plain:
        store.claim_due("w", 5, lease())
    enqueue("b")
    with CaptureQueriesContext(connection) as empty_limits:
        store.claim_due("w", 5, lease(), limits=LimitSet())

    # The same statements; only the values (times) differ.
    def shapes(queries):
        return [re.sub(r"'[^']*'|\b\d[\d:. -]*\b", "?", q["sql"]) for q in queries]

    assert shapes(plain.captured_queries) == shapes(empty_limits.captured_queries)
    assert not any("bgtask_limit_state" in q["sql"] for q in empty_limits.captured_queries)


def test_a_queue_limit_takes_only_the_free_slots_and_the_rest_runs():
    limits = LimitSet(queues={"pay": Limit("queue", "pay", max_running=2)})
    for i in range(4):
        enqueue(f"pay{i}", queue="pay")
    enqueue("free0")
    enqueue("free1")
    store = TaskStore()
    first = store.claim_due("w1", 10, lease(), limits=limits)
    assert labels(first) == ["free0", "free1", "pay0", "pay1"]
    # Another worker: the limit is full, so nothing of pay, and no attempt charged.
    assert store.claim_due("w2", 10, lease(), limits=limits) == []
    assert store.held_back_for is not None
    held = Task.objects.filter(queue="pay", status=Task.QUEUED)
    assert held.count() == 2 and {t.attempts for t in held} == {0}
    # One ends: one slot frees, one more is claimed.
    done = next(t for t in first if t.queue == "pay")
    assert store.mark_succeeded(done, None, timezone.now(), timezone.now())
    assert labels(store.claim_due("w2", 10, lease(), limits=limits)) == ["pay2"]


def test_a_keyed_limit_counts_per_key():
    limits = LimitSet(tasks={"sample.record": Limit("task", "sample.record", 1, keyed=True)})
    enqueue("a1", key="a")
    enqueue("a2", key="a")
    enqueue("b1", key="b")
    enqueue("c1", key="c")
    store = TaskStore()
    assert labels(store.claim_due("w1", 10, lease(), limits=limits)) == ["a1", "b1", "c1"]
    assert store.claim_due("w2", 10, lease(), limits=limits) == []


def test_a_full_key_at_the_head_does_not_hide_the_keys_behind_it():
    limits = LimitSet(tasks={"sample.record": Limit("task", "sample.record", 1, keyed=True)})
    for i in range(30):
        enqueue(f"a{i:02}", key="a")
    enqueue("b", key="b")
    store = TaskStore()
    assert labels(store.claim_due("w1", 1, lease(), limits=limits)) == ["a00"]
    assert labels(store.claim_due("w2", 1, lease(), limits=limits)) == ["b"]


def test_a_rate_allows_one_start_per_interval():
    limits = LimitSet(queues={"mail": Limit("queue", "mail", rate=Rate.parse("1/h"))})
    enqueue("m1", queue="mail")
    enqueue("m2", queue="mail")
    store = TaskStore()
    assert labels(store.claim_due("w1", 10, lease(), limits=limits)) == ["m1"]
    assert store.claim_due("w2", 10, lease(), limits=limits) == []
    assert 3500 < store.held_back_for <= 3600


def test_a_worker_of_one_queue_claims_its_limited_queue_alone():
    limits = LimitSet(queues={"pay": Limit("queue", "pay", max_running=1)})
    enqueue("pay0", queue="pay")
    enqueue("pay1", queue="pay")
    enqueue("other")
    store = TaskStore()
    assert labels(store.claim_due("w1", 10, lease(), "pay", limits=limits)) == ["pay0"]
    assert labels(store.claim_due("w1", 10, lease(), "default", limits=limits)) == ["other"]


def test_a_retried_task_is_claimed_without_its_old_progress():
    enqueue("p")
    store = TaskStore()
    [task] = store.claim_due("w", 1, lease())
    assert store.set_progress(task.id, "w", 0.5, "half")
    now = timezone.now()
    assert store.mark_retry(task, "boom", 1, now - timedelta(seconds=1), now)
    [again] = store.claim_due("w", 1, lease())
    row = Task.objects.get(pk=task.pk)
    assert (again.progress, row.progress, row.progress_note) == (None, None, None)


def test_a_key_frees_once_its_task_succeeds_in_a_group():
    limits = LimitSet(tasks={"sample.record": Limit("task", "sample.record", 1, keyed=True)})
    enqueue("a1", key="a")
    enqueue("a2", key="a")
    enqueue("b1", key="b")
    store = TaskStore()
    first = store.claim_due("w1", 10, lease(), limits=limits)
    assert labels(first) == ["a1", "b1"]
    now = timezone.now()
    # Both successes in one group write, as the completer writes them.
    written = store.mark_succeeded_many([(t.id, "w1", None, now, now) for t in first])
    assert written == {t.id for t in first}
    assert labels(store.claim_due("w1", 10, lease(), limits=limits)) == ["a2"]


def test_the_dashboard_and_status_show_each_limit_and_what_it_holds_back(client):
    from django.contrib.auth.models import User
    from django.test import override_settings
    from django.urls import reverse

    from bgtask.status import health

    enqueue("p1", queue="pay")
    enqueue("p2", queue="pay")
    enqueue("p3", queue="pay")
    client.force_login(User.objects.create_superuser("admin", "a@example.invalid", "pw"))
    with override_settings(BGTASK_QUEUE_LIMITS={"pay": {"max_running": 1, "rate": "10/m"}}):
        [limit] = health()["limits"]
        html = client.get(reverse("admin:bgtask_task_dashboard")).content.decode()
    assert (limit["kind"], limit["name"], limit["max_running"], limit["rate"]) == (
        "queue",
        "pay",
        1,
        "10/m",
    )
    assert limit["held_back"] == 3 and limit["held_back_capped"] is False
    assert "<h2>Limits</h2>" in html and "at most 1 running, 10 starts per 60 s" in html
    assert health()["limits"] == []
