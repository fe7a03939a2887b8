"""expense_documents DAG throughput: documents per second one run sustains against a Textract TPS
quota on the twin, and how many calls the quota throttled.

    .venv/bin/python bench/expense_dag_bench.py [--documents 100] [--quota 5] [--tps 5 ...]
        [--batch-size 25] [--retry-mode standard]

A fresh twin runs with ``textract:AnalyzeExpense:rps=<quota>`` (token bucket; beyond it the twin
answers ThrottlingException). The inbox holds ``--documents`` copies of the shipped single-page
samples under distinct keys (the twin caches OCR by content, so the figure is the pipeline's, not
the OCR's); review is switched off (threshold 0, no required fields) so the run never waits for a
human. For each ``--tps`` budget the DAG runs once with ``dag.test()``. dag.test() runs tasks one
at a time while each batch task paces itself at tps / EXTRACT_SLOTS (the share it gets when the
scheduler runs EXTRACT_SLOTS of them at once), so here a run uses a quarter of its budget: a
budget of 4x the quota is what fills the quota. Prints figures only, then one JSON line.
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

SAMPLES = ROOT / "include" / "data" / "receipts"
SOURCES = ["receipt_grocery.jpg", "receipt_cafe.tif", "invoice_northwind.png", "receipt_faint_total.jpg"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--documents", type=int, default=100)
    parser.add_argument("--quota", type=float, default=5.0, help="the twin's AnalyzeExpense rps quota")
    parser.add_argument(
        "--tps", type=float, nargs="+", default=None, help="textract_tps budgets (default: quota)"
    )
    parser.add_argument("--batch-size", type=int, default=25)
    parser.add_argument("--retry-mode", default="standard", choices=["standard", "adaptive"])
    args = parser.parse_args()
    budgets = args.tps or [args.quota]

    home = Path(tempfile.mkdtemp(prefix="expense-bench-"))
    airflow_env(home)
    if not migrate_db():
        return 1
    from aws_twin.testing import start_twin

    twin = start_twin(0, "--fault", f"textract:AnalyzeExpense:rps={args.quota}", strict=False)
    point_aws_default_at(twin)
    results = []
    try:
        from airflow.dag_processing.dagbag import DagBag

        s3 = twin.client("s3")
        for tps in budgets:
            bucket = f"expense-bench-{uuid.uuid4().hex[:8]}"
            s3.create_bucket(Bucket=bucket)
            for i in range(args.documents):
                name = SOURCES[i % len(SOURCES)]
                s3.put_object(Bucket=bucket, Key=f"inbox/{i:05d}-{name}", Body=(SAMPLES / name).read_bytes())
            conf = {
                "input_prefix": f"s3://{bucket}/inbox/",
                "output_prefix": f"s3://{bucket}/output/",
                "quarantine_prefix": f"s3://{bucket}/quarantine/",
                "state_prefix": f"s3://{bucket}/state/",
                "stage_samples": False,
                "batch_size": args.batch_size,
                "textract_tps": tps,
                "textract_retry_mode": args.retry_mode,
                "confidence_threshold": 0,
                "required_fields": [],
                "consistency_checks": [],
                "max_documents": args.documents,
            }
            dag = DagBag(dag_folder=str(ROOT / "dags" / "expense_documents.py")).dags["expense_documents"]
            twin.control("faults", "POST", {"specs": [f"textract:AnalyzeExpense:rps={args.quota}"]})
            started = time.perf_counter()
            run = dag.test(run_conf=conf)
            wall = time.perf_counter() - started
            counters = twin.control("faults")["counters"]
            listed = s3.list_objects_v2(Bucket=bucket, Prefix="output/latest/summary.json").get(
                "Contents", []
            )
            summary = (
                json.loads(s3.get_object(Bucket=bucket, Key=listed[0]["Key"])["Body"].read())
                if listed
                else {}
            )
            row = {
                "documents": args.documents,
                "quota_rps": args.quota,
                "textract_tps": tps,
                "retry_mode": args.retry_mode,
                "state": str(getattr(run.state, "value", run.state)),
                "wall_s": round(wall, 1),
                "docs_per_s": round(args.documents / wall, 2),
                "throttled": counters.get("throttled", 0),
                "extracted": summary.get("extracted"),
                "quarantined": summary.get("quarantined"),
                "run_id": run.run_id,
            }
            results.append(row)
            print(
                f"tps budget {tps:>5} vs quota {args.quota}: {row['state']}, {args.documents} documents in "
                f"{row['wall_s']} s = {row['docs_per_s']} docs/s; throttled {row['throttled']}; "
                f"extracted {row['extracted']}, quarantined {row['quarantined']}"
            )
    finally:
        twin.stop()
    print(json.dumps({"expense_dag_bench": results}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
