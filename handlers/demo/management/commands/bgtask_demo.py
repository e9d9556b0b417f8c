"""``manage.py bgtask_demo``: migrate, enqueue samples, run process_tasks, print the outcome."""

from django.core.management import call_command
from django.core.management.base import BaseCommand

from bgtask.models import Task
from handlers.demo import tasks


class Command(BaseCommand):
    help = "Run the bgtask demo on the configured database (SQLite by default)."

    def add_arguments(self, parser):
        parser.add_argument(
            "--duration",
            type=float,
            default=10.0,
            help="Seconds process_tasks runs (the flaky task retries after 6 s).",
        )

    def handle(self, *args, duration, **options):
        call_command("migrate", verbosity=0)
        Task.objects.filter(task_name__startswith="demo.").delete()

        self.stdout.write(self.style.MIGRATE_HEADING("Enqueueing sample tasks"))
        enqueued = [
            tasks.greet("world"),
            tasks.add(2, 3),
            tasks.flaky("payment-42"),
            tasks.slow(0.5, priority=-1),
            tasks.greet("later", schedule=3600),
        ]
        for task in enqueued:
            self.stdout.write(
                f"  #{task.pk} {task.task_name}{task.args} run_at={task.run_at:%H:%M:%S}"
                f" priority={task.priority}"
            )

        self.stdout.write(
            self.style.MIGRATE_HEADING(
                f"Running: manage.py process_tasks --duration {duration:g} --sleep 1"
            )
        )
        call_command("process_tasks", duration=duration, sleep=1)

        self.stdout.write(self.style.MIGRATE_HEADING("What happened"))
        for task in Task.objects.filter(task_name__startswith="demo.").order_by("id"):
            line = f"  #{task.pk} {task.task_name:<11} {task.status:<9} attempts={task.attempts}"
            if task.status == Task.SUCCEEDED:
                line += f" result={task.return_value!r}"
            elif task.status == Task.QUEUED:
                line += f" next run at {task.run_at:%H:%M:%S}"
            if task.last_error:
                line += f"\n      last error: {task.last_error.strip().splitlines()[-1]}"
            self.stdout.write(line)
