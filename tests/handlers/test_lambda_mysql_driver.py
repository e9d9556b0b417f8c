"""The Lambda project talks to MySQL/MariaDB through PyMySQL (pure Python, in the build), not
mysqlclient (a C extension needing libmariadb, which the Lambda runtime lacks)."""

from __future__ import annotations

import json

import pytest
from django.db import connection

from bgtask.models import Task
from tests.conftest import run_python
from tests.sampleapp import tasks

pytestmark = pytest.mark.django_db(transaction=True)

WORKER_IN_A_LAMBDA_LIKE_PROCESS = """
import json, sys
sys.modules["MySQLdb"] = None  # mysqlclient is not in the Lambda build: importing it fails
from handlers.bootstrap import setup_django
setup_django()
from django.db import connection
from handlers import worker
from handlers.local_context import LocalContext
summary = worker.handler({"source": "bgtask.schedule"}, LocalContext(timeout=30))
connection.ensure_connection()
modules = [c.__module__ for c in type(connection.connection).__mro__]
print(json.dumps({"driver": [m for m in modules if m.startswith("pymysql")][0], **summary}))
"""


@pytest.mark.skipif(connection.vendor != "mysql", reason="the MySQL driver needs MySQL/MariaDB")
def test_the_deployed_settings_run_the_worker_on_mariadb_with_pymysql_alone():
    settings = connection.settings_dict
    url = (
        f"mysql://{settings['USER'] or 'root'}@{settings['HOST'] or '127.0.0.1'}:"
        f"{settings['PORT'] or 3306}/{settings['NAME']}"
    )
    task = tasks.record("via-pymysql", schedule=0)

    child = run_python(
        WORKER_IN_A_LAMBDA_LIKE_PROCESS,
        DJANGO_SETTINGS_MODULE="tests.serverless_faults.project_settings",
        AWS_LAMBDA_FUNCTION_NAME="bgtask-test-worker",
        DJANGO_SECRET_KEY="pymysql-test-" + "k" * 32,
        DATABASE_URL=url,
    )

    assert child.returncode == 0, child.stderr
    answer = json.loads(child.stdout.strip().splitlines()[-1])
    assert answer["driver"].startswith("pymysql")
    assert answer["succeeded"] == 1
    task.refresh_from_db()
    assert task.status == Task.SUCCEEDED
