"""The admin in a real browser: Debian's Chromium driven by Playwright against a live server on
the test database. Log in, read the list, the dashboard (light and dark) and a failed task, press
each action button; then every page at 1280 and 1920 px, light and dark. Screenshots are kept in
test-artifacts/ for a person to look at.
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.utils import timezone

from bgtask.features.pausing import pause_queue
from bgtask.models import Task, WorkerBatch

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
    rows["running"] = Task.objects.create(
        task_name="app.job_1",
        verbose_name="Nightly export for ACME",
        status=Task.RUNNING,
        locked_by="web-1:4242",
        started_at=now - timedelta(seconds=30),
        locked_until=now + timedelta(minutes=5),
        progress=0.42,
        progress_note="page 42 of 100",
    )
    rows["retrying"] = Task.objects.create(
        task_name="mail.send",
        queue="mail",
        attempts=2,
        started_at=now - timedelta(minutes=1),
        run_at=now + timedelta(minutes=3),
        last_error=TRACEBACK,
    )
    rows["cancelled"] = Task.objects.create(
        task_name="mail.send",
        queue="mail",
        status=Task.CANCELLED,
        last_error="Cancelled: campaign over",
        finished_at=now - timedelta(minutes=20),
    )
    pause_queue("reports")
    WorkerBatch.objects.create(
        host="cron-box-1",
        worker_id="cron-box-1:311:0a1b2c3d4e5f",
        finished_at=now - timedelta(seconds=20),
        counts='{"succeeded": 57, "failed": 1, "retried": 2, "released": 0, "rescued": 0}',
    )
    WorkerBatch.objects.create(
        host="cron-box-2",
        worker_id="cron-box-2:977:f5e4d3c2b1a0",
        finished_at=now - timedelta(minutes=42),
        counts='{"succeeded": 3, "failed": 0, "retried": 0, "released": 0, "rescued": 0}',
    )
    return rows


def shot(page, name: str, full_page: bool = True) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=full_page)


def log_in(browser, live_server, width: int, scheme: str = "light"):
    context = browser.new_context(viewport={"width": width, "height": 900}, color_scheme=scheme)
    page = context.new_page()
    page.set_default_timeout(30_000)  # a loaded CI machine; every wait ends on an event
    page.goto(f"{live_server.url}/admin/login/?next=/admin/bgtask/task/")
    page.fill("#id_username", "operator")
    page.fill("#id_password", "correct horse")
    page.click("input[type=submit]")
    return context, page


def test_an_operator_reads_the_dashboard_and_acts_on_tasks(live_server, browser, tasks):
    User.objects.create_superuser("operator", "op@example.invalid", "correct horse")
    context, page = log_in(browser, live_server, 1280)

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
    page.wait_for_selector("text=1 failed or cancelled task(s) queued again.")
    assert page.locator(".field-status_display").inner_text().strip().endswith("Queued")
    assert Task.objects.get(pk=tasks["failed"].pk).status == Task.QUEUED

    # Run now: a task scheduled for tomorrow becomes due.
    page.goto(f"{live_server.url}/admin/bgtask/task/{tasks['scheduled'].pk}/change/")
    assert "due at" in page.locator(".field-when .readonly").inner_text()
    page.click("button:has-text('Run now')")
    page.wait_for_selector("text=1 queued task(s) are due now.")
    assert "due since" in page.locator(".field-when .readonly").inner_text()
    assert Task.objects.due().filter(pk=tasks["scheduled"].pk).exists()

    # Cancel: the queued task is cancelled with the operator named, and only Retry is left.
    page.goto(f"{live_server.url}/admin/bgtask/task/{tasks['to_cancel'].pk}/change/")
    page.click("button:has-text('Cancel')")
    page.wait_for_selector("text=1 queued task(s) cancelled.")
    assert "cancelled in the admin by operator" in page.locator(".field-traceback").inner_text()
    assert page.locator(".field-status_display").inner_text().strip().endswith("Cancelled")
    assert page.locator(".bgtask-actions button").count() == 1  # only Retry is left
    assert Task.objects.get(pk=tasks["to_cancel"].pk).status == Task.CANCELLED

    # Pause and resume a queue from the dashboard.
    page.goto(f"{live_server.url}/admin/bgtask/task/dashboard/")
    row = page.locator(".bgtask-dashboard tr", has=page.locator("a", has_text="mail")).first
    row.locator("button", has_text="Pause").click()
    page.wait_for_selector("text=Queue 'mail' paused.")
    row = page.locator(".bgtask-dashboard tr", has=page.locator("a", has_text="mail")).first
    assert row.locator(".bgtask-paused").inner_text() == "Paused"
    row.locator("button", has_text="Resume").click()
    page.wait_for_selector("text=Queue 'mail' resumed.")
    context.close()


def _rgb(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text[text.index("(") + 1 : text.index(")")].split(",")[:3])


def _contrast(foreground: str, background: str) -> float:
    """WCAG contrast ratio of two computed CSS colours."""

    def luminance(rgb):
        channels = [c / 255 for c in rgb]
        lin = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
        return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]

    high, low = sorted((luminance(_rgb(foreground)), luminance(_rgb(background))), reverse=True)
    return (high + 0.05) / (low + 0.05)


def _fits_the_width(page) -> None:
    overflow = page.evaluate(
        "document.scrollingElement.scrollWidth - document.scrollingElement.clientWidth"
    )
    assert overflow <= 0, f"{overflow} px wider than the window"


@pytest.mark.parametrize("width", [1280, 1920])
@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_every_page_at_two_widths_in_both_themes(
    live_server, browser, tasks, width, scheme, settings
):
    # A queue with limits (issue 19 item 5), so the dashboard shows its Limits table too.
    settings.BGTASK_QUEUE_LIMITS = {"mail": {"max_running": 2, "rate": "100/m"}}
    User.objects.create_superuser("operator", "op@example.invalid", "correct horse")
    context, page = log_in(browser, live_server, width, scheme)
    name = f"{width}-{scheme}"

    # The list: the error line keeps its room, When and Attempts columns, progress under status.
    page.wait_for_selector("#result_list")
    shot(page, f"list-{name}", full_page=False)  # before the checks, to see what failed
    _fits_the_width(page)
    failed_row = page.locator(f"#result_list tr:has(a:text-is('{tasks['failed'].pk}'))")
    box = failed_row.locator(".bgtask-error").bounding_box()
    assert box is not None and box["width"] > 180 and box["height"] < 40, box
    assert "failed" in failed_row.locator(".field-when_cell").inner_text()
    assert failed_row.locator(".field-attempts_cell").inner_text() == "25"
    running_row = page.locator(f"#result_list tr:has(a:text-is('{tasks['running'].pk}'))")
    assert "42 % page 42 of 100" in running_row.locator(".field-status_cell").inner_text()
    retrying_row = page.locator(f"#result_list tr:has(a:text-is('{tasks['retrying'].pk}'))")
    assert retrying_row.locator(".bgtask-error").inner_text().startswith("Earlier attempt:")
    assert page.locator("text=Show counts").count() == 0

    # The dashboard: the charts keep the viewBox's proportions, stale host and paused queue show.
    page.goto(f"{live_server.url}/admin/bgtask/task/dashboard/")
    page.wait_for_selector("svg.bgtask-chart")
    shot(page, f"dashboard-{name}")
    _fits_the_width(page)
    for chart in page.locator("svg.bgtask-chart").all():
        box = chart.bounding_box()
        assert abs(box["height"] / box["width"] - 180 / 720) < 0.02, box
    assert page.locator(".bgtask-paused", has_text="Paused").count() == 1
    assert page.locator("text=cron-box-2").is_visible()
    assert page.locator("tr:has-text('cron-box-2') .bgtask-paused").inner_text() == "stale"
    assert page.locator(".bgtask-stale-warning").count() == 0  # cron-box-1 ran 20 s ago
    failing = page.locator(".bgtask-failing-task", has_text="reports.build_monthly_report")
    assert failing.locator(".bgtask-error").inner_text().startswith("ConnectionError")
    # The Limits table: the queue's limit in words and its due tasks held back (the queued
    # task to cancel is one), its link to the queued tasks of that queue.
    limit_row = page.locator("table.bgtask-limits tr", has=page.locator("code", has_text="mail"))
    assert limit_row.count() == 1
    cells = limit_row.locator("td").all_inner_texts()
    assert "2" in cells[1] and "100/m" in cells[1], cells
    assert int(cells[2].rstrip("+")) >= 1, cells
    assert "queue__exact=mail" in limit_row.locator("a").get_attribute("href")

    # A failed task's page, a queued one (its Cancel button) and a running one (its progress).
    page.goto(f"{live_server.url}/admin/bgtask/task/{tasks['failed'].pk}/change/")
    shot(page, f"failed-task-{name}")
    _fits_the_width(page)
    assert page.locator("h1").inner_text() == "View task"
    page.goto(f"{live_server.url}/admin/bgtask/task/{tasks['to_cancel'].pk}/change/")
    cancel = page.locator("button", has_text="Cancel")
    colour, background = cancel.evaluate(
        "b => [getComputedStyle(b).color, getComputedStyle(b).backgroundColor]"
    )
    assert _contrast(colour, background) >= 4.5, (colour, background)
    shot(page, f"queued-task-{name}", full_page=False)
    page.goto(f"{live_server.url}/admin/bgtask/task/{tasks['retrying'].pk}/change/")
    assert page.locator(".field-error_line").inner_text().count("From an earlier attempt") == 1
    shot(page, f"retrying-task-{name}", full_page=False)
    page.goto(f"{live_server.url}/admin/bgtask/task/{tasks['running'].pk}/change/")
    assert "42 %" in page.locator(".field-progress_display").inner_text()
    assert "Nightly export for ACME" in page.locator(".field-verbose_name").inner_text()
    assert "so far" in page.locator(".field-run_duration").inner_text()
    shot(page, f"running-task-{name}")
    context.close()
