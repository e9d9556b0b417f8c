"""bgtask.testing: capture_enqueued, its assertions, the pytest fixtures, run_until_empty and
BGTASK_IMMEDIATE, against the real enqueue paths, signals and run_batch on the test database.

The examples of docs/how-to/test-your-tasks.md are these tests.
"""

import pytest
from django.db import transaction
from django.test import override_settings

from bgtask import background, enqueue_many, run_batch
from bgtask.models import Task
from bgtask.testing import capture_enqueued, run_until_empty

ran: list[tuple[str, object]] = []


@background(name="testing.send_receipt", queue="emails", schedule=60)
def send_receipt(order_id, email=None):
    ran.append(("send_receipt", order_id))
    return {"order": order_id}


@background(name="testing.charge")
def charge(order_id):
    ran.append(("charge", order_id))
    raise ValueError("card declined")


@background(name="testing.place_order")
def place_order(order_id):
    ran.append(("place_order", order_id))
    send_receipt(order_id, "ada@example.com", schedule=0)


def checkout(order_id):
    """Code under test: enqueues the receipt once the order's transaction commits."""
    with transaction.atomic():
        transaction.on_commit(lambda: send_receipt(order_id, "ada@example.com"))


@pytest.fixture(autouse=True)
def _forget_runs():
    ran.clear()


@pytest.mark.django_db
def test_capture_records_calls_with_arguments_and_options():
    with capture_enqueued() as enqueued:
        send_receipt(42, email="ada@example.com", priority=3)
        charge.using(queue="payments", timeout=30)(7)

    enqueued.assert_enqueued(send_receipt, args=[42], kwargs={"email": "ada@example.com"})
    enqueued.assert_enqueued(send_receipt, queue="emails", priority=3, count=1)
    enqueued.assert_enqueued("testing.charge", args=[7], queue="payments", timeout=30)
    enqueued.assert_not_enqueued(send_receipt, args=[43])
    enqueued.assert_not_enqueued(place_order)
    assert [item.name for item in enqueued] == ["testing.send_receipt", "testing.charge"]
    assert enqueued[0].task == Task.objects.get(task_name="testing.send_receipt")


@pytest.mark.django_db
def test_a_failed_assertion_says_what_was_enqueued():
    with capture_enqueued() as enqueued:
        send_receipt(42)
    with pytest.raises(AssertionError, match=r"testing.send_receipt\(args=\[42\]"):
        enqueued.assert_enqueued(send_receipt, args=[41])
    with pytest.raises(AssertionError, match="not to be enqueued; found 1"):
        enqueued.assert_not_enqueued(send_receipt)
    with pytest.raises(AssertionError, match=r"enqueued 2 time\(s\); found 1"):
        enqueued.assert_enqueued(send_receipt, count=2)


@pytest.mark.django_db
def test_capture_runs_on_commit_callbacks_inside_a_test_transaction():
    # The test runs inside an atomic block that never commits, so on_commit callbacks would never
    # run; capture_enqueued runs them when it closes, as the commit would.
    with capture_enqueued() as enqueued:
        checkout(42)
        assert len(enqueued) == 0  # not yet: the transaction has not "committed"
    enqueued.assert_enqueued(send_receipt, args=[42, "ada@example.com"])


@pytest.mark.django_db
def test_without_run_on_commit_the_callback_enqueues_nothing():
    with capture_enqueued(run_on_commit=False) as enqueued:
        checkout(42)
    enqueued.assert_not_enqueued(send_receipt)


@pytest.mark.django_db
def test_capture_sees_both_bulk_paths():
    with capture_enqueued() as enqueued:
        send_receipt.bulk([(1,), (2,)], queue="bulk")
        enqueue_many([charge.call(3)], return_tasks=False)
    enqueued.assert_enqueued(send_receipt, args=[2], queue="bulk")
    fast = enqueued.assert_enqueued(charge, args=[3])
    assert fast.task is None  # the fast path makes no model instances
    assert len(enqueued) == 3


@pytest.mark.django_db
def test_the_pytest_fixture_from_the_entry_point(bgtask_enqueued):
    send_receipt(42)
    bgtask_enqueued.assert_enqueued(send_receipt, args=[42], queue="emails")


@pytest.mark.django_db
def test_run_until_empty_runs_what_tasks_enqueue_too():
    place_order(42)
    result = run_until_empty()
    assert (result.succeeded, result.failed, result.retried) == (2, 0, 0)
    assert ran == [("place_order", 42), ("send_receipt", 42)]
    assert run_until_empty().ran == 0


@pytest.mark.django_db
def test_run_until_empty_leaves_a_retry_waiting_for_its_backoff():
    task = charge(7)
    assert run_until_empty().retried == 1
    task.refresh_from_db()
    assert (task.status, task.attempts) == (Task.QUEUED, 1)


@pytest.mark.django_db
@override_settings(BGTASK_IMMEDIATE=True)
def test_immediate_runs_a_task_through_run_batch_with_its_signals(received):
    task = send_receipt(42, schedule=0)
    assert ran == [("send_receipt", 42)]
    task.refresh_from_db()
    assert (task.status, task.return_value) == (Task.SUCCEEDED, {"order": 42})
    # The run happens inside task_enqueued's dispatch (bgtask's receiver is connected when Django
    # starts), so a receiver connected later hears of the enqueue after the run.
    names = [name for name, _ in received]
    assert sorted(names) == ["task_enqueued", "task_started", "task_succeeded"]
    assert names.index("task_started") < names.index("task_succeeded")


@pytest.mark.django_db
@override_settings(BGTASK_IMMEDIATE=True, MAX_ATTEMPTS=2)
def test_immediate_retries_and_fails_as_a_worker_does(received):
    task = charge(7)
    task.refresh_from_db()
    assert (task.status, task.attempts) == (Task.QUEUED, 1)  # retried later, not now
    assert "task_retried" in [name for name, _ in received]


@pytest.mark.django_db
@override_settings(BGTASK_IMMEDIATE=True)
def test_immediate_leaves_a_scheduled_task_for_its_time(bgtask_enqueued):
    send_receipt(42)  # the decorator's schedule: in 60 s
    assert ran == []
    bgtask_enqueued.assert_enqueued(send_receipt, args=[42])


@pytest.mark.django_db
@override_settings(BGTASK_IMMEDIATE=True)
def test_immediate_runs_chained_tasks_in_one_drain():
    place_order(42)
    assert ran == [("place_order", 42), ("send_receipt", 42)]
    assert set(Task.objects.values_list("status", flat=True)) == {Task.SUCCEEDED}


@pytest.mark.django_db(transaction=True)
@override_settings(BGTASK_IMMEDIATE=True)
def test_immediate_waits_for_the_commit_and_skips_a_rollback():
    with transaction.atomic():
        send_receipt(1, schedule=0)
        assert ran == []  # not before the commit
    assert ran == [("send_receipt", 1)]

    with pytest.raises(RuntimeError), transaction.atomic():
        send_receipt(2, schedule=0)
        raise RuntimeError("the order failed")
    assert ran == [("send_receipt", 1)]
    assert not Task.objects.filter(arguments__contains="2").exists()


@pytest.mark.django_db
def test_immediate_is_off_by_default():
    send_receipt(42, schedule=0)
    assert ran == []


@pytest.mark.django_db
def test_immediate_inside_a_batch_the_worker_runs_the_chained_task():
    # A task already queued is run by an explicit run_batch with immediate mode on; the task it
    # enqueues runs too (by a nested drain or by the same batch), once.
    place_order(42, schedule=0)
    with override_settings(BGTASK_IMMEDIATE=True):
        run_batch(10)
    assert ran == [("place_order", 42), ("send_receipt", 42)]
    assert list(Task.objects.values_list("status", flat=True)) == [Task.SUCCEEDED] * 2
