"""Django's 500s through the web function are not Lambda errors, so template.yaml counts them
from the log: a metric filter ``{ $.logger = "django.request" && $.status_code >= 500 }`` on the
runtime's JSON lines. These tests check those fields are there, as the Lambda runtime client
(awslambdaric's JSON formatter, what ``LogFormat: JSON`` uses) writes a failed request's event."""

from __future__ import annotations

import json
import logging

import pytest
from awslambdaric.lambda_runtime_log_utils import JsonFormatter
from django.test import override_settings

from handlers import web
from tests.handlers.conftest import load_event

pytestmark = pytest.mark.django_db(transaction=True)


class JsonLines(logging.Handler):
    """What the Lambda runtime's root handler would write: one JSON object per event."""

    def __init__(self) -> None:
        super().__init__()
        self.setFormatter(JsonFormatter())
        self.lines: list[dict] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(json.loads(self.format(record)))


def _filter_matches(line: dict) -> bool:
    """template.yaml's WebServerErrorsMetricFilter pattern, evaluated on one JSON line."""
    status = line.get("status_code")
    return line.get("logger") == "django.request" and isinstance(status, int) and status >= 500


def _request(path: str, context) -> dict:
    event = load_event("web-status")
    event["rawPath"] = event["requestContext"]["http"]["path"] = path
    return web.handler(event, context)


@override_settings(ROOT_URLCONF="tests.handlers.failing_urls", DEBUG=False)
def test_a_django_500_is_a_json_line_the_metric_filter_counts(context):
    # The first request sets the web function up (Django's logging configuration included, which
    # replaces the handlers of its loggers): the runtime's handler is in place after it.
    assert _request("/missing/", context)["statusCode"] == 404
    lines = JsonLines()
    logging.getLogger("django.request").addHandler(lines)
    try:
        answer = _request("/boom/", context)
        missing = _request("/missing/", context)
    finally:
        logging.getLogger("django.request").removeHandler(lines)
    assert answer["statusCode"] == 500
    assert missing["statusCode"] == 404
    counted = [line for line in lines.lines if _filter_matches(line)]
    assert [(c["status_code"], c["level"]) for c in counted] == [(500, "ERROR")]
    assert counted[0]["message"] == "Internal Server Error: /boom/"
    # The 404 is logged too, and not counted.
    assert [line["status_code"] for line in lines.lines] == [500, 404]
