"""Fixtures for the Lambda handler tests: the sample events of infra/events and local contexts."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from handlers.local_context import LocalContext

# A database that can be switched off, for the deploy hook's failure test.
from tests.serverless_faults.conftest import switchable_database  # noqa: F401

EVENTS_DIR = Path(__file__).resolve().parents[2] / "infra" / "events"


def load_event(name: str) -> dict:
    """A fresh copy of infra/events/<name>.json (tests may change it)."""
    return copy.deepcopy(json.loads((EVENTS_DIR / f"{name}.json").read_text()))


@pytest.fixture
def context() -> LocalContext:
    return LocalContext(timeout=60)
