"""Issue 19 item 5: limits that hold across every worker, enforced by the claim.

Real worker processes (``run_batch`` in subprocesses, several at once, each running several tasks
at a time) on the test database. What ran at once is counted by the tasks themselves in a ledger
under a file lock shared by every process, so no clock is compared; the rate is checked on the
claim times the claims themselves wrote. Every wait is for an event, with a generous ceiling.
"""

from __future__ import annotations

import itertools
import json
from datetime import datetime, timedelta

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings

from bgtask import background, registry
from bgtask.limits import LimitSet, Rate, queue_limits
from bgtask.models import Task
from tests.conftest import batch_result, start_batch_process, wait_for
from tests.reliability.helpers import execution_counts

QUEUE_LIMIT = 3
LIMITED_ENV = {
    "BGTASK_TEST_LIMITED_TASKS": "1",
    "BGTASK_TEST_QUEUE_LIMITS": json.dumps({"limited": {"max_running": QUEUE_LIMIT}}),
}


@pytest.fixture
def limited():
    """The limited sample tasks, registered in this process for the test only."""
    from tests.sampleapp import limited_tasks

    functions = [
        limited_tasks.counted,
        limited_tasks.keyed,
        limited_tasks.keyed_block,
        limited_tasks.queue_block,
        limited_tasks.rated,
    ]
    for function in functions:
        registry.register(function)
    yield limited_tasks
    for function in functions:
        registry.unregister(function.name)


def _workers(n: int, concurrency: int, duration: float = 120):
    return [start_batch_process(duration, concurrency=concurrency, **LIMITED_ENV) for _ in range(n)]


def _finish(workers) -> list[dict]:
    try:
        return [batch_result(worker, timeout=300) for worker in workers]
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()


def _wait(workers, condition, *, timeout: float, message: str) -> None:
    """wait_for, and on a timeout the workers' own words (stderr) in the failure."""
    try:
        wait_for(condition, timeout=timeout, message=message)
    except BaseException:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
        said = [worker.communicate() for worker in workers]
        rows = list(
            Task.objects.values_list("queue", "status", "locked_by", "attempts").order_by("id")
        )
        pytest.fail(f"waiting for {message}; workers said: {said}; rows: {rows}")


def _ledger(folder) -> dict:
    return json.loads((folder / "ledger.json").read_text())


def _all_done(ids):
    return lambda: Task.objects.filter(pk__in=ids, status=Task.SUCCEEDED).count() == len(ids)


@pytest.mark.django_db(transaction=True)
def test_never_more_than_the_queue_limit_running_at_once(tmp_path, limited):
    rows = [limited.counted(f"q{i}", str(tmp_path), schedule=0) for i in range(48)]
    # Unlimited tasks alongside: the limited queue must not starve them, nor they it.
    free = [
        limited.counted.enqueue([f"f{i}", str(tmp_path)], {"group": "free"}, queue="free")
        for i in range(16)
    ]
    workers = _workers(4, concurrency=8)
    _wait(workers, _all_done([t.pk for t in rows + free]), timeout=240, message="every task to run")
    results = _finish(workers)
    ledger = _ledger(tmp_path)
    assert sum(result["succeeded"] for result in results) == 64
    assert set(execution_counts().values()) == {1} and len(execution_counts()) == 64
    # 32 slots drained the queue, never more than its limit at once, and the limit was used.
    assert ledger["max"]["queue"] <= QUEUE_LIMIT
    assert ledger["max"]["queue"] >= 2
    assert all(row.attempts == 0 for row in Task.objects.filter(pk__in=[t.pk for t in rows]))


@pytest.mark.django_db(transaction=True)
def test_a_held_back_task_stays_queued_then_runs_without_an_attempt(tmp_path, limited):
    release = tmp_path / "release"
    rows = [
        limited.queue_block(f"b{i}", str(tmp_path), str(release), schedule=0)
        for i in range(QUEUE_LIMIT + 2)
    ]
    # An unlimited task enqueued after them, started only once the limited ones were claimed:
    # its start shows the workers went on claiming while the two were held back.
    later = limited.keyed_block.enqueue(["solo", "free", str(tmp_path), str(release)])
    workers = _workers(2, concurrency=4)
    started = lambda: sorted(p.name for p in tmp_path.glob("started-*"))  # noqa: E731
    wait_for(lambda: len(started()) >= QUEUE_LIMIT + 1, timeout=120, message="limit + 1 starts")
    assert "started-free" in started()
    assert len([name for name in started() if name.startswith("started-b")]) == QUEUE_LIMIT
    held = Task.objects.filter(pk__in=[t.pk for t in rows], status=Task.QUEUED)
    assert held.count() == 2
    assert {row.attempts for row in held} == {0}
    release.touch()
    _wait(
        workers, _all_done([t.pk for t in [*rows, later]]), timeout=120, message="the held ones run"
    )
    _finish(workers)
    assert {row.attempts for row in Task.objects.filter(pk__in=[t.pk for t in rows])} == {0}


@pytest.mark.django_db(transaction=True)
def test_a_keyed_limit_runs_one_per_key_and_different_keys_together(tmp_path, limited):
    release = tmp_path / "release"
    a1 = limited.keyed_block("acct-a", "a1", str(tmp_path), str(release), schedule=0)
    a2 = limited.keyed_block("acct-a", "a2", str(tmp_path), str(release), schedule=0)
    b1 = limited.keyed_block("acct-b", "b1", str(tmp_path), str(release), schedule=0)
    assert (a1.limit_key, b1.limit_key) == ("acct-a", "acct-b")
    workers = _workers(2, concurrency=4)
    first_a = lambda: next(iter(tmp_path.glob("started-a*")), None)  # noqa: E731
    # Both keys run at the same time...
    wait_for(
        lambda: first_a() and (tmp_path / "started-b1").exists(), timeout=120, message="a and b"
    )
    # ...and the second task of key a waits, queued, while the first runs.
    assert len(list(tmp_path.glob("started-a*"))) == 1
    second = a2 if first_a().name == "started-a1" else a1
    second.refresh_from_db()
    assert (second.status, second.attempts) == (Task.QUEUED, 0)
    release.touch()
    _wait(workers, _all_done([a1.pk, a2.pk, b1.pk]), timeout=120, message="all three to run")
    _finish(workers)


@pytest.mark.django_db(transaction=True)
def test_a_keyed_limit_holds_under_load(tmp_path, limited):
    rows = [limited.keyed(f"acct-{i % 4}", f"k{i}", str(tmp_path), schedule=0) for i in range(40)]
    workers = _workers(4, concurrency=8)
    _wait(workers, _all_done([t.pk for t in rows]), timeout=240, message="every keyed task to run")
    _finish(workers)
    ledger = _ledger(tmp_path)
    assert {ledger["max"][f"account-acct-{i}"] for i in range(4)} == {1}
    assert set(execution_counts().values()) == {1}


@pytest.mark.django_db(transaction=True)
def test_a_rate_spaces_the_starts_across_workers(tmp_path, limited):
    rows = [limited.rated(f"r{i}", str(tmp_path), schedule=0) for i in range(50)]
    workers = _workers(3, concurrency=4)
    _wait(workers, _all_done([t.pk for t in rows]), timeout=240, message="every rated task to run")
    _finish(workers)
    claims = sorted(datetime.fromisoformat(path.read_text()) for path in tmp_path.glob("claimed-*"))
    assert len(claims) == 50
    # 20/s: one start every 50 ms. Within any one second there are at most 20 (+1 on the
    # window's edge), whatever the workers' timing: the times are the claims' own clock.
    rate = Rate.parse("20/s")
    for i, start in enumerate(claims):
        in_window = [c for c in claims[i:] if c < start + timedelta(seconds=1)]
        assert len(in_window) <= rate.count + 1, (start, len(in_window))
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(claims)]
    assert min(gaps) >= rate.interval - 1e-5


# -- bad values, refused where they enter ------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "error", "words"),
    [
        ({"max_running": 0}, ValueError, "max_running must be 1 or more"),
        ({"max_running": "2"}, TypeError, "max_running must be an int"),
        ({"max_running": True}, TypeError, "max_running must be an int"),
        ({"rate": "100 per minute"}, ValueError, 'rate must look like "100/m"'),
        ({"rate": "0/s"}, ValueError, "at least 1 start"),
        ({"rate": 100}, TypeError, "rate must be a string"),
        ({"max_running_key": lambda x: x}, TypeError, "max_running_key needs max_running"),
        ({"max_running": 1, "max_running_key": "account"}, TypeError, "must be a function"),
    ],
)
def test_bad_decorator_limits_are_refused_at_decoration(options, error, words):
    with pytest.raises(error, match=words):

        @background(name="limits.bad", **options)
        def bad(account=None): ...

    assert "limits.bad" not in registry.names()


def test_a_bad_key_is_refused_at_enqueue_with_the_task_name(db):
    @background(name="limits.keys", max_running=1, max_running_key=lambda x: x)
    def by_key(x): ...

    try:
        with pytest.raises(TypeError, match=r"max_running_key of limits\.keys must return"):
            by_key([1, 2])
        with pytest.raises(TypeError, match=r"max_running_key of limits\.keys failed"):
            by_key.enqueue([], {"y": 1})
        with pytest.raises(ValueError, match="at most 255"):
            by_key("x" * 300)
        assert Task.objects.count() == 0
        assert by_key(7).limit_key == "7"
    finally:
        registry.unregister("limits.keys")


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ([("mail", 1)], "must be a dict"),
        ({"mail": 5}, "must be a dict with"),
        ({"mail": {"max_running": 0}}, r"BGTASK_QUEUE_LIMITS\['mail'\]\[\"max_running\"\]"),
        ({"mail": {"rate": "fast"}}, 'must look like "100/m"'),
        ({"mail": {"max_runing": 2}}, "unknown option"),
        ({"": {"max_running": 2}}, "queue names"),
    ],
)
def test_bad_queue_limits_fail_the_system_check(value, words):
    from bgtask.checks import check_settings

    with override_settings(BGTASK_QUEUE_LIMITS=value):
        with pytest.raises(ImproperlyConfigured, match=words):
            queue_limits()
        assert any(error.id == "bgtask.E002" for error in check_settings())


def test_good_queue_limits_and_rates_read_as_written():
    with override_settings(
        BGTASK_QUEUE_LIMITS={"mail": {"rate": "100/m"}, "pay": {"max_running": 5}}
    ):
        limits = queue_limits()
    assert limits["mail"].rate == Rate(100, 60.0) and limits["pay"].max_running == 5
    assert Rate.parse("5/10s") == Rate(5, 10.0) and Rate.parse("3/h").interval == 1200.0
    assert not LimitSet()
