"""template.yaml as CloudFormation gets it: translated by aws-sam-translator (as the SAM transform
does at deploy time), then checked for what an operator relies on: failures recorded in the
dead-letter queue, alarms, per-stack names, the database rule, capped concurrency and least
privilege. (``make lint`` runs cfn-lint on both forms.)"""

from __future__ import annotations

import importlib.util
import json

import pytest

from tests.conftest import REPO_ROOT


@pytest.fixture(scope="module")
def template() -> dict:
    # infra/ is deployment tooling, not a package: load the script by its path.
    spec = importlib.util.spec_from_file_location(
        "translate_template", REPO_ROOT / "infra" / "translate_template.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.translate()


def resources_of_type(template: dict, kind: str) -> dict[str, dict]:
    return {k: v for k, v in template["Resources"].items() if v["Type"] == kind}


def statements(role: dict) -> list[dict]:
    return [
        statement
        for policy in role["Properties"]["Policies"]
        for statement in _unwrap(policy)["PolicyDocument"]["Statement"]
    ]


def _unwrap(policy: dict) -> dict:
    # Conditional policies are {"Fn::If": [condition, policy, {"Ref": "AWS::NoValue"}]}.
    return policy["Fn::If"][1] if "Fn::If" in policy else policy


def test_failed_invocations_and_undelivered_ticks_go_to_the_dead_letter_queue(template):
    dlq = {"Fn::GetAtt": ["DeadLetterQueue", "Arn"]}
    [invoke_config] = resources_of_type(template, "AWS::Lambda::EventInvokeConfig").values()
    properties = invoke_config["Properties"]
    assert properties["MaximumRetryAttempts"] == 0
    assert properties["DestinationConfig"]["OnFailure"]["Destination"] == dlq
    [schedule] = resources_of_type(template, "AWS::Scheduler::Schedule").values()
    assert schedule["Properties"]["Target"]["DeadLetterConfig"]["Arn"] == dlq
    # Each sender may send there: the worker's role (destination) and the scheduler's role.
    worker_sends = [s for s in statements(template["Resources"]["WorkerRole"]) if "sqs" in str(s)]
    assert worker_sends == [
        {"Effect": "Allow", "Action": "sqs:SendMessage", "Resource": dlq},
    ]
    scheduler_role = template["Resources"]["WorkerFunctionEveryMinuteRole"]
    assert {"Action": "sqs:SendMessage", "Effect": "Allow", "Resource": dlq} in statements(
        scheduler_role
    )


def test_alarms_cover_failed_tasks_errors_throttles_and_the_queue_and_may_notify(template):
    alarms = resources_of_type(template, "AWS::CloudWatch::Alarm")
    watched = set()
    for alarm in alarms.values():
        namespace = alarm["Properties"]["Namespace"]
        namespace = namespace["Ref"] if isinstance(namespace, dict) else namespace
        watched.add((namespace, alarm["Properties"]["MetricName"]))
    assert {
        ("MetricsNamespace", "Failed"),
        ("AWS/Lambda", "Errors"),
        ("AWS/Lambda", "Throttles"),
        ("AWS/SQS", "ApproximateNumberOfMessagesVisible"),
    } <= watched
    for alarm in alarms.values():
        assert "AlarmName" not in alarm["Properties"]  # named by CloudFormation
        assert alarm["Properties"]["AlarmActions"]["Fn::If"][0] == "NotifyAlarms"


def test_names_are_per_stack_or_left_to_cloudformation(template):
    [schedule] = resources_of_type(template, "AWS::Scheduler::Schedule").values()
    assert schedule["Properties"]["Name"] == {"Fn::Sub": "${AWS::StackName}-worker-tick"}
    for queue in resources_of_type(template, "AWS::SQS::Queue").values():
        assert "QueueName" not in queue["Properties"]
    for function in resources_of_type(template, "AWS::Lambda::Function").values():
        assert "${AWS::StackName}" in function["Properties"]["FunctionName"]["Fn::Sub"]


def test_a_database_is_required_by_a_rule(template):
    [assertion] = template["Rules"]["DatabaseIsGiven"]["Assertions"]
    assert "DatabaseSecretArn" in assertion["AssertDescription"]
    assert json.dumps(assertion["Assert"]).count('"Ref"') == 2


def test_the_worker_reserves_its_concurrency_and_fan_out_knows_it(template):
    worker = template["Resources"]["WorkerFunction"]["Properties"]
    assert worker["ReservedConcurrentExecutions"]["Fn::If"][0] == "ReserveWorkerConcurrency"
    variables = worker["Environment"]["Variables"]
    assert variables["BGTASK_WORKER_CONCURRENCY"] == {"Ref": "WorkerReservedConcurrency"}
    assert variables["DJANGO_SETTINGS_MODULE"] == "handlers.project.worker_settings"


def test_each_role_reads_only_the_database_secret_and_the_secret_is_not_in_the_environment(
    template,
):
    for name in ("WorkerRole", "WebRole", "ManageRole"):
        reads = [s for s in statements(template["Resources"][name]) if "secretsmanager" in str(s)]
        assert reads == [
            {
                "Effect": "Allow",
                "Action": "secretsmanager:GetSecretValue",
                "Resource": {"Ref": "DatabaseSecretArn"},
            }
        ]
    for function in resources_of_type(template, "AWS::Lambda::Function").values():
        assert "resolve:secretsmanager" not in json.dumps(function)
        assert function["Properties"]["LoggingConfig"]["LogFormat"] == "JSON"


def test_the_status_token_parameter_has_bgtasks_minimum_length(template):
    import re

    from bgtask.conf import MIN_STATUS_TOKEN_LENGTH

    parameter = template["Parameters"]["StatusToken"]
    pattern = re.compile(parameter["AllowedPattern"])
    assert parameter["NoEcho"] is True and parameter["Default"] == ""
    assert pattern.fullmatch("")  # no token: sessions only
    assert pattern.fullmatch("t" * MIN_STATUS_TOKEN_LENGTH)
    assert not pattern.fullmatch("t" * (MIN_STATUS_TOKEN_LENGTH - 1))
    assert str(MIN_STATUS_TOKEN_LENGTH) in parameter["ConstraintDescription"]
