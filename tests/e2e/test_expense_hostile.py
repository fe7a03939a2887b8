"""expense_documents end to end on the twin (real OCR) with hostile input and a failed run
(issue 8): keys with ``#``, spaces, unicode and ``+``; a decompression-bomb PNG and a
password-protected PDF; a run that takes nothing new leaves ``latest/`` alone; a batch that fails
on every try leaves its documents to the next run, which finishes them; a confident total that
disagrees with its subtotal and tax reaches a reviewer."""

from __future__ import annotations

import json
import uuid

import pytest

from tests.e2e.test_expense_documents import (
    DAG_ID,
    SAMPLES,
    Reviewer,
    _conf,
    _csv_rows,
    _json_objects,
    _money,
    _read,
    _truth,
)
from tests.unit.test_expense_hardening import bomb_png, encrypted_pdf

pytestmark = pytest.mark.e2e

#: no human review: these runs are about where documents end up
NO_REVIEW = {"confidence_threshold": 0, "required_fields": [], "consistency_checks": []}


def _asset_events(run_id: str) -> dict[str, dict]:
    from airflow import settings
    from airflow.models.asset import AssetEvent, AssetModel
    from sqlalchemy import select

    with settings.Session() as session:
        rows = session.execute(
            select(AssetModel.name, AssetEvent.extra)
            .join(AssetModel, AssetModel.id == AssetEvent.asset_id)
            .where(AssetEvent.source_run_id == run_id)
        ).all()
    return {name: extra for name, extra in rows}


def test_odd_keys_and_hostile_documents_end_where_they_should(dag_runner, airflow_twin):
    s3 = airflow_twin.client("s3")
    bucket = f"expense-hostile-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=bucket)
    good = {
        "inbox/receipt #2.jpg": "receipt_grocery.jpg",
        "inbox/dir with space/ü invoice+1 (copy).png": "invoice_northwind.png",
    }
    for key, sample in good.items():
        s3.put_object(Bucket=bucket, Key=key, Body=(SAMPLES / sample).read_bytes())
    s3.put_object(Bucket=bucket, Key="inbox/bomb.png", Body=bomb_png())
    s3.put_object(Bucket=bucket, Key="inbox/locked #1.pdf", Body=encrypted_pdf())
    conf = _conf(bucket, stage_samples=False, **NO_REVIEW)

    first = dag_runner(DAG_ID, conf)
    assert first.state == "success", first.task_states
    summary = first.xcom("finalize")
    assert (summary["received"], summary["extracted"], summary["quarantined"]) == (4, 2, 2), summary
    assert summary["quarantine_reasons"] == {"DocumentTooLarge": 1, "EncryptedDocument": 1}
    reasons = {r["source_uri"]: r for r in _json_objects(s3, bucket, "quarantine/", ".reason.json").values()}
    locked = reasons[f"s3://{bucket}/inbox/locked #1.pdf"]
    assert "password-protected" in locked["reason"] and "corrupt" not in locked["reason"]
    assert "decompression bomb" in reasons[f"s3://{bucket}/inbox/bomb.png"]["reason"]
    # the odd keys were read whole (the hook cut 'receipt #2.jpg' at the '#': NoSuchKey)
    rows = {r["source_uri"]: r for r in _csv_rows(s3, f"s3://{bucket}/output/latest/documents.csv")}
    assert set(rows) == {f"s3://{bucket}/{key}" for key in good}
    for key, sample in good.items():
        truth = _truth()[sample]["documents"][0]
        assert _money(rows[f"s3://{bucket}/{key}"]["TOTAL"]) == _money(truth["total"]), key
    events = _asset_events(first.run_id)
    assert events["expense_documents_csv"]["uri"] == f"s3://{bucket}/output/latest/documents.csv"
    assert events["expense_documents_csv"]["run_uri"] == summary["outputs"]["documents.csv"]

    # a run that takes nothing new leaves latest/ and the Assets alone
    latest = {
        name: s3.head_object(Bucket=bucket, Key=f"output/latest/{name}")
        for name in ("documents.csv", "line_items.csv", "summary.json")
    }
    second = dag_runner(DAG_ID, conf)
    assert second.state == "success", second.task_states
    assert second.xcom("finalize")["received"] == 0
    assert second.task_states["publish_latest"] == "skipped"
    for name, head in latest.items():
        again = s3.head_object(Bucket=bucket, Key=f"output/latest/{name}")
        assert (again["ETag"], again["LastModified"]) == (head["ETag"], head["LastModified"]), name
    assert json.loads(_read(s3, f"s3://{bucket}/output/latest/summary.json"))["run_id"] == first.run_id
    assert _asset_events(second.run_id) == {}


def test_a_batch_that_fails_for_good_is_finished_by_the_next_run(dag_runner, airflow_twin):
    """Run A's extract_batch fails on its every try (S3 answers every GetObject with a 5xx; the
    task's retries are set to 0 so that 'every try' is one): the run fails, holding the claims of
    its documents, none processed. Run B takes the claims over and finishes every document, and
    the counts reconcile."""
    twin = airflow_twin
    s3 = twin.client("s3")
    bucket = f"expense-killed-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=bucket)
    names = ["receipt_grocery.jpg", "invoice_northwind.png", "receipt_cafe.tif"]
    for name in names:
        s3.put_object(Bucket=bucket, Key=f"inbox/{name}", Body=(SAMPLES / name).read_bytes())
    conf = _conf(bucket, stage_samples=False, batch_size=2, **NO_REVIEW)

    def no_retries(dag):
        dag.get_task("extract_batch").retries = 0

    twin.set_faults("s3:GetObject:error=1.0")
    try:
        a = dag_runner(DAG_ID, conf, adjust=no_retries)
    finally:
        twin.control("faults", "DELETE")
    assert a.state == "failed", a.task_states
    assert a.task_states["extract_batch"] == "failed"
    claims = _json_objects(s3, bucket, "state/claims/")
    assert len(claims) == 3 and {c["run_id"] for c in claims.values()} == {a.run_id}
    assert s3.list_objects_v2(Bucket=bucket, Prefix="state/processed/")["KeyCount"] == 0

    b = dag_runner(DAG_ID, conf)
    assert b.state == "success", b.task_states
    summary = b.xcom("finalize")
    assert summary["received"] == 3 == summary["extracted"] + summary["quarantined"], summary
    assert summary["extracted"] == 3
    assert summary["taken_over_from_ended_runs"] == {a.run_id: 3}
    markers = _json_objects(s3, bucket, "state/processed/")
    assert sorted(m["source_uri"] for m in markers.values()) == sorted(
        f"s3://{bucket}/inbox/{n}" for n in names
    )
    assert {m["run_id"] for m in markers.values()} == {b.run_id}
    claims = _json_objects(s3, bucket, "state/claims/")
    assert {(c["run_id"], c["taken_over_from"]) for c in claims.values()} == {(b.run_id, a.run_id)}


def test_a_confident_total_that_disagrees_reaches_a_reviewer(dag_runner, airflow_twin):
    """The faint receipt's TOTAL is misread; with the confidence threshold under its confidence
    the confidence rule lets it through, but it is not SUBTOTAL + TAX: the document goes to review
    and the reviewer's total lands in the CSV."""
    twin = airflow_twin
    s3 = twin.client("s3")
    bucket = f"expense-disagree-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=bucket)
    s3.put_object(
        Bucket=bucket,
        Key="inbox/receipt_faint_total.jpg",
        Body=(SAMPLES / "receipt_faint_total.jpg").read_bytes(),
    )
    reviewer = Reviewer(twin, bucket)
    reviewer.start()
    try:
        result = dag_runner(
            DAG_ID, _conf(bucket, stage_samples=False, confidence_threshold=10, required_fields=[])
        )
    finally:
        reviewer.stop.set()
        reviewer.join(10)
    assert result.state == "success", result.task_states
    assert not reviewer.errors, reviewer.errors
    (answered,) = reviewer.answered.values()
    fields = {f["name"]: f for f in answered["input"]["fields"]}
    assert fields["TOTAL"]["confidence"] > 10 and "is not SUBTOTAL" in fields["TOTAL"]["reason"]
    truth = _truth()["receipt_faint_total.jpg"]["documents"][0]
    assert _money(fields["TOTAL"]["value"]) != _money(truth["total"])  # the machine was wrong
    (row,) = _csv_rows(s3, f"s3://{bucket}/output/latest/documents.csv")
    assert _money(row["TOTAL"]) == _money(truth["total"]) and row["human_changed"] == "TOTAL"


def test_a_bad_bucket_variable_fails_at_once_without_retries(dag_runner, airflow_twin, monkeypatch):
    """The form checks the Params; a Variable bypasses it. resolve_config checks the Variable's
    bucket name with S3's rules and fails for good (AirflowFailException): one try, no retry."""
    from airflow import settings
    from airflow.models.taskinstance import TaskInstance
    from sqlalchemy import select

    monkeypatch.setenv("AIRFLOW_VAR_ML_BUCKET", "Bad_Bucket name")
    result = dag_runner(DAG_ID, {"flow_definition_name": f"expense-review-{uuid.uuid4().hex[:8]}"})
    assert result.state == "failed" and result.task_states["resolve_config"] == "failed", result.task_states
    with settings.Session() as session:
        ti = session.scalars(
            select(TaskInstance).where(
                TaskInstance.dag_id == DAG_ID,
                TaskInstance.run_id == result.run_id,
                TaskInstance.task_id == "resolve_config",
            )
        ).one()
    assert ti.try_number == 1 and ti.max_tries == 3  # it could have retried 3 times; it did not
