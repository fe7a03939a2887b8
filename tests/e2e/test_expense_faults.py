"""expense_documents under faults (issue 8): real receipts (two SROIE receipts from ../shared, the
shipped two-page PDF and a corrupt file) go through the DAG while the twin executes the first
AnalyzeExpense, StartExpenseAnalysis and StartHumanLoop and the first two claim puts of the run
and loses their answers (503 after the work was done; botocore retries), a share of every later
PutObject (processed markers, results, working files) loses its answer too, and the polls of the
Textract job and the human loops and the first S3 reads meet throttling and 5xx. Every document sent to review is
answered over the twin's review HTTP API while the run waits deferred.

The run succeeds with its counts reconciled (received = extracted + quarantined, extracted =
reviewed + auto-approved, nothing left in review), one Textract job for the PDF, one AnalyzeExpense
answer kept per image, one human loop per reviewed document, every document claimed by the run and
marked processed by it: nothing stranded, nothing doubled."""

from __future__ import annotations

import json
import uuid
from collections import Counter
from pathlib import Path

import pytest

from tests.e2e.test_expense_documents import Reviewer, _conf, _json_objects, _read
from tests.shared_data import shared_dir

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "include" / "data" / "receipts"
SROIE = shared_dir() / "data" / "receipts"
DAG_ID = "expense_documents"
IMAGES = ["007.jpg", "026.jpg"]  # SROIE receipts: AnalyzeExpense
PDF = "receipts_two_pages.pdf"  # StartExpenseAnalysis / GetExpenseAnalysis
CORRUPT = "corrupt.jpg"  # quarantined before any call
LOST = [  # executed, answer lost, once each
    "textract:AnalyzeExpense:drop=1,times=1",
    "textract:StartExpenseAnalysis:drop=1,times=1",
    "sagemaker-a2i-runtime:StartHumanLoop:drop=1,times=1",
    "s3:PutObject:drop=1,times=2",  # the run's first two puts: its first two claims
    "s3:PutObject:drop=0.1",  # then one put in ten: markers, results, working files
]
NOISE = [  # one rule per operation: rules matching one request all count it against their times=
    "textract:GetExpenseAnalysis:throttle=1,times=2",
    "sagemaker-a2i-runtime:DescribeHumanLoop:error=1,times=2",
    "s3:GetObject:error=1,times=2",
]


class ConfirmingReviewer(Reviewer):
    """A reviewer for receipts with no ground truth in include/: each field keeps the machine's
    value (what a reviewer who agrees would submit), except TOTAL of a SROIE receipt, typed from
    its ground-truth JSON beside the image."""

    def run(self):
        while not self.stop.is_set():
            try:
                for loop in self._call("/review/api/loops?status=InProgress"):
                    task = loop["inputContent"]
                    uri = str(task.get("document_s3_uri", "")) if isinstance(task, dict) else ""
                    if not uri.startswith(f"s3://{self.bucket}/") or loop["name"] in self.answered:
                        continue
                    name = uri.rsplit("/", 1)[-1]
                    truth = SROIE / name.replace(".jpg", ".json")
                    total = json.loads(truth.read_text())["total"] if truth.is_file() else None
                    answers: dict = {"document_unreadable": {"on": False}}
                    for field in task["fields"]:
                        typed = total if field["name"] == "TOTAL" and total else field["value"]
                        answers[f"field__{field['name']}"] = typed
                    self._call(
                        f"/review/api/loops/{loop['name']}/answer", {"answers": answers, "workerId": "e2e"}
                    )
                    self.answered[loop["name"]] = {"input": task, "answers": answers}
            except Exception as exc:  # keep polling; the test reports what went wrong
                self.errors.append(repr(exc))
            self.stop.wait(0.5)


@pytest.fixture(scope="module")
def faulted_run(dag_runner, airflow_twin, need, tmp_path_factory):
    need(all((SROIE / name).is_file() for name in IMAGES), f"the SROIE receipts {IMAGES} in {SROIE}")
    twin = airflow_twin
    s3 = twin.client("s3")
    bucket = f"expense-faults-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=bucket)
    files = [SROIE / name for name in IMAGES] + [SAMPLES / PDF, SAMPLES / CORRUPT]
    for path in files:
        s3.put_object(Bucket=bucket, Key=f"inbox/{path.name}", Body=path.read_bytes())
    conf = _conf(bucket, stage_samples=False, batch_size=2, confidence_threshold=100)  # all to review
    login = twin.airflow_connection()["login"]
    before = twin.control("state")
    reviewer = ConfirmingReviewer(twin, bucket)
    reviewer.start()
    twin.set_faults(*LOST, *NOISE)
    try:
        result = dag_runner(DAG_ID, conf)
        counters = twin.control("faults")["counters"]
    finally:
        twin.control("faults", "DELETE")
        reviewer.stop.set()
        reviewer.join(10)
    after = twin.control("state")
    calls = {k: v - before["calls"].get(k, 0) for k, v in after["calls"].items()}
    jobs = after["services"]["TextractService"]["jobs"] - before["services"]["TextractService"]["jobs"]
    print(f"faults met: {counters}; Textract jobs: {jobs}; calls: {sorted(calls.items())}")
    assert result.state == "success", f"{DAG_ID} run {result.state}: {result.task_states}"
    summary = json.loads(_read(s3, result.xcom("finalize")["outputs"]["summary.json"]))
    return {
        "result": result,
        "summary": summary,
        "bucket": bucket,
        "s3": s3,
        "files": files,
        "counters": counters,
        "calls": {k.split(" ", 1)[1]: v for k, v in calls.items() if k.startswith(f"{login} ")},
        "jobs": jobs,
        "reviewer": reviewer,
        "twin": twin,
    }


def test_every_lost_answer_and_poll_fault_was_met(faulted_run):
    counters, calls = faulted_run["counters"], faulted_run["calls"]
    assert counters["dropped"] >= 5, counters  # the three creates and two claims, at least
    assert counters["throttled"] == 2 and counters["errors"] == 4, counters
    # each create with a lost answer was sent again by botocore: the lost one and its retry
    assert calls["textract:StartExpenseAnalysis"] == 2, calls
    assert calls["textract:AnalyzeExpense"] == len(IMAGES) + 1, calls


def test_counts_reconcile_and_nothing_is_stranded(faulted_run):
    summary, s3, bucket, result = (
        faulted_run["summary"],
        faulted_run["s3"],
        faulted_run["bucket"],
        faulted_run["result"],
    )
    files = faulted_run["files"]
    assert summary["reconciles"] is True
    assert summary["received"] == len(files)
    assert summary["received"] == summary["extracted"] + summary["quarantined"]
    assert summary["extracted"] == summary["reviewed"] + summary["auto_approved"]
    assert summary["quarantined"] == 1 and summary["quarantine_reasons"] == {"CorruptDocument": 1}
    assert summary["extracted"] == len(files) - 1 and summary["reviewed"] == summary["extracted"]
    # every document claimed by this run (none lost to a claim whose answer was lost) ...
    claims = _json_objects(s3, bucket, "state/claims/")
    assert sorted(c["source_uri"] for c in claims.values()) == sorted(
        f"s3://{bucket}/inbox/{p.name}" for p in files
    )
    assert {c["run_id"] for c in claims.values()} == {result.run_id}
    # ... and marked processed by it, with the status the summary counts
    markers = _json_objects(s3, bucket, "state/processed/")
    assert sorted(m["source_uri"] for m in markers.values()) == sorted(
        c["source_uri"] for c in claims.values()
    )
    assert {m["run_id"] for m in markers.values()} == {result.run_id}
    statuses = Counter(m["status"] for m in markers.values())
    assert statuses == Counter(
        {"reviewed": summary["reviewed"], "quarantined": summary["quarantined"]}
        | ({"auto_approved": summary["auto_approved"]} if summary["auto_approved"] else {})
    )
    # one output row set per extracted document, each document once
    documents = {r["source_uri"] for r in _csv(s3, result.xcom("finalize")["outputs"]["documents.csv"])}
    assert documents == {m["source_uri"] for m in markers.values() if m["status"] != "quarantined"}


def test_one_textract_job_and_one_human_loop_per_document(faulted_run):
    result, twin, reviewer = faulted_run["result"], faulted_run["twin"], faulted_run["reviewer"]
    assert faulted_run["jobs"] == 1  # the PDF's job, started twice with one ClientRequestToken
    assert not reviewer.errors, reviewer.errors
    loops = twin.client("sagemaker-a2i-runtime").list_human_loops(
        FlowDefinitionArn=result.xcom("flow_definition"), MaxResults=100
    )["HumanLoopSummaries"]
    documents = Counter(
        reviewer.answered[loop["HumanLoopName"]]["input"]["document_s3_uri"] for loop in loops
    )
    assert len(loops) == len(documents) == faulted_run["summary"]["reviewed"]
    assert set(documents.values()) == {1}
    assert {loop["HumanLoopStatus"] for loop in loops} == {"Completed"}
    assert faulted_run["calls"]["sagemaker-a2i-runtime:StartHumanLoop"] == len(loops) + 1


def _csv(s3, uri: str) -> list[dict]:
    import csv
    import io

    return list(csv.DictReader(io.StringIO(_read(s3, uri).decode())))
