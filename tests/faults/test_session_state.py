"""Issue 11, item 3: bgtask leaves no session state behind, so a transaction pooler (PgBouncer in
transaction mode, RDS Proxy) may hand its server connection to anyone between transactions.

Session state is what a pooler cannot carry over: session-level SET, prepared statements,
advisory locks, LISTEN, WITH HOLD cursors, temporary tables. The checks run on PostgreSQL, in
the direct pass and again through PgBouncer (``make test-pgbouncer``).
"""

from __future__ import annotations

import psycopg
import pytest
from django.db import connection, transaction

from bgtask import run_batch
from tests.conftest import batch_result, start_batch_process
from tests.reliability.helpers import enqueue_records, execution_counts

pytestmark = pytest.mark.django_db(transaction=True)

# Startup parameters a client (or PgBouncer, replaying a client's) may set on a server connection.
CLIENT_PARAMETERS = frozenset(
    {"application_name", "client_encoding", "datestyle", "intervalstyle", "timezone"}
    | {"standard_conforming_strings", "extra_float_digits"}
)


@pytest.fixture(autouse=True)
def _postgres_only():
    if connection.vendor != "postgresql":
        pytest.skip("session state of a PostgreSQL server connection")


def session_state(cursor) -> dict[str, object]:
    """Everything on this server session that would outlive the current transaction."""
    cursor.execute(
        "SELECT lower(name), setting FROM pg_settings WHERE source = 'session' ORDER BY 1"
    )
    settings = {name: value for name, value in cursor.fetchall() if name not in CLIENT_PARAMETERS}
    cursor.execute("SELECT current_setting('synchronous_commit')")
    synchronous_commit = cursor.fetchone()[0]
    cursor.execute("SELECT name FROM pg_prepared_statements ORDER BY 1")
    prepared = [row[0] for row in cursor.fetchall()]
    cursor.execute("SELECT pg_listening_channels()")
    channels = [row[0] for row in cursor.fetchall()]
    cursor.execute(
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()"
    )
    advisory = cursor.fetchone()[0]
    cursor.execute("SELECT name FROM pg_cursors WHERE is_holdable")
    held_cursors = [row[0] for row in cursor.fetchall()]
    cursor.execute(
        "SELECT count(*) FROM pg_class WHERE relnamespace = pg_my_temp_schema() "
        "AND pg_my_temp_schema() <> 0"
    )
    temp_tables = cursor.fetchone()[0]
    return {
        "session settings": settings,
        "synchronous_commit": synchronous_commit,
        "prepared statements": prepared,
        "LISTEN channels": channels,
        "advisory locks": advisory,
        "WITH HOLD cursors": held_cursors,
        "temporary tables": temp_tables,
    }


CLEAN = {
    "session settings": {},
    "synchronous_commit": "on",
    "prepared statements": [],
    "LISTEN channels": [],
    "advisory locks": 0,
    "WITH HOLD cursors": [],
    "temporary tables": 0,
}


def test_the_check_sees_session_state():
    """The check itself: a session-level SET and a prepared statement are found."""
    # In one transaction, so that through a pooler every statement meets the same session.
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET synchronous_commit = off")
        cursor.execute("PREPARE bgtask_probe AS SELECT 1")
        state = session_state(cursor)
        cursor.execute("DEALLOCATE bgtask_probe")
        cursor.execute("RESET synchronous_commit")
    assert state["synchronous_commit"] == "off"
    assert state["session settings"].get("synchronous_commit") == "off"
    assert state["prepared statements"] == ["bgtask_probe"]


def test_a_batch_leaves_its_session_as_it_found_it(pgbouncer):
    if pgbouncer is not None:
        pytest.skip("through a transaction pooler the next statement may use another session")
    enqueue_records([f"s{i}" for i in range(50)])
    with connection.cursor() as cursor:
        assert session_state(cursor) == CLEAN
    # One connection for the whole batch (CONN_MAX_AGE=0 closes it only at request end).
    result = run_batch(60)
    assert result.succeeded == 50
    with connection.cursor() as cursor:
        assert session_state(cursor) == CLEAN


def test_through_the_pooler_workers_leave_every_server_connection_clean(pgbouncer):
    if pgbouncer is None:
        pytest.skip("runs through PgBouncer: make test-pgbouncer")
    count, workers = 400, 4  # more workers than the pool has server connections
    keys = [f"p{i}" for i in range(count)]
    enqueue_records(keys)
    processes = [start_batch_process(120) for _ in range(workers)]
    results = [batch_result(process, timeout=300) for process in processes]
    assert sum(r["succeeded"] for r in results) == count
    counts = execution_counts()
    assert set(counts) == set(keys) and max(counts.values()) == 1
    # The workers' traffic did go through the pooler (its statistics, not our configuration).
    name = connection.settings_dict["NAME"]
    assert pgbouncer.transactions(name) >= count

    # As many simultaneous transactions as the pool has connections: each gets a different one,
    # so every server connection the workers used is looked at.
    clients = [
        psycopg.connect(host="127.0.0.1", port=pgbouncer.port, user="postgres", dbname=name)
        for _ in range(pgbouncer.pool_size)
    ]
    try:
        states, backends = [], set()
        for client in clients:
            cursor = client.cursor()  # psycopg opens a transaction: the server stays ours
            cursor.execute("SELECT pg_backend_pid()")
            backends.add(cursor.fetchone()[0])
            states.append(session_state(cursor))
    finally:
        for client in clients:
            client.close()
    assert len(backends) == pgbouncer.pool_size
    for state in states:
        assert state == CLEAN
