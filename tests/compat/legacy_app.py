"""django-background-tasks installed beside bgtask in the test run, so the import command is
tested against the real ``background_task`` table its own migrations create.

Its AppConfig names no ``default_auto_field``; its 2017 migrations create ``AutoField`` ids, so
this subclass says so (otherwise this project's BigAutoField default would make
``makemigrations --check`` want a migration for it)."""

from background_task.apps import BackgroundTasksAppConfig


class LegacyBackgroundTasksConfig(BackgroundTasksAppConfig):
    default_auto_field = "django.db.models.AutoField"
