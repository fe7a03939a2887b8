"""The twin's framework: routing by credential scope, moto fall-through, AWS-shaped errors,
control endpoints and the output-shape validator."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from pathlib import Path

import boto3
import botocore.exceptions
import pytest
from botocore.config import Config

from aws_twin.core import models
from aws_twin.core.errors import AwsError
from aws_twin.core.faults import FaultInjector, FaultRule
from aws_twin.core.service import TwinService
from aws_twin.core.validate import validate

TEMPLATE = Path(__file__).resolve().parents[2] / "include" / "templates" / "expense_review.liquid.html"


def test_s3_falls_through_to_moto(twin, bucket):
    s3 = twin.client("s3")
    s3.put_object(Bucket=bucket, Key="a/b.txt", Body=b"hello twin")
    assert s3.get_object(Bucket=bucket, Key="a/b.txt")["Body"].read() == b"hello twin"
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]]
    assert keys == ["a/b.txt"]


def test_query_and_json_services_fall_through(twin):
    iam = twin.client("iam")
    role = iam.create_role(RoleName="core-test-role", AssumeRolePolicyDocument="{}")["Role"]
    assert role["Arn"].endswith(":role/core-test-role")
    ddb = twin.client("dynamodb")
    ddb.create_table(
        TableName="core-test",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    ddb.put_item(TableName="core-test", Item={"pk": {"S": "x"}, "v": {"N": "1"}})
    assert ddb.get_item(TableName="core-test", Key={"pk": {"S": "x"}})["Item"]["v"] == {"N": "1"}
    assert twin.client("sts").get_caller_identity()["Account"] == "123456789012"


def test_unimplemented_operation_is_an_aws_error_naming_it(twin):
    rekognition = twin.client("rekognition", config=Config(retries={"max_attempts": 1}))
    with pytest.raises(botocore.exceptions.ClientError) as info:
        rekognition.list_collections()
    err = info.value.response["Error"]
    assert err["Code"] == "NotImplemented"
    assert "rekognition.ListCollections" in err["Message"]


def test_control_endpoints(twin):
    state = twin.control("state")
    assert state["url"] == twin.url
    assert "services" in state and "faults" in state
    token = {"X-Twin-Control-Token": twin.control_token}
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(urllib.request.Request(f"{twin.url}/_twin/nope", headers=token))
    assert info.value.code == 404
    assert json.loads(info.value.read())["error"].startswith("no control endpoint")
    bad = urllib.request.Request(
        f"{twin.url}/_twin/faults",
        data=json.dumps({"specs": ["s3:*:bogus=1"]}).encode(),
        method="POST",
        headers=token,
    )
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(bad)
    assert info.value.code == 400


def test_injected_s3_throttling_uses_s3_error_shape(twin, bucket):
    s3 = twin.client("s3", config=Config(retries={"max_attempts": 1}))
    twin.set_faults("s3:GetObject:throttle=1")
    try:
        s3.put_object(Bucket=bucket, Key="k", Body=b"v")
        with pytest.raises(botocore.exceptions.ClientError) as info:
            s3.get_object(Bucket=bucket, Key="k")
        assert info.value.response["Error"]["Code"] == "SlowDown"
        assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 503
    finally:
        twin.control("faults", "DELETE")
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"v"


def test_fault_rule_parsing_and_token_bucket():
    rule = FaultRule.parse("textract:AnalyzeExpense:rps=2,throttle=0.25,latency=10")
    assert (rule.service, rule.operation, rule.rps, rule.throttle_rate, rule.latency_ms) == (
        "textract",
        "AnalyzeExpense",
        2.0,
        0.25,
        10.0,
    )
    with pytest.raises(ValueError, match="unknown setting"):
        FaultRule.parse("s3:*:speed=3")
    injector = FaultInjector([FaultRule.parse("glue:*:rps=3")], seed=1)
    decisions = [injector.decide("glue", "GetJob")[0] for _ in range(10)]
    # a burst of 10 against a 3 rps bucket: the first 3 pass, the rest are throttled
    assert decisions[:3] == [None, None, None]
    assert decisions[3:] == ["throttle"] * 7
    assert injector.decide("s3", "GetObject") == (None, 0.0)


def test_validator_finds_wrong_members_types_and_enums():
    shape = models.operation_model("sagemaker", "DescribeTrainingJob").output_shape
    problems = validate(shape, {"TrainingJobName": "x", "TrainingJobStatus": "Running", "Bogus": 1})
    text = "\n".join(problems)
    assert "Bogus: not a member" in text
    assert "'Running' not in enum" in text
    assert "required member" in text  # TrainingJobArn, ModelArtifacts, ... missing
    assert validate(shape.members["TrainingJobName"], 5) == ["$: expected string, got int"]


def test_list_operations_page_with_one_token_format_and_reject_foreign_tokens(twin):
    """aws_twin.core.paging serves Glue, SageMaker and A2I: boto3's paginators walk every page, a
    token the twin did not hand out and a MaxResults past the model's bound are the service's
    validation error."""
    import uuid

    glue, sm = twin.client("glue"), twin.client("sagemaker")
    prefix = f"paging-{uuid.uuid4().hex[:8]}"
    names = [f"{prefix}-{i}" for i in range(3)]
    for name in names:
        glue.create_job(Name=name, Role="arn:aws:iam::123456789012:role/r", Command={"Name": "pythonshell"})
    pages = list(glue.get_paginator("get_jobs").paginate(PaginationConfig={"PageSize": 1}))
    assert [j["Name"] for p in pages for j in p["Jobs"] if j["Name"].startswith(prefix)] == names
    assert all("NextToken" in p for p in pages[:-1]) and "NextToken" not in pages[-1]
    with pytest.raises(botocore.exceptions.ClientError) as glue_err:
        glue.get_jobs(NextToken="not-a-token")
    assert glue_err.value.response["Error"]["Code"] == "InvalidInputException"
    assert "not-a-token" in glue_err.value.response["Error"]["Message"]
    with pytest.raises(botocore.exceptions.ClientError) as sm_err:
        sm.list_models(NextToken="not-a-token")
    assert sm_err.value.response["Error"]["Code"] == "ValidationException"
    with pytest.raises(botocore.exceptions.ClientError) as too_many:
        glue.get_job_runs(JobName=names[0], MaxResults=201)
    assert "MaxResults must be between 1 and 200" in too_many.value.response["Error"]["Message"]


def test_serve_on_port_zero_prints_its_ready_line_and_reset_clears_twin_and_moto(tmp_path):
    """A twin of its own (``python -m aws_twin serve --port 0``, so the session twin is not reset
    under other tests): the ready line names the port it really listens on, and POST /_twin/reset
    empties the twin's services, moto's backends, the fault rules and the call counters."""
    import re
    from urllib.parse import urlsplit

    from aws_twin.testing import start_twin

    running = start_twin(0, log_path=str(tmp_path / "twin.log"))
    try:
        assert "--port" in running.process.args and "0" in running.process.args
        ready = [line for line in running.output if line.startswith("aws_twin ready ")]
        assert len(ready) == 1 and re.fullmatch(r"aws_twin ready http://127\.0\.0\.1:\d+\n", ready[0])
        port = urlsplit(running.url).port
        assert port and port != 0
        assert running.control("health") == {"status": "ok", "url": running.url}
        # the background warm-up (the services', then the internal clients' read-only calls) ends,
        # fails none of its calls, and leaves nothing a client could see: no call counted, no bucket
        deadline = time.monotonic() + 120
        while not running.control("state")["warmed_up"] and time.monotonic() < deadline:
            time.sleep(0.2)
        warmed = running.control("state")
        assert warmed["warmed_up"] and warmed["calls"] == {}
        assert "warm-up" not in (tmp_path / "twin.log").read_text()
        assert running.client("s3").list_buckets()["Buckets"] == []

        s3, iam, glue, sm = (running.client(s) for s in ("s3", "iam", "glue", "sagemaker"))
        s3.create_bucket(Bucket="reset-bucket")
        s3.put_object(Bucket="reset-bucket", Key="k", Body=b"v")
        iam.create_role(RoleName="reset-role", AssumeRolePolicyDocument="{}")
        job = {
            "Name": "reset-job",
            "Role": "arn:aws:iam::123456789012:role/r",
            "Command": {"Name": "pythonshell"},
        }
        glue.create_job(**job)
        sm.create_model_package_group(ModelPackageGroupName="reset-group")
        sm.create_human_task_ui(HumanTaskUiName="reset-ui", UiTemplate={"Content": TEMPLATE.read_text()})
        running.set_faults("sts:*:latency=1")
        before = running.control("state")
        assert before["calls"] and before["faults"]["rules"] and not before["violations"]
        assert before["services"]["GlueService"]["jobs"] == ["reset-job"]

        running.reset()

        after = running.control("state")
        assert after["calls"] == {} and after["faults"]["rules"] == [] and after["violations"] == []
        assert after["services"]["GlueService"]["jobs"] == []
        assert after["services"]["SageMakerService"]["model_package_groups"] == []
        assert s3.list_buckets()["Buckets"] == []  # moto
        assert [r["RoleName"] for r in iam.list_roles()["Roles"]] == []  # moto
        assert glue.get_jobs()["Jobs"] == []
        assert sm.list_model_package_groups()["ModelPackageGroupSummaryList"] == []
        assert sm.list_human_task_uis()["HumanTaskUiSummaries"] == []
        # the names are free again
        s3.create_bucket(Bucket="reset-bucket")
        iam.create_role(RoleName="reset-role", AssumeRolePolicyDocument="{}")
        glue.create_job(**job)
        sm.create_model_package_group(ModelPackageGroupName="reset-group")
        assert not running.control("state")["violations"]
    finally:
        running.stop()


class _BrokenGlue(TwinService):
    """A Glue service with a bug of each kind strict mode must catch."""

    model = "glue"

    def get_jobs(self, ctx, params):
        return {"Jobs": []}  # fits the model

    def get_job(self, ctx, params):
        return {"Job": {"Name": params["JobName"], "MaxCapacity": "lots"}}  # a string for a double

    def get_job_run(self, ctx, params):
        raise AwsError("NoSuchRunException", "an error code GetJobRun does not document")


def test_strict_mode_refuses_and_records_a_response_outside_the_model():
    """The serving path of ``--strict`` (not just the validator): a response that breaks the output
    shape is answered InternalFailure and recorded, and so is an undocumented error code; a
    response that fits passes untouched. A twin in this process, over real HTTP."""
    import threading

    from werkzeug.serving import make_server

    from aws_twin.core.app import Twin

    twin = Twin(service_classes=[_BrokenGlue], strict=True)
    server = make_server("127.0.0.1", 0, twin, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    twin.url = f"http://127.0.0.1:{server.server_port}"
    glue = boto3.client(
        "glue",
        endpoint_url=twin.url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(retries={"total_max_attempts": 1}),
    )
    try:
        assert glue.get_jobs()["Jobs"] == [] and twin.violations == []
        with pytest.raises(botocore.exceptions.ClientError) as bad:
            glue.get_job(JobName="j")
        assert bad.value.response["Error"]["Code"] == "InternalFailure"
        assert "$.Job.MaxCapacity: expected double, got str" in bad.value.response["Error"]["Message"]
        assert twin.violations == ["glue.GetJob response: $.Job.MaxCapacity: expected double, got str"]
        with pytest.raises(botocore.exceptions.ClientError) as undocumented:
            glue.get_job_run(JobName="j", RunId="r")
        assert undocumented.value.response["Error"]["Code"] == "NoSuchRunException"
        assert twin.violations[1:] == ["glue: error code NoSuchRunException not documented for the operation"]
    finally:
        server.shutdown()
        twin.shutdown()
