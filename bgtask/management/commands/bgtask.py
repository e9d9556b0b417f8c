"""``manage.py bgtask <verb>``: look at tasks and steer the queues from a shell or a script.

    manage.py bgtask list [--status S] [--queue Q] [--name N] [--limit 50] [--json]
    manage.py bgtask show ID [--json]
    manage.py bgtask retry ID [ID ...]
    manage.py bgtask cancel ID [ID ...]
    manage.py bgtask pause QUEUE
    manage.py bgtask resume QUEUE
    manage.py bgtask stats [--json]

Exit codes, for scripts (``EXIT_*`` below): 0 done; 1 an error (the database, anything
unexpected); 2 usage (an unknown verb, a missing or malformed argument); 3 not found (an ID that
names no task; the other IDs given are still acted on); 4 not applicable (a task that exists but
is not in a state the verb applies to, e.g. ``retry`` of a task that did not fail; the others are
still acted on). When both 3 and 4 happen, 3 wins.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.core.serializers.json import DjangoJSONEncoder
from django.utils import timezone

from bgtask.features.cancellation import cancel
from bgtask.features.pausing import pause_queue, resume_queue
from bgtask.features.retrying import RETRYABLE, retry_failed
from bgtask.models import Task
from bgtask.web.status import health

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_NOT_FOUND, EXIT_NOT_APPLICABLE = 0, 1, 2, 3, 4
STATUSES = [value for value, _ in Task.STATUS_CHOICES]
#: The columns of ``list`` and the fields of ``show``.
LIST_FIELDS = ("id", "status", "queue", "task_name", "attempts", "run_at", "finished_at")
SHOW_FIELDS = (
    "id",
    "task_name",
    "verbose_name",
    "queue",
    "priority",
    "status",
    "attempts",
    "max_attempts",
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
    "arguments",
    "result",
    "last_error",
)


def _task_id(text: str) -> int:
    """argparse type of an ID: a refusal here is a usage error (exit 2)."""
    if not text.isdigit():
        raise ValueError(text)
    return int(text)


_task_id.__name__ = "task id"  # argparse names the type in its message


def _text(value: Any) -> str:
    if value is None:
        return "-"
    if hasattr(value, "isoformat"):
        return timezone.localtime(value).strftime("%Y-%m-%d %H:%M:%S %Z")
    return str(value)


class Command(BaseCommand):
    help = (
        "Look at tasks and steer the queues: list, show, retry, cancel, pause, resume, stats. "
        "Exit codes: 0 done, 1 error, 2 usage, 3 an ID not found, 4 a task not in a state the "
        "verb applies to."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        verbs = parser.add_subparsers(dest="verb", required=True, metavar="VERB")
        listing = verbs.add_parser("list", help="Tasks, newest first.")
        listing.add_argument("--status", choices=STATUSES)
        listing.add_argument("--queue")
        listing.add_argument("--name", help="An exact task name.")
        listing.add_argument("--limit", type=int, default=50, help="Most rows (default 50).")
        listing.add_argument("--json", dest="as_json", action="store_true", help="One JSON array.")
        show = verbs.add_parser("show", help="Every field of one task.")
        show.add_argument("id", type=_task_id)
        show.add_argument("--json", dest="as_json", action="store_true", help="One JSON object.")
        retry = verbs.add_parser("retry", help="Failed or cancelled tasks back to queued, due now.")
        retry.add_argument("ids", nargs="+", type=_task_id, metavar="ID")
        cancel_verb = verbs.add_parser("cancel", help="Cancel queued tasks.")
        cancel_verb.add_argument("ids", nargs="+", type=_task_id, metavar="ID")
        for name, text in (("pause", "Stop every worker claiming"), ("resume", "Claim again")):
            verb = verbs.add_parser(name, help=f"{text} from QUEUE.")
            verb.add_argument("queue", metavar="QUEUE")
        stats = verbs.add_parser("stats", help="Per-queue counts (--json: the status endpoint's).")
        stats.add_argument("--json", dest="as_json", action="store_true")

    def handle(self, *args: Any, verb: str, **options: Any) -> None:
        getattr(self, f"do_{verb}")(**options)

    # -- the verbs --------------------------------------------------------------------------

    def do_list(
        self,
        *,
        status: str | None,
        queue: str | None,
        name: str | None,
        limit: int,
        as_json: bool,
        **_: Any,
    ) -> None:
        if limit <= 0:
            raise CommandError(f"--limit must be above 0, got {limit}.", returncode=EXIT_USAGE)
        tasks = Task.objects.order_by("-id")
        if status:
            tasks = tasks.filter(status=status)
        if queue:
            tasks = tasks.filter(queue=queue)
        if name:
            tasks = tasks.filter(task_name=name)
        rows = list(tasks.values(*LIST_FIELDS)[:limit])
        if as_json:
            self._json(rows)
            return
        table = [[_text(row[field]) for field in LIST_FIELDS] for row in rows]
        self._table([field.upper() for field in LIST_FIELDS], table)

    def do_show(self, *, id: int, as_json: bool, **_: Any) -> None:
        row = Task.objects.filter(pk=id).values(*SHOW_FIELDS).first()
        if row is None:
            raise CommandError(f"No task with id {id}.", returncode=EXIT_NOT_FOUND)
        if as_json:
            self._json(row)
            return
        width = max(map(len, SHOW_FIELDS))
        for field in SHOW_FIELDS:
            value = _text(row[field])
            if "\n" in value:
                value = "\n" + "\n".join("    " + line for line in value.splitlines())
            self.stdout.write(f"{field:<{width}}  {value}")

    def do_retry(self, *, ids: list[int], **_: Any) -> None:
        self._each(
            ids,
            lambda task_id: retry_failed(Task.objects.filter(pk=task_id)) == 1,
            done="queued again",
            refused=f"is not {' or '.join(RETRYABLE)}",
        )

    def do_cancel(self, *, ids: list[int], **_: Any) -> None:
        def cancel_one(task_id: int) -> bool | str:
            if not cancel(task_id, reason="cancelled with manage.py bgtask"):
                return False
            # A queued task is cancelled at once; a running one is only asked to stop, and ends
            # cancelled once its worker stops it (within BGTASK_CANCEL_CHECK_SECONDS or so).
            status = Task.objects.filter(pk=task_id).values_list("status", flat=True).first()
            if status == Task.RUNNING:
                return "asked to stop (it is running; it ends cancelled once its worker stops it)"
            return True

        self._each(ids, cancel_one, done="cancelled", refused="is not queued or running")

    def do_pause(self, *, queue: str, **_: Any) -> None:
        changed = self._queue_call(pause_queue, queue)
        self.stdout.write(f"Queue {queue!r} {'paused' if changed else 'was paused already'}.")

    def do_resume(self, *, queue: str, **_: Any) -> None:
        changed = self._queue_call(resume_queue, queue)
        self.stdout.write(f"Queue {queue!r} {'resumed' if changed else 'was not paused'}.")

    def do_stats(self, *, as_json: bool, **_: Any) -> None:
        figures = health()
        if as_json:
            self._json(figures)
            return
        head = ["QUEUE", "DUE", "SCHEDULED", "RUNNING", "FAILED", "CANCELLED", "LAG_S", "PAUSED"]
        rows = [
            [
                name,
                *(
                    str(stats[key])
                    for key in ("due", "scheduled", "running", "failed", "cancelled")
                ),
                f"{stats['oldest_due_age']:.0f}",
                "yes" if stats["paused"] else "no",
            ]
            for name, stats in figures["queues"].items()
        ]
        self._table(head, rows)

    # -- helpers ----------------------------------------------------------------------------

    def _each(
        self, ids: list[int], act: Callable[[int], bool | str], *, done: str, refused: str
    ) -> None:
        """Act on each id in turn; a missing or refused one is reported and the rest go on.
        ``act`` returns True (``done``), False (refused) or what it did, in words."""
        known = set(Task.objects.filter(pk__in=ids).values_list("pk", flat=True))
        missing, refusals = [], []
        for task_id in ids:
            if task_id not in known:
                missing.append(task_id)
                self.stderr.write(f"Task {task_id}: not found.")
            elif outcome := act(task_id):
                self.stdout.write(f"Task {task_id}: {done if outcome is True else outcome}.")
            else:
                refusals.append(task_id)
                status = Task.objects.filter(pk=task_id).values_list("status", flat=True).first()
                self.stderr.write(f"Task {task_id}: {refused} (it is {status}); left as it is.")
        if missing:
            raise CommandError(
                f"{len(missing)} of {len(ids)} task id(s) not found.", returncode=EXIT_NOT_FOUND
            )
        if refusals:
            raise CommandError(
                f"{len(refusals)} of {len(ids)} task(s) {refused}.", returncode=EXIT_NOT_APPLICABLE
            )

    def _queue_call(self, function: Callable[[str], bool], queue: str) -> bool:
        try:
            return function(queue)
        except (TypeError, ValueError) as exc:
            raise CommandError(str(exc), returncode=EXIT_USAGE) from None

    def _json(self, value: Any) -> None:
        self.stdout.write(json.dumps(value, cls=DjangoJSONEncoder, indent=2))

    def _table(self, head: list[str], rows: list[list[str]]) -> None:
        widths = [max(len(row[i]) for row in [head, *rows]) for i in range(len(head))]
        for row in [head, *rows]:
            cells = zip(row, widths, strict=True)
            self.stdout.write("  ".join(cell.ljust(width) for cell, width in cells).rstrip())
