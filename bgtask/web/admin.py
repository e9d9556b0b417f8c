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
from collections.abc import Callable
from datetime import datetime, timedelta
from functools import cached_property
from typing import Any
from urllib.parse import urlencode

import django
from django.contrib import admin, messages
from django.contrib.admin.views.main import ChangeList
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db.models import Q, QuerySet
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseNotAllowed,
    HttpResponseRedirect,
)
from django.template.response import TemplateResponse
from django.urls import NoReverseMatch, URLPattern, path, reverse
from django.utils import timezone
from django.utils.html import format_html

from bgtask import conf, registry
from bgtask.features.cancellation import cancel_queued
from bgtask.features.pausing import pause_queue, paused_queues, resume_queue
from bgtask.features.retrying import retry_failed, run_now
from bgtask.models import PeriodicOccurrence, Task
from bgtask.web.charts import stacked_bars
from bgtask.web.framing import deny_framing
from bgtask.web.permissions import can_read_queue
from bgtask.web.status import ERROR_SUMMARY_LENGTH, error_summary, health, status_is

__all__ = ["ERROR_SUMMARY_LENGTH", "TaskAdmin", "error_summary", "retry_failed", "run_now"]
#: The one way the admin writes a time, in the list, on a task's page and on the dashboard.
TIME_FORMAT = "%Y-%m-%d %H:%M:%S %Z"
#: Rows the list counts at most; beyond it the list says "more than" instead of counting them all.
COUNT_CAP = 10_000
#: Seconds between two refreshes of the dashboard.
DASHBOARD_REFRESH = 30
#: Characters of arguments or a result a task's page pretty-prints; past it the text is cut.
PRETTY_JSON_LIMIT = 200_000
#: The largest id a BigAutoField holds; a bigger number searched for or in a URL is no task's.
MAX_TASK_ID = 2**63 - 1


def format_time(value: datetime | None) -> str:
    """An aware datetime in the admin's one format, in the current time zone; ``-`` for None."""
    return "-" if value is None else timezone.localtime(value).strftime(TIME_FORMAT)


def attempts_made(task: Task) -> int:
    """Runs a task has had, the one running now included. ``attempts`` counts failed runs only
    (it drives the backoff), so a task that succeeded at its first run has ``attempts == 0``."""
    return task.attempts + (1 if task.status in (Task.RUNNING, Task.SUCCEEDED) else 0)


def error_is_current(task: Task) -> bool:
    """Whether ``last_error`` says why the task is where it is (failed or cancelled), rather
    than what went wrong in an earlier attempt of a task that was retried since."""
    return task.status in (Task.FAILED, Task.CANCELLED)


def _time_field(name: str, label: str) -> Callable[[Any, Task], str]:
    """A read-only field of the task's page showing the datetime ``name`` in TIME_FORMAT."""

    @admin.display(description=label)
    def show(self: Any, task: Task) -> str:
        return format_time(getattr(task, name))

    return show


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
    if minutes:
        return f"{minutes} min {secs} s" if secs else f"{minutes} min"
    return f"{secs} s"


def progress_text(fraction: float, note: str | None) -> str:
    """``0.423, "page 4"`` -> ``"42 % page 4"``."""
    text = f"{fraction * 100:.0f} %"
    return f"{text} {note}" if note else text


def when(task: Task) -> tuple[str, datetime | None]:
    """(label, time) of a task's row: when it is due, started, or finished."""
    if task.status == Task.QUEUED:
        return ("due since" if task.run_at <= timezone.now() else "due at"), task.run_at
    if task.status == Task.RUNNING:
        return "started", task.started_at
    return task.status, task.finished_at or task.failed_at


def precise_duration(delta: timedelta) -> str:
    """A run time: ``0.042 s``, ``12.5 s``, or ``duration_text`` past a minute."""
    seconds = max(0.0, delta.total_seconds())
    if seconds < 10:
        return f"{seconds:.3f} s"
    if seconds < 60:
        return f"{seconds:.1f} s"
    return duration_text(seconds)


def capped_count(tasks: QuerySet[Any], cap: int = COUNT_CAP) -> int:
    """``min(tasks.count(), cap + 1)``, reading at most ``cap + 1`` rows."""
    return tasks.order_by()[: cap + 1].count()


class CappedPaginator(Paginator):  # type: ignore[type-arg]  # Paginator is not subscriptable at run time
    """Counts at most ``COUNT_CAP + 1`` rows, so a page view never counts the whole table; past
    the cap, the list offers the first ``COUNT_CAP`` rows' pages (narrow it with a filter)."""

    @cached_property
    def count(self) -> int:
        # The admin pages a queryset (the changelist's); the stubs say only "sliceable, countable".
        return capped_count(self.object_list)  # type: ignore[arg-type]


class RegisteredChoicesFilter(admin.SimpleListFilter):
    """Choices from the registered tasks, plus whatever value is selected."""

    def choices_from_registry(self) -> set[str]:
        raise NotImplementedError

    def lookups(
        self, request: HttpRequest, model_admin: admin.ModelAdmin[Any]
    ) -> list[tuple[str, str]]:
        values = self.choices_from_registry()
        if self.value():
            values.add(self.value())  # type: ignore[arg-type]  # not None: checked just above
        return [(value, value) for value in sorted(values)]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        # SimpleListFilter.__init__ raises ImproperlyConfigured when a filter has no parameter_name.
        assert self.parameter_name is not None
        field = self.parameter_name.removesuffix("__exact")
        return queryset.filter(**{field: self.value()}) if self.value() else queryset


class StatusFilter(admin.SimpleListFilter):
    """Status as a literal in the SQL, so that SQLite can use the partial indexes of running and
    failed tasks (a bound parameter hides which part of the table a query wants)."""

    title = "status"
    parameter_name = "status__exact"

    def lookups(
        self, request: HttpRequest, model_admin: admin.ModelAdmin[Any]
    ) -> list[tuple[str, str]]:
        return Task.STATUS_CHOICES

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        if self.value() == Task.RUNNING:
            # Running tasks are few (workers x claim size). Found without an ORDER BY, they come
            # from the partial lease index; ordered by id, SQLite would rather walk the whole
            # primary key backwards looking for them.
            running = Task.objects.filter(status_is(Task.RUNNING)).order_by()
            return queryset.filter(id__in=list(running.values_list("id", flat=True)[:COUNT_CAP]))
        if self.value() in dict(Task.STATUS_CHOICES):
            return queryset.filter(status_is(self.value()))  # type: ignore[arg-type]  # a status: checked above
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


OUTCOME_FIELDS = (
    "status_display",
    "progress_display",
    "attempts_display",
    "when",
    "run_duration",
    "error_line",
    "traceback",
)
# The datetime fields are shown through _time_field, in the admin's one format.
TASK_FIELDS = (
    "id",
    "task_name",
    "verbose_name",
    "queue",
    "priority",
    "run_at_display",
    "created_at_display",
    "started_at_display",
    "finished_at_display",
    "failed_at_display",
    "locked_by",
    "locked_until_display",
    "unique_key",
    "repeat",
    "repeat_until_display",
    "timeout",
)
DATA_FIELDS = ("arguments_display", "result_display")

#: action name -> (function(queryset) -> count, message, statuses it applies to)
PAGE_ACTIONS: dict[str, tuple[Callable[[QuerySet[Task]], int] | None, str, tuple[str, ...]]] = {
    "run_now": (run_now, "{} queued task(s) are due now.", (Task.QUEUED,)),
    "retry": (
        retry_failed,
        "{} failed or cancelled task(s) queued again.",
        (Task.FAILED, Task.CANCELLED),
    ),
    "cancel": (None, "{} queued task(s) cancelled.", (Task.QUEUED,)),
}


def _queue_links(changelist: str, queue: str) -> dict[str, str]:
    """The Tasks list filtered to ``queue`` (``all``) and to each status of it."""
    base = f"{changelist}?{urlencode({'queue__exact': queue})}"
    links = {"all": base}
    for status in (Task.QUEUED, Task.RUNNING, Task.SUCCEEDED, Task.FAILED, Task.CANCELLED):
        links[status] = f"{base}&{urlencode({'status__exact': status})}"
    return links


def _pretty_json(text: str | None) -> str:
    """Stored JSON indented for reading; a row that is not JSON, nested too deeply to parse, or too
    long to show whole is shown as stored (cut to ``PRETTY_JSON_LIMIT`` characters)."""
    if text is None:
        return "-"
    if len(text) > PRETTY_JSON_LIMIT:
        return f"{text[:PRETTY_JSON_LIMIT]}\n… (cut: {len(text):,} characters in all)"
    try:
        pretty = json.dumps(json.loads(text), indent=2, ensure_ascii=False, sort_keys=True)
    except (ValueError, RecursionError):
        return text  # a corrupt or deeply nested row (written by hand) is shown as stored
    if len(pretty) > PRETTY_JSON_LIMIT:  # deep nesting multiplies the indentation
        return text
    return pretty


def task_id(text: str) -> int | None:
    """``text`` as a task id, or ``None`` when it cannot be one: not ASCII digits (``"²"`` passes
    ``isdigit()`` but not ``int()``), too many digits for ``int()``, or past a BigAutoField."""
    if not (text.isascii() and text.isdigit()) or len(text) > len(str(MAX_TASK_ID)):
        return None
    number = int(text)
    return number if number <= MAX_TASK_ID else None


class IdOrderedChangeList(ChangeList):
    """Honours ``?o=`` for the ``sortable_by`` columns only (the id). Django draws only those
    headers as links but sorts by whatever column index ``o`` names: one request could make the
    database sort the whole table by status or queue, which no index serves."""

    def get_ordering_field(self, field_name: Callable[..., Any] | str) -> str | Any | None:
        # ModelAdmin.get_sortable_by falls back to list_display: a ChangeList's is never None.
        assert self.sortable_by is not None
        if field_name not in self.sortable_by:
            return None
        return super().get_ordering_field(field_name)


# ModelAdmin is generic in django-stubs only: at run time it takes no type argument.
class UnframedAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    """A ModelAdmin none of whose pages may be framed (``bgtask.web.framing``)."""

    def get_urls(self) -> list[URLPattern]:
        patterns = super().get_urls()
        for pattern in patterns:
            pattern.callback = deny_framing(pattern.callback)
        return patterns


@admin.register(Task)
class TaskAdmin(UnframedAdmin):
    list_display = (
        "id",
        "task",
        "queue",
        "status_cell",
        "attempts_cell",
        "when_cell",
    )
    list_filter = (StatusFilter, QueueFilter, TaskNameFilter)
    # Shown for the search box; get_search_results decides what a term matches.
    search_fields = ("task_name",)
    search_help_text = "An id or an exact task name."
    ordering = ("-id",)
    sortable_by = ("id",)
    show_full_result_count = False
    # Django's "Show counts" facets count over the whole filtered table on every page view.
    if hasattr(admin, "ShowFacets"):
        show_facets = admin.ShowFacets.NEVER
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

    @admin.display(description="Status")
    def status_cell(self, task: Task) -> str:
        # The progress a running task reported sits under its status: a column of its own would
        # be empty on nearly every row.
        if task.progress is None:
            return task.get_status_display()
        return format_html(
            '{}<span class="bgtask-progress" title="{}">{}</span>',
            task.get_status_display(),
            task.progress_note or "",
            progress_text(task.progress, task.progress_note),
        )

    @admin.display(description="Attempts")
    def attempts_cell(self, task: Task) -> int:
        return attempts_made(task)

    @admin.display(description="When")
    def when_cell(self, task: Task) -> str:
        # What the row's time means depends on its status; the label says which one it is. The
        # date and the time may go on two lines, so the column stays narrow at 1280 px.
        label, at = when(task)
        if at is None:
            return label
        day, _, clock_time = format_time(at).partition(" ")
        return format_html(
            '<span class="bgtask-nowrap">{}</span> <span class="bgtask-nowrap">{}</span>'
            '<span class="bgtask-label">{}</span>',
            day,
            clock_time,
            label,
        )

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
        if not error_is_current(task):
            line, kind = f"Earlier attempt: {line}", " bgtask-error-earlier"
        elif task.status == Task.CANCELLED:
            kind = " bgtask-error-cancelled"  # why it was cancelled: not an error
        else:
            kind = ""
        return format_html(
            '{}<span class="bgtask-error{}" title="{}">{}</span>', name, kind, line, line
        )

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Any], search_term: str
    ) -> tuple[QuerySet[Any], bool]:
        term = search_term.strip()
        if not term:
            return queryset, False
        match = Q(task_name=term)
        if (pk := task_id(term)) is not None:
            match |= Q(id=pk)
        if conf.admin_full_search():
            # Opt-in: reads every row (no index serves a substring match).
            match |= (
                Q(task_name__icontains=term)
                | Q(verbose_name__icontains=term)
                | Q(arguments__icontains=term)
                | Q(last_error__icontains=term)
            )
        return queryset.filter(match), False

    def get_search_fields(self, request: HttpRequest) -> tuple[str, ...]:
        return self.search_fields

    def get_changelist(self, request: HttpRequest, **kwargs: Any) -> type[ChangeList]:
        return IdOrderedChangeList

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
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
    def action_run_now(self, request: HttpRequest, queryset: QuerySet[Task]) -> None:
        count = run_now(queryset)
        self.message_user(request, f"{count} queued task(s) are due now.", messages.SUCCESS)

    @admin.action(
        description="Retry (failed and cancelled tasks back to queued, attempts reset)",
        permissions=["change"],
    )
    def action_retry(self, request: HttpRequest, queryset: QuerySet[Task]) -> None:
        count = retry_failed(queryset)
        self.message_user(
            request, f"{count} failed or cancelled task(s) queued again.", messages.SUCCESS
        )

    @admin.action(description="Cancel (queued tasks; running ones finish)", permissions=["change"])
    def action_cancel(self, request: HttpRequest, queryset: QuerySet[Task]) -> None:
        count = cancel_queued(queryset, reason=f"cancelled in the admin by {request.user}")
        self.message_user(request, f"{count} queued task(s) cancelled.", messages.SUCCESS)

    # -- a task's page --------------------------------------------------------------------------

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def changeform_view(
        self,
        request: HttpRequest,
        object_id: str | None = None,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        # Every field is read-only; a POST here could only write the row back as it was read,
        # over whatever a worker wrote meanwhile.
        if request.method == "POST":
            return HttpResponseNotAllowed(["GET"])
        task = self.get_object(request, object_id) if object_id else None
        can_change = task is not None and self.has_change_permission(request, task)
        buttons = [
            # can_change is False when task is None, so task is a Task wherever it is read here.
            (name, reverse("admin:bgtask_task_act", args=[task.pk, name]))  # type: ignore[union-attr]
            for name, (_, _, statuses) in PAGE_ACTIONS.items()
            if can_change and task.status in statuses  # type: ignore[union-attr]
        ]
        extra_context = {
            **(extra_context or {}),
            # Every field is read-only, whatever the user's permissions: never "Change task".
            "title": f"View {self.opts.verbose_name}",
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

    @admin.display(description="Progress")
    def progress_display(self, task: Task) -> str:
        if task.progress is None:
            return "-"
        return format_html(
            '<progress class="bgtask-progress-bar" max="1" value="{}"></progress> {}',
            task.progress,
            progress_text(task.progress, task.progress_note),
        )

    @admin.display(description="When")
    def when(self, task: Task) -> str:
        label, at = when(task)
        return label if at is None else f"{label} {format_time(at)}"

    @admin.display(description="Attempts")
    def attempts_display(self, task: Task) -> str:
        limit = task.max_attempts if task.max_attempts is not None else conf.max_attempts()
        return f"{attempts_made(task)} of at most {limit}"

    @admin.display(description="Run time")
    def run_duration(self, task: Task) -> str:
        if task.started_at is None:
            return "-"
        if task.status == Task.RUNNING:
            return f"{precise_duration(timezone.now() - task.started_at)} so far"
        if task.finished_at is None or task.status == Task.QUEUED:
            # A retry waiting: started_at is its failed attempt's start; that run's end is lost.
            return "-"
        return precise_duration(task.finished_at - task.started_at)

    @admin.display(description="Error")
    def error_line(self, task: Task) -> str:
        line = error_summary(task.last_error, length=1000)
        if not line:
            return "-"
        if task.status == Task.CANCELLED:
            return format_html('<span class="bgtask-error-cancelled">{}</span>', line)
        if error_is_current(task):
            return format_html('<span class="bgtask-error-now">{}</span>', line)
        return format_html(
            '<span class="bgtask-error-earlier">From an earlier attempt: {}</span>', line
        )

    @admin.display(description="Traceback")
    def traceback(self, task: Task) -> str:
        if not task.last_error:
            return "-"
        if error_is_current(task):
            return format_html('<pre class="bgtask-block">{}</pre>', task.last_error)
        return format_html(
            '<p class="bgtask-note">From an earlier attempt; the task was retried since.</p>'
            '<pre class="bgtask-block">{}</pre>',
            task.last_error,
        )

    run_at_display = _time_field("run_at", "Run at")
    created_at_display = _time_field("created_at", "Created at")
    started_at_display = _time_field("started_at", "Started at")
    finished_at_display = _time_field("finished_at", "Finished at")
    failed_at_display = _time_field("failed_at", "Failed at")
    locked_until_display = _time_field("locked_until", "Locked until")
    repeat_until_display = _time_field("repeat_until", "Repeat until")

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
        pk = task_id(object_id)
        task = Task.objects.filter(pk=pk).first() if pk is not None else None
        if task is None:
            raise Http404(f"No task with id {object_id[:40]!r}.")
        if not self.has_change_permission(request, task):
            raise PermissionDenied
        function, message, _ = PAGE_ACTIONS[action]
        one = Task.objects.filter(pk=task.pk)
        if action == "cancel":
            count = cancel_queued(one, reason=f"cancelled in the admin by {request.user}")
        else:
            assert function is not None  # only "cancel" has none, handled just above
            count = function(one)
        level = messages.SUCCESS if count else messages.WARNING
        self.message_user(request, message.format(count), level)
        return HttpResponseRedirect(reverse("admin:bgtask_task_change", args=[task.pk]))

    # -- the dashboard --------------------------------------------------------------------------

    def dashboard_view(self, request: HttpRequest) -> HttpResponse:
        # The status endpoint's rule too (bgtask.web.permissions): the same figures, one rule.
        if not can_read_queue(request.user):
            raise PermissionDenied
        figures = health()
        paused = paused_queues()
        throughput = figures["throughput"]
        changelist = reverse("admin:bgtask_task_changelist")
        context = {
            **self.admin_site.each_context(request),
            "title": "Task queue dashboard",
            "opts": self.opts,
            "figures": figures,
            "queues": [
                {
                    "name": name,
                    "stats": stats,
                    "lag": duration_text(stats["oldest_due_age"]),
                    "paused_at": paused.get(name),
                    "links": _queue_links(changelist, name),
                }
                for name, stats in figures["queues"].items()
            ],
            "batches": [
                {
                    **batch,
                    "ago": duration_text(batch["age_seconds"]),
                    "counts_text": ", ".join(f"{k} {v}" for k, v in batch["counts"].items()),
                    "ran": sum(
                        batch["counts"].get(k, 0) for k in ("succeeded", "failed", "retried")
                    ),
                }
                for batch in figures["batches"]
            ],
            "stale_after": duration_text(conf.worker_stale_after()),
            "can_pause": self.has_change_permission(request),
            "pause_url": reverse("admin:bgtask_task_queue", args=["pause"]),
            "resume_url": reverse("admin:bgtask_task_queue", args=["resume"]),
            "refresh": DASHBOARD_REFRESH,
            "per_minute": stacked_bars(throughput["per_minute"], 10, "%H:%M"),
            "per_hour": stacked_bars(throughput["per_hour"], 4, "%H:00"),
            "changelist_url": changelist,
            "status_url": _status_url(),
            # Django 6 draws breadcrumbs as <ol class="breadcrumbs">, 5.2 as a <div>.
            "legacy_breadcrumbs": django.VERSION < (6,),
        }
        return TemplateResponse(request, "admin/bgtask/task/dashboard.html", context)

    def queue_view(self, request: HttpRequest, action: str) -> HttpResponse:
        """POST from the dashboard's Pause / Resume buttons (the queue is in the form)."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        if action not in ("pause", "resume"):
            raise PermissionDenied(f"Unknown queue action {action!r}.")
        if not self.has_change_permission(request):
            raise PermissionDenied
        queue = request.POST.get("queue", "")
        try:
            changed = (pause_queue if action == "pause" else resume_queue)(queue)
        except (TypeError, ValueError) as exc:
            self.message_user(request, str(exc), messages.ERROR)
        else:
            done = "paused" if action == "pause" else "resumed"
            if changed:
                self.message_user(request, f"Queue {queue!r} {done}.", messages.SUCCESS)
            else:
                self.message_user(request, f"Queue {queue!r} was {done} already.", messages.WARNING)
        return HttpResponseRedirect(reverse("admin:bgtask_task_dashboard"))

    def get_urls(self) -> list[URLPattern]:
        wrap = self.admin_site.admin_view
        # Every page of the task admin carries buttons that change tasks: none may be framed.
        return [
            path(
                "dashboard/", deny_framing(wrap(self.dashboard_view)), name="bgtask_task_dashboard"
            ),
            path(
                "dashboard/queue/<str:action>/",
                wrap(self.queue_view),
                name="bgtask_task_queue",
            ),
            path(
                "<path:object_id>/act/<str:action>/",
                deny_framing(wrap(self.act_view)),
                name="bgtask_task_act",
            ),
            *super().get_urls(),
        ]


def _status_url() -> str | None:
    """Where the status endpoint is served, or ``None`` when the project did not include
    ``bgtask.urls`` (the dashboard then says how to, instead of linking to a 404)."""
    try:
        return reverse("bgtask:status")
    except NoReverseMatch:
        return None


@admin.register(PeriodicOccurrence)
class PeriodicOccurrenceAdmin(UnframedAdmin):
    """Read-only: the last occurrence each ``@periodic`` task had enqueued. Deleting a row makes
    the next batch treat the task as first seen (it resumes at its next occurrence)."""

    list_display = ("name", "last_enqueued_at", "updated_at")
    search_fields = ("name",)
    readonly_fields = ("name", "last_enqueued_at", "updated_at")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
