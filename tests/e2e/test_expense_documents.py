"""The expense_documents DAG end to end on the twin: real OCR (Textract twin), real A2I loops
answered through the twin's review API while the run waits deferred, outputs in S3.

One module-scoped run over the shipped samples (include/data/receipts: four single-page
documents, a two-page PDF, an empty and a corrupt file) feeds most tests; a second run checks
exactly-once; a throttled run over copies of the samples checks that nothing is lost or doubled.
"""

from __future__ import annotations

import csv
import io
import json
import threading
import urllib.parse
import urllib.request
import uuid
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "include" / "data" / "receipts"
DAG_ID = "expense_documents"
#: ground-truth key of each summary field
TRUTH_KEYS = {
    "VENDOR_NAME": "vendor",
    "VENDOR_ADDRESS": "address",
    "INVOICE_RECEIPT_DATE": "date",
    "INVOICE_RECEIPT_ID": "invoice_id",
    "TOTAL": "total",
    "SUBTOTAL": "subtotal",
    "TAX": "tax",
    "RECEIVER_ADDRESS": "receiver_address",
}


def _truth() -> dict:
    return json.loads((SAMPLES / "ground_truth.json").read_text())


def _money(text: str) -> str:
    return f"{float(text.replace(',', '')):.2f}"


def _conf(bucket: str, **extra) -> dict:
    conf = {
        "input_prefix": f"s3://{bucket}/inbox/",
        "output_prefix": f"s3://{bucket}/output/",
        "quarantine_prefix": f"s3://{bucket}/quarantine/",
        "state_prefix": f"s3://{bucket}/state/",
        "stage_samples": True,
        "batch_size": 3,
        "textract_tps": 40,
        "a2i_tps": 20,
        "human_task_ui_name": "expense-review-ui",
        "flow_definition_name": f"expense-review-{bucket[-8:]}",
    }
    conf.update(extra)
    return conf


def _read(s3, uri: str) -> bytes:
    bucket, key = uri[len("s3://") :].split("/", 1)
    return s3.get_object(Bucket=bucket, Key=key)["Body"].read()


def _csv_rows(s3, uri: str) -> list[dict]:
    return list(csv.DictReader(io.StringIO(_read(s3, uri).decode())))


class Reviewer(threading.Thread):
    """Answers, through the twin's review HTTP API, every pending loop of a bucket's documents:
    each field under review gets its ground-truth value (what a careful human would type)."""

    def __init__(self, twin, bucket: str):
        super().__init__(daemon=True)
        self.base = twin.url
        self.token = urllib.parse.parse_qs(urllib.parse.urlparse(twin.review_url).query)["token"][0]
        self.bucket = bucket
        self.truth = _truth()
        self.answered: dict[str, dict] = {}  # loop name -> {"input", "answers"}
        self.errors: list[str] = []
        self.stop = threading.Event()

    def _call(self, path: str, body: dict | None = None):
        req = urllib.request.Request(
            self.base + path,
            data=json.dumps(body).encode() if body is not None else None,
            method="POST" if body is not None else "GET",
            headers={"X-Review-Token": self.token, "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=30) as resp:
            return json.loads(resp.read())

    def run(self):
        while not self.stop.is_set():
            try:
                for loop in self._call("/review/api/loops?status=InProgress"):
                    task = loop["inputContent"]
                    # the session twin is shared: other tests' loops may have other inputs
                    if not isinstance(task, dict) or not str(task.get("document_s3_uri", "")).startswith(
                        f"s3://{self.bucket}/"
                    ):
                        continue
                    name = task["document_s3_uri"].rsplit("/", 1)[-1]
                    docs = self.truth[name]["documents"]
                    answers: dict = {"document_unreadable": {"on": False}}
                    for field in task["fields"]:
                        base, _, pos = field["name"].rpartition("_")
                        base, position = (base, int(pos)) if pos.isdigit() else (field["name"], 1)
                        truth = docs[position - 1].get(TRUTH_KEYS.get(base, ""), "")
                        answers[f"field__{field['name']}"] = truth or field["value"]
                    self._call(
                        f"/review/api/loops/{loop['name']}/answer", {"answers": answers, "workerId": "e2e"}
                    )
                    self.answered[loop["name"]] = {"input": task, "answers": answers}
            except Exception as exc:  # keep polling; the test reports what went wrong
                self.errors.append(repr(exc))
            self.stop.wait(0.5)


@pytest.fixture(scope="module")
def sample_run(dag_runner, airflow_twin):
    """One run over the shipped samples, the loops answered by a Reviewer while it waits."""
    twin = airflow_twin
    bucket = f"expense-e2e-{uuid.uuid4().hex[:8]}"
    reviewer = Reviewer(twin, bucket)
    reviewer.start()
    try:
        result = dag_runner(DAG_ID, _conf(bucket))
    finally:
        reviewer.stop.set()
        reviewer.join(10)
    # every test reads this run's outputs: a failed run fails them all, naming the failed tasks
    assert result.state == "success", f"{DAG_ID} run {result.state}: {result.task_states}"
    s3 = twin.client("s3")
    run_key = next(
        p["Prefix"].rstrip("/").rsplit("/", 1)[-1]
        for p in s3.list_objects_v2(Bucket=bucket, Prefix="output/runs/", Delimiter="/")["CommonPrefixes"]
    )
    summary = json.loads(_read(s3, f"s3://{bucket}/output/runs/{run_key}/summary.json"))
    return {
        "result": result,
        "bucket": bucket,
        "reviewer": reviewer,
        "s3": s3,
        "summary": summary,
        "twin": twin,
    }


def _sample_files() -> list[Path]:
    return [p for p in SAMPLES.iterdir() if p.suffix.lower() in (".jpg", ".png", ".tif", ".pdf")]


def _json_objects(s3, bucket: str, prefix: str, suffix: str = ".json") -> dict[str, dict]:
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    keys = [o["Key"] for page in pages for o in page.get("Contents", []) if o["Key"].endswith(suffix)]
    return {key: json.loads(_read(s3, f"s3://{bucket}/{key}")) for key in keys}


def test_run_succeeds_and_counts_reconcile(sample_run):
    """The summary's counts against what the run left in S3 and A2I, counted object by object:
    processed markers, quarantine records, per-document outputs, human loops."""
    result, summary, s3, bucket = (
        sample_run["result"],
        sample_run["summary"],
        sample_run["s3"],
        sample_run["bucket"],
    )
    assert result.state == "success", result.task_states
    markers = [
        m for m in _json_objects(s3, bucket, "state/processed/").values() if m["run_id"] == result.run_id
    ]
    statuses = Counter(m["status"] for m in markers)
    reasons = _json_objects(s3, bucket, "quarantine/", ".reason.json")
    outputs = _json_objects(s3, bucket, "output/documents/", "/expense.json")
    loops = (
        sample_run["twin"]
        .client("sagemaker-a2i-runtime")
        .list_human_loops(FlowDefinitionArn=result.xcom("flow_definition"), MaxResults=100)[
            "HumanLoopSummaries"
        ]
    )
    files = _sample_files()
    assert summary["received"] == len(markers) == len(files)
    assert {m["source_uri"].rsplit("/", 1)[-1] for m in markers} == {p.name for p in files}
    assert summary["quarantined"] == len(reasons) == statuses["quarantined"] == 2  # empty.jpg, corrupt.jpg
    assert summary["extracted"] == len(outputs) == len(files) - 2
    assert (
        summary["reviewed"] == statuses["reviewed"] == len(loops) == len(sample_run["reviewer"].answered) > 0
    )
    assert summary["auto_approved"] == statuses["auto_approved"]
    assert {o["status"] for o in outputs.values()} <= {"reviewed", "auto_approved"}
    assert Counter(o["status"] for o in outputs.values()) == Counter(
        {k: v for k, v in statuses.items() if k != "quarantined"}
    )
    rows = _csv_rows(s3, f"s3://{bucket}/output/latest/documents.csv")
    assert summary["invoices"] == len(rows) == sum(len(v.get("documents", [])) for v in _truth().values())
    assert summary["staged"]["uploaded"] == len(files) and summary["claimed_by_other_runs"] == {}
    assert "nothing_taken" not in summary


def test_clean_samples_match_ground_truth(sample_run):
    s3, bucket = sample_run["s3"], sample_run["bucket"]
    rows = _csv_rows(s3, f"s3://{bucket}/output/latest/documents.csv")
    by_doc = {(r["source_uri"].rsplit("/", 1)[-1], int(r["expense_index"])): r for r in rows}
    for name, truth in _truth().items():
        for position, doc in enumerate(truth.get("documents", []), start=1):
            row = by_doc[(name, position)]
            assert row["VENDOR_NAME"] == doc["vendor"], (name, row)
            assert row["INVOICE_RECEIPT_DATE"] == doc["date"], (name, row)
            assert _money(row["TOTAL"]) == _money(doc["total"]), (name, row)
            assert row["status"] in ("reviewed", "auto_approved")
    items = _csv_rows(s3, f"s3://{bucket}/output/latest/line_items.csv")
    grocery = [i for i in items if i["source_uri"].endswith("receipt_grocery.jpg")]
    truth_items = _truth()["receipt_grocery.jpg"]["documents"][0]["items"]
    assert [_money(i["PRICE"]) for i in grocery] == [t["price"] for t in truth_items]


def test_every_output_is_written(sample_run):
    s3, bucket = sample_run["s3"], sample_run["bucket"]
    rows = _csv_rows(s3, f"s3://{bucket}/output/latest/documents.csv")
    for row in {r["document_id"]: r for r in rows}.values():
        folder = row["result_uri"].rsplit("/", 1)[0]
        merged = json.loads(_read(s3, row["result_uri"]))
        assert merged["document_id"] == row["document_id"]
        raw = json.loads(_read(s3, f"{folder}/textract.json"))
        assert raw["ExpenseDocuments"], folder
        summary_csv = _read(s3, f"{folder}/summary.csv").decode()
        grid = _read(s3, f"{folder}/grid.txt").decode()
        assert "(TOTAL)" in summary_csv and "(TOTAL)" in grid and "╒" in grid
        assert row["TOTAL"] in summary_csv  # the final (possibly human-corrected) value
    run_prefix = rows[0]["result_uri"].split("/output/")[0] + "/output/runs/"
    listed = s3.list_objects_v2(Bucket=bucket, Prefix="output/runs/")["Contents"]
    names = {o["Key"].rsplit("/", 1)[-1] for o in listed}
    assert {"documents.csv", "line_items.csv", "summary.json"} <= names, run_prefix


def test_low_confidence_fields_go_to_review_and_answers_land_in_the_csv(sample_run):
    s3, bucket, reviewer = sample_run["s3"], sample_run["bucket"], sample_run["reviewer"]
    assert not reviewer.errors, reviewer.errors
    rows = _csv_rows(s3, f"s3://{bucket}/output/latest/documents.csv")
    by_source = {}
    for row in rows:
        by_source.setdefault(row["source_uri"].rsplit("/", 1)[-1], []).append(row)
    # the machine result of every document: each field under the threshold was sent to review
    for name, doc_rows in by_source.items():
        merged = json.loads(_read(s3, doc_rows[0]["result_uri"]))
        reviewed = {f["name"] for f in merged["review_reasons"]}
        for key, field in merged["fields"].items():
            machine_conf = field.get("machine_confidence", field["confidence"])
            if machine_conf < 80:
                assert key in reviewed, (name, key, field)
    # the faint TOTAL is read with low confidence and goes to a human
    faint = next(
        a for a in reviewer.answered.values() if a["input"]["document_s3_uri"].endswith("faint_total.jpg")
    )
    assert "TOTAL" in {f["name"] for f in faint["input"]["fields"]}
    # what the humans typed is in the final CSV, and the changes are recorded
    changed = 0
    for answer in reviewer.answered.values():
        name = answer["input"]["document_s3_uri"].rsplit("/", 1)[-1]
        row = by_source[name][0]
        assert row["reviewed"] == "true" and row["status"] == "reviewed"
        for field in answer["input"]["fields"]:
            if "_" in field["name"] and field["name"].rsplit("_", 1)[1].isdigit():
                continue  # second invoice of a PDF: checked through its own row below
            typed = answer["answers"][f"field__{field['name']}"]
            assert row[field["name"]] == typed, (name, field["name"], row)
            if typed != field["value"]:
                changed += 1
                assert field["name"] in row["human_changed"].split(";")
    assert changed > 0


def test_corrupt_and_empty_documents_are_quarantined_with_reasons(sample_run):
    s3, bucket = sample_run["s3"], sample_run["bucket"]
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix="quarantine/")["Contents"]]
    reasons = [json.loads(_read(s3, f"s3://{bucket}/{k}")) for k in keys if k.endswith(".reason.json")]
    by_name = {r["source_uri"].rsplit("/", 1)[-1]: r for r in reasons}
    assert set(by_name) == {"empty.jpg", "corrupt.jpg"}
    assert by_name["empty.jpg"]["code"] == "EmptyDocument" and "empty" in by_name["empty.jpg"]["reason"]
    assert "corrupt" in by_name["corrupt.jpg"]["reason"]
    for reason in reasons:  # the object itself sits beside its reason
        assert reason["quarantine_uri"][len(f"s3://{bucket}/") :] in keys
    assert sample_run["summary"]["quarantine_reasons"] == {"EmptyDocument": 1, "CorruptDocument": 1}


def test_a_retried_start_loop_task_creates_no_second_loop(sample_run):
    """What a retry of start_review_loops runs (the same function, run id and batch) attaches to
    the loops of the first try: A2I holds no extra loop and nothing new is created."""
    from aws_ml_provider.utils.expense_state import start_loops_for_batch

    s3, bucket, result, twin = (
        sample_run["s3"],
        sample_run["bucket"],
        sample_run["result"],
        sample_run["twin"],
    )
    flow_arn = result.xcom("flow_definition")
    a2i = twin.client("sagemaker-a2i-runtime")
    before = a2i.list_human_loops(FlowDefinitionArn=flow_arn, MaxResults=100)["HumanLoopSummaries"]
    conf = _conf(bucket)
    params = {**{k: v for k, v in conf.items()}, "a2i_tps": 20}
    manifests = s3.list_objects_v2(Bucket=bucket, Prefix="output/runs/")["Contents"]
    batches = sorted(o["Key"] for o in manifests if "/batches/" in o["Key"])
    names = []
    for key in batches:
        batch = json.loads(_read(s3, f"s3://{bucket}/{key}"))
        again = start_loops_for_batch(
            params, result.run_id, {"batch": batch["batch"], "manifest_uri": f"s3://{bucket}/{key}"}, flow_arn
        )
        assert again["created"] == 0
        names += again["loops"]
    after = a2i.list_human_loops(FlowDefinitionArn=flow_arn, MaxResults=100)["HumanLoopSummaries"]
    assert len(after) == len(before) == len(sample_run["reviewer"].answered)
    assert sorted(names) == sorted(loop["HumanLoopName"] for loop in before)


def test_second_run_processes_nothing_again(sample_run, dag_runner):
    s3, bucket = sample_run["s3"], sample_run["bucket"]
    second = dag_runner(DAG_ID, _conf(bucket))
    assert second.state == "success", second.task_states
    summary = second.xcom("finalize")
    assert summary["received"] == 0 and summary["extracted"] == 0 and summary["quarantined"] == 0
    assert second.task_states.get("extract_batch") in (None, "skipped")
    processed = s3.list_objects_v2(Bucket=bucket, Prefix="state/processed/")["KeyCount"]
    assert processed == sample_run["summary"]["received"]
    # the run says why it took nothing: every document it found was processed already
    assert summary["skipped"]["processed"] == processed == len(_sample_files())
    assert summary["skipped"]["claimed_by_other_run"] == 0 and summary["claimed_by_other_runs"] == {}
    assert f"{processed} already processed" in summary["nothing_taken"]


def test_documents_staged_by_a_run_are_taken_by_that_run(dag_runner, airflow_twin):
    """Issue 7: unpausing the DAG starts a scheduled run right after the user's run staged the
    samples. Here run A (manual, its run id fixed by its date) has staged them (what A's prepare
    does, the same function), then run B lists the inbox before A does: B finds every document
    claimed by A and takes none, saying so; then A runs (its prepare staging again, as a retry
    would) and takes all of them."""
    from airflow.utils.types import DagRunType
    from aws_ml_provider.utils import expense_state

    twin = airflow_twin
    s3 = twin.client("s3")
    bucket = f"expense-race-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=bucket)
    conf = _conf(bucket, confidence_threshold=0, required_fields=[], consistency_checks=[])  # no review
    when = datetime.now(UTC).replace(microsecond=0)
    run_a = DagRunType.MANUAL.generate_run_id(suffix=when.isoformat())
    files = sorted(_sample_files())
    staged = expense_state.stage_files(s3, conf, run_a, files)
    assert staged["uploaded"] == len(files)

    b = dag_runner(DAG_ID, {**conf, "stage_samples": False})
    assert b.state == "success", b.task_states
    assert b.run_id != run_a
    summary_b = b.xcom("finalize")
    assert summary_b["received"] == 0, summary_b  # B took none of A's documents
    assert summary_b["skipped"]["claimed_by_other_run"] == len(files)
    assert summary_b["claimed_by_other_runs"] == {run_a: len(files)}
    assert f"{len(files)} claimed by another run: {run_a} ({len(files)})" in summary_b["nothing_taken"]
    assert s3.list_objects_v2(Bucket=bucket, Prefix="state/processed/")["KeyCount"] == 0

    a = dag_runner(DAG_ID, conf, logical_date=when, run_after=when)
    assert a.state == "success", a.task_states
    assert a.run_id == run_a
    summary_a = a.xcom("finalize")
    assert summary_a["received"] == len(files), summary_a
    assert summary_a["staged"] == {
        "uploaded": 0,
        "already_there": len(files),
        "processed": 0,
        "claimed_by": {},
    }
    markers = _json_objects(s3, bucket, "state/processed/")
    assert sorted(m["source_uri"] for m in markers.values()) == sorted(
        f"s3://{bucket}/inbox/{p.name}" for p in files
    )
    assert {m["run_id"] for m in markers.values()} == {run_a}


def test_a_run_that_finds_nothing_says_so(dag_runner, airflow_twin):
    s3 = airflow_twin.client("s3")
    bucket = f"expense-empty-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=bucket)
    result = dag_runner(DAG_ID, _conf(bucket, stage_samples=False))
    assert result.state == "success", result.task_states
    summary = result.xcom("finalize")
    assert summary["received"] == 0 and summary["skipped"] == {
        "processed": 0,
        "claimed_by_other_run": 0,
        "not_a_document": 0,
    }
    assert summary["nothing_taken"] == f"no document under s3://{bucket}/inbox/"


def test_throttled_textract_loses_and_doubles_nothing(dag_runner, airflow_twin):
    """48 documents (copies of the samples under distinct keys), 30% of Textract calls throttled."""
    twin = airflow_twin
    s3 = twin.client("s3")
    bucket = f"expense-throttle-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=bucket)
    sources = ["receipt_grocery.jpg", "receipt_cafe.tif", "invoice_northwind.png", "receipt_faint_total.jpg"]
    keys = []
    for i in range(48):
        name = sources[i % len(sources)]
        key = f"inbox/copy-{i:03d}-{name}"
        s3.put_object(Bucket=bucket, Key=key, Body=(SAMPLES / name).read_bytes())
        keys.append(key)
    conf = _conf(
        bucket,
        stage_samples=False,
        batch_size=16,
        textract_tps=40,
        confidence_threshold=0,
        required_fields=[],
        consistency_checks=[],
    )
    twin.set_faults("textract:*:throttle=0.3")
    try:
        result = dag_runner(DAG_ID, conf)
        counters = twin.control("faults")["counters"]
    finally:
        twin.control("faults", "DELETE")
    assert result.state == "success", result.task_states
    assert counters["throttled"] > 0
    summary = result.xcom("finalize")
    assert summary["received"] == 48 and summary["extracted"] == 48 and summary["quarantined"] == 0
    rows = _csv_rows(s3, summary["outputs"]["documents.csv"])
    sources_seen = [r["source_uri"] for r in rows]
    assert sorted(sources_seen) == sorted(f"s3://{bucket}/{k}" for k in keys)  # each once, none lost
    truth = _truth()
    for row in rows:
        name = row["source_uri"].rsplit("-", 1)[-1]
        if name == "receipt_faint_total.jpg":
            continue  # its TOTAL is unreadable on purpose (no review in this run)
        doc = truth[name]["documents"][0]
        assert _money(row["TOTAL"]) == _money(doc["total"]), row
