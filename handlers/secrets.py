"""The Lambda functions' secrets, read from Secrets Manager or SSM Parameter Store at start-up.

No function holds a secret in its environment (anyone allowed ``lambda:GetFunctionConfiguration``
could read it there). The environment names where each secret lives instead, and the settings
read it once, in the init phase, and keep it for the container's life:

- ``DATABASE_SECRET_ARN``: the database URL (see below);
- ``DJANGO_SECRET_KEY_ARN``: Django's ``SECRET_KEY``;
- ``BGTASK_STATUS_TOKEN_ARN``: the status endpoint's bearer token.

Each is the ARN of a Secrets Manager secret or of an SSM ``SecureString`` parameter
(``bgtask.aws.secrets``). Off Lambda, the plain variables (``DATABASE_URL``, ``DJANGO_SECRET_KEY``,
``BGTASK_STATUS_TOKEN``) are read when no ARN is given.

With ``DATABASE_SECRET_ARN`` set, the database URL is read once when the container starts and
kept for the container's life. When the database later refuses a connection (a rotated
password, a moved host), ``refresh_database_credentials`` reads the secret again and, if it
changed, points the connection at the new value, so a rotation needs no redeploy.

The secret holds either the database URL (``postgres://user:password@host:5432/name``) or the
JSON that RDS and its rotation functions write
(``{"engine": "postgres", "host": ..., "port": ..., "username": ..., "password": ...,
"dbname": ...}``); a JSON ``{"url": ...}`` is taken too.

The secrets are read through ``bgtask.aws.secrets`` (boto3, which the Lambda runtime provides,
is imported only when a secret is used).
"""

from __future__ import annotations

import json
import logging
import os
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


def _fetch(arn: str, what: str) -> str:
    from bgtask.aws.secrets import SecretUnreadable, secret_string

    try:
        return secret_string(arn)
    except SecretUnreadable as exc:
        raise SecretUnusable(f"{exc} ({what})") from exc


def secret_value(
    arn: str, *, refresh: bool = False, what: str = "the database secret, DatabaseSecretArn"
) -> str:
    """The secret's string, read from AWS once and then from the cache (``refresh`` reads it
    again). ``what`` names the secret in an error: which template parameter to check."""
    with _lock:
        if refresh or arn not in _cache:
            _cache[arn] = _fetch(arn, what)
        return _cache[arn]


def setting_from_secret(name: str, parameter: str) -> str | None:
    """The value of the setting ``name``: read from the secret ``<name>_ARN`` names when that is
    set (once per container, then cached), else the plain environment variable ``name`` (a
    laptop, the tests), else None.

    >>> SECRET_KEY = setting_from_secret("DJANGO_SECRET_KEY", "DjangoSecretKeyArn")

    ``parameter`` is the template parameter an error tells the operator to check.
    """
    arn = os.environ.get(f"{name}_ARN")
    if arn:
        value = secret_value(arn, what=f"{name}_ARN, template parameter {parameter}").strip()
        if not value:
            raise SecretUnusable(f"The secret {arn} ({name}_ARN) is empty.")
        return value
    return os.environ.get(name) or None


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


# Where the Lambda trust store is (Amazon Linux 2023): PyMySQL verifies the RDS Proxy with it.
CA_BUNDLE = "/etc/pki/tls/certs/ca-bundle.crt"


def database_settings(arn: str, *, refresh: bool = False) -> dict[str, Any]:
    """Django's DATABASES entry for the secret (dj-database-url's parse of its URL).

    With ``DATABASE_HOST_OVERRIDE`` set (template.yaml sets it to the RDS Proxy's endpoint), the
    connection goes there instead of to the host the secret names, over TLS, which the proxy
    requires; the user, password and database name still come from the secret.
    """
    import dj_database_url

    parsed = dj_database_url.parse(database_url(secret_value(arn, refresh=refresh), arn))
    proxy = os.environ.get("DATABASE_HOST_OVERRIDE")
    if proxy:
        parsed["HOST"] = proxy
        options = parsed.setdefault("OPTIONS", {})
        if parsed["ENGINE"].endswith("postgresql"):
            options.setdefault("sslmode", "require")
            # Transaction pooling: a server-side cursor would outlive its transaction's
            # connection (docs/how-to/pgbouncer-and-rds-proxy.md).
            parsed["DISABLE_SERVER_SIDE_CURSORS"] = True
        elif parsed["ENGINE"].endswith("mysql"):
            options.setdefault("ssl", {"ca": CA_BUNDLE})
    return parsed


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
