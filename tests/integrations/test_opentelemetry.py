"""The OpenTelemetry integration against the real SDK: spans go to the SDK's in-memory exporter
through a real TracerProvider; the trace context makes a round trip through the database."""

import json
import subprocess
import sys

import pytest
from django.test import override_settings
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from bgtask import run_batch
from bgtask.models import Task
from tests.integrations import tasks

EXPORTER = InMemorySpanExporter()


@pytest.fixture(scope="module", autouse=True)
def provider():
    # The global provider can be set once per process; later tests find it set.
    if not isinstance(trace.get_tracer_provider(), TracerProvider):
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(EXPORTER))
        trace.set_tracer_provider(provider)
    yield


@pytest.fixture(autouse=True)
def spans():
    EXPORTER.clear()
    yield EXPORTER
    EXPORTER.clear()


def task_spans(exporter):
    return [span for span in exporter.get_finished_spans() if span.name.startswith("process ")]


@pytest.mark.django_db
def test_the_task_span_joins_the_trace_of_the_request_that_enqueued_it(spans):
    tracer = trace.get_tracer("tests")
    with tracer.start_as_current_span("POST /orders") as request_span:
        task = tasks.ok(21, schedule=0)
    stored = json.loads(Task.objects.get(pk=task.pk).trace_context)
    assert stored["traceparent"].split("-")[1] == format(request_span.context.trace_id, "032x")

    assert run_batch(10).succeeded == 1

    (span,) = task_spans(spans)
    assert span.name == "process integrations.ok"
    assert span.kind == SpanKind.CONSUMER
    assert span.context.trace_id == request_span.context.trace_id
    assert span.parent.span_id == request_span.context.span_id
    assert [link.context.span_id for link in span.links] == [request_span.context.span_id]
    assert dict(span.attributes) == {
        "messaging.system": "bgtask",
        "messaging.operation.type": "process",
        "messaging.operation.name": "process",
        "messaging.destination.name": "reports",
        "messaging.message.id": str(task.pk),
        "bgtask.task.name": "integrations.ok",
        "bgtask.task.attempt": 1,
        "bgtask.task.outcome": "succeeded",
    }
    assert span.status.status_code == StatusCode.UNSET


@pytest.mark.django_db
@override_settings(MAX_ATTEMPTS=2)
def test_a_retry_and_a_failure_are_errors_on_their_spans(spans):
    task = tasks.boom(1)
    assert run_batch(10).retried == 1
    Task.objects.filter(pk=task.pk).update(run_at=Task.objects.get(pk=task.pk).created_at)
    assert run_batch(10).failed == 1

    first, second = task_spans(spans)
    assert first.attributes["bgtask.task.outcome"] == "retried"
    assert second.attributes["bgtask.task.outcome"] == "failed"
    assert second.attributes["bgtask.task.attempt"] == 2
    for span in (first, second):
        assert span.status.status_code == StatusCode.ERROR
        assert span.events[0].name == "exception"
        assert span.events[0].attributes["exception.message"] == "boom 1"
    assert first.context.trace_id != second.context.trace_id  # no enqueuing trace: roots


@pytest.mark.django_db
def test_outside_a_trace_nothing_is_stored_and_the_span_is_a_root(spans):
    task = tasks.ok(1, schedule=0)
    assert Task.objects.get(pk=task.pk).trace_context is None
    run_batch(10)
    (span,) = task_spans(spans)
    assert span.parent is None and span.links == ()


@pytest.mark.django_db
@override_settings(BGTASK_OPENTELEMETRY=False)
def test_the_setting_turns_it_off(spans):
    with trace.get_tracer("tests").start_as_current_span("request"):
        task = tasks.ok(1, schedule=0)
    run_batch(10)
    assert Task.objects.get(pk=task.pk).trace_context is None
    assert task_spans(spans) == []


@pytest.mark.django_db
def test_bulk_rows_carry_the_context_too(spans):
    with trace.get_tracer("tests").start_as_current_span("import"):
        tasks.ok.bulk([(1,), (2,)], schedule=0, return_tasks=False)
    assert Task.objects.filter(trace_context__contains="traceparent").count() == 2


def test_without_the_libraries_nothing_is_imported_or_connected():
    # None in sys.modules makes their imports fail as if they were not installed.
    code = """
import sys
sys.modules["opentelemetry"] = None
sys.modules["sentry_sdk"] = None
import django
django.setup()
from bgtask import signals
from bgtask.enqueue import trace_context
from bgtask.integrations import opentelemetry, sentry
receivers = [str(r[0]) for s in (signals.task_started, signals.task_failed) for r in s.receivers]
print(opentelemetry.AVAILABLE, sentry.AVAILABLE, trace_context._capture,
      any("otel" in r or "sentry" in r for r in receivers))
"""
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={"DJANGO_SETTINGS_MODULE": "tests.settings", "PATH": "/usr/bin:/bin"},
    ).stdout.strip()
    assert out == "False False None False"


@pytest.mark.django_db
def test_an_error_that_cannot_be_shown_still_ends_its_span_and_the_batch_goes_on(spans):
    tasks.unprintable(schedule=0)
    tasks.ok(1, schedule=0)
    result = run_batch(10)
    assert (result.retried, result.succeeded) == (1, 1)
    outcomes = {span.attributes["bgtask.task.name"]: span for span in task_spans(spans)}
    failed = outcomes["integrations.unprintable"]
    assert failed.attributes["bgtask.task.outcome"] == "retried"
    assert failed.status.status_code == StatusCode.ERROR
    assert failed.status.description == "Unprintable"
