"""A claim retried after its connection dropped (TaskStore._run reconnects once) hands back what
the lost attempt took, and nothing else: with N tasks at once, the worker's other running rows
are tasks in flight, which must stay its own (handed back, they would run twice)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import OperationalError
from django.utils import timezone

from bgtask.models import Task
from bgtask.store import TaskStore
from tests.sampleapp import tasks

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_retried_claim_hands_back_only_what_the_lost_attempt_took(monkeypatch):
    worker = "host:1:retry"
    lease = timezone.now() + timedelta(minutes=5)
    in_flight = tasks.record.enqueue(["in flight"])
    store = TaskStore()
    assert [t.id for t in store.claim_due(worker, 1, lease)] == [in_flight.id]
    lost = [tasks.record.enqueue([f"lost {i}"]) for i in range(2)]

    real_claim = store.dialect.claim
    calls = []

    def claim_then_drop(*args, **kwargs):
        calls.append(args)
        taken = real_claim(*args, **kwargs)
        if len(calls) == 1:  # the claim committed, then the answer was lost with the connection
            assert {t.id for t in taken} == {t.id for t in lost}
            raise OperationalError("server closed the connection unexpectedly")
        return taken

    monkeypatch.setattr(store.dialect, "claim", claim_then_drop)
    claimed = store.claim_due(worker, 5, lease)

    assert len(calls) == 2
    # The retry took the lost attempt's rows again (handed back, then claimed afresh) ...
    assert sorted(t.id for t in claimed) == sorted(t.id for t in lost)
    # ... and the task in flight stayed running under this worker, never handed back.
    row = Task.objects.get(pk=in_flight.pk)
    assert (row.status, row.locked_by) == (Task.RUNNING, worker)
    assert Task.objects.filter(status=Task.QUEUED).count() == 0
