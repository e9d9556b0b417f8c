"""CodeDeploy's PreTraffic hook: ``handlers.deploy_hook.handler`` migrates the database before any
traffic reaches the new version of the worker (and, after it, of the web function).

template.yaml deploys every function through an alias (``AutoPublishAlias: live``); the worker's
``DeploymentPreference`` names this function as its ``PreTraffic`` hook. CodeDeploy invokes it with

    {"DeploymentId": "d-ABCDEF123", "LifecycleEventHookExecutionId": "eyJ..."}

It runs ``migrate`` through the management function's code (``handlers.manage``: the same
allowlist, database check and connection handling) and reports the outcome to CodeDeploy with
``PutLifecycleEventHookExecutionStatus``. ``Failed`` stops the deployment: the alias keeps the
old version and CloudFormation rolls the stack back, so new code never meets an old schema. A
migration must therefore suit the old code too (expand, then contract: see the deploy guide).
"""

from __future__ import annotations

import functools
import logging
from typing import Any

from handlers.events import UnexpectedEvent

logger = logging.getLogger("bgtask.lambda.deploy")

HOOK_EVENT = '{"DeploymentId": string, "LifecycleEventHookExecutionId": string}'
# CodeDeploy waits up to an hour for the status; a failed report must fail fast and loud instead.
CONNECT_TIMEOUT_SECONDS = 5
READ_TIMEOUT_SECONDS = 10
MAX_ATTEMPTS = 5


class HookFailed(RuntimeError):
    """The migration failed; CodeDeploy was told, and stops the deployment."""


@functools.cache
def codedeploy_client() -> Any:
    from bgtask.aws.client import boto3_client

    return boto3_client(
        "codedeploy",
        connect_timeout=CONNECT_TIMEOUT_SECONDS,
        read_timeout=READ_TIMEOUT_SECONDS,
        attempts=MAX_ATTEMPTS,
    )


def _parse(event: Any) -> tuple[str, str]:
    keys = ("DeploymentId", "LifecycleEventHookExecutionId")
    if not isinstance(event, dict) or not all(
        isinstance(event.get(key), str) and event[key] for key in keys
    ):
        shape = f"keys {sorted(map(str, event))[:8]}" if isinstance(event, dict) else "no object"
        raise UnexpectedEvent(
            f"The deploy hook expects CodeDeploy's {HOOK_EVENT}; got a {type(event).__name__} "
            f"event ({shape}). Run migrations by hand through the management function."
        )
    return event["DeploymentId"], event["LifecycleEventHookExecutionId"]


def handler(event: Any, context: Any) -> dict[str, Any]:
    """Migrate, then tell CodeDeploy ``Succeeded`` or ``Failed``; raise ``HookFailed`` after a
    failed migration (so the invocation's error shows in the function's metrics too)."""
    deployment_id, execution_id = _parse(event)
    from handlers import manage

    try:
        output = manage.handler({"command": "migrate"}, context)["output"]
        status, error = "Succeeded", None
        logger.info("Deployment %s: migrated before traffic.\n%s", deployment_id, output.strip())
    except Exception as exc:  # any failure must reach CodeDeploy as Failed, not as a time-out
        status, error, output = "Failed", f"{type(exc).__name__}: {exc}", ""
        logger.error("Deployment %s: migrate failed, stopping it: %s", deployment_id, error)
    codedeploy_client().put_lifecycle_event_hook_execution_status(
        deploymentId=deployment_id, lifecycleEventHookExecutionId=execution_id, status=status
    )
    if error is not None:
        raise HookFailed(
            f"migrate failed ({error}); CodeDeploy was told, deployment {deployment_id} stops "
            "and the alias keeps the old version."
        )
    return {
        "handler": "deploy_hook",
        "deployment": deployment_id,
        "status": status,
        "output": output,
    }
