"""The OpenTelemetry integration against the real SDK: spans go to the SDK's in-memory exporter
through a real TracerProvider; the trace context makes a round trip through the database."""

import json
import logging
import subprocess
import sys
import time

import pytest
from django.test import override_settings
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from bgtask import run_batch, signals
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
    # No task span, no claim or group span: only the test's own.
    assert [span.name for span in spans.get_finished_spans()] == ["request"]


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
watched = (signals.task_started, signals.task_failed, signals.tasks_claimed,
           signals.outcomes_written)
receivers = [str(r[0]) for s in watched for r in s.receivers]
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


def named(exporter, name):
    return [span for span in exporter.get_finished_spans() if span.name == name]


# Groups of at most 7, never written for their age: a drain of 30 successes writes several.
GROUPS_OF_7 = {"BGTASK_OUTCOME_BATCH": 7, "BGTASK_OUTCOME_MAX_DELAY": 600}


@pytest.mark.parametrize("concurrency", [1, 4])
@pytest.mark.django_db(transaction=True)
@override_settings(MAX_ATTEMPTS=5, **GROUPS_OF_7)
def test_claims_and_outcome_groups_are_spans_that_account_for_the_drain(spans, concurrency):
    for i in range(30):
        tasks.ok(i, schedule=0)
    tasks.boom(1, schedule=0)  # a retry, written alone: in a claim, in no group
    tasks.boom(2, schedule=0)
    before = time.time_ns()
    result = run_batch(60, concurrency=concurrency)
    after = time.time_ns()
    assert (result.succeeded, result.retried) == (30, 2)

    claims = named(spans, "bgtask claim")
    assert sum(span.attributes["messaging.batch.message_count"] for span in claims) == 32
    assert len(claims) > 1  # the claim size grows from 1
    groups = named(spans, "bgtask outcome group")
    assert sum(span.attributes["messaging.batch.message_count"] for span in groups) == 30
    assert sum(span.attributes["bgtask.outcomes.written"] for span in groups) == 30
    assert len(groups) >= 30 // 7
    assert all(span.attributes["messaging.batch.message_count"] <= 7 for span in groups)

    first_claim = dict(claims[0].attributes)
    assert first_claim.pop("messaging.batch.message_count") == min(concurrency, 32)
    assert first_claim == {
        "messaging.system": "bgtask",
        "messaging.operation.type": "receive",
        "messaging.operation.name": "claim",
        "bgtask.worker.id": result.worker_id,
    }
    assert claims[0].kind == SpanKind.CLIENT
    assert dict(groups[0].attributes) == {
        "messaging.system": "bgtask",
        "messaging.operation.type": "settle",
        "messaging.operation.name": "outcome group",
        "messaging.batch.message_count": groups[0].attributes["bgtask.outcomes.written"],
        "bgtask.outcomes.written": groups[0].attributes["bgtask.outcomes.written"],
        "bgtask.worker.id": result.worker_id,
    }
    assert groups[0].kind == SpanKind.INTERNAL
    # Recorded after the fact with the statement's own start and end, within the batch.
    for span in claims + groups:
        assert before <= span.start_time <= span.end_time <= after
        assert span.parent is None  # run_batch was called outside any trace
    # Each claim span ends before any task it claimed starts: the first task's span is later.
    first_task = min(task_spans(spans), key=lambda span: span.start_time)
    assert claims[0].end_time <= first_task.start_time


@pytest.mark.django_db
def test_a_claim_of_one_queue_names_it_and_a_batch_in_a_trace_parents_its_spans(spans):
    tasks.ok(1, schedule=0)
    with trace.get_tracer("tests").start_as_current_span("lambda invocation") as invocation:
        assert run_batch(10, queue="reports").succeeded == 1
    (claim,) = named(spans, "bgtask claim")
    assert claim.attributes["messaging.destination.name"] == "reports"
    assert claim.parent.span_id == invocation.context.span_id
    for group in named(spans, "bgtask outcome group"):  # with the default group size
        assert group.parent.span_id == invocation.context.span_id


@pytest.mark.django_db(transaction=True)
@override_settings(**GROUPS_OF_7)
def test_a_receiver_of_the_claim_or_group_signal_that_raises_does_not_stop_the_batch(spans, caplog):
    def broken(sender, **kwargs):
        raise RuntimeError("a broken receiver")

    for i in range(20):
        tasks.ok(i, schedule=0)
    # Each raise is logged; the batch and the OpenTelemetry receivers carry on.
    signals.tasks_claimed.connect(broken)
    signals.outcomes_written.connect(broken)
    try:
        with caplog.at_level(logging.ERROR, logger="bgtask.outcomes"):
            result = run_batch(60)
    finally:
        signals.tasks_claimed.disconnect(broken)
        signals.outcomes_written.disconnect(broken)
    assert result.succeeded == 20
    assert Task.objects.filter(status=Task.SUCCEEDED).count() == 20
    assert (
        sum(s.attributes["messaging.batch.message_count"] for s in named(spans, "bgtask claim"))
        == 20
    )
    groups = named(spans, "bgtask outcome group")
    assert sum(s.attributes["bgtask.outcomes.written"] for s in groups) == 20
    raised = [
        r for r in caplog.records if r.name == "bgtask.outcomes" and "broken" in r.getMessage()
    ]
    assert len(raised) == len(named(spans, "bgtask claim")) + len(groups)


@pytest.mark.django_db(transaction=True)
@override_settings(**GROUPS_OF_7)
def test_the_statement_signals_carry_the_batch_and_the_statement_bounds():
    seen = []

    def receiver(signal, sender, **kwargs):
        seen.append((signal, kwargs))

    for i in range(10):
        tasks.ok(i, schedule=0)
    signals.tasks_claimed.connect(receiver)
    signals.outcomes_written.connect(receiver)
    try:
        result = run_batch(60)
    finally:
        signals.tasks_claimed.disconnect(receiver)
        signals.outcomes_written.disconnect(receiver)
    claimed = [kw for signal, kw in seen if signal is signals.tasks_claimed]
    written = [kw for signal, kw in seen if signal is signals.outcomes_written]
    assert sorted(t.args[0] for kw in claimed for t in kw["tasks"]) == list(range(10))
    assert all(isinstance(t, Task) for kw in claimed for t in kw["tasks"])
    assert sum(kw["count"] for kw in written) == sum(kw["written"] for kw in written) == 10
    for kw in claimed + written:
        assert kw["worker_id"] == result.worker_id
        assert kw["started"].tzinfo is not None and kw["started"] <= kw["finished"]
    assert all(kw["queue"] is None for kw in claimed)
