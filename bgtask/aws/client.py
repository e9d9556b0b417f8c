"""One Lambda client per process (botocore, which boto3 is built on), and the asynchronous invoke
every feature shares.

The region and endpoint come from botocore's own environment (``AWS_REGION`` is set on Lambda;
``AWS_ENDPOINT_URL`` points the tests at moto's server).
"""

from __future__ import annotations

import functools
import json
import logging
from typing import Any

logger = logging.getLogger("bgtask.aws")

# A wake-up runs inside a web request or an enqueue: fail fast rather than hold the caller.
CONNECT_TIMEOUT_SECONDS = 2
READ_TIMEOUT_SECONDS = 5
MAX_ATTEMPTS = 2


@functools.cache
def botocore_session() -> Any:
    """The process's one botocore session: every client shares its credentials and the service
    data it has loaded (the endpoint tables alone take tens of milliseconds to parse)."""
    import botocore.session

    return botocore.session.get_session()


def boto3_client(
    service: str, *, connect_timeout: float, read_timeout: float, attempts: int
) -> Any:
    """A client with bounded timeouts and retries, created on first use.

    Made by botocore's session directly: the same client ``boto3.client`` returns (boto3 adds
    its resource layer and S3 transfer manager, which nothing here uses), without importing boto3
    and s3transfer, which the functions' init phase would pay for when it reads its secrets."""
    from botocore.config import Config

    config = Config(
        connect_timeout=connect_timeout,
        read_timeout=read_timeout,
        retries={"max_attempts": attempts, "mode": "standard"},
    )
    return botocore_session().create_client(service, config=config)


@functools.cache
def lambda_client() -> Any:
    return boto3_client(
        "lambda",
        connect_timeout=CONNECT_TIMEOUT_SECONDS,
        read_timeout=READ_TIMEOUT_SECONDS,
        attempts=MAX_ATTEMPTS,
    )


def invoke_async(function_name: str, payload: dict[str, Any]) -> bool:
    """Start ``function_name`` with ``payload`` without waiting for it; False when AWS refused.

    >>> invoke_async("bgtask-worker", {"queue": "emails"})
    True

    Never raises for an AWS or network error: a missed wake-up only delays work until the next
    scheduled run, which must not fail the enqueue or batch that asked for it.
    """
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        response = lambda_client().invoke(
            FunctionName=function_name,
            InvocationType="Event",
            Payload=json.dumps(payload).encode(),
        )
    except (BotoCoreError, ClientError) as exc:
        logger.warning("Could not invoke %s asynchronously: %s", function_name, exc)
        return False
    accepted = response.get("StatusCode") == 202
    if not accepted:
        logger.warning("Invoke of %s answered %s, not 202.", function_name, response)
    return bool(accepted)
