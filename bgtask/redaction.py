"""Scrub known secret values out of error text before it is stored (``last_error``) or logged.

A task's traceback can quote anything its code touched: a database URL with its password, an API
token in a request header, ``settings.SECRET_KEY``. ``redact()`` replaces every value it knows to
be secret with ``[redacted]``:

- ``SECRET_KEY`` and ``SECRET_KEY_FALLBACKS``;
- every database's ``PASSWORD``;
- Django settings and environment variables whose *names* look secret (``*SECRET*``,
  ``*PASSWORD*``, ``*TOKEN*``, ``*API_KEY*``, ``*PRIVATE_KEY*``, ``*CREDENTIAL*``, ...), and the
  password inside any URL-valued one (``DATABASE_URL=postgres://app:pw@db/app``);
- the password part of any ``scheme://user:password@host`` URL in the text itself.

Each value is also scrubbed in the forms it takes once escaped: inside its ``repr()`` or
``ascii()`` (an exception message that quotes it with ``!r``), inside a JSON string (a structured
log line, a JSON error body), and one of those inside the other. A password with a backslash, a
quote or a non-ASCII character reads differently in each, and every form is replaced.

Values are gathered on each call (errors are rare; ``override_settings`` keeps working). Values
shorter than ``MIN_SECRET_LENGTH`` are ignored, so an empty or toy password does not blank out
every ``1`` or ``a`` in a traceback.

>>> redact(f"could not connect: {settings.SECRET_KEY}")
'could not connect: [redacted]'
"""

from __future__ import annotations

import json
import logging
import os
import re
import warnings
from collections.abc import Iterable, Iterator
from urllib.parse import urlsplit

from django.conf import settings

REDACTED = "[redacted]"
MIN_SECRET_LENGTH = 4

# A setting or environment variable whose name matches holds a secret value.
SECRET_NAME = re.compile(
    r"SECRET|PASSWORD|PASSWD|PASSPHRASE|TOKEN|API_?KEY|ACCESS_?KEY|PRIVATE_?KEY|CREDENTIAL"
    r"|SIGNING_?KEY|AUTH_?KEY|SESSION_?KEY|DATABASE_URL|_DSN$",
    re.IGNORECASE,
)
# :password@ after "://user" in a URL, whatever the scheme; the password is group 2. It starts
# with a literal and every repeat is bounded: error text can be megabytes, and a pattern that
# started with a character class or had unbounded runs would backtrack for seconds on it.
URL_CREDENTIALS = re.compile(r"(://[^:/@\s]{0,256}:)([^@\s/]{1,256})(@)")


def _strings(value: object) -> Iterator[str]:
    """The string leaves of a setting's value (strings, or lists/tuples/dicts of them)."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, bytes):
        yield value.decode(errors="replace")
    elif isinstance(value, (list, tuple, set, frozenset)):
        for item in value:
            yield from _strings(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)


def _with_url_password(value: str) -> Iterator[str]:
    yield value
    if "://" in value:
        try:
            password = urlsplit(value).password
        except ValueError:
            password = None
        if password:
            yield password


def secret_values() -> set[str]:
    """Every value ``redact()`` currently scrubs."""
    found: list[str] = []
    if settings.configured:
        found += _strings(getattr(settings, "SECRET_KEY", ""))
        found += _strings(getattr(settings, "SECRET_KEY_FALLBACKS", ()))
        for database in getattr(settings, "DATABASES", {}).values():
            found += _strings(database.get("PASSWORD", ""))
        for name in dir(settings):
            # Only settings the project set: Django's empty defaults hold no secret, and reading
            # a deprecated one (EMAIL_HOST_PASSWORD in Django 6.1) would warn on every error.
            if name.isupper() and SECRET_NAME.search(name) and settings.is_overridden(name):  # type: ignore[misc]
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    found += _strings(getattr(settings, name, None))
    for name, value in os.environ.items():
        if SECRET_NAME.search(name):
            found.append(value)
    values: set[str] = set()
    for value in found:
        values.update(_with_url_password(value))
    return {value for value in values if len(value) >= MIN_SECRET_LENGTH}


def _quoted_inner(value: str) -> Iterator[str]:
    """``value`` as it reads between the quotes of its repr(), ascii() and JSON forms."""
    yield repr(value)[1:-1]
    yield ascii(value)[1:-1]
    # repr() picks double quotes for a value holding ' but no "; in a container or another
    # quoting context the other quote may be the escaped one.
    yield value.replace("\\", "\\\\").replace("'", "\\'")
    yield value.replace("\\", "\\\\").replace('"', '\\"')
    yield json.dumps(value)[1:-1]
    yield json.dumps(value, ensure_ascii=False)[1:-1]


def escaped_forms(value: str) -> set[str]:
    """``value`` and every form it takes escaped once or twice (repr, ascii, JSON)."""
    once = {value, *_quoted_inner(value)}
    return once | {twice for form in once for twice in _quoted_inner(form)}


def redact(text: str, extra: Iterable[str] = ()) -> str:
    """``text`` with every known secret value (and ``extra`` ones) replaced by ``[redacted]``."""
    if not text:
        return text
    text = URL_CREDENTIALS.sub(lambda m: m.group(1) + REDACTED + m.group(3), text)
    values = secret_values() | {value for value in extra if len(value) >= MIN_SECRET_LENGTH}
    values = {form for value in values for form in escaped_forms(value)}
    # Longest first, so a secret that contains another is replaced whole.
    for value in sorted(values, key=len, reverse=True):
        if value in text:
            text = text.replace(value, REDACTED)
    return text


class RedactSecretsFilter(logging.Filter):
    """A logging filter that scrubs secrets from the final message of every record it sees.

    bgtask already redacts what it logs about failed tasks; attach this to your handlers to cover
    the rest of the project too::

        LOGGING = {..., "filters": {"redact": {"()": "bgtask.redaction.RedactSecretsFilter"}},
                   "handlers": {"console": {..., "filters": ["redact"]}}}
    """

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True
