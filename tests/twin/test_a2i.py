"""Amazon A2I on the twin: human task UIs, flow definitions, human loops (boto3 over HTTP, --strict),
the review page (token, rendered task form, presigned document image) and its HTTP API, and the
output.json a completed loop writes to S3."""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import re
import time
import uuid
from pathlib import Path

import pytest
import requests
from botocore.exceptions import ClientError

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "include" / "templates" / "expense_review.liquid.html"
ROLE = "arn:aws:iam::123456789012:role/a2i-role"
WORKTEAM = "arn:aws:sagemaker:us-east-1:123456789012:workteam/private-crowd/reviewers"
OUTPUT_KEYS = {"flowDefinitionArn", "humanAnswers", "humanLoopName", "inputContent"}
ANSWER_KEYS = {
    "acceptanceTime",
    "answerContent",
    "submissionTime",
    "timeSpentInSeconds",
    "workerId",
    "workerMetadata",
}
ISO_MS = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def _code(exc: pytest.ExceptionInfo) -> str:
    return exc.value.response["Error"]["Code"]


def _wait(fn, predicate, timeout: float = 15.0):
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if predicate(value):
            return value
        assert time.monotonic() < deadline, f"timed out waiting; last value: {value}"
        time.sleep(0.1)


def _png() -> bytes:
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (240, 120), "white")
    ImageDraw.Draw(image).text((10, 50), "TOTAL 12.50", fill="black")
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def a2i(twin):
    return twin.client("sagemaker-a2i-runtime")


@pytest.fixture(scope="module")
def setup(twin, sm, s3):
    """A bucket with a document image, the expense task UI and an Active flow definition."""
    bucket = _name("a2i")
    s3.create_bucket(Bucket=bucket)
    image = _png()
    s3.put_object(Bucket=bucket, Key="docs/receipt-1.png", Body=image, ContentType="image/png")
    ui_arn = sm.create_human_task_ui(
        HumanTaskUiName=_name("expense-ui"), UiTemplate={"Content": TEMPLATE.read_text()}
    )["HumanTaskUiArn"]
    flow_name = _name("expense-review")
    flow_arn = _create_flow(sm, flow_name, ui_arn, f"s3://{bucket}/a2i-output")
    return {"bucket": bucket, "image": image, "ui_arn": ui_arn, "flow_name": flow_name, "flow_arn": flow_arn}


def _create_flow(sm, name: str, ui_arn: str, output: str, wait: bool = True, **config) -> str:
    arn = sm.create_flow_definition(
        FlowDefinitionName=name,
        RoleArn=ROLE,
        HumanLoopConfig={
            "WorkteamArn": WORKTEAM,
            "HumanTaskUiArn": ui_arn,
            "TaskTitle": "Check the extracted receipt fields",
            "TaskDescription": "Correct the fields the extraction was unsure of",
            "TaskCount": 1,
            **config,
        },
        OutputConfig={"S3OutputPath": output},
    )["FlowDefinitionArn"]
    if wait:
        _wait(
            lambda: sm.describe_flow_definition(FlowDefinitionName=name)["FlowDefinitionStatus"],
            lambda s: s == "Active",
        )
    return arn


def _input(setup, total: str = "12.00") -> dict:
    return {
        "document_id": "receipt-1",
        "document_s3_uri": f"s3://{setup['bucket']}/docs/receipt-1.png",
        "fields": [
            {"name": "TOTAL", "value": total, "confidence": 61.5, "reason": "confidence below 90"},
            {"name": "VENDOR_NAME", "value": "ACME <Store> & Co", "confidence": 72.25, "reason": "low"},
        ],
    }


def _start(a2i, setup, name: str | None = None, **kw) -> tuple[str, dict]:
    name = name or _name("loop")
    content = kw.pop("content", None) or _input(setup)
    a2i.start_human_loop(
        HumanLoopName=name,
        FlowDefinitionArn=kw.pop("flow_arn", setup["flow_arn"]),
        HumanLoopInput={"InputContent": json.dumps(content)},
    )
    return name, content


def _answer(twin, token: str, loop: str, answers: dict, worker: str = "worker-1") -> requests.Response:
    return requests.post(
        f"{twin.url}/review/api/loops/{loop}/answer",
        json={"answers": answers, "workerId": worker},
        headers={"X-Review-Token": token},
        timeout=30,
    )


def _read_output(s3, uri: str) -> dict:
    bucket, _, key = uri[len("s3://") :].partition("/")
    return json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())


# ---- sagemaker: human task UIs and flow definitions ------------------------------------------------
def test_human_task_ui_lifecycle(sm):
    name = _name("ui")
    content = TEMPLATE.read_text()
    arn = sm.create_human_task_ui(HumanTaskUiName=name, UiTemplate={"Content": content})["HumanTaskUiArn"]
    assert arn == f"arn:aws:sagemaker:us-east-1:123456789012:human-task-ui/{name}"
    desc = sm.describe_human_task_ui(HumanTaskUiName=name)
    assert desc["HumanTaskUiStatus"] == "Active"
    assert desc["UiTemplate"]["ContentSha256"] == hashlib.sha256(content.encode()).hexdigest()
    with pytest.raises(ClientError) as exc:
        sm.create_human_task_ui(HumanTaskUiName=name, UiTemplate={"Content": content})
    assert _code(exc) == "ResourceInUse"
    names = [u["HumanTaskUiName"] for u in sm.list_human_task_uis(MaxResults=100)["HumanTaskUiSummaries"]]
    assert name in names
    with pytest.raises(ClientError) as exc:
        sm.create_human_task_ui(HumanTaskUiName=_name("bad"), UiTemplate={"Content": "{% for x in %}"})
    assert _code(exc) == "ValidationException"
    sm.delete_human_task_ui(HumanTaskUiName=name)
    for call in (sm.describe_human_task_ui, sm.delete_human_task_ui):
        with pytest.raises(ClientError) as exc:
            call(HumanTaskUiName=name)
        assert _code(exc) == "ResourceNotFound"


def test_flow_definition_lifecycle(sm, setup):
    name = _name("flow")
    arn = _create_flow(sm, name, setup["ui_arn"], f"s3://{setup['bucket']}/other/", wait=False)
    first = sm.describe_flow_definition(FlowDefinitionName=name)
    assert first["FlowDefinitionStatus"] == "Initializing"
    desc = _wait(
        lambda: sm.describe_flow_definition(FlowDefinitionName=name),
        lambda d: d["FlowDefinitionStatus"] == "Active",
    )
    assert desc["FlowDefinitionArn"] == arn
    assert desc["HumanLoopConfig"]["HumanTaskUiArn"] == setup["ui_arn"]
    assert desc["HumanLoopConfig"]["TaskCount"] == 1
    assert desc["OutputConfig"]["S3OutputPath"] == f"s3://{setup['bucket']}/other"
    assert desc["RoleArn"] == ROLE
    with pytest.raises(ClientError) as exc:
        _create_flow(sm, name, setup["ui_arn"], f"s3://{setup['bucket']}/x", wait=False)
    assert _code(exc) == "ResourceInUse"
    with pytest.raises(ClientError) as exc:
        missing_ui = setup["ui_arn"].replace("human-task-ui/", "human-task-ui/missing-")
        _create_flow(sm, _name("flow"), missing_ui, f"s3://{setup['bucket']}/x", wait=False)
    assert _code(exc) == "ValidationException"
    listed = sm.list_flow_definitions(SortOrder="Descending", MaxResults=100)["FlowDefinitionSummaries"]
    assert any(f["FlowDefinitionName"] == name and f["FlowDefinitionStatus"] == "Active" for f in listed)
    sm.delete_flow_definition(FlowDefinitionName=name)
    for call in (sm.describe_flow_definition, sm.delete_flow_definition):
        with pytest.raises(ClientError) as exc:
            call(FlowDefinitionName=name)
        assert _code(exc) == "ResourceNotFound"


def test_start_on_initializing_flow_is_refused_and_delete_in_use(sm, a2i, setup):
    name = _name("flow")
    arn = _create_flow(sm, name, setup["ui_arn"], f"s3://{setup['bucket']}/x", wait=False)
    with pytest.raises(ClientError) as exc:
        _start(a2i, setup, flow_arn=arn)
    assert _code(exc) == "ValidationException"
    _wait(
        lambda: sm.describe_flow_definition(FlowDefinitionName=name)["FlowDefinitionStatus"], "Active".__eq__
    )
    loop, _ = _start(a2i, setup, flow_arn=arn)
    with pytest.raises(ClientError) as exc:
        sm.delete_flow_definition(FlowDefinitionName=name)
    assert _code(exc) == "ResourceInUse"
    a2i.stop_human_loop(HumanLoopName=loop)
    _wait(lambda: a2i.describe_human_loop(HumanLoopName=loop)["HumanLoopStatus"], "Stopped".__eq__)
    sm.delete_flow_definition(FlowDefinitionName=name)


# ---- sagemaker-a2i-runtime: human loops --------------------------------------------------------------
def test_repeated_start_is_a_conflict_and_keeps_one_loop(a2i, setup):
    name, _ = _start(a2i, setup)
    with pytest.raises(ClientError) as exc:
        _start(a2i, setup, name=name)
    assert _code(exc) == "ConflictException"
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 409
    # a retrying client finds its own loop by name
    desc = a2i.describe_human_loop(HumanLoopName=name)
    assert desc["HumanLoopStatus"] == "InProgress"
    assert desc["FlowDefinitionArn"] == setup["flow_arn"]
    assert "HumanLoopOutput" not in desc
    listed = a2i.list_human_loops(FlowDefinitionArn=setup["flow_arn"], MaxResults=100)["HumanLoopSummaries"]
    assert [s["HumanLoopName"] for s in listed].count(name) == 1
    with pytest.raises(ClientError) as exc:
        a2i.describe_human_loop(HumanLoopName=_name("missing"))
    assert _code(exc) == "ResourceNotFoundException"
    with pytest.raises(ClientError) as exc:
        a2i.start_human_loop(
            HumanLoopName=_name("loop"),
            FlowDefinitionArn=setup["flow_arn"],
            HumanLoopInput={"InputContent": "{not json"},
        )
    assert _code(exc) == "ValidationException"


def test_answer_through_api_completes_loop_and_writes_output(twin, a2i, s3, setup, review_token):
    name, content = _start(a2i, setup)
    pending = requests.get(
        f"{twin.url}/review/api/loops",
        params={"status": "InProgress"},
        headers={"X-Review-Token": review_token},
        timeout=30,
    ).json()
    mine = [p for p in pending if p["name"] == name]
    assert len(mine) == 1
    assert mine[0]["flowDefinitionArn"] == setup["flow_arn"]
    assert mine[0]["inputContent"] == content
    # a per-loop link: its token opens this loop only
    assert re.search(rf"/review/{name}\?t=[0-9a-f]{{32}}$", mine[0]["taskUrl"]), mine[0]["taskUrl"]

    answers = {
        "field__TOTAL": "12.50",
        "field__VENDOR_NAME": "ACME Store",
        "document_unreadable": {"on": False},
    }
    resp = _answer(twin, review_token, name, answers, worker="reviewer-7")
    assert resp.status_code == 200, resp.text
    assert resp.json()["status"] == "Completed"

    desc = a2i.describe_human_loop(HumanLoopName=name)
    assert desc["HumanLoopStatus"] == "Completed"
    uri = desc["HumanLoopOutput"]["OutputS3Uri"]
    created = desc["CreationTime"].astimezone(dt.UTC)
    expected = (
        f"s3://{setup['bucket']}/a2i-output/{setup['flow_name']}/"
        f"{created:%Y/%m/%d/%H/%M/%S}/{name}/output.json"
    )
    assert uri == expected
    out = _read_output(s3, uri)
    assert set(out) == OUTPUT_KEYS
    assert out["flowDefinitionArn"] == setup["flow_arn"]
    assert out["humanLoopName"] == name
    assert out["inputContent"] == content
    [answer] = out["humanAnswers"]
    assert set(answer) == ANSWER_KEYS
    assert answer["answerContent"] == answers
    assert answer["workerId"] == "reviewer-7"
    assert ISO_MS.match(answer["acceptanceTime"]) and ISO_MS.match(answer["submissionTime"])
    assert answer["acceptanceTime"] <= answer["submissionTime"]
    assert isinstance(answer["timeSpentInSeconds"], float | int) and answer["timeSpentInSeconds"] >= 0
    assert set(answer["workerMetadata"]["identityData"]) == {"identityProviderType", "issuer", "sub"}

    again = _answer(twin, review_token, name, answers, worker="reviewer-8")
    assert again.status_code == 409
    assert _answer(twin, review_token, _name("missing"), answers).status_code == 404


def test_stop_and_delete(twin, a2i, setup, review_token):
    name, _ = _start(a2i, setup)
    with pytest.raises(ClientError) as exc:
        a2i.delete_human_loop(HumanLoopName=name)
    assert _code(exc) == "ValidationException"
    a2i.stop_human_loop(HumanLoopName=name)
    assert a2i.describe_human_loop(HumanLoopName=name)["HumanLoopStatus"] in ("Stopping", "Stopped")
    _wait(lambda: a2i.describe_human_loop(HumanLoopName=name)["HumanLoopStatus"], "Stopped".__eq__)
    assert _answer(twin, review_token, name, {"field__TOTAL": "1"}).status_code == 409
    a2i.delete_human_loop(HumanLoopName=name)
    with pytest.raises(ClientError) as exc:
        a2i.describe_human_loop(HumanLoopName=name)
    assert _code(exc) == "ResourceNotFoundException"
    with pytest.raises(ClientError) as exc:
        a2i.stop_human_loop(HumanLoopName=name)
    assert _code(exc) == "ResourceNotFoundException"
    _start(a2i, setup, name=name)  # a deleted loop's name can be used again
    assert a2i.describe_human_loop(HumanLoopName=name)["HumanLoopStatus"] == "InProgress"


def test_list_human_loops_filters_and_pages(sm, a2i, setup):
    flow = _name("list-flow")
    flow_arn = _create_flow(sm, flow, setup["ui_arn"], f"s3://{setup['bucket']}/list")
    names = []
    for _ in range(3):
        names.append(_start(a2i, setup, flow_arn=flow_arn)[0])
        time.sleep(0.02)
    _start(a2i, setup)  # another flow's loop stays out of this listing
    asc = a2i.list_human_loops(FlowDefinitionArn=flow_arn, SortOrder="Ascending")["HumanLoopSummaries"]
    assert [s["HumanLoopName"] for s in asc] == names
    desc = a2i.list_human_loops(FlowDefinitionArn=flow_arn)["HumanLoopSummaries"]
    assert [s["HumanLoopName"] for s in desc] == names[::-1]
    first_time = asc[0]["CreationTime"]
    after = a2i.list_human_loops(
        FlowDefinitionArn=flow_arn, CreationTimeAfter=first_time, SortOrder="Ascending"
    )
    assert [s["HumanLoopName"] for s in after["HumanLoopSummaries"]] == names[1:]
    before = a2i.list_human_loops(FlowDefinitionArn=flow_arn, CreationTimeBefore=asc[2]["CreationTime"])
    assert {s["HumanLoopName"] for s in before["HumanLoopSummaries"]} == set(names[:2])
    page1 = a2i.list_human_loops(FlowDefinitionArn=flow_arn, SortOrder="Ascending", MaxResults=2)
    assert [s["HumanLoopName"] for s in page1["HumanLoopSummaries"]] == names[:2]
    page2 = a2i.list_human_loops(
        FlowDefinitionArn=flow_arn, SortOrder="Ascending", MaxResults=2, NextToken=page1["NextToken"]
    )
    assert [s["HumanLoopName"] for s in page2["HumanLoopSummaries"]] == names[2:]
    assert "NextToken" not in page2
    paginated = [
        s["HumanLoopName"]
        for page in a2i.get_paginator("list_human_loops").paginate(
            FlowDefinitionArn=flow_arn, SortOrder="Ascending", PaginationConfig={"PageSize": 1}
        )
        for s in page["HumanLoopSummaries"]
    ]
    assert paginated == names
    with pytest.raises(ClientError) as exc:
        a2i.list_human_loops(FlowDefinitionArn=flow_arn.replace(flow, "no-such-flow"))
    assert _code(exc) == "ResourceNotFoundException"


def test_loop_expires_after_task_availability_lifetime(sm, a2i, setup):
    flow_arn = _create_flow(
        sm,
        _name("short-flow"),
        setup["ui_arn"],
        f"s3://{setup['bucket']}/short",
        TaskAvailabilityLifetimeInSeconds=1,
    )
    name, _ = _start(a2i, setup, flow_arn=flow_arn)
    assert a2i.describe_human_loop(HumanLoopName=name)["HumanLoopStatus"] == "InProgress"
    desc = _wait(
        lambda: a2i.describe_human_loop(HumanLoopName=name), lambda d: d["HumanLoopStatus"] == "Failed"
    )
    assert desc["FailureCode"] == "TaskExpired"
    assert "TaskAvailabilityLifetimeInSeconds" in desc["FailureReason"]
    summary = a2i.list_human_loops(FlowDefinitionArn=flow_arn)["HumanLoopSummaries"][0]
    assert summary["HumanLoopStatus"] == "Failed" and summary["FailureReason"] == desc["FailureReason"]


# ---- the review page ---------------------------------------------------------------------------------
def test_review_page_needs_the_token(twin, a2i, setup, review_token):
    name, _ = _start(a2i, setup)
    assert requests.get(f"{twin.url}/review/", timeout=30).status_code == 403
    assert requests.get(f"{twin.url}/review/", params={"token": "wrong"}, timeout=30).status_code == 403
    assert requests.get(f"{twin.url}/review/{name}", timeout=30).status_code == 403
    assert requests.get(f"{twin.url}/review/api/loops", timeout=30).status_code == 403
    assert (
        requests.post(f"{twin.url}/review/{name}/submit", data={"field__TOTAL": "1"}, timeout=30).status_code
        == 403
    )
    with requests.Session() as browser:
        index = browser.get(f"{twin.url}/review/", params={"token": review_token}, timeout=30)
        assert index.status_code == 200
        assert f"/review/{name}" in index.text
        # the token now travels in a cookie
        assert browser.get(f"{twin.url}/review", timeout=30).status_code == 200
        assert browser.get(f"{twin.url}/review/{name}", timeout=30).status_code == 200
    assert a2i.describe_human_loop(HumanLoopName=name)["HumanLoopStatus"] == "InProgress"


def test_review_page_renders_form_and_image(twin, a2i, setup, review_token):
    name, content = _start(a2i, setup)
    with requests.Session() as browser:
        page = browser.get(f"{twin.url}/review/{name}", params={"token": review_token}, timeout=30)
        assert page.status_code == 200
        text = page.text
        assert "<crowd-" not in text  # every crowd element became plain HTML
        assert f'<form class="crowd-form" method="post" action="/review/{name}/submit">' in text
        assert re.search(r'<input type="text" name="field__TOTAL" value="12.00">', text)
        # autoescaped like Ground Truth's Liquid
        assert 'name="field__VENDOR_NAME" value="ACME &lt;Store&gt; &amp; Co"' in text
        assert re.search(r'<input type="checkbox" name="document_unreadable" value="on">', text)
        assert 'type="submit"' in text
        assert "61.5" in text  # the confidence is shown
        src = re.search(r'<img id="document-image" src="([^"]+)"', text).group(1).replace("&amp;", "&")
        assert "X-Amz-Credential=" in src and "X-Amz-Expires=300" in src
        image = requests.get(src, timeout=30)  # no cookie, no token: the presigned URL alone
        assert image.status_code == 200
        assert image.content == setup["image"]

        # a plain HTML form post (what a browser sends) completes the loop
        form = {
            **hidden_fields(text),
            "__worker": "Ada Reviewer",
            "field__TOTAL": "12.50",
            "field__VENDOR_NAME": "ACME Store",
        }
        resp = browser.post(
            f"{twin.url}/review/{name}/submit",
            data=form,
            headers={"Origin": twin.url},
            allow_redirects=False,
            timeout=30,
        )
        assert resp.status_code == 303, resp.text
        assert browser.get(f"{twin.url}/review/{name}", timeout=30).text.count("Completed") >= 1
    desc = a2i.describe_human_loop(HumanLoopName=name)
    assert desc["HumanLoopStatus"] == "Completed"
    out = _read_output(twin.client("s3"), desc["HumanLoopOutput"]["OutputS3Uri"])
    assert out["inputContent"] == content
    assert out["humanAnswers"][0]["answerContent"] == {
        "field__TOTAL": "12.50",
        "field__VENDOR_NAME": "ACME Store",
        "document_unreadable": {"on": False},
    }
    assert out["humanAnswers"][0]["workerId"] == "Ada Reviewer"  # the name typed on the page


def test_review_submit_refuses_cross_origin_posts_and_forged_forms(twin, a2i, setup, review_token):
    """CSRF: the reviewer's cookie alone does not make an answer. A post from another origin (even a
    same-site page on another port, which the Lax cookie reaches), a post without the form's token,
    and a no-cors text/plain post to the JSON API are all refused; the loop stays in progress."""
    name, _ = _start(a2i, setup)
    with requests.Session() as browser:
        page = browser.get(f"{twin.url}/review/{name}", params={"token": review_token}, timeout=30)
        fields = hidden_fields(page.text)
        assert set(fields) == {"__t", "__csrf", "__opened"}
        form = {**fields, "__worker": "mallory", "field__TOTAL": "0.01"}
        submit = f"{twin.url}/review/{name}/submit"
        evil = twin.url.rsplit(":", 1)[0] + ":8081"  # same site, other origin
        for headers, data in (
            ({"Origin": evil}, form),
            ({"Referer": f"{evil}/attack.html"}, form),
            ({}, form),  # neither Origin nor Referer
            ({"Origin": twin.url}, {k: v for k, v in form.items() if k != "__csrf"}),
            ({"Origin": twin.url}, {**form, "__csrf": "0" * 32}),
        ):
            resp = browser.post(submit, data=data, headers=headers, allow_redirects=False, timeout=30)
            assert resp.status_code == 403, (headers, resp.status_code)
        # the JSON API does not take the cookie, nor a body a no-cors fetch can send
        api = f"{twin.url}/review/api/loops/{name}/answer"
        body = json.dumps({"answers": {"field__TOTAL": "0.01"}, "workerId": "mallory"})
        assert (
            browser.post(api, data=body, headers={"Content-Type": "text/plain"}, timeout=30).status_code
            == 403
        )
        plain = browser.post(
            api, data=body, headers={"Content-Type": "text/plain", "X-Review-Token": review_token}, timeout=30
        )
        assert plain.status_code == 415
    assert a2i.describe_human_loop(HumanLoopName=name)["HumanLoopStatus"] == "InProgress"
    a2i.stop_human_loop(HumanLoopName=name)


def test_a_loop_link_opens_its_own_loop_only(twin, a2i, setup, review_token):
    """Per-loop links: /review/<loop>?t=<loop token> opens and answers that loop without the review
    token; the same token opens no other loop, nor the list; the worker is the name on the page."""
    mine, _ = _start(a2i, setup)
    other, _ = _start(a2i, setup)
    url = requests.get(
        f"{twin.url}/review/api/loops/{mine}", headers={"X-Review-Token": review_token}, timeout=30
    ).json()["taskUrl"]
    loop_token = url.rsplit("?t=", 1)[1]
    with requests.Session() as reviewer:
        page = reviewer.get(url, timeout=30)
        assert page.status_code == 200 and f"data-human-loop='{mine}'" in page.text
        assert (
            reviewer.get(f"{twin.url}/review/{other}", params={"t": loop_token}, timeout=30).status_code
            == 403
        )
        assert reviewer.get(f"{twin.url}/review/", params={"t": loop_token}, timeout=30).status_code == 403
        form = {**hidden_fields(page.text), "field__TOTAL": "12.75"}
        # no name: the form comes back asking for it
        again = reviewer.post(
            f"{twin.url}/review/{mine}/submit", data=form, headers={"Origin": twin.url}, timeout=30
        )
        assert again.status_code == 400 and "Your name is required" in again.text
        # the other loop's submit does not take this loop's tokens
        forged = reviewer.post(
            f"{twin.url}/review/{other}/submit",
            data={**form, "__worker": "grace"},
            headers={"Origin": twin.url},
            allow_redirects=False,
            timeout=30,
        )
        assert forged.status_code == 403
        done = reviewer.post(
            f"{twin.url}/review/{mine}/submit",
            data={**form, "__worker": "grace"},
            headers={"Origin": twin.url},
            allow_redirects=False,
            timeout=30,
        )
        assert done.status_code == 303, done.text
    desc = a2i.describe_human_loop(HumanLoopName=mine)
    assert desc["HumanLoopStatus"] == "Completed"
    out = _read_output(twin.client("s3"), desc["HumanLoopOutput"]["OutputS3Uri"])
    assert [a["workerId"] for a in out["humanAnswers"]] == ["grace"]
    assert a2i.describe_human_loop(HumanLoopName=other)["HumanLoopStatus"] == "InProgress"
    a2i.stop_human_loop(HumanLoopName=other)


def test_task_count_two_needs_two_workers(twin, sm, a2i, s3, setup, review_token):
    flow_arn = _create_flow(
        sm, _name("two-flow"), setup["ui_arn"], f"s3://{setup['bucket']}/two", TaskCount=2
    )
    name, _ = _start(a2i, setup, flow_arn=flow_arn)
    assert _answer(twin, review_token, name, {"field__TOTAL": "12.50"}, worker="w-one").status_code == 200
    assert a2i.describe_human_loop(HumanLoopName=name)["HumanLoopStatus"] == "InProgress"
    assert _answer(twin, review_token, name, {"field__TOTAL": "12.50"}, worker="w-one").status_code == 409
    assert _answer(twin, review_token, name, {"field__TOTAL": "12.05"}, worker="w-two").status_code == 200
    desc = a2i.describe_human_loop(HumanLoopName=name)
    assert desc["HumanLoopStatus"] == "Completed"
    out = _read_output(s3, desc["HumanLoopOutput"]["OutputS3Uri"])
    assert [(a["workerId"], a["answerContent"]["field__TOTAL"]) for a in out["humanAnswers"]] == [
        ("w-one", "12.50"),
        ("w-two", "12.05"),
    ]


# ---- the task list: what each task is about ------------------------------------------------------------
def hidden_fields(page: str) -> dict[str, str]:
    """The hidden inputs the review page puts in its task form (loop token, form token, opened at)."""
    return dict(re.findall(r"<input type='hidden' name='(__\w+)' value='([^']*)'>", page))


def _rows(html_text: str) -> dict[str, str]:
    """Pending-table rows by human loop name (the row's HTML)."""
    table = html_text.split("<table id='pending'>", 1)[1].split("</table>", 1)[0]
    return dict(re.findall(r"<tr data-human-loop='([^']+)'>(.*?)</tr>", table, flags=re.S))


def _text(fragment: str) -> str:
    import html

    return html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", fragment))).strip()


def test_task_list_names_the_document_and_the_fields_to_check(twin, sm, a2i, setup, review_token):
    flow_name = _name("list-flow")
    flow_arn = _create_flow(sm, flow_name, setup["ui_arn"], f"s3://{setup['bucket']}/list")
    named = {
        **_input(setup),
        "document_name": "invoice-march.pdf",
        "fields": [
            {"name": "TOTAL", "value": "12", "confidence": 67.5, "reason": "confidence 67.5 % < 80 %"},
            {
                "name": "INVOICE_RECEIPT_DATE",
                "value": "",
                "confidence": 0.0,
                "reason": "required field missing",
            },
            {"name": "TAX", "value": "1", "confidence": 55.4, "reason": "low"},
        ],
    }
    from_uri = {**_input(setup), "document_s3_uri": f"s3://{setup['bucket']}/docs/scan%20two.tif"}
    bare = {"taskObject": "no document here", "question": "Is this a cat?"}
    loops = {}
    for key, content in (("named", named), ("from_uri", from_uri), ("bare", bare)):
        loops[key], _ = _start(a2i, setup, flow_arn=flow_arn, content=content)
    other, _ = _start(a2i, setup)  # another flow definition's task

    with requests.Session() as browser:
        page = browser.get(
            f"{twin.url}/review/", params={"token": review_token, "flow": flow_name}, timeout=30
        )
        assert page.status_code == 200
        rows = _rows(page.text)
        assert set(rows) == set(loops.values())  # ?flow= lists that flow's tasks only
        assert other in _rows(browser.get(f"{twin.url}/review/", timeout=30).text)

    title = "Check the extracted receipt fields"  # the flow's TaskTitle
    row = rows[loops["named"]]
    link = re.search(r"<a class='task-link' href='([^']+)'>([^<]+)</a>", row)
    assert re.fullmatch(rf"/review/{loops['named']}\?t=[0-9a-f]{{32}}", link.group(1)), link.group(1)
    assert link.group(2) == "invoice-march.pdf"
    text = _text(row)
    assert title in text and loops["named"] in text
    checks = {
        _text(item).split(" · ", 1)[0]: _text(item)
        for item in re.findall(r"<li data-field='[^']+'>(.*?)</li>", row, flags=re.S)
    }
    assert list(checks) == [f["name"] for f in named["fields"]]
    # one line per field: the reason as given when it states the confidence, never twice
    assert checks["TOTAL"] == "TOTAL · confidence 67.5 % < 80 %"
    assert checks["INVOICE_RECEIPT_DATE"] == "INVOICE_RECEIPT_DATE · required field missing"
    # a reason without the number: the confidence beside it
    assert checks["TAX"] == "TAX · confidence 55.4 % (low)"

    # no document_name: the file name of document_s3_uri
    assert re.search(r"<a class='task-link'[^>]*>scan%20two.tif</a>", rows[loops["from_uri"]])
    # an input without any of it: the task title and the loop name
    bare_row = rows[loops["bare"]]
    assert re.search(rf"<a class='task-link' href='/review/{loops['bare']}\?t=\w+'>{title}</a>", bare_row)
    assert loops["bare"] in _text(bare_row) and "<li" not in bare_row
    for name in [*loops.values(), other]:  # the session twin is shared: leave no task pending
        a2i.stop_human_loop(HumanLoopName=name)


def test_a_loop_page_url_asks_for_the_token_and_comes_back(twin, a2i, setup, review_token):
    name, _ = _start(a2i, setup)
    with requests.Session() as browser:
        denied = browser.get(f"{twin.url}/review/{name}", timeout=30)
        assert denied.status_code == 403
        form = re.search(r"<form id='token-form' method='get' action='([^']+)'>", denied.text)
        assert form and form.group(1) == f"/review/{name}"
        # what the browser sends when the reviewer types the token into the form
        page = browser.get(f"{twin.url}{form.group(1)}", params={"token": review_token}, timeout=30)
        assert page.status_code == 200 and f"data-human-loop='{name}'" in page.text
        assert browser.get(f"{twin.url}/review/{name}", timeout=30).status_code == 200  # cookie now
        # the list keeps its filter through the token form
        denied_list = requests.get(f"{twin.url}/review/", params={"flow": setup["flow_name"]}, timeout=30)
        assert f"name='flow' value='{setup['flow_name']}'" in denied_list.text


def test_describe_workteam_gives_the_worker_portal_subdomain(sm):
    team = sm.describe_workteam(WorkteamName="reviewers")["Workteam"]
    assert team["WorkteamName"] == "reviewers" and team["WorkteamArn"].endswith(
        ":workteam/private-crowd/reviewers"
    )
    assert re.fullmatch(r"[0-9a-f]{12}\.labeling\.us-east-1\.sagemaker\.aws", team["SubDomain"])
    assert sm.describe_workteam(WorkteamName="reviewers")["Workteam"]["SubDomain"] == team["SubDomain"]
    assert sm.describe_workteam(WorkteamName="others")["Workteam"]["SubDomain"] != team["SubDomain"]
