"""The database settings of the Lambda functions, from a Secrets Manager secret.

With ``DATABASE_SECRET_ARN`` set, the settings read the secret once when the container starts and
keep it for the container's life. When the database later refuses a connection (a rotated
password, a moved host), ``refresh_database_credentials`` reads the secret again and, if it
changed, points the connection at the new value, so a rotation needs no redeploy.

The secret holds either the database URL (``postgres://user:password@host:5432/name``) or the
JSON that RDS and its rotation functions write
(``{"engine": "postgres", "host": ..., "port": ..., "username": ..., "password": ...,
"dbname": ...}``); a JSON ``{"url": ...}`` is taken too.

Secrets Manager is read through ``bgtask.aws.secrets`` (boto3, which the Lambda runtime provides,
is imported only when a secret is used).
"""

from __future__ import annotations

import json
import logging
import threading
from typing import Any
from urllib.parse import quote

from bgtask.aws.throttle import Throttle

logger = logging.getLogger("bgtask.lambda.secrets")

# Keys of a database's settings that a secret decides; the rest (OPTIONS, CONN_MAX_AGE, ...) stay.
CREDENTIAL_KEYS = ("ENGINE", "NAME", "USER", "PASSWORD", "HOST", "PORT")
# A database that is down refuses every connection; re-read the secret at most this often then.
MIN_REFRESH_SECONDS = 10.0
SCHEMES = {"postgres": "postgres", "postgresql": "postgres", "mysql": "mysql", "mariadb": "mysql"}

_lock = threading.Lock()
_cache: dict[str, str] = {}
_refresh_throttle = Throttle()


class SecretUnusable(RuntimeError):
    """The secret could not be read, or holds no database URL; the message says which and why,
    never the value."""


def _fetch(arn: str) -> str:
    from bgtask.aws.secrets import SecretUnreadable, secret_string

    try:
        return secret_string(arn)
    except SecretUnreadable as exc:
        raise SecretUnusable(f"{exc} (the database secret, DatabaseSecretArn)") from exc


def secret_value(arn: str, *, refresh: bool = False) -> str:
    """The secret's string, read from Secrets Manager once and then from the cache."""
    with _lock:
        if refresh or arn not in _cache:
            _cache[arn] = _fetch(arn)
        return _cache[arn]


def database_url(secret: str, arn: str = "the database secret") -> str:
    """The database URL a secret holds (a URL, or RDS-style JSON)."""
    text = secret.strip()
    if not text.startswith("{"):
        if "://" not in text:
            raise SecretUnusable(
                f"{arn} holds neither a database URL (scheme://user:password@host/name) nor JSON."
            )
        return text
    try:
        fields = json.loads(text)
    except ValueError as exc:
        raise SecretUnusable(f"{arn} looks like JSON but does not parse: {exc.msg}.") from None
    if isinstance(fields, dict) and isinstance(fields.get("url"), str):
        return fields["url"]
    missing = [k for k in ("engine", "host", "username", "password") if not fields.get(k)]
    if not isinstance(fields, dict) or missing:
        raise SecretUnusable(f"{arn} is JSON without a url, and lacks the keys {missing}.")
    scheme = SCHEMES.get(str(fields["engine"]).lower())
    if scheme is None:
        raise SecretUnusable(
            f"{arn} names the engine {fields['engine']!r}; expected one of {sorted(SCHEMES)}."
        )
    port = f":{int(fields['port'])}" if fields.get("port") else ""
    name = fields.get("dbname") or fields["username"]
    return (
        f"{scheme}://{quote(str(fields['username']), safe='')}:"
        f"{quote(str(fields['password']), safe='')}@{fields['host']}{port}/{quote(str(name))}"
    )


def database_settings(arn: str, *, refresh: bool = False) -> dict[str, Any]:
    """Django's DATABASES entry for the secret (dj-database-url's parse of its URL)."""
    import dj_database_url

    return dj_database_url.parse(database_url(secret_value(arn, refresh=refresh), arn))


def refresh_database_credentials(alias: str = "default") -> bool:
    """Read the secret again; if its database changed, point ``alias`` at it. True if it did.

    Called when the database refused a connection: the secret may have been rotated since this
    container read it. Does nothing (False) when the settings name no ``DATABASE_SECRET_ARN``, or
    when this process re-read it less than ``MIN_REFRESH_SECONDS`` ago.
    """
    from django.conf import settings
    from django.db import connections

    arn = getattr(settings, "DATABASE_SECRET_ARN", None)
    if not arn or not _refresh_throttle.take(MIN_REFRESH_SECONDS):
        return False
    try:
        fresh = database_settings(arn, refresh=True)
    except SecretUnusable as exc:
        logger.error("Could not refresh the database credentials: %s", exc)
        return False
    connection = connections[alias]
    current = connection.settings_dict
    if all(fresh.get(key) == current.get(key) for key in CREDENTIAL_KEYS):
        return False
    connection.close()
    for key in CREDENTIAL_KEYS:
        current[key] = fresh.get(key)
    logger.warning("The database secret changed since start-up; using its new value.")
    return True
