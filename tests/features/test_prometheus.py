"""The /metrics view: the status figures, parsed back with prometheus_client's own parser, behind
the status endpoint's staff session or bearer token; a clear 501 without the extra."""

import subprocess
import sys

import pytest
from django.contrib.auth.models import Permission, User
from django.test import override_settings
from prometheus_client.parser import text_string_to_metric_families

from bgtask import background
from bgtask.models import Task
from bgtask.web import prometheus

TOKEN = "scrape-token-for-tests"


@background(name="prometheus.work", queue="reports")
def work(n):
    return n


def samples(body: bytes) -> dict[tuple[str, str], float]:
    parsed = {}
    for family in text_string_to_metric_families(body.decode()):
        assert family.type == "gauge"
        for sample in family.samples:
            parsed[(sample.name, sample.labels["queue"])] = sample.value
    return parsed


@pytest.mark.django_db
@override_settings(BGTASK_STATUS_TOKEN=TOKEN)
def test_metrics_give_the_status_figures_per_queue(client):
    work(1, schedule=0)
    work(2, schedule=3600)
    Task.objects.create(
        task_name="prometheus.work", queue="reports", status=Task.FAILED, arguments="{}"
    )
    response = client.get("/bgtask/metrics/", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain; version=0.0.4")
    figures = samples(response.content)
    assert figures[("bgtask_queue_due_tasks", "reports")] == 1
    assert figures[("bgtask_queue_scheduled_tasks", "reports")] == 1
    assert figures[("bgtask_queue_running_tasks", "reports")] == 0
    assert figures[("bgtask_queue_failed_tasks", "reports")] == 1
    assert figures[("bgtask_queue_lag_seconds", "reports")] >= 0
    assert ("bgtask_queue_succeeded_last_day", "reports") in figures


@pytest.mark.django_db
@override_settings(BGTASK_STATUS_TOKEN=TOKEN)
def test_metrics_refuse_anyone_else(client):
    assert client.get("/bgtask/metrics/").status_code == 401
    bad = client.get("/bgtask/metrics/", HTTP_AUTHORIZATION="Bearer wrong")
    assert bad.status_code == 401
    User.objects.create_user("plain", password="pw")
    client.login(username="plain", password="pw")
    assert client.get("/bgtask/metrics/").status_code == 403
    # Staff alone is not enough: the dashboard's rule (bgtask.web.permissions) applies here too.
    staff = User.objects.create_user("staff", password="pw", is_staff=True)
    client.login(username="staff", password="pw")
    assert client.get("/bgtask/metrics/").status_code == 403
    staff.user_permissions.add(
        Permission.objects.get(codename="view_task", content_type__app_label="bgtask")
    )
    assert client.get("/bgtask/metrics/").status_code == 200


@pytest.mark.django_db
@override_settings(BGTASK_STATUS_TOKEN=TOKEN)
def test_without_the_extra_the_view_says_what_to_install(client, monkeypatch):
    monkeypatch.setattr(prometheus, "AVAILABLE", False)
    response = client.get("/bgtask/metrics/", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert response.status_code == 501
    assert "bgtask[prometheus]" in response.json()["error"]


def run_python(code: str) -> str:
    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={"DJANGO_SETTINGS_MODULE": "tests.settings", "PATH": "/usr/bin:/bin"},
    ).stdout.strip()


def test_the_worker_and_the_enqueue_side_never_import_prometheus_client():
    code = (
        "import sys, django; django.setup(); import bgtask.worker.batch, bgtask.decorators;"
        "print('prometheus_client' in sys.modules)"
    )
    assert run_python(code) == "False"


def test_without_prometheus_client_the_urls_still_load():
    # None in sys.modules makes any import of it raise ImportError, as if it were not installed.
    code = (
        "import sys; sys.modules['prometheus_client'] = None; import django; django.setup();"
        "import bgtask.urls; from bgtask.web import prometheus; print(prometheus.AVAILABLE)"
    )
    assert run_python(code) == "False"


def test_the_grafana_dashboard_queries_metrics_the_view_serves():
    import json
    import re
    from pathlib import Path

    dashboard = json.loads(
        (Path(__file__).parents[2] / "infra" / "grafana-dashboard.json").read_text()
    )
    used = {
        name
        for panel in dashboard["panels"]
        for target in panel["targets"]
        for name in re.findall(r"bgtask_[a-z_]+", target["expr"])
    }
    assert used <= {name for name, _, _ in prometheus.GAUGES}
    assert used
