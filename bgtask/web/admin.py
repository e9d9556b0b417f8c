"""The Task admin and the queue dashboard.

A task's page is a view, not a form: every field is read-only, the outcome comes first, and a
task changes only through the actions (run now, retry, cancel), offered in the list and as buttons
on the page. Nobody adds a task here: a row written by hand could carry arguments the worker
cannot decode, or a ``running`` status without a lease.

The list stays fast at a million rows: counts are capped instead of exact, filter choices come from
the registered tasks instead of a DISTINCT over the table, there is no date hierarchy, only the id
column sorts, and the search box matches an id or an exact task name (indexed) unless
``BGTASK_ADMIN_FULL_SEARCH`` opts in to substring search over arguments and errors.
"""

from __future__ import annotations

import json
from functools import cached_property

import django
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db import transaction
from django.db.models import Q, QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html

from bgtask import clock, conf, registry
from bgtask.enqueue.announce import announce
from bgtask.features.cancellation import cancel_queued
from bgtask.models import PeriodicOccurrence, Task
from bgtask.web.charts import stacked_bars
from bgtask.web.status import health, status_is

ERROR_SUMMARY_LENGTH = 80
#: Rows the list counts at most; beyond it the list says "more than" instead of counting them all.
COUNT_CAP = 10_000
#: Seconds between two refreshes of the dashboard.
DASHBOARD_REFRESH = 30


def _due_at_once(tasks: QuerySet, status: str, **fields) -> int:
    """Make the ``status`` tasks of ``tasks`` queued and due now, and wake idle workers for
    their queues (in the same transaction: woken only if the change commits)."""
    chosen = tasks.filter(status=status)
    with transaction.atomic(using=tasks.db):
        queues = set(chosen.values_list("queue", flat=True).distinct())
        count = chosen.update(status=Task.QUEUED, run_at=clock.now(tasks.db), **fields)
        if count:
            announce(queues, tasks.db)
    return count


def run_now(tasks: QuerySet) -> int:
    """Make queued tasks due at once (a scheduled or backing-off task jumps its wait)."""
    return _due_at_once(tasks, Task.QUEUED)


def retry_failed(tasks: QuerySet) -> int:
    """Put failed tasks back in the queue, due now, with their attempts reset. ``last_error``
    is kept until the next run overwrites it; a unique task comes back without its key."""
    return _due_at_once(
        tasks, Task.FAILED, attempts=0, failed_at=None, finished_at=None, started_at=None
    )


def error_summary(text: str, length: int = ERROR_SUMMARY_LENGTH) -> str:
    """The line that names the exception (the last one of a traceback), shortened."""
    lines = [line for line in text.strip().splitlines() if line.strip()]
    if not lines:
        return ""
    line = lines[-1] if lines[0].startswith("Traceback") else lines[0]
    return line if len(line) <= length else line[: length - 1] + "…"


def duration_text(seconds: float) -> str:
    """``3725.0`` -> ``"1 h 2 min"``; ``0`` -> ``"-"``."""
    if seconds < 1:
        return "-"
    seconds = int(seconds)
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {minutes} min"
    return f"{minutes} min {secs} s" if minutes else f"{secs} s"


def capped_count(tasks: QuerySet, cap: int = COUNT_CAP) -> int:
    """``min(tasks.count(), cap + 1)``, reading at most ``cap + 1`` rows."""
    return tasks.order_by()[: cap + 1].count()


class CappedPaginator(Paginator):
    """Counts at most ``COUNT_CAP + 1`` rows, so a page view never counts the whole table; past
    the cap, the list offers the first ``COUNT_CAP`` rows' pages (narrow it with a filter)."""

    @cached_property
    def count(self) -> int:
        return capped_count(self.object_list)


class RegisteredChoicesFilter(admin.SimpleListFilter):
    """Choices from the registered tasks, plus whatever value is selected."""

    def choices_from_registry(self) -> set[str]:
        raise NotImplementedError

    def lookups(self, request, model_admin):
        values = self.choices_from_registry()
        if self.value():
            values.add(self.value())
        return [(value, value) for value in sorted(values)]

    def queryset(self, request, queryset):
        field = self.parameter_name.removesuffix("__exact")
        return queryset.filter(**{field: self.value()}) if self.value() else queryset


class StatusFilter(admin.SimpleListFilter):
    """Status as a literal in the SQL, so that SQLite can use the partial indexes of running and
    failed tasks (a bound parameter hides which part of the table a query wants)."""

    title = "status"
    parameter_name = "status__exact"

    def lookups(self, request, model_admin):
        return Task.STATUS_CHOICES

    def queryset(self, request, queryset):
        if self.value() == Task.RUNNING:
            # Running tasks are few (workers x claim size). Found without an ORDER BY, they come
            # from the partial lease index; ordered by id, SQLite would rather walk the whole
            # primary key backwards looking for them.
            running = Task.objects.filter(status_is(Task.RUNNING)).order_by()
            return queryset.filter(id__in=list(running.values_list("id", flat=True)[:COUNT_CAP]))
        if self.value() in dict(Task.STATUS_CHOICES):
            return queryset.filter(status_is(self.value()))
        return queryset


class QueueFilter(RegisteredChoicesFilter):
    title = "queue"
    parameter_name = "queue__exact"

    def choices_from_registry(self) -> set[str]:
        default = conf.default_queue()
        # Not every registered runner names a queue (Django Tasks' runner has none).
        queues = {getattr(registry.get(name), "queue", None) for name in registry.names()}
        # Plus the queues with work waiting, read from the partial index of queued rows (its
        # leading column is queue), never a DISTINCT over the history.
        waiting = Task.objects.filter(status_is(Task.QUEUED)).values_list("queue", flat=True)
        return {queue or default for queue in queues} | {default} | set(waiting.distinct())


class TaskNameFilter(RegisteredChoicesFilter):
    title = "task name"
    parameter_name = "task_name__exact"

    def choices_from_registry(self) -> set[str]:
        return set(registry.names())


OUTCOME_FIELDS = ("status_display", "attempts", "when", "error_line", "traceback")
TASK_FIELDS = (
    "id",
    "task_name",
    "queue",
    "priority",
    "run_at",
    "created_at",
    "started_at",
    "finished_at",
    "failed_at",
    "locked_by",
    "locked_until",
    "unique_key",
    "repeat",
    "repeat_until",
    "timeout",
)
DATA_FIELDS = ("arguments_display", "result_display")

#: action name -> (function(queryset) -> count, message, statuses it applies to)
PAGE_ACTIONS = {
    "run_now": (run_now, "{} queued task(s) are due now.", (Task.QUEUED,)),
    "retry": (retry_failed, "{} failed task(s) queued again.", (Task.FAILED,)),
    "cancel": (None, "{} queued task(s) cancelled.", (Task.QUEUED,)),
}


def _pretty_json(text: str | None) -> str:
    if text is None:
        return "-"
    try:
        return json.dumps(json.loads(text), indent=2, ensure_ascii=False, sort_keys=True)
    except ValueError:
        return text  # a corrupt row is shown as stored


@admin.register(Task)
class TaskAdmin(admin.ModelAdmin):
    list_display = (
        "id",
        "task",
        "queue",
        "status",
        "due",
    )
    list_filter = (StatusFilter, QueueFilter, TaskNameFilter)
    # Shown for the search box; get_search_results decides what a term matches.
    search_fields = ("task_name",)
    search_help_text = "An id or an exact task name."
    ordering = ("-id",)
    sortable_by = ("id",)
    show_full_result_count = False
    paginator = CappedPaginator
    actions = ("action_run_now", "action_retry", "action_cancel")
    fieldsets = (
        ("Outcome", {"fields": OUTCOME_FIELDS}),
        ("Task", {"fields": TASK_FIELDS}),
        ("Arguments and result", {"fields": DATA_FIELDS}),
    )
    readonly_fields = OUTCOME_FIELDS + TASK_FIELDS + DATA_FIELDS
    change_list_template = "admin/bgtask/task/change_list.html"
    change_form_template = "admin/bgtask/task/change_form.html"

    # -- the list -----------------------------------------------------------------------------

    @admin.display(description="Run at")
    def due(self, task: Task) -> str:
        # Compact, so that the error column keeps its room at 1280 px beside the filters.
        return f"{timezone.localtime(task.run_at):%Y-%m-%d %H:%M}"

    @admin.display(description="Task and last error")  # attempts: on the task's page
    def task(self, task: Task) -> str:
        # The error's line sits under the name, cut to the cell's width (the whole line in its
        # tooltip, the traceback on the task's page): a column of its own was squeezed to
        # nothing beside the filters at 1280 px.
        # A verbose_name, when the task has one, is a muted line of the same cell, for the same
        # reason.
        name = task.task_name
        if task.verbose_name:
            name = format_html('{}<span class="bgtask-label">{}</span>', name, task.verbose_name)
        if not task.last_error:
            return name
        line = error_summary(task.last_error, length=1000)
        return format_html('{}<span class="bgtask-error" title="{}">{}</span>', name, line, line)

    def get_search_results(self, request, queryset, search_term):
        term = search_term.strip()
        if not term:
            return queryset, False
        match = Q(task_name=term)
        if term.isdigit():
            match |= Q(id=int(term))
        if conf.admin_full_search():
            # Opt-in: reads every row (no index serves a substring match).
            match |= (
                Q(task_name__icontains=term)
                | Q(verbose_name__icontains=term)
                | Q(arguments__icontains=term)
                | Q(last_error__icontains=term)
            )
        return queryset.filter(match), False

    def get_search_fields(self, request):
        return self.search_fields

    def changelist_view(self, request, extra_context=None):
        counts = [
            (label, capped_count(Task.objects.filter(status_is(value))))
            for value, label in Task.STATUS_CHOICES
        ]
        extra_context = {
            **(extra_context or {}),
            "status_counts": counts,
            "count_cap": COUNT_CAP,
            "dashboard_url": reverse("admin:bgtask_task_dashboard"),
        }
        return super().changelist_view(request, extra_context=extra_context)

    @admin.action(description="Run now (queued tasks)", permissions=["change"])
    def action_run_now(self, request, queryset):
        count = run_now(queryset)
        self.message_user(request, f"{count} queued task(s) are due now.", messages.SUCCESS)

    @admin.action(
        description="Retry (failed tasks back to queued, attempts reset)", permissions=["change"]
    )
    def action_retry(self, request, queryset):
        count = retry_failed(queryset)
        self.message_user(request, f"{count} failed task(s) queued again.", messages.SUCCESS)

    @admin.action(description="Cancel (queued tasks; running ones finish)", permissions=["change"])
    def action_cancel(self, request, queryset):
        count = cancel_queued(queryset, reason=f"cancelled in the admin by {request.user}")
        self.message_user(request, f"{count} queued task(s) cancelled.", messages.SUCCESS)

    # -- a task's page --------------------------------------------------------------------------

    def has_add_permission(self, request) -> bool:
        return False

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        # Every field is read-only; a POST here could only write the row back as it was read,
        # over whatever a worker wrote meanwhile.
        if request.method == "POST":
            return HttpResponseNotAllowed(["GET"])
        task = self.get_object(request, object_id) if object_id else None
        can_change = task is not None and self.has_change_permission(request, task)
        buttons = [
            (name, reverse("admin:bgtask_task_act", args=[task.pk, name]))
            for name, (_, _, statuses) in PAGE_ACTIONS.items()
            if can_change and task.status in statuses
        ]
        extra_context = {
            **(extra_context or {}),
            "show_save": False,
            "show_save_and_continue": False,
            "show_save_and_add_another": False,
            "task_actions": buttons,
        }
        return super().changeform_view(request, object_id, form_url, extra_context)

    @admin.display(description="Status")
    def status_display(self, task: Task) -> str:
        return format_html(
            '<span class="bgtask-status bgtask-status-{}">{}</span>',
            task.status,
            task.get_status_display(),
        )

    @admin.display(description="When")
    def when(self, task: Task) -> str:
        if task.status == Task.QUEUED:
            label, at = ("due since" if task.run_at <= timezone.now() else "due at"), task.run_at
        elif task.status == Task.RUNNING:
            label, at = "started", task.started_at
        else:
            label, at = task.status, task.finished_at or task.failed_at
        if at is None:
            return label
        return f"{label} {timezone.localtime(at):%Y-%m-%d %H:%M:%S %Z}"

    @admin.display(description="Error")
    def error_line(self, task: Task) -> str:
        return error_summary(task.last_error, length=1000) or "-"

    @admin.display(description="Traceback")
    def traceback(self, task: Task) -> str:
        if not task.last_error:
            return "-"
        return format_html('<pre class="bgtask-block">{}</pre>', task.last_error)

    @admin.display(description="Arguments")
    def arguments_display(self, task: Task) -> str:
        return format_html('<pre class="bgtask-block">{}</pre>', _pretty_json(task.arguments))

    @admin.display(description="Result")
    def result_display(self, task: Task) -> str:
        return format_html('<pre class="bgtask-block">{}</pre>', _pretty_json(task.result))

    def act_view(self, request: HttpRequest, object_id: str, action: str) -> HttpResponse:
        """POST from a task page's buttons: run one action on this one task."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        if action not in PAGE_ACTIONS:
            raise PermissionDenied(f"Unknown action {action!r}.")
        task = get_object_or_404(Task, pk=object_id)
        if not self.has_change_permission(request, task):
            raise PermissionDenied
        function, message, _ = PAGE_ACTIONS[action]
        one = Task.objects.filter(pk=task.pk)
        if action == "cancel":
            count = cancel_queued(one, reason=f"cancelled in the admin by {request.user}")
        else:
            count = function(one)
        level = messages.SUCCESS if count else messages.WARNING
        self.message_user(request, message.format(count), level)
        return HttpResponseRedirect(reverse("admin:bgtask_task_change", args=[task.pk]))

    # -- the dashboard --------------------------------------------------------------------------

    def dashboard_view(self, request: HttpRequest) -> HttpResponse:
        if not self.has_view_or_change_permission(request):
            raise PermissionDenied
        figures = health()
        throughput = figures["throughput"]
        context = {
            **self.admin_site.each_context(request),
            "title": "Task queue dashboard",
            "opts": self.opts,
            "figures": figures,
            "queues": [
                {"name": name, "stats": stats, "lag": duration_text(stats["oldest_due_age"])}
                for name, stats in figures["queues"].items()
            ],
            "refresh": DASHBOARD_REFRESH,
            "per_minute": stacked_bars(throughput["per_minute"], 10, "%H:%M"),
            "per_hour": stacked_bars(throughput["per_hour"], 4, "%H:00"),
            "changelist_url": reverse("admin:bgtask_task_changelist"),
            # Django 6 draws breadcrumbs as <ol class="breadcrumbs">, 5.2 as a <div>.
            "legacy_breadcrumbs": django.VERSION < (6,),
        }
        return TemplateResponse(request, "admin/bgtask/task/dashboard.html", context)

    def get_urls(self):
        wrap = self.admin_site.admin_view
        return [
            path("dashboard/", wrap(self.dashboard_view), name="bgtask_task_dashboard"),
            path(
                "<path:object_id>/act/<str:action>/",
                wrap(self.act_view),
                name="bgtask_task_act",
            ),
            *super().get_urls(),
        ]


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
