"""
### Small-object detection: whole pages vs tiles, two Rekognition Custom Labels models compared

After the AWS blog "Detect small shapes and objects within your images using Amazon Rekognition
Custom Labels": small symbols on document pages are hard for a model that sees the whole page at
its input size; cutting every page into tiles lets the model see them larger. This DAG measures it
on your data. Input: page images and SageMaker Ground Truth **object-detection** manifests, one for
training pages and one for test pages. Each run:

1. **tiles** every page into `tiles_x` x `tiles_y` tiles sharing `overlap`; a page's boxes are
   clipped to each tile and kept there only when at least `min_visible` of the box is on it; tiles
   with no object are kept as negatives, at most `negative_ratio` x the tiles with objects (a
   deterministic choice). The tile images and the tiled manifests go under the run's prefix.
   A manifest line or page that cannot be used is recorded with its reason (`tiling.json`) and left
   out; the others go on;
2. trains **two Custom Labels models in parallel**, one per project: `baseline` on the whole pages
   and `tiled` on the tiles (version names `baseline-<run>` / `tiled-<run>`: a retried task attaches
   to its training);
3. starts both and runs **DetectCustomLabels on the same test pages**: the baseline model on each
   page; the tiled model on each tile of each page, its boxes mapped back to page pixels and merged
   across overlapping tiles with non-maximum suppression (`nms_iou`);
4. **evaluates** both the same way: detections matched to the page's true boxes (IoU >= 0.5, best
   confidence first); a per-label table (precision, recall, F1, boxes found / missed, false
   detections) for each model, `predictions.json` (every page's true boxes and both models' final
   boxes: the table can be recounted from it), `comparison.json` and `report.html` (the test pages
   drawn with true and predicted boxes; the task's **Report** link opens it);
5. **stops both models in a teardown task** (billed by the hour; before the evaluation, which reads
   the saved detections) and **keeps the better model** (the
   higher F1 over all labels; a tie keeps the baseline, the simpler one): `best_model.json` and the
   Asset `small_object_best_model`; the other model version is deleted when `delete_worse_model`.

**Sample data.** `stage_samples` (on by default) uploads `include/data/small_symbols/` (document
pages with small empty / solid triangles and up / down arrows set in DejaVu fonts, made by
`scripts/small_symbols.py`) to the input prefix, its manifests rewritten to where the pages go.

**Configuration.** Empty Params mean the twin defaults: pages and manifests under
`s3://<Variable ml_bucket>/small-objects/pages/`, runs under `s3://<Variable ml_bucket>/small-objects/runs/`.
Offline, the only change is the `aws_default` connection's endpoint URL (aws_twin).
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta

from airflow.sdk import Asset, Param, TaskGroup, dag, get_current_context, task
from aws_ml_provider.decorators.report import report_task
from aws_ml_provider.operators.rekognition import (
    RekognitionCreateDatasetOperator,
    RekognitionCreateProjectOperator,
    RekognitionStartProjectVersionOperator,
    RekognitionStopProjectVersionOperator,
    RekognitionTrainProjectVersionOperator,
)
from aws_ml_provider.utils import s3 as s3_utils
from aws_ml_provider.utils.run_config import prefix_param

DAG_ID = "small_object_detection"
AWS_CONN_ID = "aws_default"
DEFAULT_BUCKET = "aws-ml-provider-demo"
DEFAULT_INPUT = "small-objects/pages/"
DEFAULT_OUTPUT = "small-objects/runs/"
DEFAULT_PREFIXES = {"input_prefix": DEFAULT_INPUT, "output_prefix": DEFAULT_OUTPUT}
SAMPLES = "data/small_symbols"  # under include/
KINDS = ("baseline", "tiled")
TRAIN_POLL_SECONDS = int(os.environ.get("AWS_ML_WAITER_DELAY") or 60)
MODEL_POLL_SECONDS = int(os.environ.get("AWS_ML_WAITER_DELAY") or 30)

#: model states of a version that has no trained model
UNTRAINED = ("ABSENT", "TRAINING_IN_PROGRESS", "TRAINING_FAILED", "DELETING")

BEST_MODEL_ASSET = Asset(name="small_object_best_model", group="small-objects")


def _num(value, default):
    return default if value is None else value


def _page_boxes(entry) -> list[dict]:
    return [{k: b[k] for k in ("label", "left", "top", "width", "height")} for b in entry.boxes]


@dag(
    dag_id=DAG_ID,
    schedule=None,
    start_date=datetime(2025, 1, 1),
    catchup=False,
    max_active_runs=1,
    doc_md=__doc__,
    tags=["rekognition", "custom-labels", "object-detection", "tiling"],
    default_args={
        "owner": "ml",
        "retries": 2,
        "retry_delay": timedelta(seconds=20),
        "retry_exponential_backoff": True,
        "max_retry_delay": timedelta(minutes=10),
    },
    params={
        "input_prefix": prefix_param(
            "Pages prefix",
            "Where the pages and train.manifest / test.manifest are (and the samples go).",
            DEFAULT_INPUT,
            section="Data",
        ),
        "train_manifest_uri": Param(
            None,
            type=["null", "string"],
            pattern=r"^$|^s3://[^/]+/.+$",
            title="Training manifest",
            description="Ground Truth object-detection manifest of the training pages. Empty: <pages>/train.manifest",
            section="Data",
        ),
        "test_manifest_uri": Param(
            None,
            type=["null", "string"],
            pattern=r"^$|^s3://[^/]+/.+$",
            title="Test manifest",
            description="Ground Truth object-detection manifest of the test pages. Empty: <pages>/test.manifest",
            section="Data",
        ),
        "output_prefix": prefix_param(
            "Runs prefix",
            "Tiles, manifests, predictions and reports, per run.",
            DEFAULT_OUTPUT,
            section="Data",
        ),
        "stage_samples": Param(
            True,
            type=["null", "boolean"],
            title="Stage the sample pages",
            description="First upload include/data/small_symbols (pages and manifests) to the pages prefix.",
            section="Data",
        ),
        "max_pages": Param(
            None,
            type=["null", "integer"],
            minimum=1,
            title="At most N pages per split",
            description="Use only the first N pages of each manifest (a quick try). Empty: all.",
            section="Data",
        ),
        "tiles_x": Param(
            3, type=["null", "integer"], minimum=1, maximum=16, title="Tiles across", section="Tiling"
        ),
        "tiles_y": Param(
            3, type=["null", "integer"], minimum=1, maximum=16, title="Tiles down", section="Tiling"
        ),
        "overlap": Param(
            0.2,
            type=["null", "number"],
            minimum=0,
            maximum=0.9,
            title="Tile overlap",
            description="Fraction of a tile shared with its neighbour.",
            section="Tiling",
        ),
        "min_visible": Param(
            0.5,
            type=["null", "number"],
            minimum=0.01,
            maximum=1,
            title="Minimum visible fraction",
            description="A box is labelled on a tile only when this fraction of its area is on the tile.",
            section="Tiling",
        ),
        "negative_ratio": Param(
            0.5,
            type=["null", "number"],
            minimum=0,
            title="Negative tiles per positive tile",
            description="Tiles without objects kept for training, at most this ratio x the tiles with objects.",
            section="Tiling",
        ),
        "nms_iou": Param(
            0.3,
            type=["null", "number"],
            minimum=0,
            maximum=1,
            title="NMS IoU",
            description="Tile detections of one label overlapping more than this are one detection.",
            section="Evaluation",
        ),
        "min_confidence": Param(
            None,
            type=["null", "number"],
            minimum=0,
            maximum=100,
            title="Minimum confidence",
            description="DetectCustomLabels MinConfidence. Empty: each label's assumed threshold.",
            section="Evaluation",
        ),
        "project_name": Param(
            "small-objects",
            type=["null", "string"],
            title="Custom Labels project prefix",
            description="Projects <name>-baseline and <name>-tiled.",
            section="Custom Labels",
        ),
        "delete_worse_model": Param(
            False,
            type=["null", "boolean"],
            title="Delete the worse model",
            description="After the comparison, delete the model version that lost.",
            section="Custom Labels",
        ),
    },
)
def small_object_detection():
    @task(multiple_outputs=True)
    def resolve_config() -> dict:
        """Locations, tiling settings, project and version names of the run."""
        from aws_ml_provider.utils.expense import run_key
        from aws_ml_provider.utils.run_config import resolve_prefixes

        context = get_current_context()
        params = context["params"]
        prefixes = resolve_prefixes(
            params, DEFAULT_PREFIXES, default_bucket=DEFAULT_BUCKET, trailing_slash=True
        )
        pages, runs = prefixes["input_prefix"], prefixes["output_prefix"]
        key = run_key(context["run_id"])
        project = params["project_name"] or "small-objects"
        cfg = {
            "input_prefix": pages,
            "train_manifest_uri": params["train_manifest_uri"] or f"{pages}train.manifest",
            "test_manifest_uri": params["test_manifest_uri"] or f"{pages}test.manifest",
            "work_prefix": f"{runs}{key}",
            "stage_samples": bool(_num(params["stage_samples"], True)),
            "max_pages": params["max_pages"],
            "tiles_x": int(_num(params["tiles_x"], 3)),
            "tiles_y": int(_num(params["tiles_y"], 3)),
            "overlap": float(_num(params["overlap"], 0.2)),
            "min_visible": float(_num(params["min_visible"], 0.5)),
            "negative_ratio": float(_num(params["negative_ratio"], 0.5)),
            "nms_iou": float(_num(params["nms_iou"], 0.3)),
            "min_confidence": params["min_confidence"],
            "delete_worse_model": bool(params["delete_worse_model"]),
        }
        for kind in KINDS:
            cfg[f"{kind}_project"] = f"{project}-{kind}"
            cfg[f"{kind}_version"] = f"{kind}-{key}"[:255]
        print(cfg)
        return cfg

    @task
    def prepare(cfg: dict) -> dict:
        """Create the buckets if absent; with ``stage_samples`` upload the sample pages (an object
        with the same bytes already there is left alone) and their manifests, rewritten to there."""
        from aws_ml_provider.utils.paths import include_path

        s3 = s3_utils.client(AWS_CONN_ID)
        s3_utils.ensure_buckets(s3, (cfg["input_prefix"], cfg["work_prefix"]))
        if not cfg["stage_samples"]:
            return {"staged": None}
        root = include_path(SAMPLES, anchor=__file__)
        pages = [
            (path, cfg["input_prefix"] + path.relative_to(root).as_posix())
            for path in sorted(root.rglob("*.png"))
        ]
        staged = s3_utils.stage_files(s3, pages)
        shipped = "s3://aws-ml-provider-demo/small-objects/pages/"
        for split in ("train", "test"):
            text = (root / f"{split}.manifest").read_text().replace(shipped, cfg["input_prefix"])
            s3_utils.put_text(s3, f"{cfg['input_prefix']}{split}.manifest", text, "application/x-ndjson")
        print(staged)
        return {"staged": staged}

    @task(multiple_outputs=True)
    def tile_pages(cfg: dict, prepared: dict) -> dict:
        """Cut every page into tiles; write the page and tile manifests (train and test) and the
        test pages' tile plan. Lines or pages that cannot be used are recorded with a reason."""
        import io

        from aws_ml_provider.utils import ground_truth, tiling
        from PIL import Image

        s3 = s3_utils.client(AWS_CONN_ID)
        work = cfg["work_prefix"]
        rejected: list[dict] = []
        plan: dict[str, list] = {}  # test page -> its tiles with their S3 URIs
        pages_out: dict[str, list] = {"train": [], "test": []}
        counts: dict[str, dict] = {}
        for split in ("train", "test"):
            uri = cfg[f"{split}_manifest_uri"]
            manifest = ground_truth.read_manifest(s3_utils.read_bytes(s3, uri).decode())
            rejected += [{"manifest": uri, **err} for err in manifest.errors]
            entries = [e for e in manifest.entries if e.kind == ground_truth.DETECTION]
            rejected += [
                {"manifest": uri, "line": e.line, "reason": f"{e.source_ref}: not an object-detection line"}
                for e in manifest.entries
                if e.kind != ground_truth.DETECTION
            ]
            if cfg["max_pages"]:
                entries = entries[: cfg["max_pages"]]
            labels = sorted({b["label"] for e in entries for b in e.boxes})
            class_map = ground_truth.class_ids(labels)
            page_lines, positives, negatives = [], [], []
            for entry in entries:
                try:
                    image = Image.open(io.BytesIO(s3_utils.read_bytes(s3, entry.source_ref)))
                    image.load()
                except Exception as exc:  # one bad page never fails the others
                    rejected.append(
                        {"manifest": uri, "line": entry.line, "reason": f"{entry.source_ref}: {exc}"}
                    )
                    continue
                width, height = image.size
                boxes = _page_boxes(entry)
                page_lines.append(
                    ground_truth.detection_line(
                        entry.source_ref, boxes, image_size=(width, height, 3), class_map=class_map,
                        human_annotated=entry.human_annotated, job_name=f"labeling-job/{DAG_ID}",
                    )
                )  # fmt: skip
                pages_out[split].append(
                    {"image": entry.source_ref, "width": width, "height": height, "boxes": boxes}
                )
                _, key = s3_utils.split_object_uri(entry.source_ref)
                tiles = []
                for t in tiling.tile_grid(width, height, cfg["tiles_x"], cfg["tiles_y"], cfg["overlap"]):
                    name = tiling.tile_name(key.rsplit("/", 1)[-1], t)
                    tile_uri = f"{work}/tiles/{split}/{name}"
                    crop = image.crop((t["left"], t["top"], t["left"] + t["width"], t["top"] + t["height"]))
                    buf = io.BytesIO()
                    crop.convert("RGB").save(buf, format="PNG", optimize=True)
                    s3_utils.put_bytes(s3, tile_uri, buf.getvalue(), "image/png")
                    on_tile = tiling.boxes_on_tile(boxes, t, cfg["min_visible"])
                    line = ground_truth.detection_line(
                        tile_uri, on_tile, image_size=(t["width"], t["height"], 3), class_map=class_map,
                        human_annotated=entry.human_annotated, job_name=f"labeling-job/{DAG_ID}-tiles",
                    )  # fmt: skip
                    (positives if on_tile else negatives).append((tile_uri, line))
                    tiles.append({**t, "image": tile_uri, "boxes": len(on_tile)})
                if split == "test":
                    plan[entry.source_ref] = tiles
            kept = set(
                tiling.keep_negatives([u for u, _ in negatives], len(positives), cfg["negative_ratio"])
            )
            tile_lines = [line for _, line in positives] + [line for u, line in negatives if u in kept]
            s3_utils.put_text(
                s3,
                f"{work}/manifests/{split}-pages.manifest",
                ground_truth.dumps(page_lines),
                "application/x-ndjson",
            )
            s3_utils.put_text(
                s3,
                f"{work}/manifests/{split}-tiles.manifest",
                ground_truth.dumps(tile_lines),
                "application/x-ndjson",
            )
            counts[split] = {
                "pages": len(page_lines),
                "boxes": sum(len(p["boxes"]) for p in pages_out[split]),
                "tiles_with_objects": len(positives),
                "negative_tiles": len(negatives),
                "negative_tiles_kept": len(kept),
                "labels": labels,
            }
        if not pages_out["train"] or not pages_out["test"]:
            raise ValueError(f"no usable training or test page: {counts}; rejected: {rejected}")
        summary = {"counts": counts, "rejected": rejected, "settings": {k: cfg[k] for k in (
            "tiles_x", "tiles_y", "overlap", "min_visible", "negative_ratio")}}  # fmt: skip
        s3_utils.write_json(s3, f"{work}/tiling.json", summary)
        s3_utils.write_json(s3, f"{work}/test-plan.json", {"pages": pages_out["test"], "tiles": plan})
        print(summary)
        images = {
            "baseline": {"batch": "baseline", "images": [p["image"] for p in pages_out["test"]]},
            "tiled": {"batch": "tiled", "images": [t["image"] for tiles in plan.values() for t in tiles]},
        }
        s3_utils.write_json(s3, f"{work}/detect-images.json", images)
        return {
            **{f"baseline_{s}_manifest": f"{work}/manifests/{s}-pages.manifest" for s in ("train", "test")},
            **{f"tiled_{s}_manifest": f"{work}/manifests/{s}-tiles.manifest" for s in ("train", "test")},
            "counts": counts,
            "rejected": len(rejected),
        }

    @task
    def detect(cfg: dict, kind: str, model_arn: str) -> dict:
        """DetectCustomLabels on the test pages (baseline) or on their tiles (tiled); every answer
        kept with its boxes in ``detections/<kind>.json``; a retried task resumes there."""
        import time

        from aws_ml_provider.hooks.rekognition import RekognitionHook

        s3 = s3_utils.client(AWS_CONN_ID)
        hook = RekognitionHook(aws_conn_id=AWS_CONN_ID)
        images = s3_utils.read_json(s3, f"{cfg['work_prefix']}/detect-images.json")[kind]["images"]
        out_uri = f"{cfg['work_prefix']}/detections/{kind}.json"
        state = s3_utils.read_json(s3, out_uri, default={"model": model_arn, "results": {}, "seconds": 0.0})
        results = state["results"]
        started = time.monotonic()
        for n, image in enumerate(images):
            if image in results:
                continue
            answer = hook.detect_custom_labels(model_arn, image, min_confidence=cfg["min_confidence"])
            results[image] = answer.get("CustomLabels", [])
            if n % 20 == 19:
                s3_utils.write_json(
                    s3, out_uri, {**state, "seconds": state["seconds"] + time.monotonic() - started}
                )
        state["seconds"] = round(state["seconds"] + time.monotonic() - started, 3)
        s3_utils.write_json(s3, out_uri, state)
        found = sum(len(v) for v in results.values())
        print(f"{kind}: {len(images)} image(s), {found} detection(s), {state['seconds']} s")
        return {
            "kind": kind,
            "model": model_arn,
            "detections_uri": out_uri,
            "images": len(images),
            "seconds": state["seconds"],
        }

    @report_task(multiple_outputs=True, trigger_rule="all_done")
    def evaluate(cfg: dict) -> dict:
        """Both models on the same test pages: page-level boxes (tiles mapped back and merged with
        NMS), matched at IoU >= 0.5; per-label tables, predictions, comparison and HTML report.

        Runs when a model failed to train too: that model found nothing (every box missed) and the
        comparison says why (Rekognition's StatusMessage)."""
        import json

        from airflow.providers.amazon.aws.hooks.s3 import S3Hook
        from aws_ml_provider.hooks.rekognition import RekognitionHook
        from aws_ml_provider.links.s3 import S3ReportLink
        from aws_ml_provider.utils import tiling

        hook = S3Hook(aws_conn_id=AWS_CONN_ID)
        s3 = hook.get_conn()
        work = cfg["work_prefix"]
        plan = s3_utils.read_json(s3, f"{work}/test-plan.json")
        rekognition = RekognitionHook(aws_conn_id=AWS_CONN_ID)
        models, runs, raw = {}, {}, {}
        for kind in KINDS:
            described = (
                rekognition.describe_version(
                    rekognition.project_arn(cfg[f"{kind}_project"]), cfg[f"{kind}_version"]
                )
                or {}
            )
            models[kind] = {
                "project_version_arn": described.get("ProjectVersionArn"),
                "status": described.get("Status", "ABSENT"),
                "status_message": described.get("StatusMessage"),
                "training_seconds": described.get("BillableTrainingTimeInSeconds"),
            }
            models[kind]["trained"] = models[kind]["status"] not in UNTRAINED
            runs[kind] = s3_utils.read_json(
                s3, f"{work}/detections/{kind}.json", default={"results": {}, "seconds": None, "images": 0}
            )
            raw[kind] = runs[kind]["results"]
            if not models[kind]["trained"] or not raw[kind]:
                print(f"WARNING {kind}: model {models[kind]}; {len(raw[kind])} image(s) detected")

        def boxes(labels, frame) -> list[dict]:
            out = []
            for label in labels:
                bbox = (label.get("Geometry") or {}).get("BoundingBox")
                if not bbox:
                    continue
                out.append(
                    {
                        "label": label["Name"],
                        "confidence": round(float(label["Confidence"]) / 100, 6),
                        **{k: round(v, 2) for k, v in frame(bbox).items()},
                    }
                )
            return out

        pages = []
        for page in plan["pages"]:
            image = page["image"]
            baseline = boxes(raw["baseline"].get(image, []),
                             lambda b, p=page: tiling.ratio_to_pixels(b, p["width"], p["height"]))  # fmt: skip
            on_tiles = []
            for t in plan["tiles"][image]:
                on_tiles += boxes(raw["tiled"].get(t["image"], []), lambda b, t=t: tiling.tile_to_page(b, t))
            merged = tiling.nms(on_tiles, cfg["nms_iou"])
            pages.append(
                {
                    "image": image,
                    "width": page["width"],
                    "height": page["height"],
                    "truth": page["boxes"],
                    "baseline": baseline,
                    "tiled": merged,
                    "tiled_before_nms": len(on_tiles),
                }
            )
        tables = {
            kind: tiling.label_table(tiling.count(((p[kind], p["truth"]) for p in pages), 0.5))
            for kind in KINDS
        }
        f1 = {kind: tables[kind][-1]["f1"] for kind in KINDS}
        # the higher F1 among the models that trained; a tie keeps the baseline (the simpler one)
        better = (
            "tiled"
            if models["tiled"]["trained"]
            and (f1["tiled"] > f1["baseline"] or not models["baseline"]["trained"])
            else "baseline"
        )
        timings = {
            kind: {
                "training_seconds": models[kind]["training_seconds"],
                "inference_seconds": runs[kind]["seconds"],
                "inference_images": len(raw[kind]),
            }
            for kind in KINDS
        }
        comparison = {
            "test_pages": [p["image"] for p in pages],
            "match_iou": 0.5,
            "nms_iou": cfg["nms_iou"],
            "tables": tables,
            "f1": f1,
            "better": better,
            "models": models,
            "timings": timings,
        }
        predictions_uri = s3_utils.write_json(s3, f"{work}/evaluation/predictions.json", {"pages": pages})
        html = _report_html(s3, cfg, comparison, pages)
        report_uri = s3_utils.put_text(s3, f"{work}/evaluation/report.html", html, "text/html")
        comparison["predictions_uri"] = predictions_uri
        comparison["report_uri"] = report_uri
        comparison_uri = s3_utils.write_json(s3, f"{work}/evaluation/comparison.json", comparison)
        S3ReportLink.persist_object(get_current_context(), hook, report_uri)
        print(json.dumps({"f1": f1, "better": better, "timings": timings}))
        return {
            "f1": f1,
            "better": better,
            "comparison_uri": comparison_uri,
            "predictions_uri": predictions_uri,
            "report_uri": report_uri,
        }

    @task(outlets=[BEST_MODEL_ASSET])
    def keep_better(cfg: dict, evaluation: dict) -> dict:
        """Record the better model (``best_model.json``, the Asset's extra); with
        ``delete_worse_model`` delete the other version (stopped by then)."""
        from airflow.providers.common.compat.sdk import AirflowFailException
        from aws_ml_provider.hooks.rekognition import RekognitionHook
        from botocore.exceptions import ClientError

        s3 = s3_utils.client(AWS_CONN_ID)
        models = s3_utils.read_json(s3, evaluation["comparison_uri"])["models"]
        best = models[evaluation["better"]]
        worse_kind = "tiled" if evaluation["better"] == "baseline" else "baseline"
        worse = models[worse_kind]
        if not best["trained"]:
            raise AirflowFailException(f"no model to keep: neither trained ({models})")
        deleted = None
        if cfg["delete_worse_model"] and worse["project_version_arn"]:
            try:
                RekognitionHook(aws_conn_id=AWS_CONN_ID).conn.delete_project_version(
                    ProjectVersionArn=worse["project_version_arn"]
                )
                deleted = worse["project_version_arn"]
            except ClientError as err:
                if err.response.get("Error", {}).get("Code") != "ResourceNotFoundException":
                    raise
        record = {
            "kind": evaluation["better"],
            "project_version_arn": best["project_version_arn"],
            "f1": evaluation["f1"],
            "comparison_uri": evaluation["comparison_uri"],
            "other": {
                "kind": worse_kind,
                "project_version_arn": worse["project_version_arn"],
                "deleted": deleted,
            },
        }
        uri = s3_utils.write_json(s3, f"{cfg['work_prefix']}/best_model.json", record)
        get_current_context()["outlet_events"][BEST_MODEL_ASSET].extra = {**record, "best_model_uri": uri}
        print(record)
        return {**record, "best_model_uri": uri}

    cfg = resolve_config()
    prepared = prepare(cfg)
    tiled = tile_pages(cfg, prepared)

    stops = []
    for kind in KINDS:
        with TaskGroup(
            kind, tooltip=f"Custom Labels model on the {'whole pages' if kind == 'baseline' else 'tiles'}"
        ):
            project = RekognitionCreateProjectOperator(
                task_id="create_project", aws_conn_id=AWS_CONN_ID, project_name=cfg[f"{kind}_project"]
            )
            datasets = [
                RekognitionCreateDatasetOperator(
                    task_id=f"create_{split}_dataset",
                    aws_conn_id=AWS_CONN_ID,
                    project=project.output,
                    dataset_type=split.upper(),
                    manifest_s3_uri=tiled[f"{kind}_{split}_manifest"],
                    if_exists="replace",  # each run trains on its own tiles
                    deferrable=True,
                    waiter_delay=MODEL_POLL_SECONDS,
                )
                for split in ("train", "test")
            ]
            datasets[0] >> datasets[1]  # one dataset at a time per project
            train = RekognitionTrainProjectVersionOperator(
                task_id="train_model",
                aws_conn_id=AWS_CONN_ID,
                project=project.output,
                version_name=cfg[f"{kind}_version"],
                output_s3_uri=f"{cfg['work_prefix']}/custom-labels/{kind}/",
                deferrable=True,
                waiter_delay=TRAIN_POLL_SECONDS,
            )
            datasets[1] >> train
            start = RekognitionStartProjectVersionOperator(
                task_id="start_model",
                aws_conn_id=AWS_CONN_ID,
                project_version_arn=train.output,
                deferrable=True,
                waiter_delay=MODEL_POLL_SECONDS,
            )
            found = detect.override(task_id="detect_test_pages")(cfg, kind, start.output)
            stop = RekognitionStopProjectVersionOperator(
                task_id="stop_model",
                aws_conn_id=AWS_CONN_ID,
                project_version_arn=train.output,
                deferrable=True,
                waiter_delay=MODEL_POLL_SECONDS,
            )
            found >> stop.as_teardown(setups=start)
            stops.append(stop)
    # the evaluation reads the saved detections: it runs after both models are stopped (and when a
    # model failed to train, whose start never ran: a task after the teardown is out of its scope)
    evaluation = evaluate(cfg)
    stops >> evaluation
    keep_better(cfg, evaluation)


def _report_html(s3, cfg: dict, comparison: dict, pages: list[dict]) -> str:
    """The comparison tables and every test page drawn with its true boxes (green) and each
    model's boxes (baseline blue, tiled red), as inline PNGs."""
    import base64
    import html
    import io
    import json

    from PIL import Image, ImageDraw

    def table(rows: list[dict]) -> str:
        cols = ["label", "precision", "recall", "f1", "boxes", "found", "missed", "false_detections"]
        head = "".join(f"<th>{c}</th>" for c in cols)
        body = "".join(
            "<tr>" + "".join(f"<td>{html.escape(str(r[c]))}</td>" for c in cols) + "</tr>" for r in rows
        )
        return f"<table><tr>{head}</tr>{body}</table>"

    figures = []
    for page in pages:
        image = Image.open(io.BytesIO(s3_utils.read_bytes(s3, page["image"]))).convert("RGB")
        panels = []
        for kind, colour in (("baseline", (30, 90, 220)), ("tiled", (220, 40, 40))):
            canvas = image.copy()
            draw = ImageDraw.Draw(canvas)
            for b in page["truth"]:
                draw.rectangle((b["left"] - 2, b["top"] - 2, b["left"] + b["width"] + 2, b["top"] + b["height"] + 2),
                               outline=(20, 160, 60), width=3)  # fmt: skip
            for b in page[kind]:
                draw.rectangle((b["left"], b["top"], b["left"] + b["width"], b["top"] + b["height"]),
                               outline=colour, width=2)  # fmt: skip
                draw.text(
                    (b["left"], b["top"] + b["height"] + 1),
                    f"{b['label']} {b['confidence']:.2f}",
                    fill=colour,
                )
            canvas.thumbnail((640, 640))
            buf = io.BytesIO()
            canvas.save(buf, format="PNG", optimize=True)
            data = base64.b64encode(buf.getvalue()).decode()
            panels.append(f'<figure><img src="data:image/png;base64,{data}"><figcaption>{kind}: '
                          f"{len(page[kind])} box(es)</figcaption></figure>")  # fmt: skip
        figures.append(
            f"<h3>{html.escape(page['image'])} ({len(page['truth'])} true box(es))</h3>" + "".join(panels)
        )
    f1 = comparison["f1"]
    timings = comparison["timings"]
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>Small-object detection: baseline vs tiled</title>"
        "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;margin-bottom:1em}"
        "td,th{border:1px solid #999;padding:3px 8px;text-align:right}figure{display:inline-block;margin:4px}"
        "</style></head><body>"
        f"<h1>Small-object detection: baseline vs tiled</h1>"
        f"<p>{len(pages)} test page(s), the same for both models; detections match a true box at IoU &gt;= "
        f"{comparison['match_iou']}; tile detections merged with NMS at IoU {comparison['nms_iou']}. "
        f"F1 over all labels: baseline {f1['baseline']}, tiled {f1['tiled']}; kept: <b>{comparison['better']}</b>.</p>"
        f"<h2>Baseline (whole pages)</h2>{table(comparison['tables']['baseline'])}"
        f"<h2>Tiled ({cfg['tiles_x']} x {cfg['tiles_y']} tiles, overlap {cfg['overlap']})</h2>"
        f"{table(comparison['tables']['tiled'])}"
        f"<h2>Models and timings</h2><pre>{html.escape(json.dumps(comparison['models'], indent=1))}\n"
        f"{html.escape(json.dumps(timings, indent=1))}</pre>"
        "<h2>Test pages</h2><p>green: true boxes; blue: baseline; red: tiled.</p>"
        + "".join(figures)
        + "</body></html>"
    )


small_object_detection()
