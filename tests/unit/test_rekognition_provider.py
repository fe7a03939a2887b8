"""aws_ml_provider's Rekognition hook, operators and triggers against the running twin (real boto3
over HTTP, --strict): batch DetectLabels (results equal to the service's own answers, bad images
quarantined with a reason, throttling retried, early stop, a retried task calls nothing twice),
and the Custom Labels lifecycle: project and dataset created once, a model trained deferred on
botocore's waiter, started and stopped (deferred), DetectCustomLabels with it, failures named."""

from __future__ import annotations

import asyncio
import importlib
import io
import json
import uuid
from pathlib import Path

import pytest
from airflow.providers.common.compat.sdk import AirflowFailException, TaskDeferred
from aws_ml_provider.hooks.rekognition import (
    RekognitionHook,
    project_name_from_arn,
    version_name,
    version_name_from_arn,
)
from aws_ml_provider.operators.rekognition import (
    RekognitionCreateDatasetOperator,
    RekognitionCreateProjectOperator,
    RekognitionDetectLabelsOperator,
    RekognitionStartProjectVersionOperator,
    RekognitionStopProjectVersionOperator,
    RekognitionTrainProjectVersionOperator,
)
from aws_ml_provider.utils import ground_truth as gt
from aws_ml_provider.utils.rekognition import label_records

ROOT = Path(__file__).resolve().parents[2]
PHOTOS = ROOT / "include" / "data" / "photos"
GOOD = sorted(p for p in PHOTOS.glob("*.jpg") if p.name != "corrupt.jpg")


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def _roundtrip(trigger):
    classpath, kwargs = trigger.serialize()
    json.dumps(kwargs)  # what the triggerer stores must be JSON
    module, _, cls = classpath.rpartition(".")
    clone = getattr(importlib.import_module(module), cls)(**kwargs)
    assert clone.serialize() == (classpath, kwargs)
    return clone


async def _first_event(trigger):
    async for event in trigger.run():
        return event.payload


def _finish(op, context, deferred: TaskDeferred):
    """What the triggerer and the resumed task do: run the (serialised) trigger, then the method."""
    event = asyncio.run(_first_event(_roundtrip(deferred.trigger)))
    return getattr(op, deferred.method_name)(context, event)


@pytest.fixture(scope="module")
def photos(aws):
    """The sample photos, the corrupt file and a text file in a fresh bucket."""
    s3 = aws.client("s3")
    bucket = _name("reko-provider")
    s3.create_bucket(Bucket=bucket)
    for path in sorted(PHOTOS.glob("*.jpg")):
        s3.put_object(Bucket=bucket, Key=f"in/{path.name}", Body=path.read_bytes())
    s3.put_object(Bucket=bucket, Key="in/notes.txt", Body=b"not an image at all")
    return {"bucket": bucket, "uris": [f"s3://{bucket}/in/{p.name}" for p in GOOD]}


# ---- hook and waiters -------------------------------------------------------------------------
def test_hook_has_botocores_waiters_and_its_own():
    hook = RekognitionHook(aws_conn_id=None, region_name="us-east-1")
    assert hook.conn.meta.service_model.service_name == "rekognition"
    assert {"project_version_stopped", "dataset_created"} <= set(hook.list_waiters())
    assert hook.get_waiter("project_version_training_completed").name == "ProjectVersionTrainingCompleted"
    assert hook.get_waiter("project_version_running").name == "ProjectVersionRunning"
    assert hook.get_waiter("project_version_stopped").config.operation == "DescribeProjectVersions"
    assert hook.get_waiter("dataset_created").config.operation == "DescribeDataset"


def test_names_from_arns():
    arn = "arn:aws:rekognition:us-east-1:123456789012:project/pets/version/v-1/1700000000000"
    assert project_name_from_arn(arn) == "pets" and version_name_from_arn(arn) == "v-1"
    assert version_name("dag", "manual__2026-01-01T00:00", "train") == version_name(
        "dag", "manual__2026-01-01T00:00", "train"
    )
    assert version_name("dag", "run-1", "train") != version_name("dag", "run-2", "train")


# ---- DetectLabels over a batch -------------------------------------------------------------------
def test_batch_results_equal_the_services_answers_and_bad_images_are_quarantined(aws, photos, task_context):
    bucket = photos["bucket"]
    bad = [f"s3://{bucket}/in/corrupt.jpg", f"s3://{bucket}/in/notes.txt", f"s3://{bucket}/in/missing.jpg"]
    images = photos["uris"][:4] + bad
    op = RekognitionDetectLabelsOperator(
        task_id="detect",
        images={"batch": "b0", "images": images},
        output_prefix=f"s3://{bucket}/out/detect",
        quarantine_prefix=f"s3://{bucket}/quarantine/",
        min_confidence=50,
        tps=50,
    )
    result = op.execute(task_context(task_id="detect"))
    rekognition = aws.client("rekognition")
    expected = {
        uri: rekognition.detect_labels(
            Image={"S3Object": {"Bucket": bucket, "Name": uri.split("/", 3)[3]}}, MinConfidence=50
        )["Labels"]
        for uri in images[:4]
    }
    assert result == {
        "batch": "b0",
        "results_uri": f"s3://{bucket}/out/detect/b0.json",
        "images": 7,
        "scanned": 4,
        "quarantined": 3,
        "skipped_early_stop": 0,
        "hits": sum(1 for labels in expected.values() if labels),  # no hit_labels: any label
    }
    s3 = aws.client("s3")
    stored = json.loads(s3.get_object(Bucket=bucket, Key="out/detect/b0.json")["Body"].read())
    assert stored["complete"] and list(stored["records"]) == images
    for uri in images[:4]:
        record = stored["records"][uri]
        assert record["status"] == "scanned"
        assert record["labels"] == label_records(expected[uri])
        assert record["hit"] == bool(expected[uri])
    codes = {uri: stored["records"][uri]["code"] for uri in bad}
    assert codes[bad[0]] == "InvalidImageFormatException"
    assert codes[bad[1]] == "InvalidImageFormatException"
    assert codes[bad[2]] == "InvalidS3ObjectException"
    for uri in bad[:2]:
        name = uri.rsplit("/", 1)[1]
        reason = json.loads(s3.get_object(Bucket=bucket, Key=f"quarantine/{name}.reason.json")["Body"].read())
        assert reason["image"] == uri and reason["code"] == codes[uri] and uri in reason["reason"]
        assert s3.head_object(Bucket=bucket, Key=f"quarantine/{name}")["ContentLength"] > 0
    # the missing image cannot be copied, and says so in its record
    missing = json.loads(
        s3.get_object(Bucket=bucket, Key="quarantine/missing.jpg.reason.json")["Body"].read()
    )
    assert "copy_error" in missing and missing["code"] == "InvalidS3ObjectException"


def test_a_retried_batch_calls_nothing_twice(aws, photos, task_context):
    """The second try finds the first try's results: it returns them without calling Rekognition
    (the source images are deleted in between: a call would quarantine them)."""
    s3 = aws.client("s3")
    bucket = photos["bucket"]
    for path in GOOD[:3]:
        s3.put_object(Bucket=bucket, Key=f"retry/{path.name}", Body=path.read_bytes())
    images = [f"s3://{bucket}/retry/{p.name}" for p in GOOD[:3]]

    def run():
        return RekognitionDetectLabelsOperator(
            task_id="detect", images=images, output_prefix=f"s3://{bucket}/out/retry", tps=50
        ).execute(task_context(task_id="detect"))

    first = run()
    for path in GOOD[:3]:
        s3.delete_object(Bucket=bucket, Key=f"retry/{path.name}")
    second = run()
    assert first == second and second["scanned"] == 3 and second["quarantined"] == 0


def test_throttling_is_retried_and_nothing_is_lost(aws, photos, task_context):
    # the first two DetectLabels calls are throttled (a fixed count: a random share made the
    # backoffs, and the test's time, vary from 7 to 23 s); botocore retries them with backoff
    aws.set_faults("rekognition:DetectLabels:throttle=1,times=2")
    try:
        result = RekognitionDetectLabelsOperator(
            task_id="detect",
            images=photos["uris"],
            output_prefix=f"s3://{photos['bucket']}/out/throttled",
            tps=50,
        ).execute(task_context(task_id="detect"))
        throttled = aws.control("faults")["counters"]["throttled"]
    finally:
        aws.control("faults", "DELETE")
    assert throttled == 2
    assert result["scanned"] == len(photos["uris"]) and result["quarantined"] == 0


def test_early_stop_after_misses_in_a_row(photos, task_context):
    result = RekognitionDetectLabelsOperator(
        task_id="detect",
        images=photos["uris"],
        output_prefix=f"s3://{photos['bucket']}/out/early",
        hit_labels={"Label-no-photo-has": 1},
        stop_after_misses=3,
        tps=50,
    ).execute(task_context(task_id="detect"))
    assert result["scanned"] == 3 and result["hits"] == 0
    assert result["skipped_early_stop"] == len(photos["uris"]) - 3


# ---- Custom Labels ----------------------------------------------------------------------------
def _augmented(path: Path, count: int) -> list[bytes]:
    """``count`` different crops / flips of a photo (what a labelling job of one scene gives)."""
    from PIL import Image, ImageOps

    image = Image.open(path).convert("RGB")
    w, h = image.size
    out = []
    for i in range(count):
        f = 0.6 + 0.04 * (i % 8)
        box = (int(w * (1 - f) * (i % 3) / 2), int(h * (1 - f) * (i % 2)), 0, 0)
        crop = image.crop((box[0], box[1], box[0] + int(w * f), box[1] + int(h * f)))
        if i % 2:
            crop = ImageOps.mirror(crop)
        buf = io.BytesIO()
        crop.save(buf, format="JPEG", quality=90)
        out.append(buf.getvalue())
    return out


@pytest.fixture(scope="module")
def training_manifest(aws, photos):
    """A classification manifest of two labels (crops of the cat photo and of the dog photo),
    written with the provider's Ground Truth writer."""
    s3 = aws.client("s3")
    bucket = photos["bucket"]
    sources = {"Cat": PHOTOS / "chelsea_cat.jpg", "Dog": PHOTOS / "dog_bicycle.jpg"}
    ids = gt.class_ids(sources)
    lines = []
    for label, path in sources.items():
        for i, body in enumerate(_augmented(path, 12)):
            key = f"train/{label}/{i:02d}.jpg"
            s3.put_object(Bucket=bucket, Key=key, Body=body)
            lines.append(
                gt.classification_line(
                    f"s3://{bucket}/{key}", label, class_id=ids[label], human_annotated=True
                )
            )
    s3.put_object(Bucket=bucket, Key="train/output.manifest", Body=gt.dumps(lines).encode())
    return f"s3://{bucket}/train/output.manifest"


@pytest.fixture(scope="module")
def project(aws, task_context):
    name = _name("pets")
    arn = RekognitionCreateProjectOperator(task_id="project", project_name=name).execute(
        task_context(task_id="project")
    )
    return {"name": name, "arn": arn}


def test_project_is_created_once(aws, project, task_context):
    again = RekognitionCreateProjectOperator(task_id="project", project_name=project["name"]).execute(
        task_context(task_id="project")
    )
    assert again == project["arn"]
    found = aws.client("rekognition").describe_projects(ProjectNames=[project["name"]])["ProjectDescriptions"]
    assert [p["ProjectArn"] for p in found] == [project["arn"]]


def test_dataset_from_a_bad_manifest_fails_naming_the_line(aws, photos, task_context):
    s3 = aws.client("s3")
    bucket = photos["bucket"]
    good = gt.classification_line(f"s3://{bucket}/in/{GOOD[0].name}", "Cat", class_id=0)
    s3.put_object(Bucket=bucket, Key="bad/output.manifest", Body=(gt.dumps([good]) + "{broken\n").encode())
    name = _name("bad-manifest")
    arn = RekognitionCreateProjectOperator(task_id="p", project_name=name).execute(task_context(task_id="p"))
    op = RekognitionCreateDatasetOperator(
        task_id="dataset",
        project=arn,
        manifest_s3_uri=f"s3://{bucket}/bad/output.manifest",
        waiter_delay=1,
        waiter_max_attempts=60,
    )
    with pytest.raises(AirflowFailException, match="CREATE_FAILED") as failed:
        op.execute(task_context(task_id="dataset"))
    assert "2" in str(failed.value)  # the line number of the broken line


@pytest.mark.timeout(900)
def test_train_start_detect_stop(aws, photos, project, training_manifest, task_context):
    ctx = task_context(task_id="dataset")
    dataset = RekognitionCreateDatasetOperator(
        task_id="dataset",
        project=project["name"],
        manifest_s3_uri=training_manifest,
        deferrable=True,
        waiter_delay=1,
    )
    try:
        dataset_arn = dataset.execute(ctx)
    except TaskDeferred as deferred:
        dataset_arn = _finish(dataset, ctx, deferred)
    # created once: a retry reuses it
    assert dataset.execute(ctx) == dataset_arn
    described = aws.client("rekognition").describe_dataset(DatasetArn=dataset_arn)["DatasetDescription"]
    assert described["Status"] == "CREATE_COMPLETE"
    assert described["DatasetStats"]["TotalEntries"] == 24 and described["DatasetStats"]["TotalLabels"] == 2

    ctx = task_context(task_id="train")
    train = RekognitionTrainProjectVersionOperator(
        task_id="train",
        project=project["arn"],
        output_s3_uri=f"s3://{photos['bucket']}/custom-labels/",
        deferrable=True,
        waiter_delay=2,
        waiter_max_attempts=400,
    )
    with pytest.raises(TaskDeferred) as deferred:
        train.execute(ctx)
    assert deferred.value.trigger.waiter_name == "project_version_training_completed"
    trained = _finish(train, ctx, deferred.value)
    assert trained["status"] == "TRAINING_COMPLETED"
    assert 0.0 <= trained["f1_score"] <= 1.0
    print(f"Custom Labels model on 24 crops of two photos: F1 {trained['f1_score']:.3f}")
    assert trained["f1_score"] >= 0.5
    summary_uri = trained["evaluation_summary_uri"]
    bucket, key = summary_uri[len("s3://") :].split("/", 1)
    assert json.loads(aws.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read())
    # a retry attaches to the trained model (same deterministic version name)
    assert train.execute(ctx)["project_version_arn"] == trained["project_version_arn"]

    model = trained["project_version_arn"]
    ctx = task_context(task_id="start")
    start = RekognitionStartProjectVersionOperator(
        task_id="start", project_version_arn=trained, deferrable=True, waiter_delay=1
    )
    try:
        assert start.execute(ctx) == model
    except TaskDeferred as deferred:
        assert deferred.trigger.waiter_name == "project_version_running"
        assert _finish(start, ctx, deferred) == model
    rekognition = aws.client("rekognition")
    status = lambda: rekognition.describe_project_versions(  # noqa: E731
        ProjectArn=project["arn"], VersionNames=[version_name_from_arn(model)]
    )["ProjectVersionDescriptions"][0]["Status"]
    assert status() == "RUNNING"
    assert start.execute(ctx) == model  # running already: attached, not started twice

    result = RekognitionDetectLabelsOperator(
        task_id="custom",
        images=[f"s3://{photos['bucket']}/in/chelsea_cat.jpg", f"s3://{photos['bucket']}/in/dog_bicycle.jpg"],
        project_version_arn=model,
        output_prefix=f"s3://{photos['bucket']}/out/custom",
        tps=20,
    ).execute(task_context(task_id="custom"))
    assert result["scanned"] == 2
    records = json.loads(
        aws.client("s3").get_object(Bucket=photos["bucket"], Key="out/custom/all.json")["Body"].read()
    )["records"]
    best = {
        uri.rsplit("/", 1)[1]: (r["labels"][0]["name"] if r["labels"] else None) for uri, r in records.items()
    }
    assert best == {"chelsea_cat.jpg": "Cat", "dog_bicycle.jpg": "Dog"}

    ctx = task_context(task_id="stop")
    stop = RekognitionStopProjectVersionOperator(
        task_id="stop", project_version_arn=model, deferrable=True, waiter_delay=1
    )
    try:
        stop.execute(ctx)
    except TaskDeferred as deferred:
        assert deferred.trigger.waiter_name == "project_version_stopped"
        assert _finish(stop, ctx, deferred) == "STOPPED"
    assert status() == "STOPPED"
    # a teardown that runs again, or after a skipped start, does nothing
    assert stop.execute(ctx) == "STOPPED"
    assert (
        RekognitionStopProjectVersionOperator(task_id="stop", project_version_arn=None).execute(ctx) is None
    )


def test_replace_makes_a_new_dataset_from_the_new_manifest(aws, photos, training_manifest, task_context):
    s3 = aws.client("s3")
    bucket, key = training_manifest[len("s3://") :].split("/", 1)
    lines = s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode().splitlines()
    smaller = lines[:5] + lines[-5:]  # both labels, ten images
    s3.put_object(Bucket=bucket, Key="train/smaller.manifest", Body=("\n".join(smaller) + "\n").encode())
    name = _name("replace")
    RekognitionCreateProjectOperator(task_id="p", project_name=name).execute(task_context(task_id="p"))

    def create(manifest, if_exists):
        return RekognitionCreateDatasetOperator(
            task_id="dataset", project=name, manifest_s3_uri=manifest, if_exists=if_exists, waiter_delay=1
        ).execute(task_context(task_id="dataset"))

    first = create(training_manifest, "reuse")
    assert create(f"s3://{bucket}/train/smaller.manifest", "reuse") == first  # reuse: the same
    second = create(f"s3://{bucket}/train/smaller.manifest", "replace")
    assert second != first
    rekognition = aws.client("rekognition")
    stats = rekognition.describe_dataset(DatasetArn=second)["DatasetDescription"]["DatasetStats"]
    assert stats["TotalEntries"] == 10 and stats["TotalLabels"] == 2
    with pytest.raises(rekognition.exceptions.ResourceNotFoundException):
        rekognition.describe_dataset(DatasetArn=first)
