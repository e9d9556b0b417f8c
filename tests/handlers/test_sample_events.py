"""infra/events holds real event shapes, one set per entrypoint, that the handlers accept; the
scheduler sample is exactly what template.yaml's schedule Input delivers."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from cfnlint.decode import decode

from handlers.events import parse_worker_event
from handlers.manage import _parse as parse_manage_event
from handlers.web import _mangum
from tests.conftest import REPO_ROOT, worker_env
from tests.handlers.conftest import EVENTS_DIR, load_event
from tests.sampleapp import tasks

EVENT_FILES = sorted(path.stem for path in EVENTS_DIR.glob("*.json"))


def test_there_is_a_sample_event_for_every_entrypoint():
    assert {name.split("-", 1)[0] for name in EVENT_FILES} == {"worker", "web", "manage"}


@pytest.mark.parametrize("name", EVENT_FILES)
def test_every_sample_event_is_accepted_by_its_handler(name, context):
    event = load_event(name)
    kind = name.split("-", 1)[0]
    if kind == "worker":
        parse_worker_event(event)
    elif kind == "manage":
        parse_manage_event(event)
    else:
        assert type(_mangum().infer(event, context)).__name__ == "HTTPGateway"  # HTTP API v2.0


def schedule_input() -> dict:
    template, errors = decode(str(REPO_ROOT / "template.yaml"))
    assert not errors
    events = template["Resources"]["WorkerFunction"]["Properties"]["Events"]
    (schedule,) = events.values()
    assert schedule["Type"] == "ScheduleV2"
    return json.loads(schedule["Properties"]["Input"])


def test_the_scheduler_sample_is_the_templates_input_with_its_placeholders_filled():
    template_input = schedule_input()
    sample = load_event("worker-schedule")
    assert set(sample) == set(template_input)
    assert sample["source"] == template_input["source"]
    assert template_input["scheduled_time"] == "<aws.scheduler.scheduled-time>"
    assert parse_worker_event(template_input).source == "schedule"


@pytest.mark.django_db(transaction=True)
def test_the_documented_local_command_runs_the_worker_with_a_sample_event():
    """README (Run it locally): python -m handlers.invoke_local infra/events/worker-schedule.json"""
    tasks.record("from-the-command-line", schedule=0)
    done = subprocess.run(
        [sys.executable, "-m", "handlers.invoke_local", "infra/events/worker-schedule.json"],
        env=worker_env(),
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    answer = json.loads(done.stdout[done.stdout.index("{\n") :])
    assert answer["handler"] == "worker"
    assert answer["source"] == "schedule"
    assert answer["succeeded"] == 1
