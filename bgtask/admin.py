from django.contrib import admin

from bgtask.models import Task


@admin.register(Task)
class TaskAdmin(admin.ModelAdmin):
    list_display = ("id", "task_name", "queue", "status", "priority", "run_at", "attempts")
    list_filter = ("status", "queue", "task_name")
    search_fields = ("task_name", "arguments", "last_error")
    ordering = ("-id",)
    readonly_fields = (
        "created_at",
        "started_at",
        "finished_at",
        "failed_at",
        "locked_by",
        "locked_until",
    )
