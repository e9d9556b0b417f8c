"""timeouts.limit_before: a task's limit under a hard deadline (pure arithmetic, no database)."""

import pytest

from bgtask.timeouts import DeadlineReached, Limit, TaskTimedOut, describe, limit_before


@pytest.mark.parametrize(
    ("timeout", "left", "expected"),
    [
        (None, None, Limit(None)),  # no deadline, no timeout: no limit (cron)
        (5.0, None, Limit(5.0)),  # no deadline: the task's own timeout
        (5.0, 10.0, Limit(5.0)),  # its timeout fits: it is the limit
        (10.0, 10.0, Limit(10.0)),  # exactly fits
        (30.0, 10.0, None),  # cannot fit: not started
        (None, 10.0, Limit(10.0, DeadlineReached)),  # no timeout: cut at the deadline
        (None, 0.0, None),  # the deadline has come: nothing starts
        (None, -1.0, None),
    ],
)
def test_the_limit_is_the_smaller_of_the_timeout_and_the_time_left(timeout, left, expected):
    now = 1000.0
    deadline = None if left is None else now + left
    assert limit_before(timeout, deadline, now) == expected


def test_last_error_names_which_limit_stopped_the_task():
    assert describe(DeadlineReached(3)).startswith(
        "bgtask.timeouts.DeadlineReached: Stopped after 3 s"
    )
    assert describe(TaskTimedOut(3)).startswith("bgtask.timeouts.TaskTimedOut: Timed out")
