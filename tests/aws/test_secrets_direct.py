"""A Secrets Manager read without botocore (bgtask.aws.secrets): the request is signed as
botocore signs it, goes to the endpoint botocore would use, reads the secret from moto's server
in a process that never imports botocore, and hands everything it does not know to botocore."""

from __future__ import annotations

import datetime
import json

import boto3
import pytest
import requests
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from bgtask.aws import secrets
from tests.aws.conftest import REGION
from tests.conftest import run_python

ARN = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:bgtask/db-AbCdEf"
NOW = datetime.datetime(2026, 12, 8, 0, 30, 5, tzinfo=datetime.UTC)


@pytest.mark.parametrize("token", [None, "session-token-from-the-lambda-role"])
@pytest.mark.parametrize("host", ["secretsmanager.eu-west-1.amazonaws.com", "127.0.0.1:4566"])
def test_the_signature_is_the_one_botocore_makes(token, host, monkeypatch):
    body = json.dumps({"SecretId": ARN}).encode()
    ours = secrets.sigv4_headers(
        host=host,
        path="",
        region="eu-west-1",
        service="secretsmanager",
        target=secrets.GET_SECRET_VALUE,
        body=body,
        key_id="AKIDEXAMPLE",
        secret_key="wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
        session_token=token,
        now=NOW,
    )
    request = AWSRequest(
        method="POST",
        url=f"{'http' if ':' in host else 'https'}://{host}/",
        data=body,
        headers={
            "Content-Type": "application/x-amz-json-1.1",
            "X-Amz-Target": secrets.GET_SECRET_VALUE,
        },
    )
    monkeypatch.setattr("botocore.auth.get_current_datetime", lambda: NOW.replace(tzinfo=None))
    credentials = Credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", token)
    SigV4Auth(credentials, "secretsmanager", "eu-west-1").add_auth(request)
    assert ours["authorization"] == request.headers["Authorization"]
    assert ours["x-amz-date"] == request.headers["X-Amz-Date"] == "20261208T003005Z"


LAMBDA_ENV = {"AWS_ACCESS_KEY_ID": "ASIA...", "AWS_SECRET_ACCESS_KEY": "s", "AWS_REGION": REGION}


@pytest.mark.parametrize(
    ("arn", "extra", "expected"),
    [
        (ARN, {}, "https://secretsmanager.eu-west-1.amazonaws.com"),
        (
            "arn:aws-cn:secretsmanager:cn-north-1:123456789012:secret:x-AbCdEf",
            {},
            "https://secretsmanager.cn-north-1.amazonaws.com.cn",
        ),
        (ARN, {"AWS_ENDPOINT_URL": "http://127.0.0.1:5000"}, "http://127.0.0.1:5000"),
        (
            ARN,
            {"AWS_ENDPOINT_URL": "http://a", "AWS_ENDPOINT_URL_SECRETS_MANAGER": "http://b"},
            "http://b",
        ),
        (ARN, {"AWS_USE_FIPS_ENDPOINT": "true"}, None),
        (ARN, {"AWS_USE_DUALSTACK_ENDPOINT": "true"}, None),
        (ARN, {"HTTPS_PROXY": "http://proxy:3128"}, None),
        ("arn:aws-iso:secretsmanager:us-iso-east-1:123456789012:secret:x-AbC", {}, None),
        (ARN, {"AWS_ACCESS_KEY_ID": ""}, None),  # a profile or a role: botocore finds them
    ],
)
def test_what_goes_direct_and_what_goes_to_botocore(arn, extra, expected):
    assert secrets.direct_endpoint(arn, {**LAMBDA_ENV, **extra}) == expected


READ_WITHOUT_BOTOCORE = """
import json, os, sys
from bgtask.aws.secrets import SecretUnreadable, secret_string
value = secret_string(os.environ["THE_ARN"])
try:
    secret_string(os.environ["THE_ARN"] + "-missing")
    error = None
except SecretUnreadable as exc:
    error = str(exc)
aws_modules = sorted(m for m in sys.modules if m.startswith(("botocore", "boto3")))
print(json.dumps({"value": value, "error": error, "botocore": aws_modules}))
"""


def test_a_lambda_environment_reads_the_secret_without_importing_botocore(moto_url):
    requests.post(f"{moto_url}/moto-api/reset", timeout=10)
    manager = boto3.client(
        "secretsmanager",
        region_name=REGION,
        endpoint_url=moto_url,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    arn = manager.create_secret(Name="bgtask/direct", SecretString="postgres://u:p@h/db")["ARN"]
    child = run_python(
        READ_WITHOUT_BOTOCORE,
        THE_ARN=arn,
        AWS_ENDPOINT_URL=moto_url,
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_SESSION_TOKEN="testing-token",
        AWS_REGION=REGION,
        AWS_DEFAULT_REGION=REGION,
    )
    assert child.returncode == 0, child.stderr
    answer = json.loads(child.stdout.strip().splitlines()[-1])
    assert answer["value"] == "postgres://u:p@h/db"
    assert answer["botocore"] == []
    assert "ResourceNotFoundException" in answer["error"]
    assert "secretsmanager:GetSecretValue" in answer["error"]
