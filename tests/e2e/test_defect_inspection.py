"""The defect_inspection DAG end to end on the twin: the shipped textile images staged, v1 trained on
the initial training set (bootstrap), the new images classified by the running v1, the unsure ones
answered by a person through the twin's review API (with their true label from
include/data/textiles/incoming/labels.csv) while the run waits deferred, the answered images added
to the training set, v2 trained and evaluated on the same TEST dataset, the F1 gate, and the model
stopped by the teardown. Every figure is checked against what the run left in S3, A2I and
Rekognition; then the run is replayed as a retry (same deployed model, the per-image records lost)
and must start no second loop and train no second version.
"""

from __future__ import annotations

import csv
import json
import threading
import urllib.parse
import urllib.request
import uuid
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "include" / "data" / "textiles"
DAG_ID = "defect_inspection"
MIN_NEW_LABELS = 3


def true_labels() -> dict[str, str]:
    with open(SAMPLES / "incoming" / "labels.csv") as f:
        return {row["image"]: row["label"] for row in csv.DictReader(f)}


def incoming_files() -> list[str]:
    return sorted(p.name for p in (SAMPLES / "incoming").glob("*.jpg"))


class Reviewer(threading.Thread):
    """Answers every pending loop of a bucket's images through the twin's review API with the
    image's true label."""

    def __init__(self, twin, bucket: str):
        super().__init__(daemon=True)
        self.base = twin.url
        self.token = urllib.parse.parse_qs(urllib.parse.urlparse(twin.review_url).query)["token"][0]
        self.bucket = bucket
        self.truth = true_labels()
        self.answered: dict[str, dict] = {}
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
                    if not isinstance(task, dict) or not str(task.get("image_s3_uri", "")).startswith(
                        f"s3://{self.bucket}/"
                    ):
                        continue
                    name = task["image_s3_uri"].rsplit("/", 1)[1]
                    pick = self.truth[name]
                    self._call(
                        f"/review/api/loops/{loop['name']}/answer",
                        {"answers": {"label": {"label": pick}}, "workerId": "e2e-inspector"},
                    )
                    self.answered[name] = {"loop": loop["name"], "label": pick, "input": task}
            except Exception as exc:  # keep polling; the test reports what went wrong
                self.errors.append(repr(exc))
            self.stop.wait(0.5)


def _read_json(s3, bucket: str, key: str):
    return json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())


def _keys(s3, bucket: str, prefix: str) -> list[str]:
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return sorted(o["Key"] for page in pages for o in page.get("Contents", []))


def _summary(s3, bucket: str, run_id: str) -> dict:
    from aws_ml_provider.utils.expense import run_key

    return _read_json(s3, bucket, f"results/_runs/{run_key(run_id)}/summary.json")


def _conf(bucket: str, **more) -> dict:
    return {
        **more,
        "input_prefix": f"s3://{bucket}/incoming/",
        "dataset_prefix": f"s3://{bucket}/dataset/",
        "output_prefix": f"s3://{bucket}/results/",
        "stage_samples": True,
        "retrain_min_new_labels": MIN_NEW_LABELS,
        "project_name": f"defects-{bucket[-8:]}",
        "flow_definition_name": f"defect-review-{bucket[-8:]}",
    }


def _run(dag_runner, twin, bucket: str, **more):
    reviewer = Reviewer(twin, bucket)
    reviewer.start()
    try:
        result = dag_runner(DAG_ID, _conf(bucket, **more))
    finally:
        reviewer.stop.set()
        reviewer.join(10)
    assert result.state == "success", f"{DAG_ID} run {result.state}: {result.task_states}"
    return result, reviewer


def _versions(twin, project: str) -> list[dict]:
    rekognition = twin.client("rekognition")
    (p,) = rekognition.describe_projects(ProjectNames=[project])["ProjectDescriptions"]
    return rekognition.describe_project_versions(ProjectArn=p["ProjectArn"])["ProjectVersionDescriptions"]


@pytest.fixture(scope="module")
def first_run(dag_runner, airflow_twin):
    bucket = f"defect-e2e-{uuid.uuid4().hex[:8]}"
    result, reviewer = _run(dag_runner, airflow_twin, bucket)
    s3 = airflow_twin.client("s3")
    return {
        "result": result,
        "bucket": bucket,
        "s3": s3,
        "reviewer": reviewer,
        "summary": _summary(s3, bucket, result.run_id),
        "project": _conf(bucket)["project_name"],
    }


@pytest.mark.timeout(1200)
def test_every_image_ends_in_exactly_one_place_and_counts_reconcile(first_run, airflow_twin):
    s3, bucket, summary = first_run["s3"], first_run["bucket"], first_run["summary"]
    names = incoming_files()
    assert summary["found"] == summary["listed"] == len(names)
    assert summary["listed"] == summary["auto_accepted"] + summary["reviewed"] + summary["quarantined"]
    records = {n: _read_json(s3, bucket, f"results/records/{n}.json") for n in names}
    assert {r["status"] for r in records.values()} <= {"auto_accepted", "reviewed", "quarantined"}
    for status in ("auto_accepted", "reviewed", "quarantined"):
        assert summary[status] == sum(1 for r in records.values() if r["status"] == status), status
    # the corrupt file: refused by DetectCustomLabels, quarantined with its reason
    bad = records["img_corrupt.jpg"]
    assert bad["status"] == "quarantined" and bad["code"] == "InvalidImageFormatException"
    assert summary["quarantine_reasons"] == {"InvalidImageFormatException": 1}
    assert any(k.endswith("img_corrupt.jpg.reason.json") for k in _keys(s3, bucket, "results/quarantine/"))
    # the threshold decides: at or above 70 % accepted into accepted/<label>/, under it reviewed
    accepted = {label: set() for label in ("normal", "anomaly")}
    truth = true_labels()
    for name, record in records.items():
        if record["status"] == "quarantined":
            continue
        assert (record["confidence"] >= 70.0) == (record["status"] == "auto_accepted"), record
        assert record["predicted_label"] == max(record["scores"], key=record["scores"].get)
        if record["status"] == "auto_accepted":
            accepted[record["predicted_label"]].add(name)
        else:
            assert record["label"] == truth[name]  # the reviewer's answer
    for label, want in accepted.items():
        assert {k.rsplit("/", 1)[1] for k in _keys(s3, bucket, f"results/accepted/{label}/")} == want
    # one loop per reviewed image, its task page input the model's answer and confidence
    answered = first_run["reviewer"].answered
    assert set(answered) == {n for n, r in records.items() if r["status"] == "reviewed"}
    assert not first_run["reviewer"].errors
    for name, a in answered.items():
        assert a["input"]["predicted_label"] == records[name]["predicted_label"]
        assert a["input"]["confidence"] == round(records[name]["confidence"], 1)
        assert a["input"]["categories"] == ["normal", "anomaly"]
    loops = airflow_twin.client("sagemaker-a2i-runtime").list_human_loops(
        FlowDefinitionArn=first_run["result"].xcom("flow_definition"), MaxResults=100
    )["HumanLoopSummaries"]
    assert len(loops) == summary["reviewed"] == summary["loops"]
    # the reviewed images were added to the training set under their true label
    for label in ("normal", "anomaly"):
        train = {k.rsplit("/", 1)[1] for k in _keys(s3, bucket, f"dataset/train/{label}/")}
        shipped = {p.name for p in (SAMPLES / "train" / label).glob("*.jpg")}
        assert train == shipped | {n for n, a in answered.items() if a["label"] == label}
    assert summary["new_labels"] == {
        lbl: n for lbl in ("normal", "anomaly") if (n := sum(a["label"] == lbl for a in answered.values()))
    }
    # the model was stopped by the teardown
    states = first_run["result"].task_states
    assert states["stop_model"] == "success"
    assert {v["Status"] for v in _versions(airflow_twin, first_run["project"])} <= {
        "STOPPED",
        "TRAINING_COMPLETED",
    }


def test_v1_and_v2_are_evaluated_on_the_same_test_set_and_the_gate_decides(first_run, airflow_twin):
    s3, bucket, summary = first_run["s3"], first_run["bucket"], first_run["summary"]
    result = first_run["result"]
    assert summary["reviewed"] >= MIN_NEW_LABELS, f"too few reviews to retrain: {summary}"
    v1 = result.xcom("bootstrap.train_model")
    v2 = result.xcom("retrain.train_model")
    assert v1["version_name"].startswith("v1-") and v2["version_name"].startswith("v2-")
    test_set = len(list((SAMPLES / "test").rglob("*.jpg")))
    for trained in (v1, v2):
        assert 0 <= trained["f1_score"] <= 1
        key = trained["evaluation_summary_uri"].split("/", 3)[3]
        evaluation = _read_json(s3, bucket, key)
        assert evaluation["EvaluationDetails"]["NumberOfTestingImages"] == test_set
        assert evaluation["AggregatedEvaluationResults"]["F1Score"] == pytest.approx(trained["f1_score"])
    shipped_train = len(list((SAMPLES / "train").rglob("*.jpg")))
    assert (
        _read_json(s3, bucket, v1["evaluation_summary_uri"].split("/", 3)[3])["EvaluationDetails"][
            "NumberOfTrainingImages"
        ]
        == shipped_train
    )
    assert (
        _read_json(s3, bucket, v2["evaluation_summary_uri"].split("/", 3)[3])["EvaluationDetails"][
            "NumberOfTrainingImages"
        ]
        == shipped_train + summary["reviewed"]
    )
    gate = summary["gate"]
    assert gate["test_dataset_arn"] == result.xcom("test_dataset")
    assert gate["candidate_f1"] == v2["f1_score"] and gate["deployed_f1"] == v1["f1_score"]
    assert gate["margin"] == pytest.approx(v2["f1_score"] - v1["f1_score"], abs=1e-4)
    assert gate["promoted"] == (v2["f1_score"] >= v1["f1_score"])
    pointer = _read_json(s3, bucket, "results/deployed.json")
    assert pointer["version_name"] == (v2 if gate["promoted"] else v1)["version_name"]
    assert summary["deployed_after_run"] == pointer["version_name"]
    if not gate["promoted"]:
        assert f"{-gate['margin']:.4f} below" in gate["message"]
    print(
        f"defect_inspection: v1 F1 {v1['f1_score']:.3f} ({v1['billable_training_seconds']} s training), "
        f"v2 F1 {v2['f1_score']:.3f} ({v2['billable_training_seconds']} s), promoted {gate['promoted']}"
    )


@pytest.mark.timeout(1200)
def test_a_replayed_run_starts_no_second_loop_and_trains_no_second_version(
    first_run, dag_runner, airflow_twin
):
    """The first run replayed as a retry would see it: the deployed model as it was before the gate,
    and the per-image records lost (as when the run died before writing them)."""
    s3, bucket = first_run["s3"], first_run["bucket"]
    result = first_run["result"]
    versions_before = {v["ProjectVersionArn"] for v in _versions(airflow_twin, first_run["project"])}
    a2i = airflow_twin.client("sagemaker-a2i-runtime")
    loops_before = a2i.list_human_loops(FlowDefinitionArn=result.xcom("flow_definition"), MaxResults=100)[
        "HumanLoopSummaries"
    ]
    s3.put_object(
        Bucket=bucket,
        Key="results/deployed.json",
        Body=json.dumps(result.xcom("bootstrap.record_bootstrap")).encode(),
    )
    for key in _keys(s3, bucket, "results/records/") + _keys(s3, bucket, "results/accepted/"):
        s3.delete_object(Bucket=bucket, Key=key)
    again, reviewer = _run(dag_runner, airflow_twin, bucket)
    assert reviewer.answered == {}  # nothing new to answer: every loop is the first run's
    assert again.task_states["bootstrap.plan_bootstrap"] == "success"
    assert again.task_states["bootstrap.train_model"] == "skipped"
    started = again.xcom("start_review_loops")
    assert started["created"] == 0 and len(started["loops"]) == first_run["summary"]["reviewed"]
    loops_after = a2i.list_human_loops(FlowDefinitionArn=result.xcom("flow_definition"), MaxResults=100)[
        "HumanLoopSummaries"
    ]
    assert len(loops_after) == len(loops_before)
    assert {v["ProjectVersionArn"] for v in _versions(airflow_twin, first_run["project"])} == versions_before
    assert (
        again.xcom("retrain.train_model")["version_name"]
        == result.xcom("retrain.train_model")["version_name"]
    )
    summary = _summary(s3, bucket, again.run_id)
    for key in ("listed", "auto_accepted", "reviewed", "quarantined"):
        assert summary[key] == first_run["summary"][key], key
    assert summary["gate"]["promoted"] == first_run["summary"]["gate"]["promoted"]


@pytest.mark.timeout(1200)
def test_model_assisted_labeling_verifies_every_pre_label_and_trains_v2_on_the_verified_set(
    dag_runner, airflow_twin
):
    """mode=assisted_labeling: v1 pre-labels the whole pool, the reviewer verifies every image (keeps
    or corrects the pre-label), v2 is trained on the initial and the verified images; both versions'
    F1 on the same test set."""
    bucket = f"defect-mal-{uuid.uuid4().hex[:8]}"
    result, reviewer = _run(dag_runner, airflow_twin, bucket, mode="assisted_labeling")
    s3 = airflow_twin.client("s3")
    summary = _summary(s3, bucket, result.run_id)
    truth = true_labels()
    pool = len(truth)
    assert summary["mode"] == "assisted_labeling"
    assert summary["listed"] == pool + 1 and summary["auto_accepted"] == 0
    assert summary["reviewed"] == pool == len(reviewer.answered) and summary["quarantined"] == 1
    records = {n: _read_json(s3, bucket, f"results/records/{n}.json") for n in truth}
    for name, a in reviewer.answered.items():  # the page showed the pre-label to keep or correct
        assert a["input"]["predicted_label"] == records[name]["predicted_label"]
    kept = sum(records[n]["predicted_label"] == truth[n] for n in truth)
    assert summary["reviewer_agreed_with_model"] == kept
    assert summary["reviewer_corrected_model"] == pool - kept
    v1, v2 = result.xcom("bootstrap.train_model"), result.xcom("retrain.train_model")
    details = {
        t["version_name"]: _read_json(s3, bucket, t["evaluation_summary_uri"].split("/", 3)[3])[
            "EvaluationDetails"
        ]
        for t in (v1, v2)
    }
    shipped_train = len(list((SAMPLES / "train").rglob("*.jpg")))
    assert details[v1["version_name"]]["NumberOfTrainingImages"] == shipped_train
    assert details[v2["version_name"]]["NumberOfTrainingImages"] == shipped_train + pool
    assert {d["NumberOfTestingImages"] for d in details.values()} == {
        len(list((SAMPLES / "test").rglob("*.jpg")))
    }
    gate = summary["gate"]
    assert (gate["deployed_f1"], gate["candidate_f1"]) == (v1["f1_score"], v2["f1_score"])
    print(
        f"model-assisted labeling: {kept}/{pool} pre-labels kept; v1 F1 {v1['f1_score']:.3f} "
        f"({v1['billable_training_seconds']} s), v2 F1 {v2['f1_score']:.3f} ({v2['billable_training_seconds']} s)"
    )


def test_without_a_model_or_data_the_run_succeeds_and_counts_the_waiting_images(dag_runner, airflow_twin):
    """The trigger form's defaults (nothing staged) on an empty bucket, with one new image: no test
    set, no model, nothing trained; the image is not inspected, counted as waiting for a model, and
    the next run takes it."""
    bucket = f"defect-empty-{uuid.uuid4().hex[:8]}"
    s3 = airflow_twin.client("s3")
    s3.create_bucket(Bucket=bucket)
    name = incoming_files()[0]
    s3.put_object(Bucket=bucket, Key=f"incoming/{name}", Body=(SAMPLES / "incoming" / name).read_bytes())
    result = dag_runner(DAG_ID, {**_conf(bucket), "stage_samples": False})
    assert result.state == "success", result.task_states
    assert set(result.task_states.values()) <= {"success", "skipped"}
    for task_id in (
        "test_manifest",
        "bootstrap.train_model",
        "deployed_model",
        "start_model",
        "retrain.train_model",
    ):
        assert result.task_states[task_id] == "skipped", task_id
    summary = _summary(s3, bucket, result.run_id)
    assert summary["listed"] == summary["waiting_for_model"] == 1
    assert summary["auto_accepted"] == summary["reviewed"] == summary["quarantined"] == 0
    assert summary["model_used"] is None and summary["deployed_after_run"] is None
    assert _keys(s3, bucket, "results/records/") == []  # not recorded: the next run inspects it


def test_the_model_is_stopped_by_a_teardown_of_its_start():
    from tests.e2e.conftest import load_dag

    dag = load_dag(DAG_ID)
    stop, start = dag.get_task("stop_model"), dag.get_task("start_model")
    assert stop.is_teardown and start.is_setup
    assert "inspect_images" in stop.upstream_task_ids
    # training waits for the stop: no model runs while a new version trains
    assert "stop_model" in dag.get_task("retrain.plan_retrain").upstream_task_ids
