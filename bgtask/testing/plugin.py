"""bgtask's pytest plugin, loaded through the ``pytest11`` entry point wherever bgtask is installed.

Fixtures:

- ``bgtask_enqueued``: a ``capture_enqueued()`` open for the whole test (an ``EnqueuedTasks``).
  It does not run ``on_commit`` callbacks; pytest-django's
  ``django_capture_on_commit_callbacks(execute=True)`` does, or ``with capture_enqueued():``.
- ``bgtask_immediate``: ``BGTASK_IMMEDIATE = True`` for the test.

Nothing here imports Django at import time: pytest loads plugins before pytest-django configures
the settings.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from bgtask.testing.capture import EnqueuedTasks


@pytest.fixture
def bgtask_enqueued() -> Iterator[EnqueuedTasks]:
    """What the test enqueued, with arguments and options; ``.assert_enqueued(fn, args=...)``."""
    from bgtask.testing.capture import capture_enqueued

    with capture_enqueued(run_on_commit=False) as captured:
        yield captured


@pytest.fixture
def bgtask_immediate() -> Iterator[None]:
    """Run each task through ``run_batch`` when its transaction commits (``BGTASK_IMMEDIATE``)."""
    from django.test import override_settings

    with override_settings(BGTASK_IMMEDIATE=True):
        yield
