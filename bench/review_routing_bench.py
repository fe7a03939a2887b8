"""How many wrongly read fields human review catches, on the real SROIE receipts (shared/data/receipts, found by tests/shared_data.py).

    .venv/bin/python bench/review_routing_bench.py [--data DIR] [--threshold 80] [-v]

Starts a twin (--strict), reads every NNN.jpg with AnalyzeExpense, normalises the response with
the provider (``aws_ml_provider.utils.expense.normalise_expense``) and compares the four labelled
fields (company -> VENDOR_NAME, date -> INVOICE_RECEIPT_DATE, address -> VENDOR_ADDRESS,
total -> TOTAL) with the label NNN.json, as bench/expense_bench.py does (case, spaces and
punctuation ignored; totals as numbers; dates as days). A wrong field (misread or missing) is
*caught* when ``review_fields`` puts it in front of a reviewer. Rules: the confidence rule alone
(under the threshold, or required and missing), then with each consistency check of the DAG's
``consistency_checks`` (subtotal_tax, line_items, date) and with all of them (the default). Per
rule: the wrong fields caught, the documents sent to review and the fields a reviewer is shown;
``-v`` lists each wrong field and the reason it was shown (or not), and each document sent only
by a consistency check (SROIE labels only the four fields: a SUBTOTAL or TAX that disagrees cannot
be scored).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from botocore.config import Config

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "plugins"), str(ROOT)]

from aws_ml_provider.utils import expense as ex  # noqa: E402
from expense_bench import FIELDS, matches  # noqa: E402  (bench/expense_bench.py: the comparison)

from aws_twin.testing import start_twin  # noqa: E402
from tests.shared_data import shared_dir  # noqa: E402  (../shared beside the checkout or its main checkout)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(shared_dir() / "data" / "receipts"))
    parser.add_argument("--threshold", type=float, default=ex.DEFAULT_THRESHOLD)
    parser.add_argument("-v", "--verbose", action="store_true", help="print each wrong field")
    args = parser.parse_args()
    files = sorted(Path(args.data).glob("*.jpg"))
    if not files:
        print(f"no receipts in {args.data}")
        return 1
    rules: dict[str, bool | tuple[str, ...]] = {"confidence only": False}
    rules.update({f"+ {check}": (check,) for check in ex.CONSISTENCY_CHECKS})
    rules["+ all three (default)"] = True
    wrong_total = 0
    caught = dict.fromkeys(rules, 0)
    documents = dict.fromkeys(rules, 0)
    shown = dict.fromkeys(rules, 0)
    twin = start_twin(0, strict=True)
    try:
        client = twin.client("textract", config=Config(read_timeout=300))
        for jpg in files:
            label = json.loads(jpg.with_suffix(".json").read_text())
            norm = ex.normalise_expense(client.analyze_expense(Document={"Bytes": jpg.read_bytes()}))
            wrong = {
                name: (norm["fields"].get(name, {}).get("value"), label[key])
                for key, name in FIELDS.items()
                if not matches(key, norm["fields"].get(name, {}).get("value"), label[key])
            }
            wrong_total += len(wrong)
            for rule, consistency in rules.items():
                reviewed = {
                    f["name"]: f["reason"]
                    for f in ex.review_fields(
                        norm, args.threshold, ex.DEFAULT_REQUIRED, consistency=consistency
                    )
                }
                caught[rule] += sum(1 for name in wrong if name in reviewed)
                documents[rule] += bool(reviewed)
                shown[rule] += len(reviewed)
                if args.verbose and consistency is True:
                    for name, (got, want) in wrong.items():
                        how = reviewed.get(name, "NOT REVIEWED")
                        print(f"  {jpg.stem} wrong {name}: {got!r} (label {want!r}): {how}")
                    alone = ex.review_fields(norm, args.threshold, ex.DEFAULT_REQUIRED, consistency=False)
                    if reviewed and not alone:
                        print(
                            f"  {jpg.stem} sent by consistency only: "
                            + "; ".join(sorted(set(reviewed.values())))
                        )
    finally:
        twin.stop()
    print(f"review routing on {len(files)} SROIE receipts ({args.data}), threshold {args.threshold:g}:")
    print(f"  wrong fields (of {len(files) * len(FIELDS)}): {wrong_total}")
    for rule in rules:
        print(
            f"  {rule:24s} caught {caught[rule]:2d}/{wrong_total}; documents to review"
            f" {documents[rule]:2d}/{len(files)}; fields shown {shown[rule]}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
