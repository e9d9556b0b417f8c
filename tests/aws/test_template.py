"""template.yaml as CloudFormation gets it: translated by aws-sam-translator (as the SAM transform
does at deploy time), then checked for what an operator relies on: failures recorded in the
dead-letter queue, alarms, per-stack names, the database rule, capped concurrency and least
privilege. (``make lint`` runs cfn-lint on both forms.)"""

from __future__ import annotations

import importlib.util
import json
import re

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
        ("MetricsNamespace", "OldestDueAge"),
        ("MetricsNamespace", "BatchDuration"),
        ("MetricsNamespace", "WebServerErrors"),
        ("AWS/ApiGateway", "5xx"),
        ("AWS/Lambda", "Errors"),
        ("AWS/Lambda", "Throttles"),
        ("AWS/SQS", "ApproximateNumberOfMessagesVisible"),
    } <= watched
    for alarm in alarms.values():
        assert "AlarmName" not in alarm["Properties"]  # named by CloudFormation
        assert alarm["Properties"]["AlarmActions"]["Fn::If"][0] == "NotifyAlarms"


def test_names_are_left_to_cloudformation_so_any_stack_name_fits_the_limits(template):
    # A stack name may be 128 characters; a function or schedule name only 64. CloudFormation's
    # own names fit, and stay unique per stack.
    for kind in ("AWS::Scheduler::Schedule", "AWS::Lambda::Function", "AWS::SQS::Queue"):
        for name, resource in resources_of_type(template, kind).items():
            properties = resource["Properties"]
            for key in ("Name", "FunctionName", "QueueName"):
                if name == "DeployHookFunction" and key == "FunctionName":
                    continue  # CodeDeployHook_<stack UUID>: checked below
                # SAM fills a schedule's Name with its logical id, unique within the stack.
                assert properties.get(key) in (None, name), f"{name} names itself"
    # The log groups (no 64-character limit) are the functions' own, by reference.
    for function, group in (
        ("WorkerFunction", "WorkerLogGroup"),
        ("WebFunction", "WebLogGroup"),
        ("ManageFunction", "ManageLogGroup"),
    ):
        logging = template["Resources"][function]["Properties"]["LoggingConfig"]
        assert logging["LogGroup"] == {"Ref": group}
    # The names CloudFormation cannot make (the proxy's; the hook's, which CodeDeploy's role may
    # invoke only as CodeDeployHook_*) are built from the stack id's UUID: 36 characters.
    proxy = template["Resources"]["DatabaseProxy"]["Properties"]["DBProxyName"]
    hook = template["Resources"]["DeployHookFunction"]["Properties"]["FunctionName"]
    for name in (proxy, hook):
        assert "AWS::StackId" in json.dumps(name) and "StackName" not in json.dumps(name)
    prefix = hook["Fn::Join"][1][0]
    assert prefix.startswith("CodeDeployHook_") and len(prefix) + 36 <= 64


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


SECRET_VARIABLES = ("DJANGO_SECRET_KEY", "DATABASE_URL", "BGTASK_STATUS_TOKEN")


def _refs(value) -> set[str]:
    """Every name a ``Ref`` or ``Fn::Sub`` in ``value`` points at."""
    text = json.dumps(value)
    return set(re.findall(r'"Ref": "([A-Za-z0-9:]+)"', text)) | set(
        re.findall(r"\$\{([A-Za-z0-9:]+)\}", text)
    )


def test_no_function_holds_a_secret_in_its_environment_only_where_to_read_it(template):
    no_echo = {name for name, p in template["Parameters"].items() if p.get("NoEcho")}
    assert {"DatabaseUrl", "DjangoSecretKey", "StatusToken"} <= no_echo
    for name, function in resources_of_type(template, "AWS::Lambda::Function").items():
        variables = function["Properties"]["Environment"]["Variables"]
        assert not set(variables) & set(SECRET_VARIABLES), name
        assert not _refs(variables) & no_echo, f"{name} puts a NoEcho parameter in its environment"
        assert "resolve:secretsmanager" not in json.dumps(function)
        assert function["Properties"]["LoggingConfig"]["LogFormat"] == "JSON"
        assert {"DatabaseSecretArn", "DatabaseUrlSecret"} <= _refs(variables["DATABASE_SECRET_ARN"])
        assert {"DjangoSecretKeyArn", "DjangoSecretKeySecret"} <= _refs(
            variables["DJANGO_SECRET_KEY_ARN"]
        )
    web = template["Resources"]["WebFunction"]["Properties"]["Environment"]["Variables"]
    assert {"StatusTokenArn", "StatusTokenSecret"} <= _refs(web["BGTASK_STATUS_TOKEN_ARN"])
    # The plain parameters (a first try) end up in secrets the stack creates.
    for secret, parameter in (
        ("DatabaseUrlSecret", "DatabaseUrl"),
        ("DjangoSecretKeySecret", "DjangoSecretKey"),
        ("StatusTokenSecret", "StatusToken"),
    ):
        resource = template["Resources"][secret]
        assert resource["Type"] == "AWS::SecretsManager::Secret"
        assert parameter in _refs(resource["Properties"]["SecretString"])


def test_each_role_reads_the_secrets_it_needs_and_no_other(template):
    policy = template["Resources"]["ReadSecretsPolicy"]["Properties"]["PolicyDocument"]
    [read, kms] = policy["Statement"]
    assert read["Action"] == ["secretsmanager:GetSecretValue", "ssm:GetParameter"]
    assert [_refs(resource) for resource in read["Resource"]] == [
        {"DatabaseSecretArn", "DatabaseUrlSecret", "AWS::NoValue"},
        {"DjangoSecretKeyArn", "DjangoSecretKeySecret"},
    ]
    assert kms["Fn::If"][0] == "UseSecretsKmsKey"
    for name in ("WorkerRole", "WebRole", "ManageRole"):
        role = template["Resources"][name]["Properties"]
        assert {"Ref": "ReadSecretsPolicy"} in role["ManagedPolicyArns"]
        token_reads = [s for s in statements(template["Resources"][name]) if "ssm" in str(s)]
        if name == "WebRole":
            assert _refs(token_reads) == {"StatusTokenArn", "StatusTokenSecret"}
        else:
            assert token_reads == []


def test_the_backlog_the_worker_heartbeat_and_django_500s_have_alarms(template):
    resources = template["Resources"]
    backlog = resources["BacklogAgeAlarm"]["Properties"]
    assert backlog["Threshold"] == {"Ref": "BacklogAgeThreshold"}
    assert backlog["Statistic"] == "Maximum"
    # Silence is the heartbeat alarm's failure: no batch metric at all must set it off.
    heartbeat = resources["WorkerHeartbeatAlarm"]["Properties"]
    assert heartbeat["TreatMissingData"] == "breaching"
    assert heartbeat["EvaluationPeriods"] == {"Ref": "WorkerSilenceMinutes"}
    assert (heartbeat["Statistic"], heartbeat["ComparisonOperator"]) == (
        "SampleCount",
        "LessThanThreshold",
    )
    api = resources["ApiServerErrorsAlarm"]["Properties"]
    assert {"Name": "ApiId", "Value": {"Ref": "ServerlessHttpApi"}} in api["Dimensions"]
    # Django's 500s are not Lambda errors: a metric filter counts them from the web log group.
    metric_filter = resources["WebServerErrorsMetricFilter"]["Properties"]
    assert metric_filter["LogGroupName"] == {"Ref": "WebLogGroup"}
    assert metric_filter["FilterPattern"] == (
        '{ $.logger = "django.request" && $.status_code >= 500 }'
    )
    [transformation] = metric_filter["MetricTransformations"]
    assert (
        transformation["MetricName"]
        == resources["WebServerErrorsAlarm"]["Properties"]["MetricName"]
    )


def test_without_an_alarm_topic_the_stack_says_no_alarm_notifies_anyone(template):
    output = template["Outputs"]["AlarmNotifications"]["Value"]["Fn::If"]
    assert output[0] == "NotifyAlarms"
    assert output[2].startswith("WARNING: no AlarmTopicArn")


def test_the_dead_letter_queue_outlives_the_stack_and_web_concurrency_is_capped(template):
    dlq = template["Resources"]["DeadLetterQueue"]
    assert (dlq["DeletionPolicy"], dlq["UpdateReplacePolicy"]) == ("Retain", "Retain")
    web = template["Resources"]["WebFunction"]["Properties"]
    assert web["ReservedConcurrentExecutions"] == {
        "Fn::If": [
            "ReserveWebConcurrency",
            {"Ref": "WebReservedConcurrency"},
            {"Ref": "AWS::NoValue"},
        ]
    }
    worker = template["Resources"]["WorkerFunction"]["Properties"]["Environment"]["Variables"]
    assert worker["BGTASK_CONCURRENCY"] == {"Ref": "WorkerConcurrency"}
    assert template["Parameters"]["WorkerConcurrency"]["Default"] == 8


def test_the_optional_rds_proxy_pools_the_connections_the_functions_open(template):
    resources = template["Resources"]
    for name in ("DatabaseProxy", "DatabaseProxyTargetGroup", "DatabaseProxyRole"):
        assert resources[name]["Condition"] == "UseRdsProxy"
    proxy = resources["DatabaseProxy"]["Properties"]
    assert proxy["RequireTLS"] is True
    assert proxy["Auth"][0]["SecretArn"] == {"Ref": "DatabaseSecretArn"}
    for function in resources_of_type(template, "AWS::Lambda::Function").values():
        variables = function["Properties"]["Environment"]["Variables"]
        assert variables["DATABASE_HOST_OVERRIDE"]["Fn::If"][0] == "UseRdsProxy"
    assert "RdsProxyNeedsVpcAndSecret" in template["Rules"]


def test_the_web_function_allows_its_api_domain_and_the_given_domains_as_origins(template):
    variables = template["Resources"]["WebFunction"]["Properties"]["Environment"]["Variables"]
    hosts = variables["DJANGO_ALLOWED_HOSTS"]["Fn::If"]
    assert hosts[0] == "HasWebDomains"
    assert hosts[2] == {"Fn::Sub": ".execute-api.${AWS::Region}.${AWS::URLSuffix}"}
    assert "${WebDomains}" in hosts[1]["Fn::Sub"]
    origins = variables["DJANGO_CSRF_TRUSTED_ORIGINS"]["Fn::If"]
    assert "https://" in json.dumps(origins[1]) and "WebDomains" in json.dumps(origins[1])


def test_every_function_runs_behind_an_alias_that_codedeploy_moves_after_migrating(template):
    resources = template["Resources"]
    functions = resources_of_type(template, "AWS::Lambda::Function")
    aliases = resources_of_type(template, "AWS::Lambda::Alias")
    assert {alias["Properties"]["FunctionName"]["Ref"] for alias in aliases.values()} == set(
        functions
    )
    assert {alias["Properties"]["Name"] for alias in aliases.values()} == {"live"}
    # The worker's alias moves only after the PreTraffic hook (migrate) succeeded, and rolls
    # back when the hook or the alarms fail.
    update = resources["WorkerFunctionAliaslive"]["UpdatePolicy"]["CodeDeployLambdaAliasUpdate"]
    assert update["BeforeAllowTrafficHook"] == {"Ref": "DeployHookFunction"}
    assert (
        resources["DeployHookFunction"]["Properties"]["Handler"] == "handlers.deploy_hook.handler"
    )
    for group in resources_of_type(template, "AWS::CodeDeploy::DeploymentGroup").values():
        rollback = group["Properties"]["AutoRollbackConfiguration"]
        assert rollback["Enabled"] is True
        assert {"DEPLOYMENT_FAILURE", "DEPLOYMENT_STOP_ON_ALARM"} <= set(rollback["Events"])
        assert group["Properties"]["AlarmConfiguration"]["Alarms"]
    # The web function's new code is published after the worker's deployment (so after migrate).
    assert "WorkerFunctionAliaslive" in str(resources["WebFunction"].get("DependsOn"))
    # The schedule, the API and the wake-up invoke the alias, not $LATEST.
    [schedule] = resources_of_type(template, "AWS::Scheduler::Schedule").values()
    assert schedule["Properties"]["Target"]["Arn"] == {"Ref": "WorkerFunctionAliaslive"}
    [api_permission] = [
        p
        for p in resources_of_type(template, "AWS::Lambda::Permission").values()
        if p["Properties"]["Principal"] == "apigateway.amazonaws.com"
    ]
    assert api_permission["Properties"]["FunctionName"] == {"Ref": "WebFunctionAliaslive"}
    [invoke_config] = resources_of_type(template, "AWS::Lambda::EventInvokeConfig").values()
    assert invoke_config["Properties"]["Qualifier"] == "live"
    wake = resources["WebFunction"]["Properties"]["Environment"]["Variables"][
        "BGTASK_WAKE_FUNCTION"
    ]
    assert wake["Fn::If"][1] == {"Ref": "WorkerFunctionAliaslive"}
    hook_role = resources["DeployHookRole"]
    assert any(
        s["Action"] == "codedeploy:PutLifecycleEventHookExecutionStatus"
        for s in statements(hook_role)
    )


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
