"""Issue 20 A5: a secret is scrubbed also where it appears escaped: in its repr() or ascii() (an
exception message quoting it with ``!r``), inside a JSON string (a structured log line, an error
body), and one inside the other. Secrets Manager and RDS passwords may hold ``\\`` and ``"``."""

import json
import logging

import pytest
from django.conf import settings as django_settings
from django.test import override_settings

from bgtask import run_batch
from bgtask.models import Task
from bgtask.redaction import REDACTED, RedactSecretsFilter, escaped_forms, redact
from tests.reliability.helpers import enqueue

# A backslash, both quotes, a non-ASCII letter and a control character: each escapes differently.
PASSWORDS = [
    'pa"ss\\word-42',
    "it's-a\\secret",
    "both'\"quotes\\here",
    "wörd-mit-ümlaut-7",
    "tab\there-and\\n-not-newline",
    "ends-with-backslash\\",
]


def _quotings(secret: str) -> list[str]:
    body = json.dumps({"password": secret})
    return [
        repr(secret),
        ascii(secret),
        json.dumps(secret),
        json.dumps(secret, ensure_ascii=False),
        body,
        repr({"body": body}),
        json.dumps({"message": f"failed: {secret!r}"}),
        json.dumps({"message": f"failed: {secret!a}"}),
        repr([secret]),
        str({"password": secret}),
    ]


def _databases(password: str) -> dict:
    default = dict(django_settings.DATABASES["default"], PASSWORD=password)
    return {"default": default}


@pytest.mark.parametrize("secret", PASSWORDS)
def test_every_escaped_form_of_a_secret_is_scrubbed(secret):
    for quoted in _quotings(secret):
        text = f"error: {quoted} (end)"
        cleaned = redact(text, extra=[secret])
        for form in escaped_forms(secret):
            assert form not in cleaned, (quoted, form)
        assert REDACTED in cleaned, quoted
        assert cleaned.startswith("error: ") and cleaned.endswith(" (end)")


def test_the_forms_include_the_ones_seen_in_the_issue():
    forms = escaped_forms('pa"ss\\wörd')
    assert {'pa"ss\\wörd', 'pa"ss\\\\wörd', 'pa\\"ss\\\\w\\u00f6rd', 'pa"ss\\\\w\\xf6rd'} <= forms


@pytest.mark.parametrize("secret", PASSWORDS[:3])
def test_the_logging_filter_scrubs_an_escaped_secret(caplog, secret):
    log = logging.getLogger("tests.redaction.escaped")
    log.addFilter(RedactSecretsFilter())
    try:
        with override_settings(API_TOKEN=secret), caplog.at_level(logging.INFO, logger=log.name):
            log.info("upstream said %s", json.dumps({"token": secret}))
            log.info("token was %r", secret)
    finally:
        log.filters.clear()
    for form in escaped_forms(secret):
        assert form not in caplog.text
    assert caplog.text.count(REDACTED) == 2


@pytest.mark.parametrize("secret", PASSWORDS[:3])
@pytest.mark.django_db(transaction=True)
def test_a_task_quoting_the_database_password_escaped_leaves_it_out_of_the_row_and_log(
    secret, caplog
):
    enqueue("rel.leak_escaped_secret", [([], {})])
    with (
        # The warning says DATABASES changed under a live connection; the password is only read.
        pytest.warns(UserWarning, match="DATABASES"),
        override_settings(DATABASES=_databases(secret), MAX_ATTEMPTS=1),
        caplog.at_level(logging.DEBUG, logger="bgtask"),
    ):
        result = run_batch(10)
    assert result.ran == 1
    last_error = Task.objects.get().last_error
    assert "could not authenticate" in last_error and REDACTED in last_error
    for form in escaped_forms(secret):
        assert form not in last_error, form
        assert form not in caplog.text, form
