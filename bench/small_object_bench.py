"""small_object_detection DAG on the twin: baseline (whole pages) vs tiled F1 per label, training
and inference seconds, on the shipped small-symbols sample (16 training / 6 test pages).

    .venv/bin/python bench/small_object_bench.py [--tiles 3] [--overlap 0.2] [--max-pages N] [--sizes 40 80]

A fresh twin and Airflow home; the DAG runs once with ``dag.test()`` (stage_samples on). Prints the
per-label table of both models and the timings (training seconds: the twin's
BillableTrainingTimeInSeconds; inference: the DetectCustomLabels calls of the detect task, pages for
the baseline, tiles for the tiled model), then one JSON line.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import uuid
from pathlib import Path

from airflow_setup import ROOT, airflow_env, migrate_db, point_aws_default_at


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tiles", type=int, default=3, help="tiles across and down")
    parser.add_argument("--overlap", type=float, default=0.2)
    parser.add_argument("--max-pages", type=int, default=None)
    parser.add_argument(
        "--sizes", type=int, nargs=2, default=None,
        help="instead of the shipped sample, generate 16 / 6 pages with symbols of these sizes (px)",
    )  # fmt: skip
    args = parser.parse_args()

    home = Path(tempfile.mkdtemp(prefix="small-object-bench-"))
    airflow_env(home)
    if not migrate_db():
        return 1
    from aws_twin.testing import start_twin

    twin = start_twin(0, strict=False)
    point_aws_default_at(twin)
    try:
        from airflow.dag_processing.dagbag import DagBag

        s3 = twin.client("s3")
        bucket = f"small-bench-{uuid.uuid4().hex[:8]}"
        conf = {
            "input_prefix": f"s3://{bucket}/pages/",
            "output_prefix": f"s3://{bucket}/runs/",
            "stage_samples": args.sizes is None,
            "max_pages": args.max_pages,
            "tiles_x": args.tiles,
            "tiles_y": args.tiles,
            "overlap": args.overlap,
            "project_name": bucket,
        }
        if args.sizes:
            sys.path.insert(0, str(ROOT / "scripts"))
            from small_symbols import generate

            out = home / "pages"
            generate(out, source_prefix=conf["input_prefix"], sizes=tuple(args.sizes))
            s3.create_bucket(Bucket=bucket)
            for path in sorted(p for p in out.rglob("*") if p.is_file()):
                s3.put_object(
                    Bucket=bucket, Key=f"pages/{path.relative_to(out).as_posix()}", Body=path.read_bytes()
                )
        dag = DagBag(dag_folder=str(ROOT / "dags" / "small_object_detection.py")).dags[
            "small_object_detection"
        ]
        started = time.perf_counter()
        run = dag.test(run_conf=conf)
        wall = time.perf_counter() - started
        keys = [
            o["Key"]
            for o in s3.list_objects_v2(Bucket=bucket, Prefix="runs/").get("Contents", [])
            if o["Key"].endswith("/evaluation/comparison.json")
        ]
        comparison = json.loads(s3.get_object(Bucket=bucket, Key=keys[0])["Body"].read()) if keys else {}
    finally:
        twin.stop()
    state = str(getattr(run.state, "value", run.state))
    print(f"run {state} in {wall:.0f} s; {len(comparison.get('test_pages', []))} test pages, "
          f"{args.tiles} x {args.tiles} tiles, overlap {args.overlap}, symbols {args.sizes or 'sample'}")  # fmt: skip
    for kind in ("baseline", "tiled"):
        model = comparison.get("models", {}).get(kind, {})
        print(f"{kind}: {model.get('status')} {model.get('status_message') or ''}")
        for row in comparison.get("tables", {}).get(kind, []):
            print(f"  {row['label']:>15}  P {row['precision']:.3f}  R {row['recall']:.3f}  F1 {row['f1']:.3f}  "
                  f"found {row['found']}/{row['boxes']}  false {row['false_detections']}")  # fmt: skip
        print(f"  timings {comparison.get('timings', {}).get(kind)}")
    print(json.dumps({"small_object_bench": {"state": state, "wall_s": round(wall, 1), "settings": conf,
                      "f1": comparison.get("f1"), "tables": comparison.get("tables"),
                      "timings": comparison.get("timings"), "models": comparison.get("models")}}))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
