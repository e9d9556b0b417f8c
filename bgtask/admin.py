"""The Task admin: filter by status, queue and task name; search; counts per status; the last
error shown as written; actions run now, retry (failed back to queued, attempts reset) and cancel.
"""

from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import Count, QuerySet
from django.utils.html import format_html

from bgtask import clock
from bgtask.cancellation import cancel_queued
from bgtask.models import PeriodicOccurrence, Task

ERROR_SUMMARY_LENGTH = 80


def run_now(tasks: QuerySet) -> int:
    """Make queued tasks due at once (a scheduled or backing-off task jumps its wait)."""
    return tasks.filter(status=Task.QUEUED).update(run_at=clock.now(tasks.db))


def retry_failed(tasks: QuerySet) -> int:
    """Put failed tasks back in the queue, due now, with their attempts reset. ``last_error``
    is kept until the next run overwrites it; a unique task comes back without its key."""
    return tasks.filter(status=Task.FAILED).update(
        status=Task.QUEUED,
        attempts=0,
        run_at=clock.now(tasks.db),
        failed_at=None,
        finished_at=None,
        started_at=None,
    )


def error_summary(text: str) -> str:
    """The line that names the exception (the last one of a traceback), shortened."""
    lines = [line for line in text.strip().splitlines() if line.strip()]
    if not lines:
        return ""
    line = lines[-1] if lines[0].startswith("Traceback") else lines[0]
    return line if len(line) <= ERROR_SUMMARY_LENGTH else line[: ERROR_SUMMARY_LENGTH - 1] + "…"


@admin.register(Task)
class TaskAdmin(admin.ModelAdmin):
    list_display = (
        "id",
        "task_name",
        "queue",
        "status",
        "priority",
        "run_at",
        "attempts",
        "error",
    )
    list_filter = ("status", "queue", "task_name")
    search_fields = ("task_name", "arguments", "last_error")
    ordering = ("-id",)
    date_hierarchy = "run_at"
    actions = ("action_run_now", "action_retry", "action_cancel")
    readonly_fields = (
        "created_at",
        "started_at",
        "finished_at",
        "failed_at",
        "locked_by",
        "locked_until",
        "unique_key",
        "result",
        "last_error_display",
    )
    exclude = ("last_error",)
    change_list_template = "admin/bgtask/task/change_list.html"

    @admin.display(description="Last error")
    def error(self, task: Task) -> str:
        return error_summary(task.last_error)

    @admin.display(description="Last error")
    def last_error_display(self, task: Task) -> str:
        if not task.last_error:
            return "-"
        return format_html(
            '<pre style="white-space: pre-wrap; max-height: 40em; overflow: auto;">{}</pre>',
            task.last_error,
        )

    def changelist_view(self, request, extra_context=None):
        counts = dict(Task.objects.values_list("status").annotate(n=Count("id")).order_by("status"))
        extra_context = {
            **(extra_context or {}),
            "status_counts": [
                (label, counts.get(value, 0)) for value, label in Task.STATUS_CHOICES
            ],
        }
        return super().changelist_view(request, extra_context=extra_context)

    @admin.action(description="Run now (queued tasks)")
    def action_run_now(self, request, queryset):
        count = run_now(queryset)
        self.message_user(request, f"{count} queued task(s) are due now.", messages.SUCCESS)

    @admin.action(description="Retry (failed tasks back to queued, attempts reset)")
    def action_retry(self, request, queryset):
        count = retry_failed(queryset)
        self.message_user(request, f"{count} failed task(s) queued again.", messages.SUCCESS)

    @admin.action(description="Cancel (queued tasks; running ones finish)")
    def action_cancel(self, request, queryset):
        count = cancel_queued(queryset, reason=f"cancelled in the admin by {request.user}")
        self.message_user(request, f"{count} queued task(s) cancelled.", messages.SUCCESS)


@admin.register(PeriodicOccurrence)
class PeriodicOccurrenceAdmin(admin.ModelAdmin):
    """Read-only: the last occurrence each ``@periodic`` task had enqueued. Deleting a row makes
    the next batch treat the task as first seen (it resumes at its next occurrence)."""

    list_display = ("name", "last_enqueued_at", "updated_at")
    search_fields = ("name",)
    readonly_fields = ("name", "last_enqueued_at", "updated_at")

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False
