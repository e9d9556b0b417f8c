"""``process_tasks`` with its default settings, counting the SQL statements it sends.

python benchmarks/latency_worker.py COUNT_FILE [process_tasks options]

Every statement any of the worker's Django connections executes adds one to a counter, written to
COUNT_FILE after each: an idle worker sends few, so the file costs nothing measurable, and the
enqueue-to-start workload (``benchmarks/latency.py``) reads the idle rate from it. The LISTEN
connection is psycopg's own, outside Django: it sends nothing while it waits.
"""

from __future__ import annotations

import os
import sys
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "benchmarks.settings")
    django.setup()
    from django.core.management import call_command
    from django.db.backends.signals import connection_created

    count_file = Path(sys.argv[1])
    lock = threading.Lock()
    count = [0]

    def counted(execute, sql, params, many, context):
        with lock:
            count[0] += 1
            count_file.write_text(str(count[0]))
        return execute(sql, params, many, context)

    def on_connection(sender, connection, **kwargs):
        if counted not in connection.execute_wrappers:
            connection.execute_wrappers.append(counted)

    connection_created.connect(on_connection, weak=False)
    call_command("process_tasks", *sys.argv[2:])


if __name__ == "__main__":
    main()
