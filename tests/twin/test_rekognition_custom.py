"""Rekognition Custom Labels on the twin (boto3 over HTTP, --strict): projects, datasets from Ground
Truth manifests in S3, dataset entries and labels, and model versions trained for real on real images
(Fashion-MNIST product photos; detection scenes of them pasted on scikit-learn's sample photos, see
tests/rekognition_data.py), evaluated on TEST images, started, queried and stopped, with botocore's
own waiters. Training is kept tiny here; bench/rekognition_bench.py trains at full size."""

from __future__ import annotations

import json
import time
import uuid

import numpy as np
import pytest
from botocore.exceptions import ClientError, WaiterError

from tests import rekognition_data as data

WAIT = {"Delay": 1, "MaxAttempts": 300}
CLASSES = ["trouser", "bag", "sneaker"]
DETECT = ["bag", "trouser"]


@pytest.fixture(scope="module")
def rek(twin, need):
    need(data.fashion_available(), "Fashion-MNIST (Debian's dataset-fashion-mnist)")
    return twin.client("rekognition")


@pytest.fixture(scope="module")
def bucket(s3):
    name = f"rek-custom-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=name)
    return name


@pytest.fixture(scope="module")
def fashion(rek, s3, bucket):
    """Train (8 a class) and test (4 a class, other images) manifests of three Fashion-MNIST classes."""
    train_key, train = data.stage_classification(s3, bucket, "fashion/train", CLASSES, 8, seed=1)
    test_key, test = data.stage_classification(s3, bucket, "fashion/test", CLASSES, 4, seed=2, skip=8)
    return {"train_key": train_key, "train": train, "test_key": test_key, "test": test}


def _project(rek, prefix: str) -> tuple[str, str]:
    name = f"{prefix}-{uuid.uuid4().hex[:6]}"
    return name, rek.create_project(ProjectName=name)["ProjectArn"]


def _wait_dataset(rek, arn: str, timeout: float = 30) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        desc = rek.describe_dataset(DatasetArn=arn)["DatasetDescription"]
        if not desc["Status"].endswith("IN_PROGRESS") or time.monotonic() > deadline:
            return desc
        time.sleep(0.2)


def _dataset(rek, project_arn: str, kind: str, bucket: str, key: str) -> str:
    arn = rek.create_dataset(
        ProjectArn=project_arn,
        DatasetType=kind,
        DatasetSource={"GroundTruthManifest": {"S3Object": {"Bucket": bucket, "Name": key}}},
    )["DatasetArn"]
    assert _wait_dataset(rek, arn)["Status"] == "CREATE_COMPLETE"
    return arn


def _summary(s3, version: dict) -> dict:
    obj = version["EvaluationResult"]["Summary"]["S3Object"]
    return json.loads(s3.get_object(Bucket=obj["Bucket"], Key=obj["Name"])["Body"].read())


# ---- projects ----------------------------------------------------------------------------------
def test_projects_create_describe_page_delete(rek):
    name, arn = _project(rek, "proj")
    with pytest.raises(ClientError) as err:
        rek.create_project(ProjectName=name)
    assert err.value.response["Error"]["Code"] == "ResourceInUseException"
    other, other_arn = _project(rek, "proj")
    mine = rek.describe_projects(ProjectNames=[name, other])["ProjectDescriptions"]
    assert [p["ProjectArn"] for p in mine] == [arn, other_arn]
    assert all(p["Status"] == "CREATED" and p["Feature"] == "CUSTOM_LABELS" for p in mine)
    first = rek.describe_projects(ProjectNames=[name, other], MaxResults=1)
    assert len(first["ProjectDescriptions"]) == 1 and first["NextToken"]
    rest = rek.describe_projects(ProjectNames=[name, other], MaxResults=1, NextToken=first["NextToken"])
    assert rest["ProjectDescriptions"][0]["ProjectArn"] == other_arn and "NextToken" not in rest
    assert rek.delete_project(ProjectArn=other_arn)["Status"] == "DELETING"
    assert [
        p["ProjectArn"] for p in rek.describe_projects(ProjectNames=[name, other])["ProjectDescriptions"]
    ] == [arn]
    with pytest.raises(ClientError) as err:
        rek.delete_project(ProjectArn=other_arn)
    assert err.value.response["Error"]["Code"] == "ResourceNotFoundException"


# ---- datasets ----------------------------------------------------------------------------------
def test_dataset_entries_labels_update_distribute(rek, s3, bucket, fashion):
    _, project = _project(rek, "data")
    train = _dataset(rek, project, "TRAIN", bucket, fashion["train_key"])
    stats = rek.describe_dataset(DatasetArn=train)["DatasetDescription"]["DatasetStats"]
    n = len(fashion["train"])
    assert stats == {"LabeledEntries": n, "TotalEntries": n, "TotalLabels": len(CLASSES), "ErrorEntries": 0}
    with pytest.raises(ClientError) as err:  # one TRAIN dataset a project
        _dataset(rek, project, "TRAIN", bucket, fashion["train_key"])
    assert err.value.response["Error"]["Code"] == "ResourceAlreadyExistsException"

    entries, token = [], None
    while True:
        page = rek.list_dataset_entries(
            DatasetArn=train, MaxResults=5, **({"NextToken": token} if token else {})
        )
        entries += page["DatasetEntries"]
        token = page.get("NextToken")
        if not token:
            break
    assert sorted(json.loads(e)["source-ref"] for e in entries) == sorted(ref for ref, _ in fashion["train"])
    bags = rek.list_dataset_entries(DatasetArn=train, ContainsLabels=["bag"])["DatasetEntries"]
    assert len(bags) == sum(1 for _, label in fashion["train"] if label == "bag")
    labels = rek.list_dataset_labels(DatasetArn=train)["DatasetLabelDescriptions"]
    assert {x["LabelName"]: x["LabelStats"]["EntryCount"] for x in labels} == {
        c: sum(1 for _, label in fashion["train"] if label == c) for c in CLASSES
    }

    # relabel one entry and add one: keyed by source-ref
    ref, old = fashion["train"][0]
    new = next(c for c in CLASSES if c != old)
    extra = fashion["test"][0][0]
    changes = "\n".join([data.classification_line(ref, new, CLASSES.index(new)),
                         data.classification_line(extra, "coat", 3)])  # fmt: skip
    rek.update_dataset_entries(DatasetArn=train, Changes={"GroundTruth": changes.encode()})
    desc = _wait_dataset(rek, train)
    assert desc["Status"] == "UPDATE_COMPLETE"
    assert (
        desc["DatasetStats"]["TotalEntries"] == n + 1
        and desc["DatasetStats"]["TotalLabels"] == len(CLASSES) + 1
    )
    (line,) = rek.list_dataset_entries(DatasetArn=train, SourceRefContains=ref.rsplit("/", 1)[1])[
        "DatasetEntries"
    ]
    assert json.loads(line)["fashion-metadata"]["class-name"] == new
    with pytest.raises(ClientError) as err:
        rek.update_dataset_entries(DatasetArn=train, Changes={"GroundTruth": b'{"source-ref": 5}'})
    assert err.value.response["Error"]["Code"] == "InvalidParameterException"

    # an empty TEST dataset, then 20 % of the training entries distributed into it
    test = rek.create_dataset(ProjectArn=project, DatasetType="TEST")["DatasetArn"]
    assert _wait_dataset(rek, test)["DatasetStats"]["TotalEntries"] == 0
    rek.distribute_dataset_entries(Datasets=[{"Arn": train}, {"Arn": test}])
    moved = _wait_dataset(rek, test)["DatasetStats"]["TotalEntries"]
    kept = _wait_dataset(rek, train)["DatasetStats"]["TotalEntries"]
    assert moved == (n + 1) // 5 and kept + moved == n + 1
    described = rek.describe_projects(ProjectNames=[p["ProjectArn"].split("/")[1] for p in
                                      rek.describe_projects()["ProjectDescriptions"] if p["ProjectArn"] == project])  # fmt: skip
    assert {d["DatasetType"] for d in described["ProjectDescriptions"][0]["Datasets"]} == {"TRAIN", "TEST"}

    # a copy of a dataset
    _, other = _project(rek, "copy")
    copy = rek.create_dataset(ProjectArn=other, DatasetType="TRAIN", DatasetSource={"DatasetArn": train})[
        "DatasetArn"
    ]
    assert _wait_dataset(rek, copy)["DatasetStats"]["TotalEntries"] == kept

    rek.delete_dataset(DatasetArn=test)
    with pytest.raises(ClientError) as err:
        rek.describe_dataset(DatasetArn=test)
    assert err.value.response["Error"]["Code"] == "ResourceNotFoundException"


def test_bad_manifest_fails_naming_the_line(rek, s3, bucket, fashion):
    _, project = _project(rek, "bad")
    lines = s3.get_object(Bucket=bucket, Key=fashion["train_key"])["Body"].read().decode().splitlines()
    broken = json.loads(lines[2])
    broken["fashion-metadata"]["type"] = "groundtruth/semantic-segmentation"
    lines[2] = json.dumps(broken)
    s3.put_object(Bucket=bucket, Key="bad/manifest.jsonl", Body="\n".join(lines).encode())
    arn = rek.create_dataset(
        ProjectArn=project,
        DatasetType="TRAIN",
        DatasetSource={"GroundTruthManifest": {"S3Object": {"Bucket": bucket, "Name": "bad/manifest.jsonl"}}},
    )["DatasetArn"]
    desc = _wait_dataset(rek, arn)
    assert desc["Status"] == "CREATE_FAILED" and desc["StatusMessageCode"] == "CLIENT_ERROR"
    assert "line 3" in desc["StatusMessage"] and "semantic-segmentation" in desc["StatusMessage"]
    with pytest.raises(ClientError) as err:
        rek.create_dataset(
            ProjectArn=project,
            DatasetType="TEST",
            DatasetSource={"GroundTruthManifest": {"S3Object": {"Bucket": bucket, "Name": "missing.jsonl"}}},
        )
    assert err.value.response["Error"]["Code"] == "InvalidS3ObjectException"


# ---- model versions ----------------------------------------------------------------------------
def test_classification_trains_evaluates_runs_and_stops(rek, s3, bucket, fashion):
    name, project = _project(rek, "fashion")
    _dataset(rek, project, "TRAIN", bucket, fashion["train_key"])
    _dataset(rek, project, "TEST", bucket, fashion["test_key"])
    arn = rek.create_project_version(
        ProjectArn=project, VersionName="v1", OutputConfig={"S3Bucket": bucket, "S3KeyPrefix": "fashion/out"}
    )["ProjectVersionArn"]
    with pytest.raises(ClientError) as err:
        rek.create_project_version(ProjectArn=project, VersionName="v1", OutputConfig={"S3Bucket": bucket})
    assert err.value.response["Error"]["Code"] == "ResourceInUseException"
    first = rek.describe_project_versions(ProjectArn=project, VersionNames=["v1"])[
        "ProjectVersionDescriptions"
    ][0]
    assert first["Status"] == "TRAINING_IN_PROGRESS"
    rek.get_waiter("project_version_training_completed").wait(
        ProjectArn=project, VersionNames=["v1"], WaiterConfig=WAIT
    )
    (version,) = rek.describe_project_versions(ProjectArn=project, VersionNames=["v1"])[
        "ProjectVersionDescriptions"
    ]
    assert version["Status"] == "TRAINING_COMPLETED", version["StatusMessage"]
    f1 = version["EvaluationResult"]["F1Score"]
    chance = 1 / len(CLASSES)  # a balanced k-way guess
    assert chance < f1 <= 1, f1
    summary = _summary(s3, version)
    assert summary["EvaluationDetails"]["NumberOfTestingImages"] == len(fashion["test"])
    assert summary["EvaluationDetails"]["NumberOfTrainingImages"] == len(fashion["train"])
    per_label = {r["Label"]: r["Metrics"] for r in summary["LabelResults"]}
    assert sorted(per_label) == sorted(CLASSES)
    assert np.mean([m["F1Score"] for m in per_label.values()]) == pytest.approx(f1)
    assert version["EvaluationResult"]["Summary"]["S3Object"]["Name"].startswith("fashion/out/")

    image = {"S3Object": {"Bucket": bucket, "Name": fashion["test"][0][0].split("/", 3)[3]}}
    with pytest.raises(ClientError) as err:
        rek.detect_custom_labels(ProjectVersionArn=arn, Image=image)
    assert err.value.response["Error"]["Code"] == "ResourceNotReadyException"

    assert rek.start_project_version(ProjectVersionArn=arn, MinInferenceUnits=1)["Status"] == "STARTING"
    rek.get_waiter("project_version_running").wait(ProjectArn=project, VersionNames=["v1"], WaiterConfig=WAIT)
    with pytest.raises(ClientError) as err:  # a running model is not deleted
        rek.delete_project_version(ProjectVersionArn=arn)
    assert err.value.response["Error"]["Code"] == "ResourceInUseException"

    right = 0
    for ref, label in fashion["test"]:
        key = ref.split("/", 3)[3]
        every = rek.detect_custom_labels(ProjectVersionArn=arn, Image={"S3Object": {"Bucket": bucket, "Name": key}},
                                         MinConfidence=0)["CustomLabels"]  # fmt: skip
        assert sorted(x["Name"] for x in every) == sorted(CLASSES)
        right += every[0]["Name"] == label
        # without MinConfidence: each label above its own assumed threshold
        assumed = rek.detect_custom_labels(
            ProjectVersionArn=arn, Image={"S3Object": {"Bucket": bucket, "Name": key}}
        )
        expected = [x["Name"] for x in every if x["Confidence"] >= per_label[x["Name"]]["Threshold"] * 100]
        assert [x["Name"] for x in assumed["CustomLabels"]] == expected
    assert right / len(fashion["test"]) > chance

    assert rek.stop_project_version(ProjectVersionArn=arn)["Status"] == "STOPPING"
    deadline = time.monotonic() + 30
    while (
        rek.describe_project_versions(ProjectArn=project)["ProjectVersionDescriptions"][0]["Status"]
        != "STOPPED"
    ):
        assert time.monotonic() < deadline
        time.sleep(0.5)
    with pytest.raises(ClientError) as err:
        rek.detect_custom_labels(ProjectVersionArn=arn, Image=image)
    assert err.value.response["Error"]["Code"] == "ResourceNotReadyException"
    with pytest.raises(ClientError) as err:  # a project with versions is not deleted
        rek.delete_project(ProjectArn=project)
    assert err.value.response["Error"]["Code"] == "ResourceInUseException"
    assert rek.delete_project_version(ProjectVersionArn=arn)["Status"] == "DELETING"
    assert rek.describe_project_versions(ProjectArn=project)["ProjectVersionDescriptions"] == []
    rek.delete_project(ProjectArn=project)


def _chance_f1(truth: list[tuple[str, list]], rng) -> float:
    """F1 of a guesser that knows each test scene's labels and box sizes but not where they are:
    each box placed at random, matched at IoU >= 0.5 (the evaluation's rule)."""
    from aws_twin.services.rekognition.train import iou

    tp = total = 0
    for _, boxes in truth:
        for b in boxes:
            w, h = b[3] / data.SCENE, b[4] / data.SCENE
            guess = np.array([[rng.uniform(0, 1 - w), rng.uniform(0, 1 - h), w, h]])
            real = np.array([[b[1] / data.SCENE, b[2] / data.SCENE, w, h]])
            tp += float(iou(guess, real)[0, 0]) >= 0.5
            total += 1
    return tp / total  # precision = recall = F1, one guess a box


def test_detection_trains_on_auto_split_and_finds_boxes(rek, s3, bucket):
    key, truth = data.stage_detection(s3, bucket, "scenes", DETECT, 30, seed=3)
    _, project = _project(rek, "scenes")
    arn = rek.create_project_version(
        ProjectArn=project,
        VersionName="boxes",
        OutputConfig={"S3Bucket": bucket, "S3KeyPrefix": "scenes/out"},
        TrainingData={"Assets": [{"GroundTruthManifest": {"S3Object": {"Bucket": bucket, "Name": key}}}]},
        TestingData={"AutoCreate": True},
    )["ProjectVersionArn"]
    rek.get_waiter("project_version_training_completed").wait(
        ProjectArn=project, VersionNames=["boxes"], WaiterConfig=WAIT
    )
    (version,) = rek.describe_project_versions(ProjectArn=project)["ProjectVersionDescriptions"]
    summary = _summary(s3, version)
    assert summary["EvaluationDetails"]["NumberOfTestingImages"] == len(truth) // 5  # the 80/20 split
    assert summary["EvaluationDetails"]["ModelType"] == "OBJECT_DETECTION"
    chance = _chance_f1(truth, np.random.default_rng(0))
    assert version["EvaluationResult"]["F1Score"] > chance, (version["EvaluationResult"], chance)

    rek.start_project_version(ProjectVersionArn=arn, MinInferenceUnits=1)
    rek.get_waiter("project_version_running").wait(
        ProjectArn=project, VersionNames=["boxes"], WaiterConfig=WAIT
    )
    from aws_twin.services.rekognition.train import iou

    found = matched = 0
    for ref, boxes in truth[:6]:
        image = {"S3Object": {"Bucket": bucket, "Name": ref.split("/", 3)[3]}}
        out = rek.detect_custom_labels(ProjectVersionArn=arn, Image=image, MinConfidence=50, MaxResults=10)
        for label in out["CustomLabels"]:
            box = label["Geometry"]["BoundingBox"]
            assert label["Name"] in DETECT and 0 <= box["Left"] <= 1 and 0 < box["Width"] <= 1
            assert len(label["Geometry"]["Polygon"]) == 4
            mine = np.array([[box["Left"], box["Top"], box["Width"], box["Height"]]])
            real = np.array([[b[1], b[2], b[3], b[4]] for b in boxes if b[0] == label["Name"]]) / data.SCENE
            matched += bool(len(real)) and float(iou(mine, real).max()) >= 0.5
            found += 1
    assert found and matched  # boxes on the items, in scenes it was trained or tested on
    rek.stop_project_version(ProjectVersionArn=arn)


def test_training_failure_is_explained(rek, s3, bucket, fashion):
    _, project = _project(rek, "onelabel")
    lines = [data.classification_line(ref, "bag", 0) for ref, label in fashion["train"] if label == "bag"]
    s3.put_object(Bucket=bucket, Key="onelabel/manifest.jsonl", Body="\n".join(lines).encode())
    rek.create_project_version(
        ProjectArn=project,
        VersionName="v1",
        OutputConfig={"S3Bucket": bucket},
        TrainingData={
            "Assets": [
                {"GroundTruthManifest": {"S3Object": {"Bucket": bucket, "Name": "onelabel/manifest.jsonl"}}}
            ]
        },
        TestingData={"AutoCreate": True},
    )
    with pytest.raises(WaiterError):
        rek.get_waiter("project_version_training_completed").wait(
            ProjectArn=project, VersionNames=["v1"], WaiterConfig=WAIT
        )
    (version,) = rek.describe_project_versions(ProjectArn=project)["ProjectVersionDescriptions"]
    assert version["Status"] == "TRAINING_FAILED"
    assert "only one label" in version["StatusMessage"] and "'bag'" in version["StatusMessage"]
    with pytest.raises(ClientError) as err:
        rek.start_project_version(ProjectVersionArn=version["ProjectVersionArn"], MinInferenceUnits=1)
    assert err.value.response["Error"]["Code"] == "ResourceInUseException"

    # an image the manifest names but S3 does not have fails training, naming the image
    missing = data.classification_line(f"s3://{bucket}/nowhere/x.png", "trouser", 1)
    s3.put_object(Bucket=bucket, Key="onelabel/missing.jsonl", Body="\n".join([*lines, missing]).encode())
    rek.create_project_version(
        ProjectArn=project,
        VersionName="v2",
        OutputConfig={"S3Bucket": bucket},
        TrainingData={
            "Assets": [
                {"GroundTruthManifest": {"S3Object": {"Bucket": bucket, "Name": "onelabel/missing.jsonl"}}}
            ]
        },
        TestingData={
            "Assets": [{"GroundTruthManifest": {"S3Object": {"Bucket": bucket, "Name": fashion["test_key"]}}}]
        },
    )
    with pytest.raises(WaiterError):
        rek.get_waiter("project_version_training_completed").wait(
            ProjectArn=project, VersionNames=["v2"], WaiterConfig=WAIT
        )
    (v2,) = rek.describe_project_versions(ProjectArn=project, VersionNames=["v2"])[
        "ProjectVersionDescriptions"
    ]
    assert v2["Status"] == "TRAINING_FAILED" and "nowhere/x.png" in v2["StatusMessage"]


def test_unknown_resources(rek):
    bogus = "arn:aws:rekognition:us-east-1:123456789012:project/none/1/version/v/1"
    for call in (
        lambda: rek.describe_project_versions(
            ProjectArn="arn:aws:rekognition:us-east-1:123456789012:project/none/1"
        ),
        lambda: rek.start_project_version(ProjectVersionArn=bogus, MinInferenceUnits=1),
        lambda: rek.detect_custom_labels(ProjectVersionArn=bogus, Image={"Bytes": b"x"}),
        lambda: rek.describe_dataset(DatasetArn=bogus),
    ):
        with pytest.raises(ClientError) as err:
            call()
        assert err.value.response["Error"]["Code"] == "ResourceNotFoundException"
