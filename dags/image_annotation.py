"""
### Image annotation: sort unlabeled images into label folders with Amazon Rekognition and A2I review

After the AWS blog "Automate annotation of image training data with Amazon Rekognition". Every
run takes the images under `input_prefix` (in key order) and a set of **target labels, each with
its own confidence threshold** (`target_labels`, e.g. `{"Dog": 90, "Cat": 85}`), and:

1. **lists** them, up to `scan_cap` images (the rest are counted as `skipped_by_cap`), in mapped
   batches of `batch_size`;
2. runs **DetectLabels** on each image (`RekognitionDetectLabelsOperator`, mapped over the
   batches, sharing the `rekognition_tps` budget; throttling retried with backoff). An image
   Rekognition refuses (not an image, too large, unreadable) is **quarantined** under
   `quarantine_prefix/<run>/` with a `.reason.json` naming it and the reason. With
   `stop_after_misses`, a batch stops after that many images in a row with no target label even
   within the review band (the rest of the batch is counted as `skipped_early_stop`);
3. **labels** an image that has a target label at or above its threshold: copied to
   `<output_prefix>/<label>/<key>` (the folder layout Rekognition Custom Labels imports);
4. sends an image whose best target label is within `review_band` points below its threshold to
   **people** (one A2I human loop per image, deterministic name: a retried task attaches to its
   loop; the task page shows the image and the candidate labels), and waits for them in the
   triggerer (hours or days, no worker slot held);
5. **merges** the answers (the reviewer's label is copied into its folder; "None of these"
   rejects the image) and writes a SageMaker **Ground Truth image-classification manifest**
   (`_runs/<run>/output.manifest`, `human-annotated` says who labelled each image), one JSON per
   image (`_annotations/<key>.json`) and the run's `summary.json`, whose counts reconcile:
   `scanned = labelled + reviewed + rejected + quarantined`, and `listed = scanned +
   skipped_early_stop`, `found = listed + skipped_by_cap`;
6. optionally (`train_custom_labels`, off by default) creates a Rekognition **Custom Labels**
   project and TRAIN dataset from the manifest and trains a model on it (deferrable). With
   `start_model` it then starts the model, labels the manifest's images with it, and **stops it in
   a teardown task** that runs even when those tasks fail (a running model is billed by the hour).

**Configuration.** An empty Param means "the Variable, else the default that works on aws_twin":
the prefixes default to `s3://<Variable ml_bucket>/image-annotation/{unlabeled,labeled,quarantine}/`,
the A2I work team and role to the Variables `a2i_workteam_arn` and `a2i_role_arn`
(else `sagemaker_role_arn`). `stage_samples` (off by default) first uploads the photos shipped in
`include/data/photos/` (scikit-image and Debian darknet sample photos, see their LICENSE, and one
corrupt file) to the input prefix: tick it to try the DAG.

Offline, the only change is the `aws_default` connection's endpoint URL (aws_twin).
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta

from airflow.sdk import Asset, Param, TaskGroup, dag, get_current_context, task
from aws_ml_provider.operators.rekognition import (
    RekognitionCreateDatasetOperator,
    RekognitionCreateProjectOperator,
    RekognitionDetectLabelsOperator,
    RekognitionStartProjectVersionOperator,
    RekognitionStopProjectVersionOperator,
    RekognitionTrainProjectVersionOperator,
)
from aws_ml_provider.task_groups.a2i import a2i_human_review
from aws_ml_provider.utils import s3 as s3_utils
from aws_ml_provider.utils.run_config import a2i_params, prefix_param, run_settings

DAG_ID = "image_annotation"
AWS_CONN_ID = "aws_default"

DEFAULT_BUCKET = "aws-ml-provider-demo"
DEFAULT_WORKTEAM_ARN = "arn:aws:sagemaker:us-east-1:123456789012:workteam/private-crowd/image-reviewers"
DEFAULT_A2I_ROLE_ARN = "arn:aws:iam::123456789012:role/image-annotation-a2i"
DEFAULT_PREFIXES = {
    "input_prefix": "image-annotation/unlabeled/",
    "output_prefix": "image-annotation/labeled/",
    "quarantine_prefix": "image-annotation/quarantine/",
}
#: the target labels and their thresholds when the Param is empty (labels the sample photos show)
DEFAULT_TARGETS = {"Cat": 85.0, "Dog": 85.0, "Bird": 85.0, "Coffee": 80.0}
SAMPLES = "data/photos"  # under include/
SAMPLE_SUFFIXES = (".jpg", ".jpeg", ".png")
TASK_UI_TEMPLATE = "templates/image_label_review.liquid.html"  # under include/

#: batch tasks that may call Rekognition at once; each gets rekognition_tps / DETECT_SLOTS
DETECT_SLOTS = 4
REVIEW_POLL_SECONDS = int(os.environ.get("AWS_ML_WAITER_DELAY") or 300)
TRAIN_POLL_SECONDS = int(os.environ.get("AWS_ML_WAITER_DELAY") or 60)
MODEL_POLL_SECONDS = int(os.environ.get("AWS_ML_WAITER_DELAY") or 30)
REVIEW_TIMEOUT = timedelta(days=14)

MANIFEST_ASSET = Asset(name="image_annotation_manifest", group="image-annotation")


# ------------------------------------------------------------------------------------------------
# helpers (run inside tasks only)


def _work(cfg: dict, run_id: str) -> str:
    """``<output_prefix>/_runs/<run>``: the run's working files, manifest and summary."""
    from aws_ml_provider.utils.expense import run_key

    return f"{cfg['output_prefix'].rstrip('/')}/_runs/{run_key(run_id)}"


def _relative(cfg: dict, image_uri: str) -> str:
    """The image's key below the input prefix (its name in the label folders)."""
    _, prefix = s3_utils.split_prefix(cfg["input_prefix"])
    _, key = s3_utils.split_object_uri(image_uri)
    return key[len(prefix) :] if key.startswith(prefix) else key.rsplit("/", 1)[-1]


def _copy_to_label(s3, cfg: dict, image_uri: str, label: str) -> str:
    """Copy the image to ``<output_prefix>/<label>/<relative key>``; return the copy's URI."""
    src_bucket, src_key = s3_utils.split_object_uri(image_uri)
    bucket, prefix = s3_utils.split_prefix(cfg["output_prefix"])
    key = f"{prefix}{label}/{_relative(cfg, image_uri)}"
    s3.copy({"Bucket": src_bucket, "Key": src_key}, bucket, key)
    return f"s3://{bucket}/{key}"


def _prefix_param(title: str, name: str, description: str) -> Param:
    return prefix_param(title, description, DEFAULT_PREFIXES[name])


@dag(
    dag_id=DAG_ID,
    schedule=None,
    start_date=datetime(2025, 1, 1),
    catchup=False,
    max_active_runs=2,
    doc_md=__doc__,
    tags=["rekognition", "a2i", "images", "ground-truth"],
    default_args={
        "owner": "ml",
        "retries": 2,
        "retry_delay": timedelta(seconds=20),
        "retry_exponential_backoff": True,
        "max_retry_delay": timedelta(minutes=10),
    },
    params={
        "input_prefix": _prefix_param("Input prefix", "input_prefix", "S3 prefix of the unlabeled images."),
        "output_prefix": _prefix_param(
            "Output prefix",
            "output_prefix",
            "Label folders (<output>/<label>/), per-image JSON, manifests and run summaries.",
        ),
        "quarantine_prefix": _prefix_param(
            "Quarantine prefix",
            "quarantine_prefix",
            "Images Rekognition refuses are copied here with a .reason.json.",
        ),
        "stage_samples": Param(
            False,
            type="boolean",
            title="Stage the sample photos",
            description="First upload the photos shipped in include/data/photos to the input prefix.",
            section="Locations",
        ),
        "target_labels": Param(
            None,
            type=["null", "object"],
            title="Target labels and thresholds",
            description='{"label": confidence threshold (0-100), ...}. Empty: '
            + ", ".join(f"{k} {v:g}" for k, v in DEFAULT_TARGETS.items()),
            section="Labels",
        ),
        "review_band": Param(
            30,
            type=["null", "number"],
            minimum=0,
            maximum=100,
            title="Review band (points below the threshold)",
            description="A target label this many points or fewer below its threshold sends the image "
            "to people. 0: no review. Empty: 30.",
            section="Labels",
        ),
        "scan_cap": Param(
            1000,
            type=["null", "integer"],
            minimum=1,
            title="Scan cap",
            description="Scan at most this many images (in key order). Empty: no cap.",
            section="Scan",
        ),
        "stop_after_misses": Param(
            None,
            type=["null", "integer"],
            minimum=1,
            title="Early stop after N misses in a row",
            description="A batch stops after this many images in a row with no target label (even "
            "within the review band). Empty: never stop early.",
            section="Scan",
        ),
        "batch_size": Param(
            25, type=["null", "integer"], minimum=1, maximum=1000, title="Batch size", section="Scan"
        ),
        "rekognition_tps": Param(
            5.0,
            type=["null", "number"],
            exclusiveMinimum=0,
            title="Rekognition TPS budget",
            description=f"DetectLabels calls per second for the run, split between {DETECT_SLOTS} batch tasks.",
            section="Scan",
        ),
        **a2i_params(human_task_ui_name="image-label-review-ui", flow_definition_name="image-label-review"),
        "a2i_tps": Param(
            5.0, type=["null", "number"], exclusiveMinimum=0, title="A2I StartHumanLoop TPS", section="Review"
        ),
        "train_custom_labels": Param(
            False,
            type="boolean",
            title="Train a Custom Labels model",
            description="Create a Rekognition Custom Labels project and dataset from the manifest and train a model.",
            section="Custom Labels",
        ),
        "project_name": Param(
            "image-annotation",
            type=["null", "string"],
            title="Custom Labels project",
            section="Custom Labels",
        ),
        "start_model": Param(
            False,
            type="boolean",
            title="Start the model and label the images with it",
            description="Billed by the hour while running: a teardown task stops it.",
            section="Custom Labels",
        ),
    },
)
def image_annotation():
    @task(multiple_outputs=True)
    def resolve_config() -> dict:
        """The run's locations, ARNs, targets and scan settings (Param, else Variable, else the
        twin default); every later task uses these."""
        from aws_ml_provider.utils.expense import run_key
        from aws_ml_provider.utils.paths import include_path
        from aws_ml_provider.utils.rekognition import validate_targets
        from aws_ml_provider.utils.run_config import a2i_arns, resolve_prefixes

        params = get_current_context()["params"]
        cfg = resolve_prefixes(params, DEFAULT_PREFIXES, default_bucket=DEFAULT_BUCKET)
        cfg.update(a2i_arns(params, workteam_default=DEFAULT_WORKTEAM_ARN, role_default=DEFAULT_A2I_ROLE_ARN))
        targets = validate_targets(params["target_labels"] or DEFAULT_TARGETS)
        band = float(params["review_band"] if params["review_band"] is not None else 30)
        cfg["targets"] = targets
        cfg["review_band"] = band
        # a batch's "hit": any target within its review band (what the run uses at all)
        cfg["hit_labels"] = {name: max(0.0, threshold - band) for name, threshold in targets.items()}
        cfg["min_confidence"] = min(cfg["hit_labels"].values())
        cfg["stop_after_misses"] = params["stop_after_misses"] or 0
        cfg["tps_per_task"] = float(params["rekognition_tps"] or 5.0) / DETECT_SLOTS
        cfg["human_task_ui_name"] = params["human_task_ui_name"] or "image-label-review-ui"
        cfg["flow_definition_name"] = params["flow_definition_name"] or "image-label-review"
        cfg["project_name"] = params["project_name"] or "image-annotation"
        cfg["a2i_output_uri"] = f"{cfg['output_prefix'].rstrip('/')}/_a2i"
        cfg["task_ui_template_path"] = str(include_path(TASK_UI_TEMPLATE, anchor=__file__))
        run_id = get_current_context()["run_id"]
        cfg["work_prefix"] = _work(cfg, run_id)
        cfg["detect_prefix"] = f"{cfg['work_prefix']}/detect"
        cfg["run_quarantine_prefix"] = f"{cfg['quarantine_prefix'].rstrip('/')}/{run_key(run_id)}/"
        print(cfg)
        return cfg

    @task
    def prepare(cfg: dict) -> dict:
        """Create the buckets if absent; upload the sample photos when ``stage_samples`` (an
        object with the same bytes already there is left alone)."""
        from aws_ml_provider.utils.paths import include_path

        _, params = run_settings(cfg)
        s3 = s3_utils.client(AWS_CONN_ID)
        buckets = s3_utils.ensure_buckets(s3, (params[name] for name in DEFAULT_PREFIXES))
        staged = None
        if params["stage_samples"]:
            bucket, prefix = s3_utils.split_prefix(params["input_prefix"])
            photos = [
                (path, f"s3://{bucket}/{prefix}{path.name}")
                for path in sorted(include_path(SAMPLES, anchor=__file__).iterdir())
                if path.suffix.lower() in SAMPLE_SUFFIXES
            ]
            staged = s3_utils.stage_files(s3, photos)
            print(f"staged the sample photos: {staged}")
        return {"buckets": buckets, "staged": staged}

    @task
    def list_images(cfg: dict, prepared: dict) -> list[dict]:
        """The images under the input prefix in key order, up to ``scan_cap``; one manifest per
        batch. The objects past the cap are counted (``skipped_by_cap``), not scanned."""
        run_id, params = run_settings(cfg)
        s3 = s3_utils.client(AWS_CONN_ID)
        bucket, prefix = s3_utils.split_prefix(params["input_prefix"])
        cap = params["scan_cap"]
        images: list[str] = []
        skipped_by_cap = folders = 0
        pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        for obj in (obj for page in pages for obj in page.get("Contents", [])):
            if obj["Key"].endswith("/"):
                folders += 1
            elif cap is not None and len(images) >= int(cap):
                skipped_by_cap += 1
            else:
                images.append(f"s3://{bucket}/{obj['Key']}")
        size = int(params["batch_size"] or 25)
        batches = []
        for number, index in enumerate(range(0, len(images), size)):
            uri = s3_utils.write_json(
                s3,
                f"{cfg['work_prefix']}/batches/{number:05d}.json",
                {"batch": f"{number:05d}", "images": images[index : index + size]},
            )
            batches.append({"batch": f"{number:05d}", "manifest_uri": uri})
        listing = {
            "found": len(images) + skipped_by_cap,
            "listed": len(images),
            "skipped_by_cap": skipped_by_cap,
            "folder_markers": folders,
            "batches": len(batches),
            "prepared": prepared,
        }
        s3_utils.write_json(s3, f"{cfg['work_prefix']}/listing.json", listing)
        print(f"listing of {params['input_prefix']}: {listing}")
        return batches

    @task(max_active_tis_per_dag=DETECT_SLOTS)
    def classify_batch(cfg: dict, detected: dict) -> dict:
        """Each scanned image against the targets: labelled ones are copied into their label
        folders now; the review band and the rejected are recorded for the merge."""
        from aws_ml_provider.utils.rekognition import LABELLED, decide

        _, params = run_settings(cfg)
        s3 = s3_utils.client(AWS_CONN_ID)
        results = s3_utils.read_json(s3, detected["results_uri"])
        decisions = []
        for image, record in results["records"].items():
            entry = {"image": image, "status": record["status"], "labels_found": record.get("labels", [])}
            if record["status"] == "quarantined":
                entry.update({k: record.get(k) for k in ("code", "reason", "quarantine_uri")})
            elif record["status"] == "scanned":
                entry.update(decide(record["labels"], cfg["targets"], cfg["review_band"]))
                if entry["decision"] == LABELLED:
                    entry["copies"] = [_copy_to_label(s3, cfg, image, label) for label in entry["labels"]]
            decisions.append(entry)
        uri = s3_utils.write_json(s3, f"{cfg['work_prefix']}/decisions/{detected['batch']}.json", decisions)
        counts = {
            key: sum(1 for d in decisions if d.get("decision") == key)
            for key in ("labelled", "review", "rejected")
        }
        print(f"batch {detected['batch']}: {counts}, {detected}")
        return {"batch": detected["batch"], "decisions_uri": uri, **counts}

    @task(trigger_rule="none_failed")
    def start_review_loops(cfg: dict, decided: list[dict] | None, flow_definition_arn: str) -> dict:
        """One human loop per image in the review band (deterministic names: a retry attaches to
        the loops it started), paced at ``a2i_tps``."""
        from aws_ml_provider.hooks.a2i import A2IRuntimeHook, flow_definition_name_from_arn
        from aws_ml_provider.utils.expense import TokenBucket
        from aws_ml_provider.utils.rekognition import NONE_OF_THESE, REVIEW

        run_id, params = run_settings(cfg)
        s3 = s3_utils.client(AWS_CONN_ID)
        hook = A2IRuntimeHook(aws_conn_id=AWS_CONN_ID)
        bucket = TokenBucket(float(params["a2i_tps"] or 5.0))
        flow_name = flow_definition_name_from_arn(flow_definition_arn)
        loops: dict[str, str] = {}
        created = 0
        for batch in decided or []:
            for entry in s3_utils.read_json(s3, batch["decisions_uri"]):
                if entry.get("decision") != REVIEW:
                    continue
                # <slug of the image's name>-<hash of its URI, the flow definition and the run>
                name = hook.human_loop_name(
                    _relative(cfg, entry["image"]), entry["image"], flow_name, DAG_ID, run_id
                )
                candidates = entry["candidates"]
                bucket.acquire()
                started = hook.start_human_loop(
                    name,
                    flow_definition_arn,
                    {
                        "image_s3_uri": entry["image"],
                        "image_name": _relative(cfg, entry["image"]),
                        "candidates": candidates,
                        "categories": [c["label"] for c in candidates] + [NONE_OF_THESE],
                    },
                    content_classifiers=["FreeOfPersonallyIdentifiableInformation"],
                )
                created += int(started["created"])
                loops[entry["image"]] = name
        loops_uri = s3_utils.write_json(s3, f"{cfg['work_prefix']}/loops.json", loops)
        print(f"{len(loops)} human loop(s), {created} started now")
        return {"loops_uri": loops_uri, "loops": sorted(loops.values())}

    @task(trigger_rule="none_failed", outlets=[MANIFEST_ASSET], multiple_outputs=True)
    def merge(cfg: dict, decided: list[dict] | None, started: dict) -> dict:
        """The reviewers' answers over the machine's decisions; the Ground Truth manifest, one
        JSON per image and the run summary (counts reconcile)."""
        import json
        from collections import Counter

        from aws_ml_provider.hooks.a2i import LOOP_DONE, A2IRuntimeHook
        from aws_ml_provider.utils import ground_truth
        from aws_ml_provider.utils.a2i_output import answers
        from aws_ml_provider.utils.rekognition import LABELLED, REJECTED, REVIEW, review_answer

        run_id, params = run_settings(cfg)
        s3 = s3_utils.client(AWS_CONN_ID)
        hook = A2IRuntimeHook(aws_conn_id=AWS_CONN_ID)
        loops = s3_utils.read_json(s3, started["loops_uri"], default={}) if started else {}
        batch_results = {}
        for batch in decided or []:
            batch_results[batch["batch"]] = s3_utils.read_json(s3, batch["decisions_uri"])
        entries = [e for batch in sorted(batch_results) for e in batch_results[batch]]
        out = cfg["output_prefix"].rstrip("/")
        counts: Counter = Counter()
        review_outcomes: Counter = Counter()
        per_label: Counter = Counter()
        quarantine_reasons: Counter = Counter()
        labelled_images = []  # (image, labels, human)
        for entry in entries:
            status = entry["status"]
            record = {
                "image": entry["image"],
                "run_id": run_id,
                "labels_found": entry.get("labels_found", []),
            }
            if status == "skipped_early_stop":
                counts["skipped_early_stop"] += 1
                continue  # not scanned: no per-image JSON
            if status == "quarantined":
                counts["quarantined"] += 1
                quarantine_reasons[entry.get("code") or "Unknown"] += 1
                record.update(status="quarantined", code=entry.get("code"), reason=entry.get("reason"))
                record["quarantine_uri"] = entry.get("quarantine_uri")
            elif entry["decision"] == LABELLED:
                counts["labelled"] += 1
                record.update(
                    status="labelled", labels=entry["labels"], scores=entry["scores"], copies=entry["copies"]
                )
                labelled_images.append((entry["image"], entry["labels"], entry["scores"], False))
            elif entry["decision"] == REVIEW:
                counts["reviewed"] += 1
                name = loops.get(entry["image"])
                record.update(
                    status="reviewed", candidates=entry["candidates"], scores=entry["scores"], loop=name
                )
                state = hook.human_loop_state(name) if name else {"status": "NotStarted"}
                if state["status"] != LOOP_DONE or not state.get("output_s3_uri"):
                    review_outcomes["not_completed"] += 1
                    record.update(
                        review="not_completed",
                        labels=[],
                        reason=f"human loop {name} ended {state['status']}: {state.get('failure_reason') or ''}",
                    )
                else:
                    output = hook.read_output(state["output_s3_uri"])
                    chosen = review_answer(answers(output))
                    worker = (output.get("humanAnswers") or [{}])[-1].get("workerId")
                    allowed = {c["label"] for c in entry["candidates"]}
                    if chosen and chosen in allowed:
                        review_outcomes["labelled"] += 1
                        copy = _copy_to_label(s3, cfg, entry["image"], chosen)
                        record.update(review="labelled", labels=[chosen], copies=[copy], worker=worker)
                        labelled_images.append((entry["image"], [chosen], entry["scores"], True))
                    else:
                        review_outcomes["rejected"] += 1
                        record.update(review="rejected", labels=[], answer=chosen, worker=worker)
            else:
                counts[REJECTED] += 1
                record.update(status="rejected", labels=[], scores=entry["scores"])
            rel = _relative(cfg, entry["image"])
            s3_utils.write_json(s3, f"{out}/_annotations/{rel}.json", record)
        # the Ground Truth manifest: one line per labelled image, the copy in its (first) label folder
        ids = ground_truth.class_ids(label for _, labels, _, _ in labelled_images for label in labels)
        lines = []
        for image, labels, scores, human in labelled_images:
            bucket, prefix = s3_utils.split_prefix(cfg["output_prefix"])
            line = ground_truth.classification_line(
                f"s3://{bucket}/{prefix}{labels[0]}/{_relative(cfg, image)}",
                labels[0],
                class_id=ids[labels[0]],
                human_annotated=human,
                confidence=1.0 if human else scores.get(labels[0], 0.0) / 100,
                job_name=f"labeling-job/{DAG_ID}",
            )
            for extra in labels[1:]:  # more target labels at once: one more attribute each
                more = ground_truth.classification_line(
                    line["source-ref"],
                    extra,
                    class_id=ids[extra],
                    attribute=f"class-{extra.lower()}",
                    confidence=scores.get(extra, 0.0) / 100,
                    job_name=f"labeling-job/{DAG_ID}",
                )
                line.update({k: v for k, v in more.items() if k != "source-ref"})
            lines.append(line)
            per_label.update(labels)
        manifest_uri = s3_utils.put_text(
            s3, f"{cfg['work_prefix']}/output.manifest", ground_truth.dumps(lines), "application/x-ndjson"
        )
        listing = s3_utils.read_json(s3, f"{cfg['work_prefix']}/listing.json", default={})
        scanned = counts["labelled"] + counts["reviewed"] + counts[REJECTED] + counts["quarantined"]
        summary = {
            "run_id": run_id,
            "input_prefix": cfg["input_prefix"],
            "targets": cfg["targets"],
            "review_band": cfg["review_band"],
            "found": listing.get("found", 0),
            "skipped_by_cap": listing.get("skipped_by_cap", 0),
            "listed": listing.get("listed", 0),
            "skipped_early_stop": counts["skipped_early_stop"],
            "scanned": scanned,
            "labelled": counts["labelled"],
            "reviewed": counts["reviewed"],
            "rejected": counts[REJECTED],
            "quarantined": counts["quarantined"],
            "review_outcomes": {k: review_outcomes[k] for k in ("labelled", "rejected", "not_completed")},
            "images_per_label": dict(sorted(per_label.items())),
            "manifest_lines": len(lines),
            "quarantine_reasons": dict(quarantine_reasons),
            "staged": (listing.get("prepared") or {}).get("staged"),
            "manifest_uri": manifest_uri,
            "annotations_prefix": f"{out}/_annotations/",
        }
        if summary["listed"] != scanned + counts["skipped_early_stop"]:
            raise ValueError(f"counts do not reconcile (listed != scanned + skipped_early_stop): {summary}")
        summary_uri = s3_utils.write_json(s3, f"{cfg['work_prefix']}/summary.json", summary)
        summary["summary_uri"] = summary_uri
        get_current_context()["outlet_events"][MANIFEST_ASSET].extra = {
            "manifest_uri": manifest_uri,
            "summary_uri": summary_uri,
        }
        print(json.dumps(summary))
        return summary

    @task.short_circuit
    def want_training(summary: dict) -> bool:
        """Train only when asked and the manifest has two labels or more (Custom Labels' minimum
        for a classification model)."""
        params = get_current_context()["params"]
        if not params["train_custom_labels"]:
            print("train_custom_labels is off")
            return False
        if len(summary["images_per_label"]) < 2:
            print(f"not training: the manifest has {len(summary['images_per_label'])} label(s), 2 needed")
            return False
        return True

    @task.short_circuit(ignore_downstream_trigger_rules=False)
    def want_model_started() -> bool:
        return bool(get_current_context()["params"]["start_model"])

    @task
    def manifest_images(summary: dict) -> dict:
        """The manifest's images, one batch for the running model."""
        from aws_ml_provider.utils import ground_truth

        s3 = s3_utils.client(AWS_CONN_ID)
        text = s3_utils.read_bytes(s3, summary["manifest_uri"]).decode()
        return {
            "batch": "custom-labels",
            "images": [e.source_ref for e in ground_truth.read_manifest(text).entries],
        }

    cfg = resolve_config()
    prepared = prepare(cfg)
    batches = list_images(cfg, prepared)
    detected = RekognitionDetectLabelsOperator.partial(
        task_id="detect_labels",
        aws_conn_id=AWS_CONN_ID,
        output_prefix=cfg["detect_prefix"],
        quarantine_prefix=cfg["run_quarantine_prefix"],
        min_confidence=cfg["min_confidence"],
        hit_labels=cfg["hit_labels"],
        stop_after_misses=cfg["stop_after_misses"],
        tps=cfg["tps_per_task"],
        max_active_tis_per_dag=DETECT_SLOTS,
    ).expand(images=batches)
    decided = classify_batch.partial(cfg=cfg).expand(detected=detected.output)

    review = a2i_human_review(
        settings=cfg,
        start_loops=lambda flow_definition_arn: start_review_loops(cfg, decided, flow_definition_arn),
        what="image",
        aws_conn_id=AWS_CONN_ID,
        task_title="Which label does this image show?",
        task_description="Pick the label the image shows among the candidates, or None of these.",
        poll_seconds=REVIEW_POLL_SECONDS,
        timeout=REVIEW_TIMEOUT,
        allow_failed=True,  # a failed or stopped loop is counted as not completed in merge
    )
    prepared >> review.task_ui
    summary = merge(cfg, decided, review.started)
    review.wait >> summary

    with TaskGroup("custom_labels", tooltip="Optional: a Custom Labels dataset and model from the manifest"):
        gate = want_training(summary)
        project = RekognitionCreateProjectOperator(
            task_id="create_project", aws_conn_id=AWS_CONN_ID, project_name=cfg["project_name"]
        )
        dataset = RekognitionCreateDatasetOperator(
            task_id="create_dataset",
            aws_conn_id=AWS_CONN_ID,
            project=project.output,
            dataset_type="TRAIN",
            manifest_s3_uri=summary["manifest_uri"],
            if_exists="replace",  # each run trains on its own manifest
            deferrable=True,
            waiter_delay=MODEL_POLL_SECONDS,
        )
        train = RekognitionTrainProjectVersionOperator(
            task_id="train_model",
            aws_conn_id=AWS_CONN_ID,
            project=project.output,
            output_s3_uri=f"{cfg['work_prefix']}/custom-labels/",
            deferrable=True,
            waiter_delay=TRAIN_POLL_SECONDS,
        )
        gate >> project >> dataset >> train
        start_gate = want_model_started()
        start = RekognitionStartProjectVersionOperator(
            task_id="start_model",
            aws_conn_id=AWS_CONN_ID,
            project_version_arn=train.output,
            deferrable=True,
            waiter_delay=MODEL_POLL_SECONDS,
        )
        to_label = manifest_images(summary)
        label_with_model = RekognitionDetectLabelsOperator(
            task_id="label_with_model",
            aws_conn_id=AWS_CONN_ID,
            images=to_label,
            project_version_arn=start.output,
            output_prefix=f"{cfg['work_prefix']}/custom-labels/detect",
            quarantine_prefix=cfg["run_quarantine_prefix"],
            tps=cfg["tps_per_task"],
        )
        stop = RekognitionStopProjectVersionOperator(
            task_id="stop_model",
            aws_conn_id=AWS_CONN_ID,
            project_version_arn=train.output,
            deferrable=True,
            waiter_delay=MODEL_POLL_SECONDS,
        )
        train >> start_gate >> [start, to_label]
        start >> label_with_model >> stop.as_teardown(setups=start)


image_annotation()
