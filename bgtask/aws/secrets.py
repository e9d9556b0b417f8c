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

import functools
import re
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


def secret_string(arn: str) -> str:
    """The current value of the secret or SecureString parameter ``arn``."""
    from botocore.exceptions import BotoCoreError, ClientError

    service = secret_service(arn)
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
