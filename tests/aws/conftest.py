"""AWS for the tests is moto's server on 127.0.0.1 (real HTTP, real boto3), never AWS itself.

``lambda_invocations`` lists what the fake Lambda service received: moto's Docker-free Lambda
backend answers invokes without running anything, so the tests record each request it gets.
"""

from __future__ import annotations

import io
import json
import socket
import zipfile
from dataclasses import dataclass

import boto3
import pytest
import requests
from moto.awslambda_simple.models import LambdaSimpleBackend
from moto.server import ThreadedMotoServer

from bgtask.aws import wake
from bgtask.aws.client import lambda_client

# Warm "Lambda containers" and a database that can be switched off, for the secret tests.
from tests.serverless_faults.conftest import start_container, switchable_database  # noqa: F401

REGION = "us-east-1"
FUNCTION_NAME = "bgtask-test-worker"


@dataclass
class Invocation:
    function_name: str
    payload: dict
    invocation_type: str


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="session")
def moto_url():
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    url = f"http://127.0.0.1:{port}"
    # Lambda without Docker: invokes are accepted and answered, nothing is executed.
    requests.post(f"{url}/moto-api/config", json={"lambda": {"use_docker": False}}, timeout=10)
    yield url
    server.stop()


@pytest.fixture
def lambda_invocations(moto_url, monkeypatch) -> list[Invocation]:
    """A fresh fake AWS with the worker function created; returns the invokes it receives."""
    requests.post(f"{moto_url}/moto-api/reset", timeout=10)
    requests.post(f"{moto_url}/moto-api/config", json={"lambda": {"use_docker": False}}, timeout=10)
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_url)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_REGION", REGION)
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    lambda_client.cache_clear()
    wake.reset_throttle()

    received: list[Invocation] = []
    original = LambdaSimpleBackend.invoke

    def recording_invoke(self, function_name, qualifier, body, headers, response_headers):
        received.append(
            Invocation(
                function_name=function_name,
                payload=json.loads(body) if body else {},
                invocation_type=headers.get("X-Amz-Invocation-Type", "RequestResponse"),
            )
        )
        return original(self, function_name, qualifier, body, headers, response_headers)

    monkeypatch.setattr(LambdaSimpleBackend, "invoke", recording_invoke)

    iam = boto3.client("iam", region_name=REGION, endpoint_url=moto_url)
    role = iam.create_role(
        RoleName="bgtask-test-worker-role",
        AssumeRolePolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Principal": {"Service": "lambda.amazonaws.com"},
                        "Action": "sts:AssumeRole",
                    }
                ],
            }
        ),
    )
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr("handlers/worker.py", "def handler(event, context):\n    return {}\n")
    boto3.client("lambda", region_name=REGION, endpoint_url=moto_url).create_function(
        FunctionName=FUNCTION_NAME,
        Runtime="python3.12",
        Role=role["Role"]["Arn"],
        Handler="handlers.worker.handler",
        Code={"ZipFile": archive.getvalue()},
    )
    yield received
    lambda_client.cache_clear()
    wake.reset_throttle()
