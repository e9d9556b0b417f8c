"""The deployed functions' environment holds where the secrets are, never the secrets: the Django
secret key, the status token and the database URL are read from Secrets Manager or SSM Parameter
Store (moto's server) once, when the container starts, and kept."""

from __future__ import annotations

import json
import os

import boto3
import pytest
import requests

from handlers.secrets import SecretUnusable, setting_from_secret
from tests.aws.conftest import REGION
from tests.conftest import run_python
from tests.handlers.conftest import load_event
from tests.serverless_faults.conftest import SECRET_KEY, STATUS_TOKEN

pytestmark = pytest.mark.django_db(transaction=True)

SETTINGS_PROBE = """
import json, os, django
django.setup()
from django.conf import settings
print(json.dumps({
    "key": settings.SECRET_KEY == os.environ["EXPECTED_KEY"],
    "token": settings.BGTASK_STATUS_TOKEN == os.environ["EXPECTED_TOKEN"],
    "database": os.path.basename(settings.DATABASES["default"]["NAME"]),
    "environment_holds_a_secret": any(
        value in (os.environ["EXPECTED_KEY"], os.environ["EXPECTED_TOKEN"])
        for name, value in os.environ.items() if not name.startswith("EXPECTED_")
    ),
}))
"""


@pytest.fixture
def aws(moto_url, monkeypatch):
    """Fresh moto Secrets Manager and SSM clients, and the environment a container needs."""
    requests.post(f"{moto_url}/moto-api/reset", timeout=10)
    credentials = {
        "region_name": REGION,
        "endpoint_url": moto_url,
        "aws_access_key_id": "testing",
        "aws_secret_access_key": "testing",
    }
    env = {
        "AWS_ENDPOINT_URL": moto_url,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_REGION": REGION,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_LAMBDA_FUNCTION_NAME": "bgtask-test-web",
        "DATABASE_URL": "",
        "DJANGO_SECRET_KEY": "",
        "BGTASK_STATUS_TOKEN": "",
    }
    return boto3.client("secretsmanager", **credentials), boto3.client("ssm", **credentials), env


def _arns(aws, database_url: str) -> dict[str, str]:
    """The three secrets: the database URL and the key in Secrets Manager, the token in SSM."""
    secretsmanager, ssm, _ = aws
    ssm.put_parameter(Name="/bgtask/status-token", Value=STATUS_TOKEN, Type="SecureString")
    return {
        "DATABASE_SECRET_ARN": secretsmanager.create_secret(
            Name="bgtask/db", SecretString=database_url
        )["ARN"],
        "DJANGO_SECRET_KEY_ARN": secretsmanager.create_secret(
            Name="bgtask/secret-key", SecretString=SECRET_KEY
        )["ARN"],
        "BGTASK_STATUS_TOKEN_ARN": ssm.get_parameter(Name="/bgtask/status-token")["Parameter"][
            "ARN"
        ],
    }


def test_the_settings_read_every_secret_from_aws_and_the_environment_holds_none(
    aws, switchable_database
):
    switchable_database.set_state("up")
    arns = _arns(aws, switchable_database.url)
    child = run_python(
        SETTINGS_PROBE,
        DJANGO_SETTINGS_MODULE="handlers.project.settings",
        EXPECTED_KEY=SECRET_KEY,
        EXPECTED_TOKEN=STATUS_TOKEN,
        **aws[2],
        **arns,
    )
    assert child.returncode == 0, child.stderr
    probe = json.loads(child.stdout.strip().splitlines()[-1])
    assert probe == {
        "key": True,
        "token": True,
        "database": os.path.basename(switchable_database.name),
        "environment_holds_a_secret": False,
    }


def test_a_warm_web_container_keeps_the_token_and_key_it_read_at_start_up(
    aws, switchable_database, start_container
):
    switchable_database.set_state("up")
    arns = _arns(aws, switchable_database.url)
    container = start_container(**aws[2], **arns)
    status = load_event("web-status")
    status["headers"]["authorization"] = f"Bearer {STATUS_TOKEN}"

    first = container.invoke("web", status)
    assert first["ok"], first
    assert first["answer"]["statusCode"] == 200

    # Deleted from AWS: the warm container does not read them again.
    secretsmanager, ssm, _ = aws
    ssm.delete_parameter(Name="/bgtask/status-token")
    secretsmanager.delete_secret(
        SecretId=arns["DJANGO_SECRET_KEY_ARN"], ForceDeleteWithoutRecovery=True
    )
    second = container.invoke("web", status)
    assert second["ok"], second
    assert second["answer"]["statusCode"] == 200
    wrong = load_event("web-status")
    wrong["headers"]["authorization"] = f"Bearer {STATUS_TOKEN}-not"
    assert container.invoke("web", wrong)["answer"]["statusCode"] == 401


def test_an_unreadable_secret_key_stops_the_start_up_naming_the_parameter(aws):
    _, _, env = aws
    missing = f"arn:aws:ssm:{REGION}:123456789012:parameter/bgtask/none"
    child = run_python(
        "import django; django.setup()",
        DJANGO_SETTINGS_MODULE="handlers.project.settings",
        **{**env, "DATABASE_URL": "sqlite:///unused.sqlite3"},
        DJANGO_SECRET_KEY_ARN=missing,
    )
    assert child.returncode != 0
    assert "SecretUnusable" in child.stderr
    assert f"Could not read the secret {missing} from SSM Parameter Store" in child.stderr
    assert "DjangoSecretKeyArn" in child.stderr and "ssm:GetParameter" in child.stderr


def test_on_lambda_without_a_secret_key_the_start_up_says_what_to_set(aws):
    _, _, env = aws
    child = run_python(
        "import django; django.setup()",
        DJANGO_SETTINGS_MODULE="handlers.project.settings",
        **{**env, "DATABASE_URL": "sqlite:///unused.sqlite3"},
    )
    assert child.returncode != 0
    assert "ImproperlyConfigured: No Django secret key" in child.stderr


@pytest.mark.parametrize(
    "arn",
    [
        "bgtask/secret-key",
        "arn:aws:s3:::bucket/key",
        "arn:aws:secretsmanager:us-east-1:123456789012:parameter/x",
        "arn:aws:ssm:us-east-1:123456789012:secret:x",
    ],
)
def test_a_reference_that_is_not_a_secret_arn_is_refused_before_any_call(arn, monkeypatch):
    monkeypatch.setenv("DJANGO_SECRET_KEY_ARN", arn)
    with pytest.raises(SecretUnusable, match="is not the ARN of a Secrets Manager secret"):
        setting_from_secret("DJANGO_SECRET_KEY", "DjangoSecretKeyArn")
