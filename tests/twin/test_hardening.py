"""Twin hardening (issue 8, item 4): the control endpoints need the token printed at start-up, no
access key skips fault injection, request bodies are bounded before they are buffered, bad input
gets the service's own error (SerializationException, Textract's document errors) with a message
free of object reprs, fault rules name botocore services (A2I runtime included) and can lose the
answer of an executed request, and SIGTERM stops the twin at once while a job runs."""

from __future__ import annotations

import http.client
import json
import struct
import time
import urllib.error
import urllib.request
import uuid
import zlib
from urllib.parse import urlsplit

import pytest
from botocore.config import Config
from botocore.exceptions import ClientError, ConnectionClosedError, EndpointConnectionError

from aws_twin.testing import start_twin

NO_RETRIES = Config(retries={"total_max_attempts": 1, "mode": "standard"})
AUTH = "AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/{scope}/aws4_request, SignedHeaders=host, Signature=0"


@pytest.fixture
def faults(twin):
    yield twin
    twin.control("faults", "DELETE")


def _raw(
    twin, method: str, path: str, body: bytes = b"", headers: dict | None = None, length: int | None = None
):
    """One HTTP request as bytes on the wire (a Content-Length that need not match the body)."""
    parts = urlsplit(twin.url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    conn.putrequest(method, path)
    for key, value in (headers or {}).items():
        conn.putheader(key, value)
    conn.putheader("Content-Length", str(len(body) if length is None else length))
    conn.endheaders()
    if body:
        conn.send(body)
    resp = conn.getresponse()
    data = resp.read()
    conn.close()
    return resp.status, data


def _json_call(scope: str, target: str) -> dict:
    return {
        "Authorization": AUTH.format(scope=scope),
        "X-Amz-Target": target,
        "Content-Type": "application/x-amz-json-1.1",
    }


# ---- control endpoints -------------------------------------------------------------------------
def test_control_endpoints_need_the_token(twin):
    for path, method in (("reset", "POST"), ("faults", "POST"), ("faults", "DELETE"), ("state", "GET")):
        for headers in ({}, {"X-Twin-Control-Token": "wrong"}):
            req = urllib.request.Request(
                f"{twin.url}/_twin/{path}", data=b"{}", method=method, headers=headers
            )
            with pytest.raises(urllib.error.HTTPError) as denied:
                urllib.request.urlopen(req, timeout=30)
            assert denied.value.code == 403, (path, method, headers)
            assert "X-Twin-Control-Token" in json.loads(denied.value.read())["error"]
    # the token printed at start-up opens them; the health check stays open (docker compose uses it)
    assert any(line.startswith("aws_twin control token ") for line in twin.output)
    assert twin.control("state")["url"] == twin.url
    with urllib.request.urlopen(f"{twin.url}/_twin/health", timeout=30) as resp:
        assert json.loads(resp.read())["status"] == "ok"


def test_control_body_is_bounded(twin):
    status, body = _raw(
        twin,
        "POST",
        "/_twin/faults",
        b'{"specs": []}' + b" " * (128 * 1024),
        {"X-Twin-Control-Token": twin.control_token, "Content-Type": "application/json"},
    )
    assert status == 413, body
    assert twin.control("faults")["rules"] == []


# ---- no key skips faults -----------------------------------------------------------------------
def test_no_access_key_skips_fault_injection(faults):
    faults.set_faults("sts:GetCallerIdentity:error=1")
    for key in ("TWININTERNAL", "testing", "aws-twin-internal"):
        sts = faults.session().client(
            "sts",
            endpoint_url=faults.url,
            aws_access_key_id=key,
            aws_secret_access_key="x",
            config=NO_RETRIES,
        )
        with pytest.raises(ClientError) as info:
            sts.get_caller_identity()
        assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 503, key
    assert faults.control("faults")["counters"]["errors"] == 3


def test_the_twins_own_calls_meet_no_faults_and_work_in_process(faults, s3, bucket):
    """A Textract call reads its document from S3 through the twin's in-process client: an S3
    fault rule for the caller does not reach it, and it is not counted as a client call."""
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (400, 120), "white")
    ImageDraw.Draw(image).text((20, 40), "TOTAL 12.00", fill="black")
    import io

    buf = io.BytesIO()
    image.save(buf, "PNG")
    s3.put_object(Bucket=bucket, Key="in dir/receipt #1.png", Body=buf.getvalue())
    faults.set_faults("s3:*:error=1")
    textract = faults.client("textract", config=NO_RETRIES)
    out = textract.detect_document_text(
        Document={"S3Object": {"Bucket": bucket, "Name": "in dir/receipt #1.png"}}
    )
    assert out["DocumentMetadata"]["Pages"] == 1
    calls = faults.control("state")["calls"]
    assert not [k for k in calls if k.startswith("aws-twin-internal s3:")]
    with pytest.raises(ClientError):  # the caller's own S3 call does meet the rule
        faults.client("s3", config=NO_RETRIES).get_object(Bucket=bucket, Key="in dir/receipt #1.png")


# ---- request size limits -----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("scope", "target", "path", "length", "status", "code"),
    [
        ("textract", "Textract.AnalyzeExpense", "/", 200 * 1024 * 1024, 400, "DocumentTooLargeException"),
        ("sagemaker", "SageMaker.ListEndpoints", "/", 200 * 1024 * 1024, 413, "RequestEntityTooLarge"),
        ("sagemaker", None, "/endpoints/x/invocations", 7 * 1024 * 1024, 400, "ValidationError"),
    ],
)
def test_an_oversized_body_is_refused_before_it_is_read(twin, scope, target, path, length, status, code):
    """The Content-Length alone decides: the twin answers without reading (or buffering) the body."""
    headers = {"Authorization": AUTH.format(scope=scope), "Content-Type": "application/x-amz-json-1.1"}
    if target:
        headers["X-Amz-Target"] = target
    started = time.monotonic()
    got, body = _raw(twin, "POST", path, b"{}", headers, length=length)
    assert time.monotonic() - started < 5
    assert got == status, body
    assert json.loads(body)["__type"] == code


def test_a_body_within_the_limit_still_works(twin, bucket, s3):
    big = b"x" * (8 * 1024 * 1024)  # over every JSON API's limit, far under S3's 5 GB
    s3.put_object(Bucket=bucket, Key="big.bin", Body=big)
    assert s3.head_object(Bucket=bucket, Key="big.bin")["ContentLength"] == len(big)


# ---- the service's own errors ------------------------------------------------------------------
def test_malformed_json_is_a_serialization_exception(twin):
    for body in (b"{not json", b"[1, 2]", b"\xff\xfe"):
        status, data = _raw(twin, "POST", "/", body, _json_call("sagemaker", "SageMaker.ListEndpoints"))
        assert status == 400, data
        assert json.loads(data)["__type"] == "SerializationException", data
    status, data = _raw(twin, "POST", "/", b"{oops", _json_call("textract", "Textract.AnalyzeExpense"))
    assert (status, json.loads(data)["__type"]) == (400, "SerializationException")


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height (1-bit grey) with a tiny IDAT: a decompression bomb
    as far as the header goes, 100 bytes on the wire."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + chunk(b"IEND", b"")
    )


def _textract_error(twin, document: dict) -> dict:
    with pytest.raises(ClientError) as info:
        twin.client("textract", config=NO_RETRIES).analyze_expense(Document=document)
    return info.value.response["Error"]


def test_decompression_bomb_png_is_document_too_large(twin):
    err = _textract_error(twin, {"Bytes": _png_header_only(30000, 30000)})
    assert err["Code"] == "DocumentTooLargeException", err
    assert "pixels" in err["Message"]


def test_undecodable_image_message_has_no_object_repr(twin, bucket, s3):
    junk = b"\x89PNG\r\n\x1a\n" + b"\x00" * 200
    err = _textract_error(twin, {"Bytes": junk})
    assert err["Code"] == "BadDocumentException", err
    assert " at 0x" not in err["Message"] and "<_io" not in err["Message"], err["Message"]
    # the same through an asynchronous job's StatusMessage
    s3.put_object(Bucket=bucket, Key="junk.png", Body=junk)
    textract = twin.client("textract")
    job = textract.start_expense_analysis(
        DocumentLocation={"S3Object": {"Bucket": bucket, "Name": "junk.png"}}
    )
    deadline = time.monotonic() + 30
    while (got := textract.get_expense_analysis(JobId=job["JobId"]))["JobStatus"] == "IN_PROGRESS":
        assert time.monotonic() < deadline
        time.sleep(0.2)
    assert got["JobStatus"] == "FAILED"
    assert "BadDocumentException" in got["StatusMessage"] and " at 0x" not in got["StatusMessage"]


# ---- fault rules -------------------------------------------------------------------------------
def test_fault_rules_name_botocore_services_and_reach_the_a2i_runtime(faults):
    for bad in ("a2i:*:error=1", "SageMaker:*:error=1", "sagemaker-a2i:*:error=1"):
        with pytest.raises(urllib.error.HTTPError) as refused:
            faults.set_faults(bad)
        assert refused.value.code == 400
        assert "no botocore service name" in json.loads(refused.value.read())["error"]
    a2i = faults.client("sagemaker-a2i-runtime", config=NO_RETRIES)
    for spec in ("sagemaker-a2i-runtime:*:throttle=1", "sagemaker*:*:throttle=1"):
        faults.set_faults(spec)
        with pytest.raises(ClientError) as info:
            a2i.describe_human_loop(HumanLoopName="nobody")
        assert info.value.response["Error"]["Code"] == "ThrottlingException", spec
    # a plain sagemaker rule covers the sagemaker API only, as documented
    faults.set_faults("sagemaker:*:throttle=1")
    with pytest.raises(ClientError) as info:
        a2i.describe_human_loop(HumanLoopName="nobody")
    assert info.value.response["Error"]["Code"] == "ResourceNotFoundException"


def _package(group: str) -> dict:
    """A CreateModelPackage request for a version in ``group``."""
    return {
        "ModelPackageGroupName": group,
        "InferenceSpecification": {
            "Containers": [{"Image": "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.7-1"}],
            "SupportedContentTypes": ["text/csv"],
            "SupportedResponseMIMETypes": ["text/csv"],
        },
    }


def test_drop_response_executes_the_request_and_loses_the_answer(faults, sm):
    """What the provider must survive: botocore retries a create whose first answer was lost, and
    the create has happened twice."""
    group = f"drop-{uuid.uuid4().hex[:8]}"
    sm.create_model_package_group(ModelPackageGroupName=group)
    faults.set_faults("sagemaker:CreateModelPackage:drop=1,times=1")
    package = _package(group)
    with pytest.raises(ClientError) as lost:
        faults.client("sagemaker", config=NO_RETRIES).create_model_package(**package)
    assert lost.value.response["ResponseMetadata"]["HTTPStatusCode"] == 503
    assert faults.control("faults")["counters"]["dropped"] == 1
    listed = sm.list_model_packages(ModelPackageGroupName=group)["ModelPackageSummaryList"]
    assert len(listed) == 1  # executed although the caller saw an error
    sm.create_model_package(**package)  # times=1: spent
    assert len(sm.list_model_packages(ModelPackageGroupName=group)["ModelPackageSummaryList"]) == 2


def test_a_create_retried_by_botocore_after_a_lost_answer_gets_what_it_made(faults, sm):
    """CreateModelPackage's ClientToken (botocore fills it in each call and sends it again on its
    retries): a retry of a create whose answer was lost gets the version the first request
    registered, as SageMaker answers; another call (a new token) registers another version."""
    group = f"token-{uuid.uuid4().hex[:8]}"
    sm.create_model_package_group(ModelPackageGroupName=group)
    package = _package(group)
    faults.set_faults("sagemaker:CreateModelPackage:drop=1,times=1")
    retried = faults.client("sagemaker", config=Config(retries={"mode": "standard", "total_max_attempts": 3}))
    arn = retried.create_model_package(**package)["ModelPackageArn"]
    assert faults.control("faults")["counters"]["dropped"] == 1  # the first answer was lost
    listed = sm.list_model_packages(ModelPackageGroupName=group)["ModelPackageSummaryList"]
    assert [p["ModelPackageArn"] for p in listed] == [arn]
    token = uuid.uuid4().hex
    again = [sm.create_model_package(**package, ClientToken=token)["ModelPackageArn"] for _ in range(2)]
    assert again[0] == again[1] != arn
    listed = sm.list_model_packages(ModelPackageGroupName=group)["ModelPackageSummaryList"]
    assert sorted(p["ModelPackageArn"] for p in listed) == sorted([arn, again[0]])


def test_reset_closes_the_connection_and_standard_retries_ride_it_out(faults):
    faults.set_faults("sts:GetCallerIdentity:reset=1,times=2")
    with pytest.raises((ConnectionClosedError, EndpointConnectionError)):
        faults.client("sts", config=NO_RETRIES).get_caller_identity()
    sts = faults.client("sts", config=Config(retries={"mode": "standard", "max_attempts": 5}))
    assert sts.get_caller_identity()["Account"]
    assert faults.control("faults")["counters"]["reset"] == 2


# ---- shutdown ----------------------------------------------------------------------------------


def _pdf(pages: int) -> bytes:
    from PIL import Image, ImageDraw

    images = []
    for number in range(pages):
        image = Image.new("RGB", (600, 400), "white")
        ImageDraw.Draw(image).text((40, 40), f"PAGE {number + 1} TOTAL 9.99", fill="black")
        images.append(image)
    import io

    buf = io.BytesIO()
    images[0].save(buf, "PDF", save_all=True, append_images=images[1:])
    return buf.getvalue()


def test_async_job_time_limit(tmp_path):
    """A twin with a tiny Textract job time limit: a multi-page job ends FAILED, saying so."""
    running = start_twin(
        0, log_path=str(tmp_path / "twin.log"), env={"AWS_TWIN_TEXTRACT_JOB_SECONDS": "0.000001"}
    )
    try:
        running.client("s3").create_bucket(Bucket="docs")
        running.client("s3").put_object(Bucket="docs", Key="long.pdf", Body=_pdf(5))
        textract = running.client("textract")
        job = textract.start_document_text_detection(
            DocumentLocation={"S3Object": {"Bucket": "docs", "Name": "long.pdf"}}
        )["JobId"]
        deadline = time.monotonic() + 60
        while (got := textract.get_document_text_detection(JobId=job))["JobStatus"] == "IN_PROGRESS":
            assert time.monotonic() < deadline
            time.sleep(0.2)
    finally:
        running.stop()
    assert got["JobStatus"] == "FAILED", got
    assert "time limit" in got["StatusMessage"] and "AWS_TWIN_TEXTRACT_JOB_SECONDS" in got["StatusMessage"]


def test_sigterm_stops_the_twin_promptly_while_a_job_runs(tmp_path):
    """SIGTERM while an asynchronous Textract job reads 60 pages (OCR on the twin's threads): the
    twin is gone within seconds, not once the job is done."""
    running = start_twin(0, log_path=str(tmp_path / "twin.log"))
    try:
        running.client("s3").create_bucket(Bucket="docs")
        running.client("s3").put_object(Bucket="docs", Key="long.pdf", Body=_pdf(60))
        textract = running.client("textract")
        job = textract.start_document_text_detection(
            DocumentLocation={"S3Object": {"Bucket": "docs", "Name": "long.pdf"}}
        )["JobId"]
        time.sleep(2)
        assert textract.get_document_text_detection(JobId=job)["JobStatus"] == "IN_PROGRESS"
        started = time.monotonic()
        running.process.terminate()
        try:
            running.process.wait(30)
        except Exception:
            pass
        elapsed = time.monotonic() - started
    finally:
        running.stop()
    assert elapsed < 5, f"the twin took {elapsed:.1f} s to stop on SIGTERM"
