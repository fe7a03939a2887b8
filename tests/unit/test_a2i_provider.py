"""aws_ml_provider's A2I hooks, operators, sensor and triggers against the running twin (real boto3
over HTTP, --strict): create-or-reuse of task UIs and flow definitions, one loop per document and
run under retries, the sensor and triggers on Completed / Stopped / Failed loops, the output JSON."""

from __future__ import annotations

import asyncio
import hashlib
import importlib
import json
import re
import time
import uuid
from pathlib import Path

import pytest
import requests
from airflow.providers.common.compat.sdk import AirflowException, AirflowFailException, TaskDeferred
from airflow.sdk.exceptions import AirflowRescheduleException
from aws_ml_provider.hooks.a2i import A2IHook, A2IRuntimeHook
from aws_ml_provider.links.a2i import A2IFlowDefinitionLink, A2IHumanLoopLink, A2IReviewPageLink
from aws_ml_provider.operators.a2i import (
    A2ICreateFlowDefinitionOperator,
    A2ICreateHumanTaskUiOperator,
    A2IStartHumanLoopOperator,
)
from aws_ml_provider.sensors.a2i import A2IHumanLoopSensor
from aws_ml_provider.triggers.a2i import A2IHumanLoopCompletedTrigger, A2IHumanLoopsCompleteTrigger
from aws_ml_provider.utils.a2i_output import answers, read_human_loop_output

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "include" / "templates" / "expense_review.liquid.html"
ROLE = "arn:aws:iam::123456789012:role/a2i-role"
WORKTEAM = "arn:aws:sagemaker:us-east-1:123456789012:workteam/private-crowd/reviewers"
LOOP_NAME = re.compile(r"^[a-z0-9](-*[a-z0-9])*$")


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def env(aws, task_context):
    """A bucket, a task UI and an Active flow definition made by the provider's operators."""
    s3 = aws.client("s3")
    bucket = _name("a2i-provider")
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="docs/r1.png", Body=b"\x89PNG\r\n\x1a\n", ContentType="image/png")
    ui_name = _name("expense-ui")
    ui_arn = A2ICreateHumanTaskUiOperator(
        task_id="ui", human_task_ui_name=ui_name, ui_template_path=str(TEMPLATE)
    ).execute(task_context(task_id="ui"))
    flow_name = _name("expense-review")
    flow_arn = _flow_op(flow_name, ui_arn, f"s3://{bucket}/a2i-output").execute(task_context(task_id="flow"))
    return {
        "bucket": bucket,
        "ui_name": ui_name,
        "ui_arn": ui_arn,
        "flow_name": flow_name,
        "flow_arn": flow_arn,
    }


def _flow_op(name, ui_arn, output, **kw):
    return A2ICreateFlowDefinitionOperator(
        task_id="flow",
        flow_definition_name=name,
        human_task_ui_arn=ui_arn,
        workteam_arn=WORKTEAM,
        role_arn=ROLE,
        output_s3_uri=output,
        task_title=kw.pop("task_title", "Check the extracted receipt fields"),
        task_description="Correct the fields the extraction was unsure of",
        waiter_delay=1,
        **kw,
    )


def _input(env, doc="r1") -> dict:
    return {
        "document_id": doc,
        "document_s3_uri": f"s3://{env['bucket']}/docs/r1.png",
        "fields": [{"name": "TOTAL", "value": "12.00", "confidence": 61.5, "reason": "low confidence"}],
    }


def _start(task_context, env, doc: str, flow_arn: str | None = None, **ctx) -> dict:
    op = A2IStartHumanLoopOperator(
        task_id=ctx.pop("task_id", "start"),
        flow_definition_arn=flow_arn or env["flow_arn"],
        document_id=doc,
        human_loop_input=_input(env, doc),
    )
    return op.execute(task_context(task_id=op.task_id, **ctx))


def _answer(twin, token, loop, values, worker="worker-1"):
    resp = requests.post(
        f"{twin.url}/review/api/loops/{loop}/answer",
        json={"answers": values, "workerId": worker},
        headers={"X-Review-Token": token},
        timeout=30,
    )
    assert resp.status_code == 200, resp.text
    return resp.json()


def _loops_of(twin, flow_arn) -> list[str]:
    out = twin.client("sagemaker-a2i-runtime").list_human_loops(FlowDefinitionArn=flow_arn)
    return [s["HumanLoopName"] for s in out["HumanLoopSummaries"]]


# ---- task UI and flow definition: create or reuse -------------------------------------------------------
def test_task_ui_is_reused_when_unchanged_and_versioned_when_changed(aws, env, task_context):
    sm = aws.client("sagemaker")
    template = TEMPLATE.read_text()
    again = A2ICreateHumanTaskUiOperator(
        task_id="ui", human_task_ui_name=env["ui_name"], ui_template=template
    )
    ctx = task_context(task_id="ui")
    assert again.execute(ctx) == env["ui_arn"]
    assert ctx["ti"].xcoms["a2i_human_task_ui"]["human_task_ui_name"] == env["ui_name"]

    changed = template.replace("</crowd-form>", "<p>Second version</p></crowd-form>")
    assert changed != template
    new_arn = A2ICreateHumanTaskUiOperator(
        task_id="ui", human_task_ui_name=env["ui_name"], ui_template=changed
    ).execute(task_context())
    expected_name = f"{env['ui_name']}-{hashlib.sha256(changed.encode()).hexdigest()[:8]}"
    assert new_arn.endswith(f"/{expected_name}")
    described = sm.describe_human_task_ui(HumanTaskUiName=expected_name)
    assert described["UiTemplate"]["ContentSha256"] == hashlib.sha256(changed.encode()).hexdigest()
    # the original is untouched, and re-running the changed template reuses the versioned one
    assert sm.describe_human_task_ui(HumanTaskUiName=env["ui_name"])["UiTemplate"]["ContentSha256"] == (
        hashlib.sha256(template.encode()).hexdigest()
    )
    result = A2IHook().ensure_human_task_ui(env["ui_name"], changed)
    assert result == {"name": expected_name, "arn": new_arn, "created": False}

    with pytest.raises(AirflowFailException, match=re.escape(env["ui_name"]) + ".*different template"):
        A2ICreateHumanTaskUiOperator(
            task_id="ui", human_task_ui_name=env["ui_name"], ui_template=changed, on_change="fail"
        ).execute(task_context())


def test_task_ui_template_path_is_read_beside_the_dag_file(aws, task_context, tmp_path):
    from airflow.sdk import DAG

    (tmp_path / "templates").mkdir()
    (tmp_path / "templates" / "review.html").write_text(TEMPLATE.read_text(), encoding="utf-8")
    ui_name = _name("relative-ui")
    with DAG("a2i_relative_template", schedule=None) as dag:
        found = A2ICreateHumanTaskUiOperator(
            task_id="ui", human_task_ui_name=ui_name, ui_template_path="templates/review.html"
        )
        absent = A2ICreateHumanTaskUiOperator(
            task_id="absent", human_task_ui_name=ui_name, ui_template_path="templates/absent.html"
        )
    dag.fileloc = str(tmp_path / "review_dag.py")
    found.execute(task_context(task_id="ui"))
    described = aws.client("sagemaker").describe_human_task_ui(HumanTaskUiName=ui_name)
    assert described["UiTemplate"]["ContentSha256"] == hashlib.sha256(TEMPLATE.read_bytes()).hexdigest()
    beside_dag = re.escape(str(tmp_path / "templates" / "absent.html"))
    with pytest.raises(AirflowFailException, match=r"templates/absent\.html not found .*" + beside_dag):
        absent.execute(task_context(task_id="absent"))


def test_flow_definition_is_reused_and_active_and_versioned_on_change(aws, env, task_context):
    sm = aws.client("sagemaker")
    described = sm.describe_flow_definition(FlowDefinitionName=env["flow_name"])
    assert described["FlowDefinitionStatus"] == "Active"  # the operator waited for it
    assert described["HumanLoopConfig"]["HumanTaskUiArn"] == env["ui_arn"]

    ctx = task_context(task_id="flow")
    same = _flow_op(env["flow_name"], env["ui_arn"], f"s3://{env['bucket']}/a2i-output")
    assert same.execute(ctx) == env["flow_arn"]
    link = A2IFlowDefinitionLink().format_link(**ctx["ti"].xcoms["a2i_flow_definition"])
    assert link == (
        "https://console.aws.amazon.com/a2i/home?region=us-east-1#/human-review-workflows/" + env["flow_name"]
    )

    retitled = _flow_op(env["flow_name"], env["ui_arn"], f"s3://{env['bucket']}/a2i-output", task_title="New")
    new_arn = retitled.execute(task_context())
    assert new_arn != env["flow_arn"]
    new_name = new_arn.rsplit("/", 1)[1]
    assert new_name.startswith(env["flow_name"] + "-") and len(new_name) == len(env["flow_name"]) + 9
    assert sm.describe_flow_definition(FlowDefinitionName=new_name)["HumanLoopConfig"]["TaskTitle"] == "New"
    assert retitled.execute(task_context()) == new_arn  # same configuration, same versioned name

    strict = _flow_op(
        env["flow_name"],
        env["ui_arn"],
        f"s3://{env['bucket']}/a2i-output",
        task_title="New",
        on_change="fail",
    )
    with pytest.raises(AirflowFailException, match="TaskTitle is 'Check the extracted receipt fields'"):
        strict.execute(task_context())


# ---- human loops: deterministic names, one loop per document and run -----------------------------------
def test_start_human_loop_twice_for_the_same_document_and_run_makes_one_loop(aws, env, task_context):
    flow_arn = _flow_op(_name("idem-flow"), env["ui_arn"], f"s3://{env['bucket']}/idem").execute(
        task_context()
    )
    doc = f"s3://{env['bucket']}/docs/Receipt 001 (scan).PNG"
    first = _start(task_context, env, doc, flow_arn, try_number=1)
    retry = _start(task_context, env, doc, flow_arn, try_number=2)
    assert first["human_loop_name"] == retry["human_loop_name"]
    assert first["human_loop_arn"] == retry["human_loop_arn"]
    assert first["status"] == retry["status"] == "InProgress"
    assert LOOP_NAME.match(first["human_loop_name"]) and len(first["human_loop_name"]) <= 63
    assert _loops_of(aws, flow_arn) == [first["human_loop_name"]]

    other_run = _start(task_context, env, doc, flow_arn, run_id="manual__2026-01-02")
    other_doc = _start(task_context, env, doc + "x", flow_arn)
    assert len({first["human_loop_name"], other_run["human_loop_name"], other_doc["human_loop_name"]}) == 3
    assert sorted(_loops_of(aws, flow_arn)) == sorted(
        [first["human_loop_name"], other_run["human_loop_name"], other_doc["human_loop_name"]]
    )
    long_name = A2IRuntimeHook.human_loop_name("x" * 300, "flow", "dag", "run", "task")
    assert len(long_name) <= 63 and LOOP_NAME.match(long_name)


def test_start_human_loop_whose_answer_is_lost_makes_one_loop_and_attaches(aws, env, task_context):
    """StartHumanLoop executed but its answer lost (the twin's ``drop``: a 503 after the loop was
    made): botocore retries, the retry meets ConflictException and the operator attaches to the
    loop the first attempt made. One loop, the ARN of that loop, the call sent twice."""
    flow_arn = _flow_op(_name("drop-flow"), env["ui_arn"], f"s3://{env['bucket']}/drop").execute(
        task_context()
    )
    login = aws.airflow_connection()["login"]
    key = f"{login} sagemaker-a2i-runtime:StartHumanLoop"
    sent_before = aws.control("state")["calls"].get(key, 0)
    aws.set_faults("sagemaker-a2i-runtime:StartHumanLoop:drop=1,times=1")
    try:
        started = _start(task_context, env, "lost-answer-doc", flow_arn)
        counters = aws.control("faults")["counters"]
    finally:
        aws.control("faults", "DELETE")
    assert counters["dropped"] == 1  # the first answer was lost...
    assert aws.control("state")["calls"].get(key, 0) - sent_before == 2  # ...and the call retried
    assert started["status"] == "InProgress"
    assert _loops_of(aws, flow_arn) == [started["human_loop_name"]]
    described = aws.client("sagemaker-a2i-runtime").describe_human_loop(
        HumanLoopName=started["human_loop_name"]
    )
    assert described["HumanLoopArn"] == started["human_loop_arn"]
    assert described["FlowDefinitionArn"] == flow_arn
    # the hook says so: the call that made the loop reports attaching, not creating
    hook = A2IRuntimeHook(aws_conn_id="aws_default")
    aws.set_faults("sagemaker-a2i-runtime:StartHumanLoop:drop=1,times=1")
    try:
        again = hook.start_human_loop("lost-answer-hook", flow_arn, _input(env, "lost-answer-hook"))
    finally:
        aws.control("faults", "DELETE")
    assert again["created"] is False and again["status"] == "InProgress"
    assert sorted(_loops_of(aws, flow_arn)) == sorted([started["human_loop_name"], "lost-answer-hook"])


def test_start_loop_name_clash_with_another_flow_is_an_error(aws, env, task_context):
    other_flow = _flow_op(_name("clash-flow"), env["ui_arn"], f"s3://{env['bucket']}/clash").execute(
        task_context()
    )
    started = _start(task_context, env, "clash-doc", env["flow_arn"])
    op = A2IStartHumanLoopOperator(
        task_id="start",
        flow_definition_arn=other_flow,
        document_id="clash-doc",
        human_loop_input=_input(env),
        human_loop_name=started["human_loop_name"],
    )
    with pytest.raises(AirflowException, match="exists for flow definition"):
        op.execute(task_context())


# ---- sensor and triggers ------------------------------------------------------------------------------
def test_sensor_returns_output_and_answers_of_a_completed_loop(aws, env, review_token, task_context):
    started = _start(task_context, env, "sensor-doc")
    name = started["human_loop_name"]
    sensor = A2IHumanLoopSensor(task_id="wait", human_loop_names=started, poke_interval=0.2, timeout=30)
    assert sensor.poke(task_context()) is False
    with pytest.raises(AirflowRescheduleException):  # not deferred: the worker slot is released
        sensor.execute(task_context())
    _answer(aws, review_token, name, {"TOTAL": "12.50", "approve": "yes"})
    ctx = task_context(task_id="wait")
    result = sensor.execute(ctx)
    (state,) = result["human_loops"]
    assert state["human_loop_name"] == name and state["status"] == "Completed"
    assert result["output_s3_uris"] == [state["output_s3_uri"]] and result["completed"] == 1
    assert state["output_s3_uri"].startswith(f"s3://{env['bucket']}/a2i-output/")
    assert (
        A2IHumanLoopLink()
        .format_link(**ctx["ti"].xcoms["a2i_human_loop"])
        .endswith(f"#/human-review-workflows/{env['flow_name']}/human-loops/{name}")
    )

    output = read_human_loop_output(aws.client("s3"), state["output_s3_uri"])
    assert output["humanLoopName"] == name and output["inputContent"]["document_id"] == "sensor-doc"
    assert answers(output) == {"TOTAL": "12.50", "approve": "yes"}
    assert answers(A2IRuntimeHook().read_output(state["output_s3_uri"])) == answers(output)


def _roundtrip(trigger):
    classpath, kwargs = trigger.serialize()
    json.dumps(kwargs)  # what the triggerer stores must be JSON
    module, _, cls = classpath.rpartition(".")
    clone = getattr(importlib.import_module(module), cls)(**kwargs)
    assert clone.serialize() == (classpath, kwargs)
    return clone


async def _collect(trigger, during=None):
    """The first event of ``trigger.run()``; ``during`` runs in a thread while the trigger waits."""
    side = asyncio.create_task(asyncio.to_thread(during)) if during else None
    async for event in trigger.run():
        if side:
            await side
        return event.payload
    raise AssertionError("trigger ended without an event")


def test_triggers_roundtrip_and_wait_for_completion(aws, env, review_token, task_context):
    a = _start(task_context, env, "trigger-a")["human_loop_name"]
    b = _start(task_context, env, "trigger-b")["human_loop_name"]
    many = _roundtrip(
        A2IHumanLoopsCompleteTrigger(human_loop_names=[a, b], waiter_delay=0.2, waiter_max_attempts=100)
    )
    one = _roundtrip(
        A2IHumanLoopCompletedTrigger(human_loop_name=a, waiter_delay=0.2, waiter_max_attempts=100)
    )

    # the twin counts the calls it receives: answer once the trigger has polled both loops twice
    describes = f"{aws.airflow_connection()['login']} sagemaker-a2i-runtime:DescribeHumanLoop"
    polled_before = aws.control("state")["calls"].get(describes, 0)

    def answer_both():
        deadline = time.monotonic() + 30
        while aws.control("state")["calls"].get(describes, 0) < polled_before + 4:
            assert time.monotonic() < deadline, "the trigger did not poll the loops twice"
            time.sleep(0.05)
        _answer(aws, review_token, a, {"TOTAL": "1.00"})
        _answer(aws, review_token, b, {"TOTAL": "2.00"})

    event = asyncio.run(_collect(many, answer_both))
    assert event["status"] == "success"
    assert [s["human_loop_name"] for s in event["human_loops"]] == [a, b]
    assert all(s["status"] == "Completed" and s["output_s3_uri"] for s in event["human_loops"])
    assert asyncio.run(_collect(one)) == {"status": "success", "human_loop_name": a}


def test_trigger_keeps_waiting_through_throttling_beyond_the_client_retries(
    aws, env, review_token, task_context
):
    """Every DescribeHumanLoop throttled (the twin's fault injection), for longer than the client's
    retry budget (2 attempts a call): each of several polls ends in ThrottlingException after its
    retries; the trigger treats that as "still waiting", and succeeds once throttling stops and the
    loop is answered."""
    name = _start(task_context, env, "throttled-doc")["human_loop_name"]
    attempts = 2  # what one poll's DescribeHumanLoop may try (botocore's standard retries)
    polls_throttled = 3  # whole polls that fail after all their retries before throttling stops
    trigger = _roundtrip(
        A2IHumanLoopsCompleteTrigger(
            human_loop_names=[name],
            waiter_delay=0.2,
            waiter_max_attempts=200,
            botocore_config={"retries": {"mode": "standard", "total_max_attempts": attempts}},
        )
    )
    seen: dict = {}

    def throttle_then_answer():
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            seen["throttled"] = aws.control("faults")["counters"]["throttled"]
            if seen["throttled"] >= attempts * polls_throttled:
                break
            time.sleep(0.05)
        aws.control("faults", "DELETE")
        seen["answered"] = _answer(aws, review_token, name, {"TOTAL": "3.00"})

    aws.set_faults("sagemaker-a2i-runtime:DescribeHumanLoop:throttle=1")
    try:
        event = asyncio.run(_collect(trigger, throttle_then_answer))
    finally:
        aws.control("faults", "DELETE")
    assert event["status"] == "success", event
    (state,) = event["human_loops"]
    assert state["human_loop_name"] == name and state["status"] == "Completed" and state["output_s3_uri"]
    # the throttling outlasted the client's retries several times over while the trigger waited
    assert seen["throttled"] >= attempts * polls_throttled, seen


def _wait_status(a2i, name: str, status: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while a2i.describe_human_loop(HumanLoopName=name)["HumanLoopStatus"] != status:
        assert time.monotonic() < deadline, f"{name} never became {status}"
        time.sleep(0.1)


def test_sensor_reports_stopped_and_failed_loops_clearly(aws, env, task_context):
    a2i = aws.client("sagemaker-a2i-runtime")
    short_flow = _flow_op(
        _name("short-flow"),
        env["ui_arn"],
        f"s3://{env['bucket']}/short",
        task_availability_lifetime_in_seconds=1,
    ).execute(task_context())
    expiring = _start(task_context, env, "expiring-doc", short_flow)["human_loop_name"]
    stopped = _start(task_context, env, "stopped-doc")["human_loop_name"]
    running = _start(task_context, env, "running-doc")["human_loop_name"]

    # deferrable: both loops are in progress, so the sensor defers; one is stopped while it waits
    sensor = A2IHumanLoopSensor(
        task_id="wait", human_loop_names=[stopped, running], deferrable=True, waiter_delay=0.2
    )
    with pytest.raises(TaskDeferred) as deferred:
        sensor.execute(task_context())
    assert deferred.value.method_name == "execute_complete"
    trigger = _roundtrip(deferred.value.trigger)
    event = asyncio.run(_collect(trigger, lambda: a2i.stop_human_loop(HumanLoopName=stopped)))
    assert event["status"] == "error"
    with pytest.raises(AirflowFailException, match=f"human loop {stopped} is Stopped"):
        sensor.execute_complete(task_context(), event)

    # poke: every failure named with its status and reason, the running loop not blamed
    _wait_status(a2i, expiring, "Failed")
    with pytest.raises(AirflowFailException) as err:
        A2IHumanLoopSensor(task_id="wait", human_loop_names=[expiring, stopped, running]).poke(task_context())
    message = str(err.value)
    assert f"human loop {stopped} is Stopped" in message
    assert f"human loop {expiring} is Failed" in message and "(TaskExpired)" in message
    assert "TaskAvailabilityLifetimeInSeconds" in message
    assert running not in message

    # allow_failed: reported in the result, the running loop is still awaited
    tolerant = A2IHumanLoopSensor(
        task_id="wait", human_loop_names=[expiring, stopped, running], allow_failed=True
    )
    assert tolerant.poke(task_context()) is False
    tolerant_trigger = _roundtrip(
        A2IHumanLoopsCompleteTrigger(
            human_loop_names=[expiring, stopped, running], allow_failed=True, waiter_delay=0.2
        )
    )
    event = asyncio.run(_collect(tolerant_trigger, lambda: a2i.stop_human_loop(HumanLoopName=running)))
    assert event["status"] == "success"
    result = tolerant.execute_complete(task_context(), event)
    assert {s["human_loop_name"]: s["status"] for s in result["human_loops"]} == {
        expiring: "Failed",
        stopped: "Stopped",
        running: "Stopped",
    }
    assert result["failed"] == 3 and result["completed"] == 0 and result["output_s3_uris"] == []


def test_single_loop_trigger_reports_a_missing_loop(aws):
    trigger = A2IHumanLoopCompletedTrigger(
        human_loop_name="no-such-loop-here", waiter_delay=0.1, waiter_max_attempts=3
    )
    event = asyncio.run(_collect(trigger))
    assert event["status"] == "error" and "no-such-loop-here" in event["message"]


def test_sensor_takes_names_start_results_and_rendered_lists():
    from aws_ml_provider.sensors.a2i import loop_names

    started = [{"human_loop_name": "a", "status": "InProgress"}, {"human_loop_name": "b"}]
    assert loop_names(started) == ["a", "b"]
    assert loop_names("a") == ["a"]
    assert loop_names(json.dumps(started)) == ["a", "b"]  # rendered with json
    assert loop_names(str(["a", "b", "a"])) == ["a", "b"]  # rendered as a Python literal
    with pytest.raises(ValueError, match="no human_loop_name"):
        loop_names({"status": "InProgress"})


# ---- the review page link ---------------------------------------------------------------------------
def _review_link(ctx) -> str:
    return A2IReviewPageLink().format_link(**ctx["ti"].xcoms[A2IReviewPageLink.key])


def test_review_link_opens_the_twins_page_of_the_loop(aws, env, review_token, task_context, monkeypatch):
    """With an endpoint_url (aws_twin) the link is the twin's review page; the token comes from
    AWS_TWIN_REVIEW_TOKEN (make up / docker compose give it to Airflow), else the twin asks."""
    one = _start(task_context, env, "link-one")["human_loop_name"]
    two = _start(task_context, env, "link-two")["human_loop_name"]
    monkeypatch.delenv("AWS_TWIN_PUBLIC_URL", raising=False)
    monkeypatch.setenv("AWS_TWIN_REVIEW_TOKEN", review_token)
    single = task_context(task_id="wait_for_review")
    with pytest.raises(AirflowRescheduleException):
        A2IHumanLoopSensor(task_id="wait_for_review", human_loop_names=[one]).execute(single)
    url = _review_link(single)
    assert url.startswith(f"{aws.url}/review/{one}?")
    page = requests.get(url, timeout=30)  # a fresh browser: the link alone opens the task
    assert page.status_code == 200 and f"data-human-loop='{one}'" in page.text

    # many loops (the DAG's wait_for_review): the twin's task list of their flow definition
    many = task_context(task_id="wait_for_review")
    with pytest.raises(AirflowRescheduleException):
        A2IHumanLoopSensor(task_id="wait_for_review", human_loop_names=[one, two]).execute(many)
    listing = requests.get(_review_link(many), timeout=30)
    assert listing.status_code == 200
    assert f"href='/review/{one}?t=" in listing.text and f"href='/review/{two}?t=" in listing.text
    # the console link is no longer empty with many loops: the flow definition, which lists them
    assert (
        A2IHumanLoopLink()
        .format_link(**many["ti"].xcoms["a2i_human_loop"])
        .endswith(f"#/human-review-workflows/{env['flow_name']}")
    )

    # no token in the environment: the link holds none and the twin asks for it
    monkeypatch.delenv("AWS_TWIN_REVIEW_TOKEN")
    started = task_context(task_id="start")
    A2IStartHumanLoopOperator(
        task_id="start",
        flow_definition_arn=env["flow_arn"],
        document_id="link-one",
        human_loop_input=_input(env),
    ).execute(started)
    assert _review_link(started) == f"{aws.url}/review/{one}"  # a retry attaches to the same loop
    assert requests.get(_review_link(started), timeout=30).status_code == 403


def test_review_link_is_the_worker_portal_without_endpoint_url(aws, env, task_context, monkeypatch):
    """On AWS (no endpoint_url) the link is https://<SubDomain> of the flow's work team
    (DescribeWorkteam); botocore reaches the twin here through AWS_ENDPOINT_URL only."""
    loop = _start(task_context, env, "portal-doc")["human_loop_name"]
    conn = {
        "conn_type": "aws",
        "login": "testing",
        "password": "testing",
        "extra": {"region_name": aws.region},
    }
    monkeypatch.setenv("AIRFLOW_CONN_AWS_NO_ENDPOINT", json.dumps(conn))
    monkeypatch.setenv("AWS_ENDPOINT_URL", aws.url)
    monkeypatch.setenv("AWS_TWIN_REVIEW_TOKEN", "must-not-leak")
    ctx = task_context(task_id="wait_for_review")
    sensor = A2IHumanLoopSensor(
        task_id="wait_for_review", aws_conn_id="aws_no_endpoint", human_loop_names=[loop]
    )
    assert sensor.hook.conn_config.endpoint_url is None
    with pytest.raises(AirflowRescheduleException):
        sensor.execute(ctx)
    flow = aws.client("sagemaker").describe_flow_definition(FlowDefinitionName=env["flow_name"])
    team = flow["HumanLoopConfig"]["WorkteamArn"].rsplit("/", 1)[-1]
    subdomain = aws.client("sagemaker").describe_workteam(WorkteamName=team)["Workteam"]["SubDomain"]
    assert _review_link(ctx) == f"https://{subdomain}"
    assert "must-not-leak" not in json.dumps(ctx["ti"].xcoms)
