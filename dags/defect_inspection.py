"""
### Defect inspection: a Custom Labels classifier, A2I review of unsure images, retraining behind an F1 gate

After the AWS blog "Detect defects and augment predictions using Amazon Lookout for Vision and
Amazon A2I", on Rekognition Custom Labels (Lookout for Vision was retired on 2025-10-31). Every
(scheduled or triggered) run:

1. **bootstraps** when no model is deployed yet: trains `v1` on the initial training set
   (`<dataset_prefix>/train/{normal,anomaly}/`), evaluated on the fixed test set
   (`<dataset_prefix>/test/{normal,anomaly}/`, the project's TEST dataset, made once and never
   replaced), and records it as the deployed model;
2. reads **the deployed model** from a small JSON pointer in S3 (`<output_prefix>/deployed.json`,
   read at run time), starts it, and classifies the **new** images under `input_prefix` (an image
   with a record under `<output_prefix>/records/` was inspected by an earlier run); the model is
   stopped by a **teardown** task as soon as the inspection is over (billed by the hour);
3. an image the model labels with at least `confidence_threshold` is **auto-accepted** (copied to
   `<output_prefix>/accepted/<label>/`); one under it goes to **people** (one A2I human loop per
   image, named after the image: a retried task or a later run attaches to it; the task page shows
   the image, the model's answer and confidence, and the choice normal / anomaly); their answer
   copies the image into the training set (`<dataset_prefix>/train/<label>/`); an image the model
   cannot read, or whose review did not complete, is **quarantined** with a reason. Every image
   ends in exactly one place: `listed = auto_accepted + reviewed + quarantined` (+ `waiting_for_model`
   when no model is deployed and none can be trained yet: those are not recorded, a later run takes them);
4. **retrains** when at least `retrain_min_new_labels` labelled images are in the training set that
   the deployed model was not trained on: a new version (its name from the training set's content:
   a retried task attaches to its training, never trains a second one) on the enlarged set,
   evaluated on the **same** TEST dataset;
5. **promotes** the new version only when its F1 is not lower than the deployed one's (the gate
   says by how much it missed), by rewriting the pointer; the old version is not started again.

**Model-assisted labeling** (`mode` = `assisted_labeling`, after the AWS blog "Simplify data
annotation and model training tasks with Amazon Rekognition Custom Labels"): the images under
`input_prefix` are an unlabeled pool; the deployed model (v1, trained on a few labelled images)
pre-labels every one of them, people only verify (the same task page: accept the model's answer or
correct it), nothing is auto-accepted, and a new version is trained on the verified set as soon as
there is one verified image; the summary reports how often the reviewers kept the pre-label and
the F1 of both versions on the same test set.

Assets: `defect_inspection_new_labels` (reviewed images added to the training set) ->
`defect_inspection_candidate_model` (a version trained) -> `defect_inspection_deployed_model`
(the pointer changed). Each run writes `<output_prefix>/_runs/<run>/summary.json`.

`stage_samples` (off by default) first uploads the textile images shipped in `include/data/textiles/`
(simulated textile images from the PyPI package conformal-clip-data, MIT; see its LICENSE) to the
dataset and input prefixes: tick it to try the DAG. Offline, the only change is the `aws_default`
connection's endpoint URL (aws_twin).
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
from aws_ml_provider.utils.run_config import a2i_params, prefix_param

DAG_ID = "defect_inspection"
AWS_CONN_ID = "aws_default"

DEFAULT_BUCKET = "aws-ml-provider-demo"
DEFAULT_WORKTEAM_ARN = "arn:aws:sagemaker:us-east-1:123456789012:workteam/private-crowd/defect-reviewers"
DEFAULT_A2I_ROLE_ARN = "arn:aws:iam::123456789012:role/defect-inspection-a2i"
DEFAULT_PREFIXES = {
    "input_prefix": "defect-inspection/incoming/",
    "dataset_prefix": "defect-inspection/dataset/",
    "output_prefix": "defect-inspection/results/",
}
LABELS = ("normal", "anomaly")
SAMPLES = "data/textiles"  # under include/
TASK_UI_TEMPLATE = "templates/defect_review.liquid.html"  # under include/
POINTER = "deployed.json"  # under the output prefix

REVIEW_POLL_SECONDS = int(os.environ.get("AWS_ML_WAITER_DELAY") or 300)
TRAIN_POLL_SECONDS = int(os.environ.get("AWS_ML_WAITER_DELAY") or 60)
MODEL_POLL_SECONDS = int(os.environ.get("AWS_ML_WAITER_DELAY") or 30)
REVIEW_TIMEOUT = timedelta(days=7)

NEW_LABELS = Asset(name="defect_inspection_new_labels", group="defect-inspection")
CANDIDATE_MODEL = Asset(name="defect_inspection_candidate_model", group="defect-inspection")
DEPLOYED_MODEL = Asset(name="defect_inspection_deployed_model", group="defect-inspection")

#: model-assisted labeling: no confidence reaches it (every pre-label goes to a person)
ASSISTED_THRESHOLD = 1.01
# auto-accepted, reviewed, quarantined: where an inspected image ends
ACCEPTED, REVIEWED, QUARANTINED = "auto_accepted", "reviewed", "quarantined"


# ------------------------------------------------------------------------------------------------
# helpers (run inside tasks only)


def _name(image_uri: str) -> str:
    return image_uri.rsplit("/", 1)[-1]


def _relative(cfg: dict, image_uri: str) -> str:
    _, prefix = s3_utils.split_prefix(cfg["input_prefix"])
    _, key = s3_utils.split_object_uri(image_uri)
    return key[len(prefix) :] if key.startswith(prefix) else _name(image_uri)


def _copy(s3, image_uri: str, dest_prefix: str, relative: str) -> str:
    src_bucket, src_key = s3_utils.split_object_uri(image_uri)
    bucket, prefix = s3_utils.split_prefix(dest_prefix)
    s3.copy({"Bucket": src_bucket, "Key": src_key}, bucket, prefix + relative)
    return f"s3://{bucket}/{prefix}{relative}"


def _list(s3, prefix_uri: str) -> list[str]:
    bucket, prefix = s3_utils.split_prefix(prefix_uri)
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return [
        f"s3://{bucket}/{o['Key']}"
        for page in pages
        for o in page.get("Contents", [])
        if not o["Key"].endswith("/")
    ]


def _labelled_set(s3, dataset_prefix: str, split: str) -> list[tuple[str, str]]:
    """``[(image URI, label)]`` under ``<dataset>/<split>/<label>/``, sorted."""
    out = []
    for label in LABELS:
        for uri in _list(s3, f"{dataset_prefix.rstrip('/')}/{split}/{label}/"):
            if uri.lower().endswith((".jpg", ".jpeg", ".png")):
                out.append((uri, label))
    return sorted(out)


def _write_manifest(s3, uri: str, items: list[tuple[str, str]], human: set[str] | None = None) -> str:
    from aws_ml_provider.utils import ground_truth

    ids = ground_truth.class_ids(LABELS)
    lines = [
        ground_truth.classification_line(
            ref,
            label,
            class_id=ids[label],
            human_annotated=ref in (human or set()),
            job_name=f"labeling-job/{DAG_ID}",
        )
        for ref, label in items
    ]
    return s3_utils.put_text(s3, uri, ground_truth.dumps(lines), "application/x-ndjson")


def _digest(items: list[tuple[str, str]]) -> str:
    from aws_ml_provider.utils import stable_hash

    return stable_hash(*(f"{ref}={label}" for ref, label in sorted(items)), length=8)


def _prefix_param(title: str, name: str, description: str) -> Param:
    return prefix_param(title, description, DEFAULT_PREFIXES[name])


@dag(
    dag_id=DAG_ID,
    schedule="@hourly",
    start_date=datetime(2025, 1, 1),
    catchup=False,
    max_active_runs=1,  # one run at a time owns the pointer and the training set
    doc_md=__doc__,
    tags=["rekognition", "custom-labels", "a2i", "images", "defects"],
    default_args={
        "owner": "ml",
        "retries": 2,
        "retry_delay": timedelta(seconds=20),
        "retry_exponential_backoff": True,
        "max_retry_delay": timedelta(minutes=10),
    },
    params={
        "input_prefix": _prefix_param("Input prefix", "input_prefix", "S3 prefix where new images arrive."),
        "dataset_prefix": _prefix_param(
            "Dataset prefix",
            "dataset_prefix",
            "train/{normal,anomaly}/ (grows with the reviewed images) and the fixed test/{normal,anomaly}/.",
        ),
        "output_prefix": _prefix_param(
            "Output prefix",
            "output_prefix",
            "The deployed-model pointer, per-image records, accepted images, quarantine, run summaries.",
        ),
        "mode": Param(
            "inspect",
            type=["null", "string"],
            enum=[None, "inspect", "assisted_labeling"],
            title="Mode",
            description="inspect: people review predictions under the threshold. assisted_labeling: the "
            "model pre-labels every image, people verify all, a new version is trained on the verified set. "
            "Empty: inspect.",
            section="Inspection",
        ),
        "stage_samples": Param(
            False,
            type="boolean",
            title="Stage the sample textile images",
            description="First upload include/data/textiles (train, test, incoming) to the dataset and input prefixes.",
            section="Locations",
        ),
        "confidence_threshold": Param(
            0.70,
            type=["null", "number"],
            minimum=0,
            maximum=1,
            title="Confidence threshold",
            description="A prediction under it goes to people. Empty: 0.70.",
            section="Inspection",
        ),
        "retrain_min_new_labels": Param(
            5,
            type=["null", "integer"],
            minimum=1,
            title="New labels before retraining",
            description="Train a new version when the training set has at least this many labelled images "
            "the deployed model was not trained on. Empty: 5.",
            section="Training",
        ),
        "project_name": Param(
            "defect-inspection", type=["null", "string"], title="Custom Labels project", section="Training"
        ),
        **a2i_params(human_task_ui_name="defect-review-ui", flow_definition_name="defect-review"),
    },
)
def defect_inspection():
    @task(multiple_outputs=True)
    def resolve_config() -> dict:
        """The run's locations, ARNs and thresholds (Param, else Variable, else the twin default)."""
        from aws_ml_provider.utils.expense import run_key
        from aws_ml_provider.utils.paths import include_path
        from aws_ml_provider.utils.run_config import a2i_arns, resolve_prefixes

        context = get_current_context()
        params = context["params"]
        cfg = resolve_prefixes(params, DEFAULT_PREFIXES, default_bucket=DEFAULT_BUCKET, trailing_slash=True)
        cfg.update(a2i_arns(params, workteam_default=DEFAULT_WORKTEAM_ARN, role_default=DEFAULT_A2I_ROLE_ARN))
        threshold = params["confidence_threshold"]
        cfg["confidence_threshold"] = float(0.70 if threshold is None else threshold)
        cfg["retrain_min_new_labels"] = int(params["retrain_min_new_labels"] or 5)
        cfg["mode"] = params["mode"] or "inspect"
        if cfg["mode"] == "assisted_labeling":  # every pre-label is verified; train on any verified image
            cfg["confidence_threshold"] = ASSISTED_THRESHOLD
            cfg["retrain_min_new_labels"] = 1
        cfg["project_name"] = params["project_name"] or "defect-inspection"
        cfg["human_task_ui_name"] = params["human_task_ui_name"] or "defect-review-ui"
        cfg["flow_definition_name"] = params["flow_definition_name"] or "defect-review"
        out = cfg["output_prefix"].rstrip("/")
        cfg["pointer_uri"] = f"{out}/{POINTER}"
        cfg["test_manifest_uri"] = f"{out}/models/test.manifest"
        cfg["a2i_output_uri"] = f"{out}/_a2i"
        cfg["task_ui_template_path"] = str(include_path(TASK_UI_TEMPLATE, anchor=__file__))
        cfg["work_prefix"] = f"{out}/_runs/{run_key(context['run_id'])}"
        cfg["run_quarantine_prefix"] = f"{out}/quarantine/{run_key(context['run_id'])}/"
        print(cfg)
        return cfg

    @task
    def prepare(cfg: dict) -> dict:
        """Create the buckets if absent; with ``stage_samples`` upload the sample images (an object
        with the same bytes already there is left alone)."""
        from aws_ml_provider.utils.paths import include_path

        params = get_current_context()["params"]
        s3 = s3_utils.client(AWS_CONN_ID)
        buckets = s3_utils.ensure_buckets(s3, (cfg[name] for name in DEFAULT_PREFIXES))
        staged = None
        if params["stage_samples"]:
            root = include_path(SAMPLES, anchor=__file__)
            images = []
            for path in sorted(root.rglob("*.jpg")):
                rel = path.relative_to(root).as_posix()
                if rel.startswith("incoming/"):  # new images; train/ and test/ go to the dataset
                    images.append((path, cfg["input_prefix"] + rel[len("incoming/") :]))
                else:
                    images.append((path, cfg["dataset_prefix"] + rel))
            staged = s3_utils.stage_files(s3, images)
            print(f"staged the sample images: {staged}")
        return {"buckets": buckets, "staged": staged}

    @task
    def test_manifest(cfg: dict, prepared: dict) -> str:
        """The fixed test set's manifest, written once: every version is evaluated on it."""
        s3 = s3_utils.client(AWS_CONN_ID)
        if s3_utils.exists(s3, cfg["test_manifest_uri"]):
            print(f"the fixed test set is {cfg['test_manifest_uri']}")
            return cfg["test_manifest_uri"]
        from airflow.providers.common.compat.sdk import AirflowSkipException

        items = _labelled_set(s3, cfg["dataset_prefix"], "test")
        counts = {label: sum(1 for _, lbl in items if lbl == label) for label in LABELS}
        if not all(counts.values()):  # nothing can be trained or compared yet: the run says so
            raise AirflowSkipException(
                f"the test set under {cfg['dataset_prefix']}test/ needs images of both labels, has {counts}: "
                "add them (or tick stage_samples)"
            )
        print(f"writing the fixed test set: {counts}")
        return _write_manifest(s3, cfg["test_manifest_uri"], items)

    def _plan_training(cfg: dict, deployed: dict | None, seq_from: str) -> dict | None:
        """The training set now, and the version to train on it: the version of the project with
        the same training-set digest when there is one (a retry attaches), else ``v<N>-<digest>``."""
        from aws_ml_provider.hooks.rekognition import RekognitionHook, version_name_from_arn

        s3 = s3_utils.client(AWS_CONN_ID)
        items = _labelled_set(s3, cfg["dataset_prefix"], "train")
        digest = _digest(items)
        hook = RekognitionHook(aws_conn_id=AWS_CONN_ID)
        project_arn = hook.project_arn(cfg["project_name"])
        versions = hook.conn.describe_project_versions(ProjectArn=project_arn).get(
            "ProjectVersionDescriptions", []
        )
        names = [version_name_from_arn(v["ProjectVersionArn"]) for v in versions]
        same = [n for n in names if n.endswith(f"-{digest}")]
        name = same[0] if same else f"v{len(names) + 1}-{digest}"
        uri = _write_manifest(s3, f"{cfg['output_prefix'].rstrip('/')}/models/{name}/train.manifest", items)
        counts = {label: sum(1 for _, lbl in items if lbl == label) for label in LABELS}
        print(f"{seq_from}: version {name} on {counts} ({'attaching' if same else 'new'})")
        return {"version_name": name, "train_manifest_uri": uri, "train_images": len(items), "digest": digest}

    @task(multiple_outputs=True)
    def plan_bootstrap(cfg: dict, test_manifest_uri: str, project_arn: str) -> dict:
        """No model deployed yet: train v1 on the initial training set (``needed``)."""
        s3 = s3_utils.client(AWS_CONN_ID)
        if s3_utils.exists(s3, cfg["pointer_uri"]):
            print(f"a model is deployed ({cfg['pointer_uri']}): no bootstrap")
            return {"needed": False}
        items = _labelled_set(s3, cfg["dataset_prefix"], "train")
        if len({label for _, label in items}) < 2:
            reason = (
                f"no model is deployed and the training set under {cfg['dataset_prefix']}train/ has not both "
                f"labels ({len(items)} image(s)): add images to train/normal/ and train/anomaly/, or tick stage_samples"
            )
            print(reason)
            return {"needed": False, "reason": reason}
        return {**_plan_training(cfg, None, "bootstrap"), "needed": True}

    @task.short_circuit(ignore_downstream_trigger_rules=False)
    def needed(plan: dict) -> bool:
        """Go on with the training only when the plan says so (the plan says why not)."""
        return bool(plan["needed"])

    @task(outlets=[DEPLOYED_MODEL])
    def record_bootstrap(cfg: dict, plan: dict, trained: dict, test_dataset_arn: str) -> dict:
        """The first model becomes the deployed one (the pointer in S3)."""
        s3 = s3_utils.client(AWS_CONN_ID)
        pointer = {
            **{k: trained[k] for k in ("project_arn", "project_version_arn", "version_name", "f1_score")},
            "evaluation_summary_uri": trained["evaluation_summary_uri"],
            "train_manifest_uri": plan["train_manifest_uri"],
            "train_images": plan["train_images"],
            "test_manifest_uri": cfg["test_manifest_uri"],
            "test_dataset_arn": test_dataset_arn,
            "deployed_by_run": get_current_context()["run_id"],
            "history": [],
        }
        s3_utils.write_json(s3, cfg["pointer_uri"], pointer)
        get_current_context()["outlet_events"][DEPLOYED_MODEL].extra = {
            "version_name": pointer["version_name"]
        }
        return pointer

    @task(trigger_rule="none_failed")
    def deployed_model(cfg: dict) -> dict:
        """The deployed model, from the pointer (read now, not at parse time)."""
        s3 = s3_utils.client(AWS_CONN_ID)
        pointer = s3_utils.read_json(s3, cfg["pointer_uri"], default={})
        if not pointer:
            from airflow.providers.common.compat.sdk import AirflowSkipException

            # no model yet (and none could be trained): new images wait for one, counted in the summary
            raise AirflowSkipException(f"no deployed model: {cfg['pointer_uri']} is missing")
        print(f"deployed: {pointer['version_name']} (F1 {pointer['f1_score']})")
        return pointer

    @task
    def list_new_images(cfg: dict, prepared: dict) -> dict:
        """The images under the input prefix that no earlier run inspected (no record yet), listed
        in ``_runs/<run>/listing.json`` (what the inspection reads)."""
        s3 = s3_utils.client(AWS_CONN_ID)
        done = {
            uri.rsplit("/records/", 1)[1][: -len(".json")]
            for uri in _list(s3, f"{cfg['output_prefix'].rstrip('/')}/records/")
        }
        found = _list(s3, cfg["input_prefix"])
        new = [uri for uri in sorted(found) if _relative(cfg, uri) not in done]
        listing = {"found": len(found), "already_inspected": len(found) - len(new), "listed": len(new)}
        uri = s3_utils.write_json(s3, f"{cfg['work_prefix']}/listing.json", {**listing, "images": new})
        print(f"{cfg['input_prefix']}: {listing}")
        return {"batch": "new", "manifest_uri": uri, **listing}  # the list stays in S3, not in XCom

    @task
    def decide(cfg: dict, detected: dict, deployed: dict) -> dict:
        """Per image: the model's label and confidence; auto-accepted at or above the threshold
        (copied to accepted/<label>/), review under it; refused images stay quarantined."""
        s3 = s3_utils.client(AWS_CONN_ID)
        results = s3_utils.read_json(s3, detected["results_uri"])
        threshold = cfg["confidence_threshold"] * 100
        out = cfg["output_prefix"].rstrip("/")
        decisions = []
        for image, record in results["records"].items():
            entry = {"image": image, "model_version": deployed["version_name"]}
            if record["status"] == "quarantined":
                entry.update(status=QUARANTINED, code=record.get("code"), reason=record.get("reason"))
                entry["quarantine_uri"] = record.get("quarantine_uri")
            else:
                scores = {lbl["name"]: lbl["confidence"] for lbl in record["labels"] if lbl["name"] in LABELS}
                label, confidence = (
                    max(scores.items(), key=lambda kv: (kv[1], kv[0])) if scores else (None, 0.0)
                )
                entry.update(predicted_label=label, confidence=confidence, scores=scores)
                if label and confidence >= threshold:
                    entry["status"] = ACCEPTED
                    entry["copy"] = _copy(s3, image, f"{out}/accepted/{label}/", _relative(cfg, image))
                else:
                    entry["status"] = "review"
            decisions.append(entry)
        uri = s3_utils.write_json(s3, f"{cfg['work_prefix']}/decisions.json", decisions)
        counts = {k: sum(1 for d in decisions if d["status"] == k) for k in (ACCEPTED, "review", QUARANTINED)}
        print(f"decisions: {counts}")
        return {"decisions_uri": uri, **counts}

    @task(trigger_rule="none_failed")
    def start_review_loops(cfg: dict, decided: dict, flow_definition_arn: str) -> dict:
        """One human loop per unsure image, named after the image (and the flow definition): a
        retried task, or a later run inspecting the same image again, attaches to it."""
        from aws_ml_provider.hooks.a2i import A2IRuntimeHook, flow_definition_name_from_arn

        s3 = s3_utils.client(AWS_CONN_ID)
        hook = A2IRuntimeHook(aws_conn_id=AWS_CONN_ID)
        flow_name = flow_definition_name_from_arn(flow_definition_arn)
        loops, created = {}, 0
        for entry in s3_utils.read_json(s3, decided["decisions_uri"]) if decided else []:
            if entry["status"] != "review":
                continue
            name = hook.human_loop_name(_relative(cfg, entry["image"]), entry["image"], flow_name, DAG_ID)
            started = hook.start_human_loop(
                name,
                flow_definition_arn,
                {
                    "image_s3_uri": entry["image"],
                    "image_name": _relative(cfg, entry["image"]),
                    "predicted_label": entry["predicted_label"] or "none",
                    "confidence": round(entry["confidence"], 1),
                    "threshold": round(min(cfg["confidence_threshold"], 1.0) * 100, 1),
                    "model_version": entry["model_version"],
                    "categories": list(LABELS),
                },
                content_classifiers=["FreeOfPersonallyIdentifiableInformation"],
            )
            created += int(started["created"])
            loops[entry["image"]] = name
        uri = s3_utils.write_json(s3, f"{cfg['work_prefix']}/loops.json", loops)
        print(f"{len(loops)} human loop(s), {created} started now")
        return {"loops_uri": uri, "loops": sorted(loops.values()), "created": created}

    @task(trigger_rule="none_failed", outlets=[NEW_LABELS])
    def merge(cfg: dict, listing: dict, decided: dict | None, started: dict | None) -> dict:
        """The reviewers' answers: the image copied into train/<label>/; a review that did not
        complete quarantines the image. One record per image; counts reconcile."""
        import json
        from collections import Counter

        from aws_ml_provider.hooks.a2i import LOOP_DONE, A2IRuntimeHook
        from aws_ml_provider.utils.a2i_output import answers
        from aws_ml_provider.utils.rekognition import review_answer

        run_id = get_current_context()["run_id"]
        s3 = s3_utils.client(AWS_CONN_ID)
        hook = A2IRuntimeHook(aws_conn_id=AWS_CONN_ID)
        entries = s3_utils.read_json(s3, decided["decisions_uri"]) if decided else []
        loops = s3_utils.read_json(s3, started["loops_uri"], default={}) if started else {}
        out = cfg["output_prefix"].rstrip("/")
        counts: Counter = Counter()
        labels: Counter = Counter()
        reasons: Counter = Counter()
        agreed = 0
        for entry in entries:
            record = {**entry, "run_id": run_id}
            if entry["status"] == "review":
                name = loops.get(entry["image"])
                state = hook.human_loop_state(name) if name else {"status": "NotStarted"}
                chosen = None
                if state["status"] == LOOP_DONE and state.get("output_s3_uri"):
                    output = hook.read_output(state["output_s3_uri"])
                    chosen = review_answer(answers(output))
                    record["worker"] = (output.get("humanAnswers") or [{}])[-1].get("workerId")
                record["loop"] = name
                if chosen in LABELS:
                    record.update(status=REVIEWED, label=chosen)
                    record["copy"] = _copy(
                        s3,
                        entry["image"],
                        f"{cfg['dataset_prefix']}train/{chosen}/",
                        _relative(cfg, entry["image"]),
                    )
                    labels[chosen] += 1
                    agreed += int(chosen == entry["predicted_label"])
                else:
                    why = (
                        f"answer {chosen!r} is not one of {LABELS}"
                        if chosen
                        else f"loop ended {state['status']}"
                    )
                    reason = f"review of {entry['image']} gave no label: human loop {name} {why}"
                    record.update(status=QUARANTINED, code="ReviewNotCompleted", reason=reason)
                    record["quarantine_uri"] = _copy(
                        s3, entry["image"], cfg["run_quarantine_prefix"], _relative(cfg, entry["image"])
                    )
                    s3_utils.write_json(
                        s3,
                        f"{cfg['run_quarantine_prefix']}{_relative(cfg, entry['image'])}.reason.json",
                        record,
                    )
            elif entry["status"] == ACCEPTED:
                record["label"] = entry["predicted_label"]
            counts[record["status"]] += 1
            if record["status"] == QUARANTINED:
                reasons[record.get("code") or "Unknown"] += 1
            s3_utils.write_json(s3, f"{out}/records/{_relative(cfg, entry['image'])}.json", record)
        summary = {
            "run_id": run_id,
            "found": listing["found"],
            "already_inspected": listing["already_inspected"],
            "listed": listing["listed"],
            ACCEPTED: counts[ACCEPTED],
            REVIEWED: counts[REVIEWED],
            QUARANTINED: counts[QUARANTINED],
            # no model to inspect with (none deployed and none trainable): not recorded, the next run takes them
            "waiting_for_model": 0 if decided else listing["listed"],
            "quarantine_reasons": dict(reasons),
            "new_labels": dict(labels),
            "mode": cfg["mode"],
            "reviewer_agreed_with_model": agreed,
            "reviewer_corrected_model": counts[REVIEWED] - agreed,
            "loops": len(loops),
        }
        placed = counts[ACCEPTED] + counts[REVIEWED] + counts[QUARANTINED] + summary["waiting_for_model"]
        if summary["listed"] != placed:
            raise ValueError(
                "counts do not reconcile (listed != accepted + reviewed + quarantined + waiting_for_model): "
                f"{summary}"
            )
        s3_utils.write_json(s3, f"{cfg['work_prefix']}/inspection.json", summary)
        get_current_context()["outlet_events"][NEW_LABELS].extra = {"new_labels": dict(labels)}
        print(json.dumps(summary))
        return summary

    @task(multiple_outputs=True)
    def plan_retrain(cfg: dict, inspection: dict, deployed: dict) -> dict:
        """Retrain when the training set has at least ``retrain_min_new_labels`` images the
        deployed model was not trained on."""
        from aws_ml_provider.utils import ground_truth

        s3 = s3_utils.client(AWS_CONN_ID)
        trained_on = {
            e.source_ref
            for e in ground_truth.read_manifest(
                s3_utils.read_bytes(s3, deployed["train_manifest_uri"]).decode()
            ).entries
        }
        new = [ref for ref, _ in _labelled_set(s3, cfg["dataset_prefix"], "train") if ref not in trained_on]
        s3_utils.write_json(s3, f"{cfg['work_prefix']}/new_labels.json", {"new": new})
        if len(new) < cfg["retrain_min_new_labels"]:
            print(f"{len(new)} new label(s), {cfg['retrain_min_new_labels']} needed: no retraining")
            return {"needed": False, "new_labels": len(new)}
        return {**_plan_training(cfg, deployed, "retrain"), "new_labels": len(new), "needed": True}

    @task(outlets=[DEPLOYED_MODEL])
    def gate(cfg: dict, plan: dict, trained: dict, deployed: dict, test_dataset_arn: str) -> dict:
        """Promote the new version when its F1 on the same test set is not lower than the deployed
        one's; say by how much it missed otherwise. Promotion rewrites the pointer."""
        s3 = s3_utils.client(AWS_CONN_ID)
        if deployed.get("test_dataset_arn") != test_dataset_arn:
            raise ValueError(
                f"the deployed model {deployed['version_name']} was evaluated on {deployed.get('test_dataset_arn')}, "
                f"the new one on {test_dataset_arn}: not the same test set, no comparison"
            )
        new_f1, old_f1 = float(trained["f1_score"]), float(deployed["f1_score"])
        margin = round(new_f1 - old_f1, 4)
        current = s3_utils.read_json(s3, cfg["pointer_uri"])
        already = current["project_version_arn"] == trained["project_version_arn"]  # a retried gate
        promoted = already or new_f1 >= old_f1
        decision = {
            "candidate": trained["version_name"],
            "candidate_f1": new_f1,
            "deployed": deployed["version_name"],
            "deployed_f1": old_f1,
            "margin": margin,
            "promoted": promoted,
            "test_dataset_arn": test_dataset_arn,
            "train_images": plan["train_images"],
            "billable_training_seconds": trained.get("billable_training_seconds"),
            "message": (
                f"{trained['version_name']} (F1 {new_f1:.4f}) replaces {deployed['version_name']} (F1 {old_f1:.4f})"
                if promoted
                else f"{trained['version_name']} kept out: its F1 {new_f1:.4f} is {-margin:.4f} below "
                f"{deployed['version_name']}'s {old_f1:.4f}"
            ),
        }
        if promoted and not already:
            history = [
                *current.get("history", []),
                {
                    k: current[k]
                    for k in ("version_name", "project_version_arn", "f1_score", "deployed_by_run")
                },
            ]
            pointer = {
                **{k: trained[k] for k in ("project_arn", "project_version_arn", "version_name", "f1_score")},
                "evaluation_summary_uri": trained["evaluation_summary_uri"],
                "train_manifest_uri": plan["train_manifest_uri"],
                "train_images": plan["train_images"],
                "test_manifest_uri": cfg["test_manifest_uri"],
                "test_dataset_arn": test_dataset_arn,
                "deployed_by_run": get_current_context()["run_id"],
                "history": history,
            }
            s3_utils.write_json(s3, cfg["pointer_uri"], pointer)
        get_current_context()["outlet_events"][DEPLOYED_MODEL].extra = decision
        s3_utils.write_json(s3, f"{cfg['work_prefix']}/gate.json", decision)
        print(decision["message"])
        return decision

    @task(trigger_rule="none_failed")
    def summarize(cfg: dict, inspection: dict, deployed: dict | None) -> dict:
        """The run's summary: inspection counts, the model used, and the gate's decision."""
        import json

        s3 = s3_utils.client(AWS_CONN_ID)
        summary = {
            **inspection,
            "model_used": (deployed or {}).get("version_name"),
            "model_used_f1": (deployed or {}).get("f1_score"),
            "gate": s3_utils.read_json(s3, f"{cfg['work_prefix']}/gate.json", default={}) or None,
            "deployed_after_run": (s3_utils.read_json(s3, cfg["pointer_uri"], default={}) or {}).get(
                "version_name"
            ),
        }
        summary["summary_uri"] = s3_utils.write_json(s3, f"{cfg['work_prefix']}/summary.json", summary)
        print(json.dumps(summary))
        return summary

    cfg = resolve_config()
    prepared = prepare(cfg)
    project = RekognitionCreateProjectOperator(
        task_id="create_project", aws_conn_id=AWS_CONN_ID, project_name=cfg["project_name"]
    )
    test_uri = test_manifest(cfg, prepared)
    test_dataset = RekognitionCreateDatasetOperator(
        task_id="test_dataset",
        aws_conn_id=AWS_CONN_ID,
        project=project.output,
        dataset_type="TEST",
        manifest_s3_uri=test_uri,
        if_exists="reuse",  # the fixed test set: made once, every version is evaluated on it
        deferrable=True,
        waiter_delay=MODEL_POLL_SECONDS,
    )

    def train_version(plan, needed_task_id: str) -> RekognitionTrainProjectVersionOperator:
        """``needed_task_id`` (skips the rest when the plan says no) -> ``train_dataset`` (the TRAIN
        dataset from the plan's manifest, replaced) -> ``train_model`` (the plan's version)."""
        dataset = RekognitionCreateDatasetOperator(
            task_id="train_dataset",
            aws_conn_id=AWS_CONN_ID,
            project=project.output,
            dataset_type="TRAIN",
            manifest_s3_uri=plan["train_manifest_uri"],
            if_exists="replace",
            deferrable=True,
            waiter_delay=MODEL_POLL_SECONDS,
        )
        trained = RekognitionTrainProjectVersionOperator(
            task_id="train_model",
            aws_conn_id=AWS_CONN_ID,
            project=project.output,
            version_name=plan["version_name"],
            output_s3_uri=f"{cfg['output_prefix']}models/",
            deferrable=True,
            waiter_delay=TRAIN_POLL_SECONDS,
            outlets=[CANDIDATE_MODEL],
        )
        needed.override(task_id=needed_task_id)(plan) >> dataset >> trained
        return trained

    with TaskGroup("bootstrap", tooltip="No model deployed yet: train v1 on the initial training set"):
        boot = plan_bootstrap(cfg, test_uri, project.output)
        test_dataset >> boot
        boot_train = train_version(boot, "bootstrap_needed")
        recorded = record_bootstrap(cfg, boot, boot_train.output, test_dataset.output)

    deployed = deployed_model(cfg)
    recorded >> deployed
    start = RekognitionStartProjectVersionOperator(
        task_id="start_model",
        aws_conn_id=AWS_CONN_ID,
        project_version_arn=deployed["project_version_arn"],
        deferrable=True,
        waiter_delay=MODEL_POLL_SECONDS,
    )
    listing = list_new_images(cfg, prepared)
    detect = RekognitionDetectLabelsOperator(
        task_id="inspect_images",
        aws_conn_id=AWS_CONN_ID,
        images=listing,
        project_version_arn=start.output,
        output_prefix=f"{cfg['work_prefix']}/detect",
        quarantine_prefix=cfg["run_quarantine_prefix"],
        min_confidence=0,  # both labels' scores: the best one is the model's answer
        tps=5.0,
    )
    stop = RekognitionStopProjectVersionOperator(
        task_id="stop_model",
        aws_conn_id=AWS_CONN_ID,
        project_version_arn=deployed["project_version_arn"],
        deferrable=True,
        waiter_delay=MODEL_POLL_SECONDS,
    )
    start >> detect >> stop.as_teardown(setups=start)
    decided = decide(cfg, detect.output, deployed)

    review = a2i_human_review(
        settings=cfg,
        start_loops=lambda flow_definition_arn: start_review_loops(cfg, decided, flow_definition_arn),
        what="image",
        aws_conn_id=AWS_CONN_ID,
        task_title="Is this fabric normal or defective?",
        task_description="The inspection model was unsure: pick normal or anomaly.",
        poll_seconds=REVIEW_POLL_SECONDS,
        timeout=REVIEW_TIMEOUT,
        allow_failed=True,  # a failed or stopped loop quarantines its image in merge
    )
    prepared >> review.task_ui
    inspection = merge(cfg, listing, decided, review.started)
    review.wait >> inspection

    with TaskGroup(
        "retrain", tooltip="Enough new labels: train a new version, promote it behind the F1 gate"
    ):
        plan = plan_retrain(cfg, inspection, deployed)
        train = train_version(plan, "retrain_needed")
        decision = gate(cfg, plan, train.output, deployed, test_dataset.output)
    stop >> plan
    summary = summarize(cfg, inspection, deployed)
    decision >> summary


defect_inspection()
