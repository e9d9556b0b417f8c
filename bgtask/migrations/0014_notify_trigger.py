"""PostgreSQL: the task table announces its own inserts to idle workers (issue 18).

A statement-level AFTER INSERT trigger sends, for each queue of the statement's queued rows, one
``pg_notify('bgtask_enqueued', ...)``: the queue's name when one of its rows is due already (the
listening workers of that queue claim), else ``at:<run_at in microseconds since the epoch>:<queue>``
with the queue's earliest ``run_at`` (its workers sleep until then rather than claim now). It runs
inside the inserting statement, so it costs the enqueue no round trip, and NOTIFY is transactional:
a rolled-back insert wakes nobody. Every insert path goes through it (a single INSERT, bulk_create,
COPY). The writes that make a queued row due by an UPDATE (retry now, run now) keep announcing
themselves (``bgtask.enqueue.announce``): an UPDATE trigger would run on every claim and outcome.

Nothing on SQLite and MariaDB, which have no NOTIFY; their idle workers poll.

Hard-coded names: a migration must say tomorrow what it said when it was applied (the channel and
the payload are what ``bgtask.worker.idle`` listens for; see ``bgtask.store.tasks``).
"""

from django.db import migrations

FUNCTION = "bgtask_notify_enqueued"
TRIGGER = "bgtask_task_notify_enqueued"

# clock_timestamp(), not now(): now() is the start of the transaction, which can be long before a
# task due "now" was inserted into it; such a row must count as due. GROUP BY/ORDER BY: one
# notification per queue, in a stable order (PostgreSQL folds identical notifications of one
# transaction into one, so a loop of single enqueues wakes a listener once per queue).
CREATE = f"""
CREATE FUNCTION {FUNCTION}() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    q record;
BEGIN
    FOR q IN
        SELECT queue, min(run_at) AS due FROM bgtask_inserted
        WHERE status = 'queued' GROUP BY queue ORDER BY queue
    LOOP
        IF q.due <= clock_timestamp() THEN
            PERFORM pg_notify('bgtask_enqueued', q.queue);
        ELSE
            PERFORM pg_notify(
                'bgtask_enqueued',
                'at:' || floor(extract(epoch FROM q.due) * 1000000)::bigint || ':' || q.queue
            );
        END IF;
    END LOOP;
    RETURN NULL;
END
$$;
CREATE TRIGGER {TRIGGER} AFTER INSERT ON bgtask_task
    REFERENCING NEW TABLE AS bgtask_inserted
    FOR EACH STATEMENT EXECUTE FUNCTION {FUNCTION}();
"""

DROP = f"""
DROP TRIGGER IF EXISTS {TRIGGER} ON bgtask_task;
DROP FUNCTION IF EXISTS {FUNCTION}();
"""


def create(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(CREATE)


def drop(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP)


class Migration(migrations.Migration):
    dependencies = [("bgtask", "0013_limits")]
    operations = [migrations.RunPython(create, drop)]
