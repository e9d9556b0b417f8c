"""Security: only registered names run, no pickle, no secret in last_error or logs, admin is staff
only."""

import ast
import logging
import sys
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.test import override_settings

from bgtask import run_batch
from bgtask.models import Task
from bgtask.redaction import REDACTED, RedactSecretsFilter, redact, secret_values
from tests.conftest import REPO_ROOT, batch_result, start_batch_process
from tests.reliability.helpers import enqueue, enqueue_records, execution_counts

# -- only registered names run -----------------------------------------------------------------

CANARY = "tests.reliability.canary"


@pytest.mark.parametrize(
    "name",
    [
        f"{CANARY}.run",  # a dotted path to a real, importable function
        "tests.sampleapp.tasks.record",  # the dotted origin of a registered task (named otherwise)
        "os.system",
        "builtins.eval",
        "subprocess.call",
        "__import__",
    ],
)
@pytest.mark.django_db(transaction=True)
def test_a_row_naming_a_dotted_path_never_imports_or_runs_it(name, tmp_path):
    marker = tmp_path / "ran"
    assert CANARY not in sys.modules
    Task.objects.create(
        task_name=name, arguments=f'{{"args": ["touch {marker}"], "kwargs": {{}}}}', priority=9
    )
    enqueue_records(["registered"])
    result = run_batch(30)
    assert (result.retried, result.succeeded) == (1, 1)
    assert CANARY not in sys.modules
    assert not marker.exists()
    assert execution_counts() == {"registered": 1}
    assert "is registered in this process" in Task.objects.get(task_name=name).last_error


@pytest.mark.django_db(transaction=True)
def test_a_worker_process_never_imports_a_module_named_by_a_row(tmp_path):
    marker = tmp_path / "imported"
    Task.objects.create(task_name=f"{CANARY}.run")
    result = batch_result(start_batch_process(30, BGTASK_CANARY_MARKER=str(marker)))
    assert result["retried"] == 1
    assert not marker.exists(), "the worker imported a module named by a row"


# -- no pickle, no dynamic imports -------------------------------------------------------------

UNSAFE_MODULES = {"pickle", "cPickle", "_pickle", "dill", "cloudpickle", "shelve", "marshal"}
UNSAFE_MODULES |= {"jsonpickle", "joblib", "copyreg"}
CODE_BUILTINS = {"eval", "exec", "compile", "__import__"}  # called by bare name
DYNAMIC_IMPORTS = {"import_module", "import_string", "__import__"}


def _python_files(*folders: str) -> list[Path]:
    files = [p for folder in folders for p in (REPO_ROOT / folder).rglob("*.py")]
    assert len(files) > 10, "the scan found no source: wrong folder?"
    return files


def _imported_modules(tree: ast.AST) -> set[str]:
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module.split(".")[0])
            found |= {alias.name for alias in node.names}
    return found


def _names_used(tree: ast.AST) -> set[str]:
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            found.add(node.id)
        elif isinstance(node, ast.Attribute):
            found.add(node.attr)
    return found


def test_no_pickle_anywhere_in_the_library_or_the_handlers():
    offenders = []
    for path in _python_files("bgtask", "handlers"):
        tree = ast.parse(path.read_text(), str(path))
        bad = (_imported_modules(tree) | _names_used(tree)) & UNSAFE_MODULES
        bad |= {n for n in _names_used(tree) if "pickle" in n.lower()}
        if bad:
            offenders.append(f"{path.relative_to(REPO_ROOT)}: {sorted(bad)}")
    assert not offenders, offenders


def test_the_library_never_turns_data_into_code():
    offenders = []
    for path in _python_files("bgtask"):
        tree = ast.parse(path.read_text(), str(path))
        bad = (_imported_modules(tree) | _names_used(tree)) & DYNAMIC_IMPORTS
        bad |= {
            node.func.id
            for node in ast.walk(tree)
            if isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in CODE_BUILTINS
        }
        if bad:
            offenders.append(f"{path.relative_to(REPO_ROOT)}: {sorted(bad)}")
    assert not offenders, offenders


def test_the_scan_would_see_a_pickle_import():
    tree = ast.parse("import json\nfrom pickle import loads as l\nx = l(b'')\n")
    assert _imported_modules(tree) & UNSAFE_MODULES == {"pickle"}


# -- secrets never reach last_error or the log -------------------------------------------------

SECRETS = {
    "SECRET_KEY": "django-insecure-s3cr3t-key-for-redaction",
    "STRIPE_API_KEY": "sk_live_redaction_4242",
    "BGTASK_TEST_API_TOKEN": "tok-env-9f8e7d6c",
    "BGTASK_TEST_URL_PASSWORD": "url-pass-5b4a",
}


@pytest.mark.parametrize("max_attempts", [25, 1], ids=["retried", "failed"])
@pytest.mark.django_db(transaction=True)
def test_secrets_never_reach_last_error_or_the_log(max_attempts, monkeypatch, caplog):
    monkeypatch.setenv("BGTASK_TEST_API_TOKEN", SECRETS["BGTASK_TEST_API_TOKEN"])
    monkeypatch.setenv("BGTASK_TEST_URL_PASSWORD", SECRETS["BGTASK_TEST_URL_PASSWORD"])
    enqueue("rel.leak_secrets", [([], {})])
    with (
        override_settings(
            SECRET_KEY=SECRETS["SECRET_KEY"],
            STRIPE_API_KEY=SECRETS["STRIPE_API_KEY"],
            MAX_ATTEMPTS=max_attempts,
        ),
        caplog.at_level(logging.DEBUG, logger="bgtask"),
    ):
        result = run_batch(10)
    assert result.ran == 1
    last_error = Task.objects.get().last_error
    assert "could not authenticate" in last_error and REDACTED in last_error
    assert "could not authenticate" in caplog.text
    for name, value in SECRETS.items():
        if name != "STRIPE_API_KEY":  # the task does not know it; it is here to be collected
            assert value not in last_error, name
            assert value not in caplog.text, name


@pytest.mark.django_db(transaction=True)
def test_a_worker_process_keeps_secrets_out_of_its_stderr_and_the_row():
    env = {k: SECRETS[k] for k in ("BGTASK_TEST_API_TOKEN", "BGTASK_TEST_URL_PASSWORD")}
    enqueue("rel.leak_secrets", [([], {})])
    process = start_batch_process(30, **env)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 0, err[-2000:]
    assert "could not authenticate" in err  # the failure is logged, scrubbed
    row = Task.objects.get()
    for value in [*env.values(), "tests-only-not-secret"]:  # the tests' SECRET_KEY
        assert value not in err
        assert value not in out
        assert value not in row.last_error


def test_redact_scrubs_database_passwords_and_secret_named_settings_and_env(monkeypatch):
    monkeypatch.setenv("PAYMENT_GATEWAY_TOKEN", "env-token-123456")
    monkeypatch.setenv("DATABASE_URL", "postgres://app:dburl-pw-777@db:5432/app")
    monkeypatch.setenv("HARMLESS_NAME", "not-a-secret-value")
    databases = {"default": {"ENGINE": "x", "NAME": "app", "PASSWORD": "db-pass-abcdef"}}
    with (
        pytest.warns(UserWarning, match="DATABASES"),
        override_settings(DATABASES=databases, AWS_SECRET_ACCESS_KEY="aws-secret-xyz"),
    ):
        values = secret_values()
        text = redact(
            "pw=db-pass-abcdef aws=aws-secret-xyz env=env-token-123456 url-pw=dburl-pw-777 "
            "ok=not-a-secret-value"
        )
    assert {"db-pass-abcdef", "aws-secret-xyz", "env-token-123456", "dburl-pw-777"} <= values
    assert text == (
        f"pw={REDACTED} aws={REDACTED} env={REDACTED} url-pw={REDACTED} ok=not-a-secret-value"
    )


def test_redact_scrubs_passwords_in_any_url_and_ignores_tiny_values():
    text = "connect to mysql://root:p4ss-word@10.0.0.1/db and redis://:only-pw@cache:6379 failed"
    assert redact(text) == (
        f"connect to mysql://root:{REDACTED}@10.0.0.1/db and redis://:{REDACTED}@cache:6379 failed"
    )
    with override_settings(DB_PASSWORD="1"):
        assert redact("attempt 1 of 10") == "attempt 1 of 10"
    assert redact("") == ""


def test_the_logging_filter_scrubs_messages_arguments_and_tracebacks(caplog):
    log = logging.getLogger("tests.redaction")
    log.addFilter(RedactSecretsFilter())
    try:
        with caplog.at_level(logging.INFO, logger="tests.redaction"):
            log.info("key is %s", "tests-only-not-secret")
            try:
                raise ValueError("tests-only-not-secret")
            except ValueError:
                log.exception("failed")
    finally:
        log.filters.clear()
    assert "tests-only-not-secret" not in caplog.text
    # The message, the exception text, and the traceback's source line quoting it.
    assert caplog.text.count(REDACTED) == 3


# -- admin -------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_task_admin_refuses_anonymous_and_non_staff_users(client):
    url = "/admin/bgtask/task/"
    assert client.get(url).status_code == 302
    User.objects.create_user("visitor", password="pw-visitor-1")
    client.login(username="visitor", password="pw-visitor-1")
    response = client.get(url)
    assert response.status_code == 302 and "/login/" in response["Location"]
    User.objects.create_user("staff", password="pw-staff-1", is_staff=True)
    client.login(username="staff", password="pw-staff-1")
    assert client.get(url).status_code == 403  # staff, but without the bgtask permission
    User.objects.create_superuser("admin", password="pw-admin-1")
    client.login(username="admin", password="pw-admin-1")
    assert client.get(url).status_code == 200
