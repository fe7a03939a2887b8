"""The provider's triggers against the running twin ride out transient errors (issue 8, item 3):
connection resets and 5xx answers for a few polls (the twin's fault rules, with a client that does
not retry, so each poll meets them) do not end the wait; persistent errors end it when its budget
(waiter_max_attempts polls) is spent, saying so; a job the service no longer knows (a restarted
twin) is reported as lost state, not as a symptom."""

from __future__ import annotations

import asyncio
import io
import time
import uuid

import pytest
from aws_ml_provider.triggers.a2i import A2IHumanLoopsCompleteTrigger
from aws_ml_provider.triggers.textract import TextractJobCompleteTrigger

NO_CLIENT_RETRIES = {"retries": {"mode": "standard", "total_max_attempts": 1}}
GET = "textract:GetExpenseAnalysis"


@pytest.fixture(scope="module")
def finished_job(aws) -> str:
    """A finished asynchronous expense job on a small image."""
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (400, 140), "white")
    draw = ImageDraw.Draw(image)
    draw.text((20, 30), "CORNER SHOP", fill="black")
    draw.text((20, 80), "TOTAL 7.50", fill="black")
    buf = io.BytesIO()
    image.save(buf, "PNG")
    s3, textract = aws.client("s3"), aws.client("textract")
    bucket = f"trigger-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="r.png", Body=buf.getvalue())
    job = textract.start_expense_analysis(DocumentLocation={"S3Object": {"Bucket": bucket, "Name": "r.png"}})
    deadline = time.monotonic() + 120
    while textract.get_expense_analysis(JobId=job["JobId"], MaxResults=1)["JobStatus"] == "IN_PROGRESS":
        assert time.monotonic() < deadline
        time.sleep(0.2)
    return job["JobId"]


@pytest.fixture
def faults(aws):
    yield aws
    aws.control("faults", "DELETE")


async def _event(trigger) -> dict:
    async for event in trigger.run():
        return event.payload
    raise AssertionError("trigger ended without an event")


def _trigger(job_id: str, attempts: int = 20) -> TextractJobCompleteTrigger:
    return TextractJobCompleteTrigger(
        job_id=job_id,
        kind="expense",
        waiter_delay=0.1,
        waiter_max_attempts=attempts,
        botocore_config=NO_CLIENT_RETRIES,
    )


@pytest.mark.parametrize("fault", ["reset=1,times=3", "error=1,times=3", "throttle=1,times=3"])
def test_textract_trigger_rides_out_transient_errors(faults, finished_job, fault):
    faults.set_faults(f"{GET}:{fault}")
    event = asyncio.run(_event(_trigger(finished_job)))
    assert event == {"status": "success", "job_id": finished_job}
    counters = faults.control("faults")["counters"]
    assert counters["reset"] + counters["errors"] + counters["throttled"] == 3  # three polls met it


def test_persistent_errors_end_the_wait_when_its_budget_is_spent(faults, finished_job):
    faults.set_faults(f"{GET}:error=1")
    started = time.monotonic()
    event = asyncio.run(_event(_trigger(finished_job, attempts=4)))
    assert event["status"] == "error"
    assert "still not done after 4 polls" in event["message"] and "ServiceUnavailable" in event["message"]
    assert faults.control("faults")["counters"]["errors"] == 4
    assert time.monotonic() - started < 10


def test_an_unknown_job_is_reported_as_lost_state(aws):
    gone = "f" * 64  # what a restarted twin says of a job it ran before
    event = asyncio.run(_event(_trigger(gone)))
    assert event["status"] == "error"
    assert f"AWS no longer knows Textract expense job {gone}" in event["message"]
    assert "restarted" in event["message"] and "InvalidJobIdException" in event["message"]


def test_a2i_loops_trigger_rides_out_resets_and_reports_a_lost_loop(faults):
    faults.set_faults("sagemaker-a2i-runtime:DescribeHumanLoop:reset=1,times=2")
    trigger = A2IHumanLoopsCompleteTrigger(
        human_loop_names=["loop-lost-in-a-restart"],
        waiter_delay=0.1,
        waiter_max_attempts=10,
        botocore_config=NO_CLIENT_RETRIES,
    )
    event = asyncio.run(_event(trigger))
    assert faults.control("faults")["counters"]["reset"] == 2  # two polls met a reset, then went on
    assert event["status"] == "error"
    (state,) = event["human_loops"]
    assert state["status"] == "NotFound"
    assert "AWS no longer knows human loop loop-lost-in-a-restart" in event["message"]
    assert "restarted" in event["message"]


def test_textract_start_is_one_job_under_a_lost_answer(faults, finished_job, aws):
    """The expense DAG's Textract starts are idempotent by design: StartExpenseAnalysis carries a
    ClientRequestToken, so botocore's retry of a start whose answer was lost gets the first JobId."""
    from aws_ml_provider.hooks.textract import TextractHook

    textract = aws.client("textract")
    job = textract.get_expense_analysis(JobId=finished_job, MaxResults=1)
    assert job["JobStatus"] == "SUCCEEDED"
    bucket = f"trigger-{uuid.uuid4().hex[:8]}"
    aws.client("s3").create_bucket(Bucket=bucket)
    aws.client("s3").put_object(Bucket=bucket, Key="doc.png", Body=b"\x89PNG\r\n\x1a\n")
    jobs_before = aws.control("state")["services"]["TextractService"]["jobs"]
    faults.set_faults("textract:StartExpenseAnalysis:drop=1,times=1")
    token = TextractHook.client_request_token("run-1", f"s3://{bucket}/doc.png")
    job_id = TextractHook().start_job("expense", f"s3://{bucket}/doc.png", client_request_token=token)
    assert faults.control("faults")["counters"]["dropped"] == 1
    assert aws.control("state")["services"]["TextractService"]["jobs"] == jobs_before + 1
    assert len(job_id) == 64
