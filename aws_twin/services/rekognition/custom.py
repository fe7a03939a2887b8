"""Rekognition Custom Labels on the twin: projects, datasets, model versions, for real.

- **Projects** ``CREATING -> CREATED``; ``DeleteProject`` refuses while the project has model versions
  (``ResourceInUseException``), as the service does, and deletes its datasets.
- **Datasets** (TRAIN / TEST) from a Ground Truth manifest in S3 or a copy of another dataset:
  ``CREATE_IN_PROGRESS -> CREATE_COMPLETE``, or ``CREATE_FAILED`` with a message naming the manifest's
  bad line (:mod:`.manifest`). Entries are keyed by ``source-ref``: ``UpdateDatasetEntries`` adds or
  replaces; ``DistributeDatasetEntries`` moves a random 20 % of the training entries into the empty
  test dataset.
- **Versions**: ``CreateProjectVersion`` takes the project's datasets, or ``TrainingData`` /
  ``TestingData`` manifests (``AutoCreate``: 80/20 split, as the service does); images are fetched
  from S3 and training runs in a worker process (``python -m aws_twin.services.rekognition.train``):
  ``TRAINING_IN_PROGRESS -> TRAINING_COMPLETED`` (F1 on the test set, evaluation summary JSON and a
  manifest summary written under the OutputConfig location) or ``TRAINING_FAILED`` with the reason.
  A manifest mixing classification and detection, or one whose images cannot be read, fails training.
  ``StartProjectVersion`` loads the model: ``STARTING -> RUNNING``; ``StopProjectVersion``:
  ``STOPPING -> STOPPED``. ``DetectCustomLabels`` answers only while RUNNING
  (``ResourceNotReadyException`` otherwise); without ``MinConfidence`` each label uses its assumed
  threshold. ``AWS_TWIN_REKOGNITION_START_SECONDS`` (default 2) is how long STARTING and STOPPING last.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import pickle
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any

from ...core.errors import AwsError
from ...core.paging import page
from . import images, manifest

log = logging.getLogger("aws_twin.rekognition")


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _ts() -> int:
    return int(time.time() * 1000)


def not_found(what: str) -> AwsError:
    return AwsError("ResourceNotFoundException", f"{what} does not exist.")


def in_use(message: str) -> AwsError:
    return AwsError("ResourceInUseException", message)


def invalid(message: str) -> AwsError:
    return AwsError("InvalidParameterException", message)


def _split_s3(uri: str) -> tuple[str, str]:
    bucket, _, key = uri[5:].partition("/")
    return bucket, key


class Dataset:
    def __init__(self, arn: str, kind: str, project_arn: str):
        self.arn, self.kind, self.project_arn = arn, kind, project_arn
        self.created = self.updated = _now()
        self.status, self.message, self.code = "CREATE_IN_PROGRESS", "", "SUCCESS"
        self.entries: dict[str, manifest.Entry] = {}  # by source-ref, in order

    def stats(self) -> dict:
        entries = list(self.entries.values())
        return {
            "LabeledEntries": sum(1 for e in entries if e.labeled),
            "TotalEntries": len(entries),
            "TotalLabels": len({label for e in entries for label in e.all_labels}),
            "ErrorEntries": 0,
        }

    def metadata(self) -> dict:
        return {"CreationTimestamp": self.created, "DatasetType": self.kind, "DatasetArn": self.arn,
                "Status": self.status, "StatusMessage": self.message, "StatusMessageCode": self.code}  # fmt: skip


class Version:
    def __init__(self, arn: str, name: str, project_arn: str, params: dict):
        self.arn, self.name, self.project_arn = arn, name, project_arn
        self.created = _now()
        self.status, self.message = "TRAINING_IN_PROGRESS", "The model is being trained."
        self.params = params
        self.record: dict[str, Any] = {}
        self.model = None  # the loaded model while RUNNING
        self.model_path: str | None = None
        self.process: subprocess.Popen | None = None
        #: the training worker's figures (the twin's state shows them; bench/rekognition_bench.py prints them)
        self.figures: dict[str, float] = {}

    def describe(self) -> dict:
        out = {
            "ProjectVersionArn": self.arn,
            "CreationTimestamp": self.created,
            "Status": self.status,
            "StatusMessage": self.message,
            "OutputConfig": self.params["OutputConfig"],
            "Feature": "CUSTOM_LABELS",
        }
        if self.params.get("VersionDescription"):
            out["VersionDescription"] = self.params["VersionDescription"]
        if self.params.get("KmsKeyId"):
            out["KmsKeyId"] = self.params["KmsKeyId"]
        out.update(self.record)
        return out


class CustomLabels:
    def __init__(self, twin):
        self.twin = twin
        self.lock = threading.RLock()
        self.projects: dict[str, dict] = {}  # by name
        self.datasets: dict[str, Dataset] = {}
        self.versions: dict[str, Version] = {}
        self.workdir = tempfile.mkdtemp(prefix="twin-rekognition-")
        self.closed = False

    def state(self) -> dict:
        with self.lock:
            return {
                "projects": sorted(self.projects),
                "versions": {v.arn: {"status": v.status, **v.figures} for v in self.versions.values()},
            }

    def shutdown(self) -> None:
        self.closed = True
        with self.lock:
            for v in self.versions.values():
                if v.process is not None and v.process.poll() is None:
                    v.process.kill()
        shutil.rmtree(self.workdir, ignore_errors=True)

    @property
    def delay(self) -> float:
        return float(os.environ.get("AWS_TWIN_REKOGNITION_START_SECONDS", "2"))

    def _later(self, seconds: float, fn, *args) -> None:
        def run():
            time.sleep(seconds)
            if not self.closed:
                fn(*args)

        threading.Thread(target=run, daemon=True, name="rekognition-later").start()

    # ---- projects ------------------------------------------------------------------------------
    def _project_by_arn(self, arn: str | None) -> dict:
        for p in self.projects.values():
            if p["ProjectArn"] == arn:
                return p
        raise not_found(f"The project {arn}")

    def create_project(self, ctx, params):
        name = params["ProjectName"]
        feature = params.get("Feature") or "CUSTOM_LABELS"
        if feature != "CUSTOM_LABELS":
            raise AwsError(
                "NotImplemented", f"Projects with Feature {feature} are not implemented by aws_twin", 501
            )
        with self.lock:
            if name in self.projects:
                raise in_use(f"A project named {name} already exists.")
            arn = ctx.arn(f"project/{name}/{_ts()}")
            self.projects[name] = {"ProjectArn": arn, "CreationTimestamp": _now(), "Status": "CREATED",
                                   "Feature": feature, "name": name}  # fmt: skip
        return {"ProjectArn": arn}

    def _project_description(self, p: dict) -> dict:
        out = {k: p[k] for k in ("ProjectArn", "CreationTimestamp", "Status", "Feature")}
        out["Datasets"] = [
            {k: v for k, v in d.metadata().items() if v != ""}
            for d in self.datasets.values() if d.project_arn == p["ProjectArn"]
        ]  # fmt: skip
        return out

    def describe_projects(self, ctx, params):
        names = params.get("ProjectNames")
        features = params.get("Features")
        with self.lock:
            items = [p for n, p in sorted(self.projects.items(), key=lambda kv: kv[1]["CreationTimestamp"])
                     if (not names or n in names) and (not features or p["Feature"] in features)]  # fmt: skip
            chunk, more = page(
                items, params, default=100, maximum=100, error_code="InvalidParameterException"
            )
            return {"ProjectDescriptions": [self._project_description(p) for p in chunk], **more}

    def delete_project(self, ctx, params):
        with self.lock:
            p = self._project_by_arn(params["ProjectArn"])
            if any(v.project_arn == p["ProjectArn"] for v in self.versions.values()):
                raise in_use(f"The project {p['ProjectArn']} has model versions; delete them first.")
            for arn in [a for a, d in self.datasets.items() if d.project_arn == p["ProjectArn"]]:
                del self.datasets[arn]
            del self.projects[p["name"]]
        return {"Status": "DELETING"}

    # ---- datasets ------------------------------------------------------------------------------
    def _dataset(self, arn: str | None) -> Dataset:
        d = self.datasets.get(arn or "")
        if d is None:
            raise not_found(f"The dataset {arn}")
        return d

    def _read_manifest(self, ref: dict | None) -> str:
        s3obj = (ref or {}).get("S3Object") or {}
        data, _source = images.read_s3(self.twin, s3obj)
        return data.decode("utf-8", errors="replace")

    def create_dataset(self, ctx, params):
        kind = params["DatasetType"]
        if kind not in ("TRAIN", "TEST"):
            raise invalid(f"DatasetType must be TRAIN or TEST, not {kind}.")
        source = params.get("DatasetSource") or {}
        text, copy_of = "", None
        if source.get("GroundTruthManifest") and not source.get("DatasetArn"):
            text = self._read_manifest(source["GroundTruthManifest"])  # InvalidS3ObjectException
        with self.lock:
            p = self._project_by_arn(params["ProjectArn"])
            for d in self.datasets.values():
                if d.project_arn == p["ProjectArn"] and d.kind == kind:
                    raise AwsError("ResourceAlreadyExistsException",
                                   f"The project {p['name']} already has a {kind} dataset.")  # fmt: skip
            if source.get("DatasetArn"):
                copy_of = self._dataset(source["DatasetArn"])
            arn = f"{p['ProjectArn'].rsplit('/', 1)[0]}/dataset/{kind.lower()}/{_ts()}"
            d = Dataset(arn, kind, p["ProjectArn"])
            self.datasets[arn] = d
        self._later(0.2, self._fill, d, text, copy_of)
        return {"DatasetArn": arn}

    def _fill(self, d: Dataset, text: str, copy_of: Dataset | None) -> None:
        with self.lock:
            try:
                if copy_of is not None:
                    d.entries = dict(copy_of.entries)
                else:
                    d.entries = {e.source_ref: e for e in manifest.parse(text)}
                d.status, d.code, d.message = (
                    "CREATE_COMPLETE",
                    "SUCCESS",
                    "The dataset was created successfully.",
                )
            except manifest.ManifestError as exc:
                d.status, d.code = "CREATE_FAILED", "CLIENT_ERROR"
                d.message = f"The manifest file contains an invalid entry: {exc}"
            d.updated = _now()

    def describe_dataset(self, ctx, params):
        with self.lock:
            d = self._dataset(params["DatasetArn"])
            out = {"CreationTimestamp": d.created, "LastUpdatedTimestamp": d.updated, "Status": d.status,
                   "StatusMessage": d.message, "StatusMessageCode": d.code, "DatasetStats": d.stats()}  # fmt: skip
            return {"DatasetDescription": out}

    def _ready(self, d: Dataset) -> None:
        if d.status in ("CREATE_IN_PROGRESS", "UPDATE_IN_PROGRESS"):
            raise AwsError("ResourceNotReadyException", f"The dataset {d.arn} is {d.status}.")
        if d.status == "CREATE_FAILED":
            raise in_use(f"The dataset {d.arn} is CREATE_FAILED: {d.message}")

    def list_dataset_entries(self, ctx, params):
        with self.lock:
            d = self._dataset(params["DatasetArn"])
            self._ready(d)
            wanted = set(params.get("ContainsLabels") or [])
            labeled = params.get("Labeled")
            contains = params.get("SourceRefContains")
            if params.get("HasErrors"):
                items = []  # entries with errors are refused at creation: none is kept
            else:
                items = [e.line for e in d.entries.values()
                         if (not wanted or wanted & e.all_labels)
                         and (labeled is None or e.labeled == labeled)
                         and (not contains or contains in e.source_ref)]  # fmt: skip
            chunk, more = page(
                items, params, default=100, maximum=100, error_code="InvalidParameterException"
            )
            return {"DatasetEntries": chunk, **more}

    def list_dataset_labels(self, ctx, params):
        with self.lock:
            d = self._dataset(params["DatasetArn"])
            self._ready(d)
            stats: dict[str, dict] = {}
            for e in d.entries.values():
                for label in e.all_labels:
                    s = stats.setdefault(label, {"EntryCount": 0, "BoundingBoxCount": 0})
                    s["EntryCount"] += 1
                    s["BoundingBoxCount"] += sum(1 for b in e.boxes if b[0] == label)
            items = [{"LabelName": k, "LabelStats": v} for k, v in sorted(stats.items())]
            chunk, more = page(
                items, params, default=100, maximum=100, error_code="InvalidParameterException"
            )
            return {"DatasetLabelDescriptions": chunk, **more}

    def update_dataset_entries(self, ctx, params):
        text = bytes((params.get("Changes") or {}).get("GroundTruth") or b"").decode(
            "utf-8", errors="replace"
        )
        try:
            entries = manifest.parse(text)
        except manifest.ManifestError as exc:
            raise invalid(f"Changes.GroundTruth has an invalid entry: {exc}") from exc
        if not entries:
            raise invalid("Changes.GroundTruth has no entries.")
        with self.lock:
            d = self._dataset(params["DatasetArn"])
            if d.status in ("CREATE_IN_PROGRESS", "UPDATE_IN_PROGRESS", "CREATE_FAILED"):
                raise in_use(f"The dataset {d.arn} is {d.status}.")
            d.status, d.updated = "UPDATE_IN_PROGRESS", _now()
        self._later(0.2, self._apply, d, entries)
        return {}

    def _apply(self, d: Dataset, entries: list[manifest.Entry]) -> None:
        with self.lock:
            for e in entries:
                d.entries[e.source_ref] = e
            d.status, d.code, d.message = (
                "UPDATE_COMPLETE",
                "SUCCESS",
                "The dataset was updated successfully.",
            )
            d.updated = _now()

    def distribute_dataset_entries(self, ctx, params):
        arns = [x.get("Arn") for x in params.get("Datasets") or []]
        with self.lock:
            ds = [self._dataset(a) for a in arns]
            kinds = sorted(d.kind for d in ds)
            if kinds != ["TEST", "TRAIN"] or ds[0].project_arn != ds[1].project_arn:
                raise invalid("Datasets must be the TRAIN and the TEST dataset of one project.")
            train = next(d for d in ds if d.kind == "TRAIN")
            test = next(d for d in ds if d.kind == "TEST")
            for d in ds:
                if d.status in ("CREATE_IN_PROGRESS", "UPDATE_IN_PROGRESS", "CREATE_FAILED"):
                    raise AwsError("ResourceNotReadyException", f"The dataset {d.arn} is {d.status}.")
            if test.entries:
                raise invalid(f"The test dataset {test.arn} must be empty to distribute entries into it.")
            if len(train.entries) < 2:
                raise invalid(f"The training dataset {train.arn} has too few entries to distribute.")
            refs = list(train.entries)
            random.Random(train.arn).shuffle(refs)
            moved = refs[: max(1, len(refs) // 5)]
            for d in ds:
                d.status, d.updated = "UPDATE_IN_PROGRESS", _now()

        def apply():
            with self.lock:
                for ref in moved:
                    test.entries[ref] = train.entries.pop(ref)
                for d in ds:
                    d.status, d.code, d.message = "UPDATE_COMPLETE", "SUCCESS", "Entries were distributed."
                    d.updated = _now()

        self._later(0.2, apply)
        return {}

    def delete_dataset(self, ctx, params):
        with self.lock:
            d = self._dataset(params["DatasetArn"])
            if d.status in ("CREATE_IN_PROGRESS", "UPDATE_IN_PROGRESS"):
                raise in_use(f"The dataset {d.arn} is {d.status}.")
            del self.datasets[d.arn]
        return {}

    # ---- model versions ----------------------------------------------------------------------
    def _version(self, arn: str | None) -> Version:
        v = self.versions.get(arn or "")
        if v is None:
            raise not_found(f"The model version {arn}")
        return v

    def _manifest_entries(self, assets: list | None, what: str) -> list[manifest.Entry]:
        entries: list[manifest.Entry] = []
        for asset in assets or []:
            text = self._read_manifest(asset.get("GroundTruthManifest"))
            try:
                entries += manifest.parse(text)
            except manifest.ManifestError as exc:
                raise invalid(f"The {what} manifest has an invalid entry: {exc}") from exc
        return entries

    def create_project_version(self, ctx, params):
        name = params["VersionName"]
        out = params.get("OutputConfig") or {}
        if not out.get("S3Bucket"):
            raise invalid("OutputConfig needs S3Bucket.")
        with self.lock:
            p = self._project_by_arn(params["ProjectArn"])
            for v in self.versions.values():
                if v.project_arn == p["ProjectArn"] and v.name == name:
                    raise in_use(f"The project {p['name']} already has a model version named {name}.")
            datasets = {d.kind: d for d in self.datasets.values() if d.project_arn == p["ProjectArn"]}
        if datasets:
            if params.get("TrainingData") or params.get("TestingData"):
                raise invalid("The project has datasets: give no TrainingData or TestingData.")
            for d in datasets.values():
                if d.status not in ("CREATE_COMPLETE", "UPDATE_COMPLETE"):
                    raise AwsError("ResourceInUseException", f"The dataset {d.arn} is {d.status}.")
            if "TRAIN" not in datasets:
                raise invalid(f"The project {p['name']} has no TRAIN dataset.")
            train = list(datasets["TRAIN"].entries.values())
            test = list(datasets["TEST"].entries.values()) if "TEST" in datasets else []
            auto = "TEST" not in datasets
        else:
            if not (params.get("TrainingData") or {}).get("Assets"):
                raise invalid(f"The project {p['name']} has no datasets: TrainingData needs Assets.")
            testing = params.get("TestingData") or {}
            train = self._manifest_entries(params["TrainingData"]["Assets"], "training")
            auto = bool(testing.get("AutoCreate"))
            if not auto and not testing.get("Assets"):
                raise invalid("TestingData needs Assets or AutoCreate.")
            test = [] if auto else self._manifest_entries(testing.get("Assets"), "testing")
        if auto:  # the service's 80/20 split of the training images
            train = list(train)
            random.Random(name).shuffle(train)
            cut = max(1, len(train) // 5) if len(train) > 1 else 0
            test, train = train[:cut], train[cut:]
        arn = f"{p['ProjectArn'].rsplit('/', 1)[0]}/version/{name}/{_ts()}"
        record_params = {
            k: params[k] for k in ("OutputConfig", "VersionDescription", "KmsKeyId") if params.get(k)
        }
        v = Version(arn, name, p["ProjectArn"], record_params)
        with self.lock:
            self.versions[arn] = v
        threading.Thread(
            target=self._train, args=(v, train, test), daemon=True, name=f"rek-train-{name}"
        ).start()
        return {"ProjectVersionArn": arn}

    def _fail(self, v: Version, message: str) -> None:
        with self.lock:
            v.status, v.message = "TRAINING_FAILED", message
            v.record["TrainingEndTimestamp"] = _now()

    def _train(self, v: Version, train: list[manifest.Entry], test: list[manifest.Entry]) -> None:
        started = time.monotonic()
        try:
            self._run_training(v, train, test, started)
        except Exception as exc:  # a bug here fails the version, visibly, not the twin
            log.exception("Custom Labels training of %s failed", v.arn)
            self._fail(v, f"Internal error while training: {type(exc).__name__}: {exc}")

    def _run_training(self, v, train, test, started) -> None:
        kinds = {k for e in [*train, *test] for k in e.kinds}
        if not kinds:
            return self._fail(v, "The training dataset has no labeled images.")
        if len(kinds) > 1:
            return self._fail(v, "The datasets mix image-level labels (classification) and bounding boxes "
                                 "(object detection); a model is one or the other.")  # fmt: skip
        kind = "classification" if kinds == {manifest.CLASSIFICATION} else "detection"
        work = os.path.join(self.workdir, v.arn.rsplit("/", 2)[-2] + f"-{_ts()}")
        os.makedirs(os.path.join(work, "images"), exist_ok=True)
        s3 = self.twin.client("s3")
        cache: dict[str, str] = {}

        def fetch(e: manifest.Entry) -> dict | None:
            if e.source_ref not in cache:
                bucket, key = _split_s3(e.source_ref)
                try:
                    data = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
                    images.decode(data, e.source_ref)
                except Exception as exc:  # noqa: BLE001 - named in the failure message
                    detail = getattr(exc, "message", None) or str(exc)
                    raise ValueError(f"The image {e.source_ref} cannot be used: {detail}") from exc
                path = os.path.join(work, "images", f"{len(cache)}.img")
                with open(path, "wb") as f:
                    f.write(data)
                cache[e.source_ref] = path
            return {
                "path": cache[e.source_ref],
                "ref": e.source_ref,
                "labels": sorted(e.labels),
                "boxes": [list(b) for b in e.boxes],
            }

        try:
            spec = {"kind": kind, "train": [fetch(e) for e in train if e.labeled],
                    "test": [fetch(e) for e in test if e.labeled], "seed": 0}  # fmt: skip
        except ValueError as exc:
            return self._fail(v, str(exc))
        spec_path = os.path.join(work, "spec.json")
        with open(spec_path, "w") as f:
            json.dump(spec, f)
        with open(os.path.join(work, "worker.log"), "wb") as logf:
            proc = subprocess.Popen([sys.executable, "-m", "aws_twin.services.rekognition.train", spec_path],
                                    stdout=logf, stderr=subprocess.STDOUT, cwd=work,
                                    env={**os.environ, "PYTHONPATH": _package_root()})  # fmt: skip
            with self.lock:
                v.process = proc
            rc = proc.wait()
        try:
            with open(os.path.join(work, "result.json")) as f:
                result = json.load(f)
        except (OSError, ValueError):
            with open(os.path.join(work, "worker.log"), errors="replace") as f:
                tail = f.read()[-400:]
            return self._fail(v, f"The training worker stopped (exit code {rc}): {tail}")
        if "error" in result:
            return self._fail(v, result["error"])
        self._write_outputs(v, kind, result, spec, started)
        v.figures = {
            "train_seconds": round(result["seconds"], 2),
            "worker_cpu_seconds": round(result["cpu_seconds"], 2),
        }
        with self.lock:
            v.model_path = os.path.join(work, "model.pkl")
            v.status, v.message = "TRAINING_COMPLETED", "The model is ready to run."

    def _write_outputs(self, v: Version, kind: str, result: dict, spec: dict, started: float) -> None:
        out = v.params["OutputConfig"]
        bucket, prefix = out["S3Bucket"], (out.get("S3KeyPrefix") or "").strip("/")
        base = f"{prefix}/" if prefix else ""
        stamp = v.arn.rsplit("/", 1)[-1]
        summary_key = f"{base}EvaluationResultSummary-{v.name}-{stamp}.json"
        manifest_key = f"{base}{v.name}/manifests/output/output.manifest"
        ended = _now()
        summary = {
            "Version": 1,
            "AggregatedEvaluationResults": {
                "F1Score": result["f1"],
                "Precision": result["precision"],
                "Recall": result["recall"],
            },  # fmt: skip
            "EvaluationDetails": {
                "EvaluationEndTimestamp": ended.isoformat(),
                "Labels": result["labels"],
                "NumberOfTestingImages": result["test_images"],
                "NumberOfTrainingImages": result["train_images"],
                "ProjectVersionArn": v.arn,
                "ModelType": "OBJECT_DETECTION" if kind == "detection" else "IMAGE_CLASSIFICATION",
            },
            "LabelResults": [
                {
                    "Label": label,
                    "Metrics": {k: m[k] for k in ("F1Score", "Precision", "Recall", "Threshold")},
                    "NumberOfTestingImages": m["NumberOfTestingImages"],
                }
                for label, m in result["per_label"].items()
            ],  # fmt: skip
        }
        s3 = self.twin.client("s3")
        s3.put_object(Bucket=bucket, Key=summary_key, Body=json.dumps(summary, indent=2).encode(),
                      ContentType="application/json")  # fmt: skip
        lines = [json.dumps({"source-ref": ref, "split": split}) for split, items in
                 (("train", spec["train"]), ("test", spec["test"])) for ref in [i["ref"] for i in items]]  # fmt: skip
        s3.put_object(Bucket=bucket, Key=manifest_key, Body="\n".join(lines).encode())
        with self.lock:
            v.record.update({
                "BillableTrainingTimeInSeconds": int(time.monotonic() - started),
                "TrainingEndTimestamp": ended,
                "EvaluationResult": {"F1Score": result["f1"],
                                     "Summary": {"S3Object": {"Bucket": bucket, "Name": summary_key}}},
                "ManifestSummary": {"S3Object": {"Bucket": bucket, "Name": manifest_key}},
            })  # fmt: skip

    def describe_project_versions(self, ctx, params):
        names = params.get("VersionNames")
        with self.lock:
            p = self._project_by_arn(params["ProjectArn"])
            items = [v for v in self.versions.values()
                     if v.project_arn == p["ProjectArn"] and (not names or v.name in names)]  # fmt: skip
            items.sort(key=lambda v: v.created, reverse=True)
            chunk, more = page(
                items, params, default=100, maximum=100, error_code="InvalidParameterException"
            )
            return {"ProjectVersionDescriptions": [v.describe() for v in chunk], **more}

    def start_project_version(self, ctx, params):
        units = params.get("MinInferenceUnits")
        if units is None or units < 1:
            raise invalid("MinInferenceUnits must be at least 1.")
        with self.lock:
            v = self._version(params["ProjectVersionArn"])
            if v.status in ("RUNNING", "STARTING"):
                raise in_use(f"The model version {v.arn} is already {v.status}.")
            if v.status not in ("TRAINING_COMPLETED", "STOPPED"):
                raise in_use(f"The model version {v.arn} is {v.status}; only a trained model can start.")
            v.status, v.message = "STARTING", "The model is being started."
            v.record["MinInferenceUnits"] = units
            if params.get("MaxInferenceUnits"):
                v.record["MaxInferenceUnits"] = params["MaxInferenceUnits"]
        self._later(self.delay, self._load, v)
        return {"Status": "STARTING"}

    def _load(self, v: Version) -> None:
        try:
            with open(v.model_path or "", "rb") as f:
                model = pickle.load(f)
            from . import backbone

            backbone.Backbone.get()
        except Exception as exc:  # noqa: BLE001 - the version says why
            with self.lock:
                v.status, v.message = "FAILED", f"The model could not be loaded: {exc}"
            return
        with self.lock:
            if v.status == "STARTING":
                v.model, v.status, v.message = model, "RUNNING", "The model is running."

    def stop_project_version(self, ctx, params):
        with self.lock:
            v = self._version(params["ProjectVersionArn"])
            if v.status not in ("RUNNING", "STARTING"):
                raise in_use(f"The model version {v.arn} is {v.status}; only a running model can stop.")
            v.status, v.message = "STOPPING", "The model is being stopped."
            v.model = None

        def stopped():
            with self.lock:
                if v.status == "STOPPING":
                    v.status, v.message = "STOPPED", "The model is stopped."

        self._later(self.delay, stopped)
        return {"Status": "STOPPING"}

    def delete_project_version(self, ctx, params):
        with self.lock:
            v = self._version(params["ProjectVersionArn"])
            if v.status in ("RUNNING", "STARTING", "STOPPING", "TRAINING_IN_PROGRESS"):
                raise in_use(f"The model version {v.arn} is {v.status}; stop it (or let training end) first.")
            del self.versions[v.arn]
        return {"Status": "DELETING"}

    def detect_custom_labels(self, ctx, params):
        with self.lock:
            v = self._version(params["ProjectVersionArn"])
            model = v.model
            if v.status != "RUNNING" or model is None:
                raise AwsError(
                    "ResourceNotReadyException", f"The model version {v.arn} is {v.status}, not RUNNING."
                )
        min_conf = params.get("MinConfidence")
        if min_conf is not None and not 0 <= min_conf <= 100:
            raise invalid(f"MinConfidence must be between 0 and 100, got {min_conf}.")
        max_results = params.get("MaxResults")
        img, _source = images.load(self.twin, params.get("Image"))
        out = []
        for label, score, box in model.predict_image(img):
            confidence = score * 100.0
            threshold = model.thresholds.get(label, 0.5) * 100.0 if min_conf is None else float(min_conf)
            if confidence < threshold:
                continue
            item: dict[str, Any] = {"Name": label, "Confidence": confidence}
            if box is not None:
                left, top, width, height = (float(x) for x in box)
                item["Geometry"] = {
                    "BoundingBox": {"Width": width, "Height": height, "Left": left, "Top": top},
                    "Polygon": [{"X": left, "Y": top}, {"X": left + width, "Y": top},
                                {"X": left + width, "Y": top + height}, {"X": left, "Y": top + height}],
                }  # fmt: skip
            out.append(item)
            if max_results is not None and len(out) >= max_results:
                break
        return {"CustomLabels": out}


def _package_root() -> str:
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    existing = os.environ.get("PYTHONPATH")
    return root + (os.pathsep + existing if existing else "")
