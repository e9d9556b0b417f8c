"""``manage.py import_background_tasks``: copy django-background-tasks' pending tasks into bgtask.

    python manage.py import_background_tasks --dry-run     # what would be copied, nothing written
    python manage.py import_background_tasks               # copy them, in one transaction
    python manage.py import_background_tasks --keep-unknown

Run it again at any time: rows already copied are skipped. The source table is left untouched.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction

from bgtask.enqueue.legacy_import import (
    SOURCE_TABLE,
    ImportPlan,
    NothingToImport,
    default_database,
    plan_import,
    write_plan,
)

# Most problem rows named in an error message; the rest are counted.
SHOWN = 20


class Command(BaseCommand):
    help = (
        f"Copy the pending tasks of django-background-tasks (its {SOURCE_TABLE} table) into "
        "bgtask, in one transaction; rows already copied by an earlier run are skipped."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--dry-run",
            action="store_true",
            help="Check every row and report what would be copied; write nothing.",
        )
        parser.add_argument(
            "--keep-unknown",
            action="store_true",
            help=(
                "Also copy rows whose task name is not registered in this process (they wait, "
                "retried with backoff, until a worker that knows them runs them)."
            ),
        )
        parser.add_argument(
            "--database",
            default=None,
            help="Database alias holding both tables (default: where bgtask writes tasks).",
        )

    def handle(
        self,
        *args: Any,
        dry_run: bool = False,
        keep_unknown: bool = False,
        database: str | None = None,
        **options: Any,
    ) -> None:
        using = database or default_database()
        with transaction.atomic(using=using):
            try:
                plan = plan_import(using)
            except NothingToImport as exc:
                raise CommandError(f"{exc} Nothing to import.") from None
            self._report(plan)
            if plan.invalid:
                lines = [f"  #{source_id}: {error}" for source_id, error in plan.invalid[:SHOWN]]
                more = len(plan.invalid) - SHOWN
                if more > 0:
                    lines.append(f"  ... and {more} more")
                raise CommandError(
                    f"{len(plan.invalid)} row(s) of {SOURCE_TABLE} cannot be copied:\n"
                    + "\n".join(lines)
                    + "\nFix or delete them and run the command again. Nothing was imported."
                )
            if plan.unknown and not keep_unknown:
                raise CommandError(
                    f"{sum(plan.unknown.values())} row(s) name tasks that are not registered in "
                    "this process:\n"
                    + _unknown_lines(plan)
                    + "\nMake sure the modules defining them are imported (an app's tasks.py), "
                    "or pass --keep-unknown to copy them anyway. Nothing was imported."
                )
            if plan.unknown:
                self.stderr.write(
                    "Copying rows for tasks not registered here (--keep-unknown):\n"
                    + _unknown_lines(plan)
                )
            if dry_run:
                self.stdout.write(
                    f"Dry run: {len(plan.rows)} task(s) would be imported; nothing was written."
                )
                return
            created = write_plan(plan, using)
        self.stdout.write(self.style.SUCCESS(f"Imported {len(created)} task(s)."))

    def _report(self, plan: ImportPlan) -> None:
        out = self.stdout.write
        out(f"{SOURCE_TABLE}: {plan.pending} pending task(s).")
        if plan.already_imported:
            out(f"  already imported by an earlier run (skipped): {plan.already_imported}")
        if plan.locked:
            ids = ", ".join(f"#{i}" for i in plan.locked[:SHOWN])
            self.stderr.write(
                f"  locked by a django-background-tasks worker within MAX_RUN_TIME (skipped): "
                f"{len(plan.locked)} ({ids}). Stop its workers and run this again to copy them."
            )
        if plan.failed:
            out(f"  failed (failed_at set; not pending, skipped): {plan.failed}")
        if plan.with_creator:
            out(
                f"  with a creator: {plan.with_creator} (bgtask has no creator field; the tasks "
                "are copied without it)"
            )
        out(f"  to import: {len(plan.rows)}")


def _unknown_lines(plan: ImportPlan) -> str:
    return "\n".join(
        f"  {name}: {count}" for name, count in sorted(plan.unknown.items(), key=lambda i: i[0])
    )
