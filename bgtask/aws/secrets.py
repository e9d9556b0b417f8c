"""Reading a Secrets Manager secret's string, for settings that come from a secret (the Lambda
project's database URL, see handlers/secrets.py).

The region and endpoint come from boto3's own environment (``AWS_REGION`` on Lambda;
``AWS_ENDPOINT_URL`` points the tests at moto's server).

>>> secret_string("arn:aws:secretsmanager:us-east-1:123456789012:secret:bgtask/db-AbCdEf")
'postgres://...'
"""

from __future__ import annotations

import functools
from typing import Any

from bgtask.aws.client import boto3_client

# Read at start-up and after a refused database connection: fail fast, not at the function's
# timeout.
CONNECT_TIMEOUT_SECONDS = 2
READ_TIMEOUT_SECONDS = 5
MAX_ATTEMPTS = 3


class SecretUnreadable(RuntimeError):
    """Secrets Manager did not give the secret's string; the message says which secret and why."""


@functools.cache
def secrets_client() -> Any:
    return boto3_client(
        "secretsmanager",
        connect_timeout=CONNECT_TIMEOUT_SECONDS,
        read_timeout=READ_TIMEOUT_SECONDS,
        attempts=MAX_ATTEMPTS,
    )


def secret_string(arn: str) -> str:
    """The current ``SecretString`` of the secret ``arn``; ``SecretUnreadable`` if there is none."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        value = secrets_client().get_secret_value(SecretId=arn).get("SecretString")
    except (BotoCoreError, ClientError) as exc:
        raise SecretUnreadable(
            f"Could not read the secret {arn} from Secrets Manager ({exc}). Check the ARN and "
            "that the function's role may secretsmanager:GetSecretValue it."
        ) from exc
    if not value:
        raise SecretUnreadable(f"The secret {arn} has no SecretString (a binary secret?).")
    return str(value)
