"""AnalyzeExpense accuracy and throughput on the real SROIE receipts (../shared/data/receipts beside the checkout).

    .venv/bin/python bench/expense_bench.py [--data DIR] [--limit N] [--rps 5] [--quota-docs 20]
                                            [--no-quota] [--threads N]

Starts a twin, then:
1. accuracy: AnalyzeExpense on every NNN.jpg; per field (vendor, date, address, total) how often
   the twin's value matches the label NNN.json. Comparison: case, whitespace and punctuation are
   ignored; totals compare as numbers; dates also match when they parse to the same day.
   Prints pages per second of that pass (one request at a time, or --threads N at once), the
   twin's CPU seconds per page (its process and workers: a figure the machine's other load
   hardly moves, unlike the wall clock) and the load average before and after, so figures taken
   on a shared machine can be read.
2. quota: a fault rule ``textract:AnalyzeExpense:rps=R`` on the twin; a loop of 4 threads sends
   documents with boto3 retries (standard, then adaptive) and reports documents per second
   sustained, throttles answered and documents lost (must be 0).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import re
import statistics
import sys
import time
from pathlib import Path

import psutil
from botocore.config import Config

from aws_twin.services.textract.layout import parse_amount, parse_date
from aws_twin.testing import start_twin

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from tests.shared_data import shared_dir  # noqa: E402  (where ../shared is, worktrees included)

FIELDS = {
    "company": "VENDOR_NAME",
    "date": "INVOICE_RECEIPT_DATE",
    "address": "VENDOR_ADDRESS",
    "total": "TOTAL",
}


def norm(text: str | None) -> str:
    return re.sub(r"[\W_]+", "", (text or "").lower())


def matches(field: str, got: str | None, want: str) -> bool:
    if got is None:
        return False
    if field == "total":
        a, b = parse_amount(got), parse_amount(want)
        return a is not None and b is not None and abs(a - b) < 0.005
    if field == "date":
        return norm(got) == norm(want) or (
            parse_date(got) is not None and parse_date(got) == parse_date(want)
        )
    return norm(got) == norm(want)


def summary_value(resp: dict, type_: str) -> tuple[str | None, float | None]:
    for doc in resp.get("ExpenseDocuments", []):
        for f in doc.get("SummaryFields", []):
            if f.get("Type", {}).get("Text") == type_:
                v = f.get("ValueDetection", {})
                return v.get("Text"), v.get("Confidence")
    return None, None


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and its (live) children."""
    proc = psutil.Process(pid)
    total = sum(proc.cpu_times()[:4])
    for child in proc.children(recursive=True):
        try:
            total += sum(child.cpu_times()[:2])
        except psutil.NoSuchProcess:
            pass
    return total


def accuracy(client, files: list[Path], verbose: bool, twin_pid: int, threads: int = 1) -> dict:
    hits = dict.fromkeys(FIELDS, 0)
    confs: dict[str, list[tuple[float, bool]]] = {k: [] for k in FIELDS}
    pages = 0
    payloads = {jpg: jpg.read_bytes() for jpg in files}
    cpu_before = cpu_seconds(twin_pid)
    started = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(max_workers=threads) as pool:
        responses = list(pool.map(lambda f: client.analyze_expense(Document={"Bytes": payloads[f]}), files))
    elapsed = time.perf_counter() - started
    cpu = cpu_seconds(twin_pid) - cpu_before
    for jpg, resp in zip(files, responses, strict=True):
        label = json.loads(jpg.with_suffix(".json").read_text())
        pages += resp["DocumentMetadata"]["Pages"]
        wrong = []
        for field, type_ in FIELDS.items():
            got, conf = summary_value(resp, type_)
            ok = matches(field, got, label[field])
            hits[field] += ok
            if conf is not None:
                confs[field].append((conf, ok))
            if not ok:
                wrong.append(f"{field}: {got!r} != {label[field]!r}")
        if verbose and wrong:
            print(f"  {jpg.stem}: " + "; ".join(wrong))
    return {"hits": hits, "n": len(files), "pages": pages, "seconds": elapsed, "cpu": cpu, "confs": confs}


def quota_loop(twin, files: list[Path], rps: float, docs: int, mode: str) -> dict:
    twin.set_faults(f"textract:AnalyzeExpense:rps={rps:g}")
    client = twin.client("textract", config=Config(retries={"mode": mode, "max_attempts": 20}))
    payloads = [f.read_bytes() for f in files]
    # warm the OCR cache so the loop measures the quota, not the OCR
    for data in payloads:
        twin.client("textract").analyze_expense(Document={"Bytes": data})
    twin.set_faults(f"textract:AnalyzeExpense:rps={rps:g}")
    done, lost = 0, 0
    started = time.perf_counter()

    def one(i: int) -> bool:
        try:
            client.analyze_expense(Document={"Bytes": payloads[i % len(payloads)]})
            return True
        except Exception as exc:  # counted as lost: the figure must stay 0
            print(f"  lost document {i}: {exc}")
            return False

    with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
        for ok in pool.map(one, range(docs)):
            done += ok
            lost += not ok
    elapsed = time.perf_counter() - started
    counters = twin.control("faults")["counters"]
    twin.set_faults()
    return {"docs": done, "lost": lost, "seconds": elapsed, "throttled": counters["throttled"]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(shared_dir() / "data" / "receipts"))
    parser.add_argument("--limit", type=int, default=0, help="first N receipts only (0: all)")
    parser.add_argument("--rps", type=float, default=5.0, help="TPS quota for the throughput loop")
    parser.add_argument("--quota-docs", type=int, default=40, help="documents the quota loop sends")
    parser.add_argument("--no-quota", action="store_true", help="skip the quota loop")
    parser.add_argument("--threads", type=int, default=1, help="requests at once in the accuracy pass")
    parser.add_argument("-v", "--verbose", action="store_true", help="print each mismatch")
    args = parser.parse_args()

    files = sorted(Path(args.data).glob("*.jpg"))
    if args.limit:
        files = files[: args.limit]
    if not files:
        print(f"no receipts in {args.data}")
        return 1
    twin = start_twin(0, strict=True)
    try:
        client = twin.client("textract", config=Config(read_timeout=300))
        print(f"AnalyzeExpense on {len(files)} SROIE receipts ({args.data}), twin {twin.url}")
        load_before = os.getloadavg()
        acc = accuracy(client, files, args.verbose, twin.process.pid, args.threads)
        load_after = os.getloadavg()
        n = acc["n"]
        for field, type_ in FIELDS.items():
            h = acc["hits"][field]
            print(f"  {field:8s} ({type_:20s}) {h:3d}/{n} = {100 * h / n:5.1f}%")
        print(
            f"  {args.threads} request(s) at a time: {acc['pages']} pages in {acc['seconds']:.1f}s"
            f" = {acc['pages'] / acc['seconds']:.2f} pages/s on {os.cpu_count()} cores; twin CPU"
            f" {acc['cpu']:.1f}s = {acc['cpu'] / acc['pages']:.2f} CPU s/page;"
            f" load average {load_before[0]:.1f} before, {load_after[0]:.1f} after"
        )
        for field in ("total", "date"):
            right = [c for c, ok in acc["confs"][field] if ok]
            wrong = [c for c, ok in acc["confs"][field] if not ok]
            if right:
                line = f"  {field} confidence: right median {statistics.median(right):.1f}"
                if wrong:
                    line += f", wrong median {statistics.median(wrong):.1f} ({len(wrong)})"
                print(line)
        quota_files = files[: min(len(files), 8)]
        for mode in () if args.no_quota else ("standard", "adaptive"):
            q = quota_loop(twin, quota_files, args.rps, args.quota_docs, mode)
            print(
                f"  quota rps={args.rps:g}, {mode} retries, 4 threads: {q['docs']} docs in {q['seconds']:.1f}s"
                f" = {q['docs'] / q['seconds']:.2f} docs/s; throttled answers {q['throttled']}, lost {q['lost']}"
            )
        violations = twin.control("state").get("violations", [])
        print(f"  strict-mode violations: {len(violations)}")
    finally:
        twin.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
