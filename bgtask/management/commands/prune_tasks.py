"""``manage.py prune_tasks [--dry-run]``: delete finished tasks older than ``BGTASK_RETENTION``.

run_batch already prunes a chunk per call; this command is for a first clean-up of a large
history, or for deployments that want pruning on its own schedule.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from bgtask import conf
from bgtask.features.pruning import prunable, prune


class Command(BaseCommand):
    help = "Delete finished tasks (any but queued or running) older than BGTASK_RETENTION."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--dry-run", action="store_true", help="Only count what would be deleted."
        )
        parser.add_argument(
            "--older-than",
            type=float,
            default=None,
            metavar="SECONDS",
            help="Use this retention instead of BGTASK_RETENTION.",
        )
        parser.add_argument("--chunk-size", type=int, default=None, help="Rows per DELETE.")

    def handle(
        self,
        *args: Any,
        dry_run: bool,
        older_than: float | None,
        chunk_size: int | None,
        **options: Any,
    ) -> None:
        if older_than is not None and (older_than != older_than or older_than < 0):
            raise CommandError(f"--older-than must be 0 or more seconds, got {older_than}.")
        if chunk_size is not None and chunk_size <= 0:
            raise CommandError(f"--chunk-size must be above 0, got {chunk_size}.")
        retention = timedelta(seconds=older_than) if older_than is not None else conf.retention()
        if retention is None:
            self.stdout.write("BGTASK_RETENTION is None: finished tasks are kept; nothing to do.")
            return
        if dry_run:
            count = prunable(retention=retention).count()
            self.stdout.write(f"Would delete {count} finished task(s) older than {retention}.")
            return
        count = prune(retention=retention, chunk_size=chunk_size)
        self.stdout.write(f"Deleted {count} finished task(s) older than {retention}.")
