"""Reading one secret's string from Secrets Manager or from SSM Parameter Store, by its ARN.

The Lambda project's settings (handlers/project/settings.py, through handlers/secrets.py) read the
database URL, the Django secret key and the status token this way at start-up, so that no function
holds a secret in its environment. The ARN says where the secret lives:

- ``arn:aws:secretsmanager:<region>:<account>:secret:<name>``: the secret's current
  ``SecretString``;
- ``arn:aws:ssm:<region>:<account>:parameter/<name>``: the parameter's value, decrypted (a
  ``SecureString``; a plain ``String`` is read as it is).

The region and endpoint come from boto3's own environment (``AWS_REGION`` on Lambda;
``AWS_ENDPOINT_URL`` points the tests at moto's server).

>>> secret_string("arn:aws:secretsmanager:us-east-1:123456789012:secret:bgtask/db-AbCdEf")
'postgres://...'
>>> secret_string("arn:aws:ssm:us-east-1:123456789012:parameter/bgtask/secret-key")
'...'
"""

from __future__ import annotations

import datetime
import functools
import hashlib
import hmac
import http.client
import json
import os
import re
import threading
import time
import urllib.parse
from collections.abc import Mapping
from typing import Any

from bgtask.aws.client import boto3_client

# Read at start-up and after a refused database connection: fail fast, not at the function's
# timeout.
CONNECT_TIMEOUT_SECONDS = 2
READ_TIMEOUT_SECONDS = 5
MAX_ATTEMPTS = 3

# arn:<partition>:<service>:<region>:<account>:<resource>
ARN = re.compile(
    r"^arn:aws[a-z-]*:(secretsmanager|ssm):[a-z0-9-]+:[0-9]{12}:(secret:|parameter/).+$"
)
SERVICE_RESOURCE = {"secretsmanager": "secret:", "ssm": "parameter/"}


class SecretUnreadable(RuntimeError):
    """The secret's string could not be read; the message says which secret and why, never its
    value."""


def secret_service(arn: str) -> str:
    """``"secretsmanager"`` or ``"ssm"``: where ``arn`` lives; ``SecretUnreadable`` for any other
    string (checked before any call, so a typo in a parameter is named as such)."""
    match = ARN.match(arn)
    if match is None or not match.group(2).startswith(SERVICE_RESOURCE[match.group(1)]):
        raise SecretUnreadable(
            f"{arn!r} is not the ARN of a Secrets Manager secret "
            "(arn:aws:secretsmanager:<region>:<account>:secret:<name>) or of an SSM parameter "
            "(arn:aws:ssm:<region>:<account>:parameter/<name>)."
        )
    return match.group(1)


@functools.cache
def aws_client(service: str) -> Any:
    return boto3_client(
        service,
        connect_timeout=CONNECT_TIMEOUT_SECONDS,
        read_timeout=READ_TIMEOUT_SECONDS,
        attempts=MAX_ATTEMPTS,
    )


# A Secrets Manager read without botocore (issue 21): importing botocore and building its client
# cost about as much CPU as the rest of the init phase together (infra/measure_lambda.py), for
# one JSON request. On Lambda the credentials are in the environment and the endpoint is the
# region's, so the request is signed here (Signature Version 4) and sent with http.client.
# Anything else (credentials from a profile or a role, FIPS or dual-stack endpoints, a proxy,
# another partition, SSM) goes through botocore, which knows all of that.
DNS_SUFFIXES = {"aws": "amazonaws.com", "aws-cn": "amazonaws.com.cn", "aws-us-gov": "amazonaws.com"}
GET_SECRET_VALUE = "secretsmanager.GetSecretValue"
_direct_lock = threading.Lock()
_direct_connections: dict[str, http.client.HTTPConnection] = {}


def direct_endpoint(arn: str, environ: Mapping[str, str] = os.environ) -> str | None:
    """The URL a Secrets Manager read of ``arn`` goes to without botocore, or None when botocore
    must make it (no credentials in the environment, a FIPS or dual-stack endpoint, a proxy, a
    partition without a known domain)."""
    if not (environ.get("AWS_ACCESS_KEY_ID") and environ.get("AWS_SECRET_ACCESS_KEY")):
        return None
    if any(
        environ.get(name, "").strip().lower() == "true"
        for name in ("AWS_USE_FIPS_ENDPOINT", "AWS_USE_DUALSTACK_ENDPOINT")
    ) or any(environ.get(name) for name in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY")):
        return None
    for name in ("AWS_ENDPOINT_URL_SECRETS_MANAGER", "AWS_ENDPOINT_URL"):
        if environ.get(name):
            return environ[name]
    _, partition, _, region, *_ = arn.split(":")
    suffix = DNS_SUFFIXES.get(partition)
    return f"https://secretsmanager.{region}.{suffix}" if suffix else None


def sigv4_headers(
    *,
    host: str,
    path: str,
    region: str,
    service: str,
    target: str,
    body: bytes,
    key_id: str,
    secret_key: str,
    session_token: str | None,
    now: datetime.datetime,
) -> dict[str, str]:
    """The headers of a signed AWS JSON 1.1 POST (Signature Version 4), Authorization included."""
    amz_date = now.astimezone(datetime.UTC).strftime("%Y%m%dT%H%M%SZ")
    day = amz_date[:8]
    headers = {
        "content-type": "application/x-amz-json-1.1",
        "host": host,
        "x-amz-date": amz_date,
        "x-amz-target": target,
    }
    if session_token:
        headers["x-amz-security-token"] = session_token
    names = sorted(headers)
    signed = ";".join(names)
    canonical = "\n".join(
        [
            "POST",
            path or "/",
            "",  # no query string
            *(f"{name}:{headers[name]}" for name in names),
            "",
            signed,
            hashlib.sha256(body).hexdigest(),
        ]
    )
    scope = f"{day}/{region}/{service}/aws4_request"
    to_sign = "\n".join(
        ["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()]
    )
    key = ("AWS4" + secret_key).encode()
    for part in (day, region, service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    headers["authorization"] = (
        f"AWS4-HMAC-SHA256 Credential={key_id}/{scope}, SignedHeaders={signed}, "
        f"Signature={signature}"
    )
    return headers


def _connection(url: urllib.parse.SplitResult) -> http.client.HTTPConnection:
    connection = _direct_connections.get(url.netloc)
    if connection is None:
        if url.scheme == "https":
            connection = http.client.HTTPSConnection(url.netloc, timeout=READ_TIMEOUT_SECONDS)
        else:
            connection = http.client.HTTPConnection(url.netloc, timeout=READ_TIMEOUT_SECONDS)
        _direct_connections[url.netloc] = connection
    return connection


def _get_secret_value_direct(arn: str, endpoint: str) -> str | None:
    """GetSecretValue of ``arn`` at ``endpoint``, signed here; retried like botocore's standard
    mode (connection errors, 5xx, throttling), ``MAX_ATTEMPTS`` times in all."""
    url = urllib.parse.urlsplit(endpoint)
    region = arn.split(":")[3]
    body = json.dumps({"SecretId": arn}).encode()
    failure = "no attempt made"
    with _direct_lock:
        for attempt in range(MAX_ATTEMPTS):
            if attempt:
                time.sleep(min(0.1 * 2**attempt, 1.0))
            headers = sigv4_headers(
                host=url.netloc,
                path=url.path,
                region=region,
                service="secretsmanager",
                target=GET_SECRET_VALUE,
                body=body,
                key_id=os.environ["AWS_ACCESS_KEY_ID"],
                secret_key=os.environ["AWS_SECRET_ACCESS_KEY"],
                session_token=os.environ.get("AWS_SESSION_TOKEN"),
                now=datetime.datetime.now(datetime.UTC),
            )
            connection = _connection(url)
            try:
                connection.request("POST", url.path or "/", body=body, headers=headers)
                response = connection.getresponse()
                status, payload = response.status, response.read()
            except (OSError, http.client.HTTPException) as exc:
                connection.close()
                _direct_connections.pop(url.netloc, None)
                failure = f"{type(exc).__name__}: {exc}"
                continue
            try:
                answer = json.loads(payload or b"{}")
            except ValueError:
                answer = {}
            if status == 200:
                return answer.get("SecretString") if isinstance(answer, dict) else None
            kind = str(answer.get("__type", f"HTTP {status}")).rsplit("#", 1)[-1]
            message = answer.get("Message") or answer.get("message") or ""
            failure = (
                f"An error occurred ({kind}) when calling the GetSecretValue operation: {message}"
            )
            if status < 500 and "Throttl" not in kind:
                break
    raise SecretUnreadable(
        f"Could not read the secret {arn} from Secrets Manager ({failure}). Check the ARN and "
        "that the function's role may secretsmanager:GetSecretValue it."
    )


def secret_string(arn: str) -> str:
    """The current value of the secret or SecureString parameter ``arn``."""
    service = secret_service(arn)
    endpoint = direct_endpoint(arn) if service == "secretsmanager" else None
    if endpoint is not None:
        value = _get_secret_value_direct(arn, endpoint)
        if not value:
            raise SecretUnreadable(f"The secret {arn} has no string value (a binary secret?).")
        return str(value)
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        if service == "ssm":
            response = aws_client("ssm").get_parameter(Name=arn, WithDecryption=True)
            value = response.get("Parameter", {}).get("Value")
        else:
            value = aws_client("secretsmanager").get_secret_value(SecretId=arn).get("SecretString")
    except (BotoCoreError, ClientError) as exc:
        if service == "ssm":
            where, action = "SSM Parameter Store", "ssm:GetParameter it (and kms:Decrypt its key)"
        else:
            where, action = "Secrets Manager", "secretsmanager:GetSecretValue it"
        raise SecretUnreadable(
            f"Could not read the secret {arn} from {where} ({exc}). Check the ARN and that the "
            f"function's role may {action}."
        ) from exc
    if not value:
        raise SecretUnreadable(f"The secret {arn} has no string value (a binary secret?).")
    return str(value)
