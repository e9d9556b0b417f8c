"""boto3 stays inside bgtask/aws and is loaded only when a feature that needs it is used; the
serverless settings refuse bad values with their name."""

from __future__ import annotations

import re

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings

from bgtask import conf
from tests.conftest import REPO_ROOT, run_python

AWS_IMPORT = re.compile(r"^\s*(import|from)\s+(boto3|botocore)\b", re.MULTILINE)


def test_only_bgtask_aws_imports_boto3():
    offenders = [
        str(path.relative_to(REPO_ROOT))
        for top in ("bgtask", "handlers")
        for path in (REPO_ROOT / top).rglob("*.py")
        if "aws" not in path.relative_to(REPO_ROOT).parts and AWS_IMPORT.search(path.read_text())
    ]
    assert offenders == []


def test_importing_the_handlers_does_not_load_boto3():
    code = (
        "import sys, django; django.setup()\n"
        "import bgtask.aws.invocation, bgtask.aws.wake, bgtask.aws.fanout, bgtask.aws.metrics\n"
        "import handlers.worker, handlers.web, handlers.manage\n"
        "print('boto3' in sys.modules, 'botocore' in sys.modules)\n"
    )
    done = run_python(code)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["False", "False"]


@pytest.mark.parametrize(
    ("name", "value", "reader"),
    [
        ("BGTASK_LAMBDA_SAFETY_MARGIN", -1, conf.lambda_safety_margin),
        ("BGTASK_LAMBDA_SAFETY_MARGIN", "5", conf.lambda_safety_margin),
        ("BGTASK_LAMBDA_LEASE_GRACE", float("inf"), conf.lambda_lease_grace),
        ("BGTASK_WAKE_INTERVAL", True, conf.wake_interval),
        ("BGTASK_FANOUT_MAX", -2, conf.fanout_max),
        ("BGTASK_FANOUT_MAX", 1.5, conf.fanout_max),
        ("BGTASK_WORKER_CONCURRENCY", -1, conf.worker_concurrency),
        ("BGTASK_WORKER_CONCURRENCY", "5", conf.worker_concurrency),
        ("BGTASK_WAKE_FUNCTION", 42, conf.wake_function),
        ("BGTASK_STATUS_TOKEN", ["x"], conf.status_token),
        ("BGTASK_METRICS_NAMESPACE", 1, conf.metrics_namespace),
    ],
)
def test_a_bad_serverless_setting_is_refused_with_its_name(name, value, reader):
    with override_settings(**{name: value}), pytest.raises(ImproperlyConfigured, match=name):
        reader()


def test_the_serverless_defaults():
    assert conf.lambda_safety_margin() == 5.0
    assert conf.lambda_lease_grace() == 30.0
    assert conf.wake_function() is None
    assert conf.wake_interval() == 5.0
    assert conf.fanout_max() == 0
    assert conf.worker_concurrency() is None
    assert conf.metrics_namespace() is None
    assert conf.status_token() is None
