"""The admin in a real browser: Debian's Chromium driven by Playwright against a live server on
the test database. Log in, read the list, the dashboard (light and dark) and a failed task, press
each action button, and keep screenshots in test-artifacts/ for a person to look at.
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.utils import timezone

from bgtask.models import Task

CHROMIUM = os.environ.get("BGTASK_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
TRACEBACK = (
    "Traceback (most recent call last):\n"
    '  File "/srv/app/reports.py", line 88, in build_monthly_report\n'
    "    rows = fetch_rows(customer_id, month)\n"
    '  File "/srv/app/reports.py", line 41, in fetch_rows\n'
    "    raise ConnectionError(f'warehouse at {host} refused the connection')\n"
    "ConnectionError: warehouse at db-replica-3.internal:5432 refused the connection "
    "after 3 attempts (timeout 10 s)\n"
)

if not Path(CHROMIUM).exists():
    pytest.skip(
        f"Chromium not found at {CHROMIUM}: install Debian's chromium package (.ci/run does).",
        allow_module_level=True,
    )
sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright (.[dev])")

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def browser(monkeypatch):
    # Playwright's sync API keeps an event loop on this thread, which makes Django refuse ORM
    # calls here; the calls stay synchronous, one at a time, so the guard can be lifted.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        yield browser
        browser.close()


@pytest.fixture
def tasks():
    now = timezone.now()
    # Some history for the charts: successes and failures spread over the last hour and day.
    history = []
    for i in range(120):
        finished = now - timedelta(minutes=i * 11 % 1400)
        failed = i % 9 == 0
        history.append(
            Task(
                task_name=f"app.job_{i % 5}",
                queue="default" if i % 3 else "mail",
                status=Task.FAILED if failed else Task.SUCCEEDED,
                last_error="ValueError: bad input" if failed else "",
                started_at=finished - timedelta(seconds=i % 7 + 1),
                finished_at=finished,
            )
        )
    Task.objects.bulk_create(history)
    rows = {
        "failed": Task.objects.create(
            task_name="reports.build_monthly_report",
            queue="reports",
            status=Task.FAILED,
            attempts=25,
            arguments='{"args": [4211], "kwargs": {"month": "2026-10", "notify": true}}',
            last_error=TRACEBACK,
            started_at=now - timedelta(minutes=3),
            failed_at=now - timedelta(minutes=3),
            finished_at=now - timedelta(minutes=3),
        ),
        "scheduled": Task.objects.create(task_name="mail.send", run_at=now + timedelta(days=1)),
        "to_cancel": Task.objects.create(task_name="mail.send", queue="mail"),
    }
    Task.objects.create(
        task_name="app.job_1",
        status=Task.RUNNING,
        locked_by="web-1:4242",
        started_at=now - timedelta(seconds=30),
        locked_until=now + timedelta(minutes=5),
    )
    return rows


def shot(page, name: str, full_page: bool = True) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=full_page)


def test_an_operator_reads_the_dashboard_and_acts_on_tasks(live_server, browser, tasks):
    User.objects.create_superuser("operator", "op@example.invalid", "correct horse")
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(30_000)  # a loaded CI machine; every wait ends on an event
    page.goto(f"{live_server.url}/admin/login/?next=/admin/bgtask/task/")
    page.fill("#id_username", "operator")
    page.fill("#id_password", "correct horse")
    page.click("input[type=submit]")

    # The list at 1280 px: the error summary is readable (at most two lines under the task's
    # name, cut with an ellipsis), not a squeezed column.
    page.wait_for_selector("#result_list")
    error = page.locator(f"#result_list tr:has(a:text-is('{tasks['failed'].pk}')) .bgtask-error")
    box = error.bounding_box()
    assert box is not None and box["width"] > 180 and box["height"] < 40, box
    assert box["x"] + box["width"] < page.locator("#changelist-filter").bounding_box()["x"]
    assert error.get_attribute("title").startswith("ConnectionError: warehouse")
    assert not page.locator(".addlink").filter(has_text="Add task").count()
    shot(page, "list-1280", full_page=False)

    # The dashboard, linked from the list.
    page.click("text=Dashboard")
    page.wait_for_selector("svg.bgtask-chart")
    assert page.locator("svg.bgtask-chart").count() == 2
    assert page.locator("svg.bgtask-chart rect.bar.succeeded").count() > 10
    assert page.locator("text=web-1:4242").is_visible()
    assert page.locator("meta[http-equiv=refresh]").count() == 1
    shot(page, "dashboard-light")
    page.emulate_media(color_scheme="dark")
    page.reload()
    page.wait_for_selector("svg.bgtask-chart")
    background = page.evaluate("getComputedStyle(document.body).backgroundColor")
    assert background != "rgb(255, 255, 255)", background  # the admin's dark theme is on
    shot(page, "dashboard-dark")
    page.emulate_media(color_scheme="light")

    # A failed task: the outcome first, above the fold; the whole traceback; the Retry button.
    page.goto(f"{live_server.url}/admin/bgtask/task/{tasks['failed'].pk}/change/")
    line = page.locator(".field-error_line .readonly")
    assert line.inner_text().startswith("ConnectionError: warehouse at db-replica-3")
    assert line.bounding_box()["y"] < 900
    assert "in fetch_rows" in page.locator(".field-traceback pre").inner_text()
    assert '"month": "2026-10"' in page.locator(".field-arguments_display pre").inner_text()
    assert page.locator("input[name=_save], textarea").count() == 0
    assert page.locator("button", has_text="Cancel").count() == 0
    shot(page, "failed-task")
    page.click("button:has-text('Retry')")
    page.wait_for_selector("text=1 failed task(s) queued again.")
    assert page.locator(".field-status_display").inner_text().strip().endswith("Queued")
    assert Task.objects.get(pk=tasks["failed"].pk).status == Task.QUEUED

    # Run now: a task scheduled for tomorrow becomes due.
    page.goto(f"{live_server.url}/admin/bgtask/task/{tasks['scheduled'].pk}/change/")
    assert "due at" in page.locator(".field-when .readonly").inner_text()
    page.click("button:has-text('Run now')")
    page.wait_for_selector("text=1 queued task(s) are due now.")
    assert "due since" in page.locator(".field-when .readonly").inner_text()
    assert Task.objects.due().filter(pk=tasks["scheduled"].pk).exists()

    # Cancel: the queued task fails with the operator named, and the buttons go away.
    page.goto(f"{live_server.url}/admin/bgtask/task/{tasks['to_cancel'].pk}/change/")
    page.click("button:has-text('Cancel')")
    page.wait_for_selector("text=1 queued task(s) cancelled.")
    assert "cancelled in the admin by operator" in page.locator(".field-traceback").inner_text()
    assert page.locator(".bgtask-actions button").count() == 1  # only Retry is left
    context.close()
