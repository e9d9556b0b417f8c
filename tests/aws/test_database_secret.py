"""The Lambda project reads its database from a Secrets Manager secret or an SSM SecureString
parameter (moto's server) at start-up, keeps it, and reads it again when the database refuses a
connection: a rotation needs no redeploy. Each test runs warm "Lambda containers" (child processes
with the project settings)."""

from __future__ import annotations

import json

import boto3
import pytest

from bgtask.models import Task
from handlers.secrets import SecretUnusable, database_url
from tests.aws.conftest import REGION
from tests.conftest import run_python
from tests.sampleapp import tasks
from tests.serverless_faults.conftest import direct_database_url

pytestmark = pytest.mark.django_db(transaction=True)

TICK = {"source": "bgtask.schedule", "scheduled_time": "t"}


@pytest.fixture
def secrets(moto_url, monkeypatch):
    """A fresh moto Secrets Manager client, and the environment a container needs to reach it."""
    import requests

    requests.post(f"{moto_url}/moto-api/reset", timeout=10)
    client = boto3.client(
        "secretsmanager",
        region_name=REGION,
        endpoint_url=moto_url,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    env = {
        "AWS_ENDPOINT_URL": moto_url,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_REGION": REGION,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_LAMBDA_FUNCTION_NAME": "bgtask-test-worker",
        "DATABASE_URL": "",
        "DJANGO_SECRET_KEY": "database-secret-tests-" + "k" * 32,
    }
    return client, env


class SecretStore:
    """Create, rotate and delete one secret in Secrets Manager or SSM Parameter Store."""

    def __init__(self, kind: str, client, ssm) -> None:
        self.kind, self.client, self.ssm = kind, client, ssm

    def create(self, name: str, value: str) -> str:
        if self.kind == "ssm":
            self.ssm.put_parameter(Name=f"/{name}", Value=value, Type="SecureString")
            return self.ssm.get_parameter(Name=f"/{name}")["Parameter"]["ARN"]
        return self.client.create_secret(Name=name, SecretString=value)["ARN"]

    @staticmethod
    def parameter_name(arn: str) -> str:
        return "/" + arn.split(":parameter/", 1)[1]

    def rotate(self, arn: str, value: str) -> None:
        if self.kind == "ssm":
            self.ssm.put_parameter(
                Name=self.parameter_name(arn), Value=value, Type="SecureString", Overwrite=True
            )
        else:
            self.client.put_secret_value(SecretId=arn, SecretString=value)

    def delete(self, arn: str) -> None:
        if self.kind == "ssm":
            self.ssm.delete_parameter(Name=self.parameter_name(arn))
        else:
            self.client.delete_secret(SecretId=arn, ForceDeleteWithoutRecovery=True)


@pytest.mark.parametrize("kind", ["secretsmanager", "ssm"])
def test_the_database_comes_from_the_secret_and_a_rotation_is_picked_up_without_a_restart(
    kind, secrets, moto_url, switchable_database, start_container
):
    client, env = secrets
    ssm = boto3.client(
        "ssm",
        region_name=REGION,
        endpoint_url=moto_url,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    store = SecretStore(kind, client, ssm)
    switchable_database.set_state("up")
    arn = store.create("bgtask/db", switchable_database.url)
    assert f":{kind}:" in arn
    container = start_container(**env, DATABASE_SECRET_ARN=arn)
    tasks.record("one", schedule=0)

    first = container.invoke("worker", TICK)
    assert first["ok"], first
    assert first["answer"]["succeeded"] == 1

    # Rotation: the secret now names other credentials and the old ones stop working.
    store.rotate(arn, json.dumps({"url": direct_database_url()}))
    switchable_database.set_state("down")
    tasks.record("two", schedule=0)
    second = container.invoke("worker", TICK)
    assert second["ok"], second
    assert second["answer"]["succeeded"] == 1

    # The value is cached: with the secret gone, the warm container carries on.
    store.delete(arn)
    tasks.record("three", schedule=0)
    third = container.invoke("worker", TICK)
    assert third["ok"], third
    assert Task.objects.succeeded().count() == 3
    stderr = container.stop()
    assert "The database secret changed since start-up" in stderr


def test_a_refused_connection_with_an_unchanged_secret_is_a_clear_error(
    secrets, switchable_database, start_container
):
    client, env = secrets
    switchable_database.set_state("up")
    arn = client.create_secret(Name="bgtask/db", SecretString=switchable_database.url)["ARN"]
    container = start_container(**env, DATABASE_SECRET_ARN=arn)
    switchable_database.set_state("down")

    result = container.invoke("worker", TICK)

    assert not result["ok"]
    assert result["error_type"] == "DatabaseUnavailable"
    assert "Could not reach" in result["error"]


def test_an_unreadable_secret_stops_the_start_up_saying_which_and_why(secrets):
    _, env = secrets
    missing = f"arn:aws:secretsmanager:{REGION}:123456789012:secret:bgtask/none-AbCdEf"
    child = run_python(
        "import django; django.setup()",
        DJANGO_SETTINGS_MODULE="handlers.project.settings",
        DATABASE_SECRET_ARN=missing,
        **{k: v for k, v in env.items() if k != "DATABASE_SECRET_ARN"},
    )
    assert child.returncode != 0
    assert "SecretUnusable" in child.stderr
    assert f"Could not read the secret {missing} from Secrets Manager" in child.stderr
    assert "secretsmanager:GetSecretValue" in child.stderr


def test_on_lambda_without_any_database_the_start_up_says_what_to_set():
    child = run_python(
        "import django; django.setup()",
        DJANGO_SETTINGS_MODULE="handlers.project.settings",
        AWS_LAMBDA_FUNCTION_NAME="bgtask-test-worker",
        DATABASE_URL="",
        DATABASE_SECRET_ARN="",
    )
    assert child.returncode != 0
    assert "ImproperlyConfigured: No database configured" in child.stderr
    assert "DatabaseSecretArn" in child.stderr and "KeyError" not in child.stderr


@pytest.mark.parametrize(
    ("secret", "url"),
    [
        ("postgres://u:p@db:5432/app", "postgres://u:p@db:5432/app"),
        ('{"url": "mysql://u:p@db/app"}', "mysql://u:p@db/app"),
        (
            json.dumps(
                {
                    "engine": "postgres",
                    "host": "db.example",
                    "port": 5432,
                    "username": "app",
                    "password": "p@ss/w:rd",
                    "dbname": "bgtask",
                }
            ),
            "postgres://app:p%40ss%2Fw%3Ard@db.example:5432/bgtask",
        ),
        (
            json.dumps({"engine": "mariadb", "host": "h", "username": "u", "password": "p"}),
            "mysql://u:p@h/u",
        ),
    ],
)
def test_the_secret_may_be_a_url_or_rds_style_json(secret, url):
    assert database_url(secret) == url


@pytest.mark.parametrize(
    ("secret", "message"),
    [
        ("not a url", "neither a database URL"),
        ("{not json", "does not parse"),
        ('{"engine": "postgres", "host": "h"}', "lacks the keys ['username', 'password']"),
        ('{"engine": "oracle", "host": "h", "username": "u", "password": "p"}', "'oracle'"),
    ],
)
def test_a_secret_without_a_database_is_refused_without_showing_its_value(secret, message):
    with pytest.raises(SecretUnusable, match=message.replace("[", r"\[")) as raised:
        database_url(secret, "arn:secret")
    assert "arn:secret" in str(raised.value)


def test_behind_the_rds_proxy_the_secret_s_credentials_go_to_the_proxy_over_tls(
    secrets, monkeypatch
):
    from handlers import secrets as lambda_secrets

    client, env = secrets
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    arn = client.create_secret(
        Name="bgtask/rds",
        SecretString=json.dumps(
            {
                "engine": "postgres",
                "host": "db.internal",
                "port": 5432,
                "username": "app",
                "password": "pw",
                "dbname": "bgtask",
            }
        ),
    )["ARN"]
    monkeypatch.setenv("DATABASE_HOST_OVERRIDE", "bgtask-proxy.proxy-abc.rds.amazonaws.com")
    from bgtask.aws.secrets import aws_client

    aws_client.cache_clear()
    try:
        settings = lambda_secrets.database_settings(arn, refresh=True)
    finally:
        aws_client.cache_clear()
    assert settings["HOST"] == "bgtask-proxy.proxy-abc.rds.amazonaws.com"
    assert (settings["USER"], settings["NAME"], settings["PORT"]) == ("app", "bgtask", 5432)
    assert settings["OPTIONS"]["sslmode"] == "require"
    assert settings["DISABLE_SERVER_SIDE_CURSORS"] is True
