"""
### Expense documents: invoices and receipts with Amazon Textract AnalyzeExpense and A2I review

Every run (hourly, or triggered from the form) takes the documents under `input_prefix` that no
run has taken before, and for each one:

1. **checks** it cheaply (empty, corrupt, unsupported type, over Textract's size/page limits):
   a bad document is copied to `quarantine_prefix/<run>/` with a `.reason.json` naming the object
   and the reason; Textract's own BadDocument / UnsupportedDocument / DocumentTooLarge answers
   are quarantined the same way;
2. **extracts** it with `AnalyzeExpense` (single images) or `StartExpenseAnalysis` /
   `GetExpenseAnalysis` (PDF, multi-page TIFF; the batch task defers to the triggerer while the
   jobs run), in mapped batches (`batch_size`) sharing a TPS budget (`textract_tps`, split between
   the batch tasks that may run at once, paced with a token bucket; botocore retries back off on
   ThrottlingException);
3. **normalises** the response with the provider's reader of botocore's AnalyzeExpense model
   (`aws_ml_provider.utils.expense_response`; summary fields VENDOR_NAME,
   INVOICE_RECEIPT_ID, INVOICE_RECEIPT_DATE, TOTAL, SUBTOTAL, TAX, VENDOR_ADDRESS,
   RECEIVER_ADDRESS; line items ITEM, QUANTITY, PRICE, EXPENSE_ROW);
4. sends documents with a field under `confidence_threshold`, a missing `required_fields`
   entry or (`consistency_checks`) fields that disagree (TOTAL against SUBTOTAL + TAX and
   against the line items, a date that does not parse) to **human review** (one A2I human loop per document, deterministic name: a retried
   task attaches to its loop) and waits for the reviewers in the triggerer (hours or days, no
   worker slot held);
5. **merges** the answers over the machine values (which fields a human changed is recorded) and
   writes per document `expense.json`, the seed's CSV (`summary.csv`) and grid (`grid.txt`), and
   per run `documents.csv`, `line_items.csv` and `summary.json` (received = extracted +
   quarantined; reviewed / auto-approved).

**Configuration.** `resolve_config` (the first task) fixes the locations and ARNs of the run; an
empty Param means "the Variable, else the default that works on aws_twin":

| Param | when empty |
| --- | --- |
| `input_prefix`, `output_prefix`, `quarantine_prefix`, `state_prefix` | `s3://<bucket>/expenses/{inbox,output,quarantine,state}/`, `<bucket>` from Variable `ml_bucket` (else `aws-ml-provider-demo`) |
| `workteam_arn` | Variable `a2i_workteam_arn` |
| `a2i_role_arn` | Variable `a2i_role_arn`, else Variable `sagemaker_role_arn` |

Scheduled runs use these, so set the Variables before unpausing the DAG on AWS. `stage_samples`
(off by default) uploads the receipts shipped in `include/data/receipts/` to the input prefix:
tick it to try the DAG.

**Exactly once.** A document is identified by its key and ETag. The listing task claims each new
document with a conditional put of `state_prefix/claims/<document id>.json` (owned by the run;
a retry of the same run takes its own claims again) and the merge writes
`state_prefix/processed/<document id>.json`. A run never takes a document claimed by another
run, unless that run has ended (failed for good, say) without processing it: then the next run
takes the claim over (a conditional put on the claim's ETag) and finishes the document
(`taken_over_from_ended_runs` in its summary). To reprocess one, delete its claim and marker.
A document whose check, extraction, review start or merge fails is quarantined alone with its
reason; only AWS and network errors fail a batch task (and its retry goes on). `stage_samples` claims each sample for the
run before uploading it, so a scheduled run starting meanwhile (unpausing starts one) leaves them
to the run that staged them. A run that takes nothing says why in its `summary.json`
(`nothing_taken`, with the counts in `skipped` and `claimed_by_other_runs`).

**S3 layout** under `output_prefix`: `documents/<name>-<id12>/{textract.json,expense.json,
summary.csv,grid.txt}`, `runs/<run>/{documents.csv,line_items.csv,summary.json}` (+ working
files), `latest/{documents.csv,line_items.csv,summary.json}` and `a2i/` (A2I output). CSV cells that
would start a spreadsheet formula get a leading `'` (numbers stay as they are). `publish_latest`
copies the run's files to `latest/` only when the run extracted a document (else it is skipped,
and `latest/` stays as it was) and updates the Assets `expense_documents_csv`, `expense_line_items_csv` and `expense_run_summary`;
each event's extra holds the S3 URI of the `latest/` file and of the run's copy.

Offline, the only change is the `aws_default` connection's endpoint URL (aws_twin).
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta

from airflow.sdk import Asset, Param, dag, get_current_context, task
from aws_ml_provider.operators.expense import ExpenseBatchExtractOperator
from aws_ml_provider.task_groups.a2i import a2i_human_review
from aws_ml_provider.utils import aws_patterns, expense_state
from aws_ml_provider.utils import s3 as s3_utils
from aws_ml_provider.utils.expense import CONSISTENCY_CHECKS, DEFAULT_REQUIRED, DEFAULT_THRESHOLD

DAG_ID = "expense_documents"
AWS_CONN_ID = "aws_default"

#: fallbacks when neither the Param nor the Variable is set (the values aws_twin accepts)
DEFAULT_BUCKET = "aws-ml-provider-demo"
DEFAULT_WORKTEAM_ARN = "arn:aws:sagemaker:us-east-1:123456789012:workteam/private-crowd/expense-reviewers"
DEFAULT_A2I_ROLE_ARN = "arn:aws:iam::123456789012:role/expense-a2i"
#: S3 locations under the bucket, for the prefix Params left empty
DEFAULT_PREFIXES = {
    "input_prefix": "expenses/inbox/",
    "output_prefix": "expenses/output/",
    "quarantine_prefix": "expenses/quarantine/",
    "state_prefix": "expenses/state/",
}
SAMPLES = "data/receipts"  # under include/
TASK_UI_TEMPLATE = "templates/expense_review.liquid.html"  # under include/

#: batch tasks that may call Textract at once; each gets textract_tps / EXTRACT_SLOTS
EXTRACT_SLOTS = 4
#: seconds between checks of running Textract jobs / pending human loops while deferred;
#: AWS_ML_WAITER_DELAY overrides both (a few seconds against aws_twin in the tests and the demo)
TEXTRACT_POLL_SECONDS = int(os.environ.get("AWS_ML_WAITER_DELAY") or 10)
REVIEW_POLL_SECONDS = int(os.environ.get("AWS_ML_WAITER_DELAY") or 300)
#: how long a batch task waits for its Textract jobs, and a run for its reviewers
TEXTRACT_TIMEOUT = timedelta(hours=2)
REVIEW_TIMEOUT = timedelta(days=14)

DOCUMENTS_ASSET = Asset(name="expense_documents_csv", group="expense-documents")
LINE_ITEMS_ASSET = Asset(name="expense_line_items_csv", group="expense-documents")
SUMMARY_ASSET = Asset(name="expense_run_summary", group="expense-documents")
LATEST_FILES = {
    "documents.csv": DOCUMENTS_ASSET,
    "line_items.csv": LINE_ITEMS_ASSET,
    "summary.json": SUMMARY_ASSET,
}


# ------------------------------------------------------------------------------------------------
# helpers (run inside tasks only)


def _run_settings(cfg: dict) -> tuple[str, dict]:
    """(run id, the run's Params with the resolved locations and ARNs of ``cfg`` over them)."""
    context = get_current_context()
    return context["run_id"], {**context["params"], **cfg}


# ------------------------------------------------------------------------------------------------
# the DAG


def _prefix_param(title: str, name: str, description: str) -> Param:
    return Param(
        None,
        type=["null", "string"],
        pattern=aws_patterns.S3_PREFIX_PARAM,
        title=title,
        description=f"{description} Empty: s3://<Variable ml_bucket>/{DEFAULT_PREFIXES[name]}",
        section="Locations",
    )


@dag(
    dag_id=DAG_ID,
    schedule="@hourly",
    start_date=datetime(2025, 1, 1),
    catchup=False,
    max_active_runs=3,
    doc_md=__doc__,
    tags=["textract", "a2i", "documents", "expenses"],
    default_args={
        "owner": "document-ai",
        "retries": 3,
        "retry_delay": timedelta(seconds=20),
        "retry_exponential_backoff": True,
        "max_retry_delay": timedelta(minutes=10),
    },
    params={
        "input_prefix": _prefix_param(
            "Input prefix",
            "input_prefix",
            "S3 prefix of the invoices and receipts to process (JPEG, PNG, PDF, TIFF).",
        ),
        "output_prefix": _prefix_param(
            "Output prefix",
            "output_prefix",
            "Where results, run CSVs, the run summary and A2I outputs go.",
        ),
        "quarantine_prefix": _prefix_param(
            "Quarantine prefix",
            "quarantine_prefix",
            "Bad documents are copied here with a .reason.json naming the object and the reason.",
        ),
        "state_prefix": _prefix_param(
            "State prefix",
            "state_prefix",
            "Claims and processed markers (one per document, keyed by key and ETag).",
        ),
        "stage_samples": Param(
            False,
            type="boolean",
            title="Stage the sample receipts",
            description="First upload the receipts shipped in include/data/receipts to the input prefix.",
            section="Locations",
        ),
        "confidence_threshold": Param(
            DEFAULT_THRESHOLD,
            type="number",
            minimum=0,
            maximum=100,
            title="Confidence threshold",
            description="A summary field below this confidence (0-100) goes to human review.",
            section="Review",
        ),
        "required_fields": Param(
            list(DEFAULT_REQUIRED),
            type="array",
            items={"type": "string"},
            title="Required fields",
            description="A document missing any of these summary fields goes to human review.",
            section="Review",
        ),
        "consistency_checks": Param(
            list(CONSISTENCY_CHECKS),
            type="array",
            items={"type": "string", "enum": list(CONSISTENCY_CHECKS)},
            uniqueItems=True,
            title="Review fields that disagree",
            description="Also send a document to review, however confident the reading, when: subtotal_tax "
            "- TOTAL is not SUBTOTAL + TAX; line_items - TOTAL is not the sum of the line items; date - "
            "the date does not parse. Empty: confidence and required fields alone decide.",
            section="Review",
        ),
        "workteam_arn": Param(
            None,
            type=["null", "string"],
            pattern=aws_patterns.WORKTEAM_ARN_PARAM,
            title="A2I private work team ARN",
            description="Empty: Variable a2i_workteam_arn.",
            section="Review",
        ),
        "a2i_role_arn": Param(
            None,
            type=["null", "string"],
            pattern=aws_patterns.ROLE_ARN_PARAM,
            title="A2I execution role ARN",
            description="Role A2I assumes to read the documents and write the review output. "
            "Empty: Variable a2i_role_arn, else Variable sagemaker_role_arn.",
            section="Review",
        ),
        "human_task_ui_name": Param(
            "expense-review-ui",
            type="string",
            pattern=aws_patterns.A2I_NAME_PARAM,
            maxLength=63,
            title="A2I worker task UI name",
            section="Review",
        ),
        "flow_definition_name": Param(
            "expense-review",
            type="string",
            pattern=aws_patterns.A2I_NAME_PARAM,
            maxLength=63,
            title="A2I flow definition name",
            section="Review",
        ),
        "batch_size": Param(
            25,
            type="integer",
            minimum=1,
            maximum=1000,
            title="Batch size",
            description="Documents per mapped extraction task.",
            section="Throughput",
        ),
        "max_documents": Param(
            5000,
            type="integer",
            minimum=1,
            title="Documents per run",
            description="At most this many new documents are taken by one run (the rest wait).",
            section="Throughput",
        ),
        "textract_tps": Param(
            5.0,
            type="number",
            exclusiveMinimum=0,
            title="Textract TPS budget",
            description=f"Textract calls per second for the whole run, split between {EXTRACT_SLOTS} batch tasks.",
            section="Throughput",
        ),
        "textract_retry_mode": Param(
            "standard",
            type="string",
            enum=["standard", "adaptive"],
            title="botocore retry mode for Textract",
            description="Both back off exponentially on ThrottlingException; adaptive also slows the client down.",
            section="Throughput",
        ),
        "a2i_tps": Param(
            5.0,
            type="number",
            exclusiveMinimum=0,
            title="A2I StartHumanLoop TPS",
            description="Human loop starts per second.",
            section="Throughput",
        ),
    },
)
def expense_documents():
    @task(multiple_outputs=True)
    def resolve_config() -> dict:
        """The run's S3 prefixes and A2I ARNs (Param, else Variable, else the twin default) and
        the task UI template's path; every later task uses these, so a run sticks to them."""
        from airflow.sdk import Variable
        from aws_ml_provider.utils.paths import include_path

        params = get_current_context()["params"]
        cfg = {name: params[name] for name in DEFAULT_PREFIXES}
        if not all(cfg.values()):
            bucket = aws_patterns.require(
                Variable.get("ml_bucket", default=DEFAULT_BUCKET),
                aws_patterns.BUCKET_PARAM,
                "S3 bucket",
                "Variable ml_bucket",
            )
            cfg = {name: value or f"s3://{bucket}/{DEFAULT_PREFIXES[name]}" for name, value in cfg.items()}
        cfg["workteam_arn"] = params["workteam_arn"] or aws_patterns.require(
            Variable.get("a2i_workteam_arn", default=DEFAULT_WORKTEAM_ARN),
            aws_patterns.WORKTEAM_ARN_PARAM,
            "A2I work team ARN",
            "Variable a2i_workteam_arn",
        )
        role_variable = "a2i_role_arn" if Variable.get("a2i_role_arn", default=None) else "sagemaker_role_arn"
        cfg["a2i_role_arn"] = params["a2i_role_arn"] or aws_patterns.require(
            Variable.get(role_variable, default=DEFAULT_A2I_ROLE_ARN),
            aws_patterns.ROLE_ARN_PARAM,
            "A2I role ARN",
            f"Variable {role_variable}",
        )
        for name in DEFAULT_PREFIXES:  # a Param passed the form; this checks a run started otherwise
            aws_patterns.require(cfg[name], aws_patterns.S3_PREFIX_PARAM, name)
        cfg["a2i_output_uri"] = f"{cfg['output_prefix'].rstrip('/')}/a2i"
        cfg["task_ui_template_path"] = str(include_path(TASK_UI_TEMPLATE, anchor=__file__))
        print(cfg)
        return cfg

    @task
    def prepare(cfg: dict) -> dict:
        """Create the buckets if absent; stage the shipped samples when ``stage_samples``, each
        claimed for this run before it is uploaded (no other run takes what this run staged)."""
        from aws_ml_provider.utils.expense import SUPPORTED_EXTENSIONS
        from aws_ml_provider.utils.paths import include_path
        from botocore.exceptions import ClientError

        run_id, params = _run_settings(cfg)
        s3 = s3_utils.client(AWS_CONN_ID)
        buckets = sorted({s3_utils.split_prefix(params[name])[0] for name in DEFAULT_PREFIXES})
        for name in buckets:
            try:
                s3.head_bucket(Bucket=name)
            except ClientError:
                try:
                    s3.create_bucket(Bucket=name)
                except ClientError as err:
                    code = err.response.get("Error", {}).get("Code")
                    if code in ("InvalidBucketName", "BucketAlreadyExists", "AccessDenied"):
                        from airflow.providers.common.compat.sdk import AirflowFailException

                        raise AirflowFailException(
                            f"cannot use bucket {name!r}: {code} ({err}); fix the location Params or "
                            "Variable ml_bucket, a retry would not help"
                        ) from err
                    raise
        staged = None
        if params["stage_samples"]:
            files = [
                path
                for path in sorted(include_path(SAMPLES, anchor=__file__).iterdir())
                if path.is_file() and path.suffix.lower() in SUPPORTED_EXTENSIONS
            ]
            staged = expense_state.stage_files(s3, params, run_id, files)
            print(f"staged the samples for {run_id}: {staged}")
        return {"buckets": buckets, "staged": staged}

    @task
    def list_documents(cfg: dict, prepared: dict) -> list[dict]:
        """Claim the new documents under the input prefix; write one manifest per batch. A run
        that takes nothing says why (none present, already processed, claimed by run X)."""
        from aws_ml_provider.utils.expense import document_id

        run_id, params = _run_settings(cfg)
        s3 = s3_utils.client(AWS_CONN_ID)
        bucket, prefix = s3_utils.split_prefix(params["input_prefix"])
        state = params["state_prefix"].rstrip("/")
        limit = int(params["max_documents"])
        taken: list[dict] = []
        skipped = {"processed": 0, "claimed_by_other_run": 0, "not_a_document": 0}
        claimed_by: dict[str, int] = {}  # other run -> documents it holds
        taken_over: dict[str, int] = {}  # ended run -> documents this run took from it
        states: dict[str, str | None] = {}
        ti = get_current_context()["ti"]

        def run_state(other: str) -> str | None:
            """The state of the run holding a claim (None: unknown, e.g. not created yet)."""
            if other not in states:
                try:
                    state = ti.get_dagrun_state(DAG_ID, other)
                    states[other] = str(getattr(state, "value", state))  # an enum on Airflow 3.3
                except Exception as exc:  # no such run (a run staging files before it exists)
                    print(f"state of run {other} unknown ({type(exc).__name__}); its claims stay")
                    states[other] = None
            return states[other]

        pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        for obj in (obj for page in pages for obj in page.get("Contents", [])):
            if len(taken) >= limit:
                break
            key = obj["Key"]
            if key.endswith("/"):
                skipped["not_a_document"] += 1
                continue
            etag = obj["ETag"].strip('"')
            doc_id = document_id(key, etag)
            if s3_utils.exists(s3, f"{state}/processed/{doc_id}.json"):
                skipped["processed"] += 1
                continue
            source_uri = f"s3://{bucket}/{key}"
            owner = expense_state.claim(s3, params, run_id, doc_id, source_uri, etag)
            if owner != run_id and run_state(owner) in expense_state.ENDED_RUN_STATES:
                # its run ended (failed for good) without finishing it: this run takes it over
                previous = owner
                owner = expense_state.take_over(s3, params, run_id, doc_id, previous, source_uri, etag)
                if owner == run_id:
                    taken_over[previous] = taken_over.get(previous, 0) + 1
            if owner != run_id:
                skipped["claimed_by_other_run"] += 1
                claimed_by[owner] = claimed_by.get(owner, 0) + 1
                continue
            relative = key[len(prefix) :]
            stem = "".join(c if c.isalnum() or c in "-_." else "-" for c in relative.rsplit("/", 1)[-1])
            taken.append(
                {
                    "document_id": doc_id,
                    "bucket": bucket,
                    "key": key,
                    "relative_key": relative,
                    "source_uri": source_uri,
                    "etag": etag,
                    "size": obj["Size"],
                    "folder": f"{stem}-{doc_id[:12]}",
                }
            )
        size = int(params["batch_size"])
        run_prefix = expense_state.run_prefix(params, run_id)
        batches = []
        for number, index in enumerate(range(0, len(taken), size)):
            documents = taken[index : index + size]
            uri = s3_utils.write_json(
                s3, f"{run_prefix}/batches/{number:05d}.json", {"batch": number, "documents": documents}
            )
            batches.append({"batch": number, "manifest_uri": uri, "documents": len(documents)})
        listing = {
            "received": len(taken),
            "batches": len(batches),
            "skipped": skipped,
            "claimed_by": claimed_by,
            "taken_over": taken_over,
            "prepared": prepared,
        }
        if not taken:
            listing["nothing_taken"] = expense_state.nothing_taken_reason(
                skipped, claimed_by, params["input_prefix"]
            )
            print(f"took no document: {listing['nothing_taken']}")
        s3_utils.write_json(s3, f"{run_prefix}/listing.json", listing)
        print(
            f"took {len(taken)} new document(s) in {len(batches)} batch(es); skipped {skipped}; "
            f"claimed by other runs: {claimed_by}; taken over from ended runs: {taken_over}"
        )
        return batches

    @task(max_active_tis_per_dag=EXTRACT_SLOTS)
    def start_review_loops(cfg: dict, extracted: dict, flow_definition_arn: str) -> dict:
        """One human loop per document of the batch that needs review (deterministic names: a
        retry attaches to the loops it started), paced at ``a2i_tps``."""
        run_id, params = _run_settings(cfg)
        return expense_state.start_loops_for_batch(
            params, run_id, extracted, flow_definition_arn, dag_id=DAG_ID, aws_conn_id=AWS_CONN_ID
        )

    @task(max_active_tis_per_dag=EXTRACT_SLOTS, trigger_rule="none_failed")
    def merge_batch(cfg: dict, started: dict) -> dict:
        """Human answers over the machine values; per-document JSON, CSV and grid outputs. A
        document whose merge raises (not an AWS error) is quarantined alone."""
        from aws_ml_provider.hooks.a2i import A2IRuntimeHook
        from aws_ml_provider.utils.expense import document_rows

        run_id, params = _run_settings(cfg)
        s3 = s3_utils.client(AWS_CONN_ID)
        manifest = s3_utils.read_json(s3, started["manifest_uri"])
        loops = s3_utils.read_json(s3, started["loops_uri"], default={})
        hook = A2IRuntimeHook(aws_conn_id=AWS_CONN_ID)
        run_prefix = expense_state.run_prefix(params, run_id)
        rows, documents, quarantined = [], [], []
        failed_uri = started.get("failed_uri")
        failed = (
            {r["document_id"]: r for r in s3_utils.read_json(s3, failed_uri, default=[])}
            if failed_uri
            else {}
        )
        quarantined.extend(failed.values())  # failed at the start of their review (quarantined there)
        for doc in manifest["documents"]:
            if doc["document_id"] in failed:
                continue
            try:
                outcome = expense_state.merge_document(s3, hook, params, run_id, doc, loops)
            except Exception as exc:
                if expense_state.is_transient(exc):
                    raise
                print(f"quarantine {doc['source_uri']}: the merge raised {exc!r}")
                outcome = {
                    "quarantined": expense_state.quarantine_failure(s3, params, run_id, doc, exc, "merge")
                }
            if outcome.get("quarantined"):
                quarantined.append(outcome["quarantined"])
            elif outcome.get("merged"):
                merged, result_uri = outcome["merged"], outcome["result_uri"]
                rows.extend(document_rows(merged, result_uri))
                documents.append({k: merged[k] for k in ("document_id", "source_uri", "line_items")})
        rows_uri = s3_utils.write_json(
            s3,
            f"{run_prefix}/rows/{started['batch']:05d}.json",
            {"rows": rows, "documents": documents, "quarantined": quarantined},
        )
        return {
            "batch": started["batch"],
            "manifest_uri": started["manifest_uri"],
            "rows_uri": rows_uri,
            "documents": len(documents),
            "quarantined": len(quarantined),
        }

    @task(trigger_rule="none_failed")
    def finalize(cfg: dict, batches: list[dict]) -> dict:
        """The run's documents.csv, line_items.csv and summary.json (counts reconcile) under
        ``runs/<run>/``."""
        import json
        from collections import Counter

        from aws_ml_provider.utils.expense import documents_csv, line_items_csv, run_summary

        run_id, params = _run_settings(cfg)
        s3 = s3_utils.client(AWS_CONN_ID)
        run_prefix = expense_state.run_prefix(params, run_id)
        rows, documents, quarantined_records = [], [], []
        received = 0
        for batch in batches or []:
            manifest = s3_utils.read_json(s3, batch["manifest_uri"])
            received += len(manifest["documents"])
            extract_state = s3_utils.read_json(
                s3, f"{run_prefix}/extract/{batch['batch']:05d}.json", default={"done": {}}
            )
            merged = s3_utils.read_json(s3, f"{run_prefix}/rows/{batch['batch']:05d}.json", default={})
            rows += merged.get("rows", [])
            documents += merged.get("documents", [])
            quarantined_records += merged.get("quarantined", [])
            quarantined_records += extract_state.get("quarantined", [])
        statuses = Counter(row["status"] for row in rows if row["expense_index"] == 1)  # one per document
        listing = s3_utils.read_json(s3, f"{run_prefix}/listing.json", default={})
        why = {"nothing_taken": listing["nothing_taken"]} if listing.get("nothing_taken") else {}
        summary = run_summary(
            run_id=run_id,
            received=received,
            statuses=dict(statuses),
            quarantined=len(quarantined_records),
            invoices=len(rows),
            human_changed_fields=sum(1 for r in rows for f in r["human_changed"].split(";") if f),
            quarantine_reasons=dict(Counter(r.get("code", "BadDocument") for r in quarantined_records)),
            skipped=listing.get("skipped", {}),
            claimed_by_other_runs=listing.get("claimed_by", {}),
            taken_over_from_ended_runs=listing.get("taken_over", {}),
            staged=(listing.get("prepared") or {}).get("staged"),
            **why,
        )
        texts = {
            "documents.csv": (documents_csv(rows), "text/csv"),
            "line_items.csv": (line_items_csv(documents), "text/csv"),
            "summary.json": (json.dumps(summary, indent=2), "application/json"),
        }
        summary["outputs"] = {
            name: s3_utils.put_text(s3, f"{run_prefix}/{name}", text, content_type)
            for name, (text, content_type) in texts.items()
        }
        print(json.dumps(summary))
        return summary

    @task(outlets=list(LATEST_FILES.values()))
    def publish_latest(cfg: dict, summary: dict) -> dict:
        """Copy the run's outputs to ``latest/`` and update the Assets (their events carry both
        URIs), only when the run extracted a document: a run that took nothing new, or only
        quarantined what it took, is skipped and leaves ``latest/`` as it was."""
        from airflow.providers.common.compat.sdk import AirflowSkipException

        if not summary.get("extracted"):
            raise AirflowSkipException(
                f"the run extracted no document (received {summary.get('received', 0)}, quarantined "
                f"{summary.get('quarantined', 0)}): latest/ is left as it was"
            )
        _, params = _run_settings(cfg)
        s3 = s3_utils.client(AWS_CONN_ID)
        out = params["output_prefix"].rstrip("/")
        outlet_events = get_current_context()["outlet_events"]
        published = {}
        for name, run_uri in summary["outputs"].items():
            bucket, key = s3_utils.split_object_uri(run_uri)
            latest_uri = f"{out}/latest/{name}"
            latest_bucket, latest_key = s3_utils.split_object_uri(latest_uri)
            s3.copy_object(Bucket=latest_bucket, Key=latest_key, CopySource={"Bucket": bucket, "Key": key})
            outlet_events[LATEST_FILES[name]].extra = {"uri": latest_uri, "run_uri": run_uri}
            published[name] = latest_uri
        print(f"latest/ now holds the outputs of this run: {published}")
        return published

    cfg = resolve_config()
    prepared = prepare(cfg)
    batches = list_documents(cfg, prepared)
    extracted = ExpenseBatchExtractOperator.partial(
        task_id="extract_batch",
        config=cfg,
        aws_conn_id=AWS_CONN_ID,
        tps_slots=EXTRACT_SLOTS,
        waiter_delay=TEXTRACT_POLL_SECONDS,
        job_timeout=TEXTRACT_TIMEOUT,
        max_active_tis_per_dag=EXTRACT_SLOTS,
    ).expand(batch=batches)
    review = a2i_human_review(
        settings=cfg,
        start_loops=lambda flow_definition_arn: start_review_loops.partial(
            cfg=cfg, flow_definition_arn=flow_definition_arn
        ).expand(extracted=extracted.output),
        what="document",
        aws_conn_id=AWS_CONN_ID,
        human_task_ui_name="{{ params.human_task_ui_name }}",
        flow_definition_name="{{ params.flow_definition_name }}",
        task_title="Check the fields of an invoice or receipt",
        task_description="Correct the fields the extraction was unsure of or could not find.",
        poll_seconds=REVIEW_POLL_SECONDS,
        timeout=REVIEW_TIMEOUT,
        allow_failed=True,  # a failed or stopped loop quarantines its document in merge_batch
    )
    prepared >> review.task_ui
    merged = merge_batch.partial(cfg=cfg).expand(started=review.started)
    review.wait >> merged
    publish_latest(cfg, finalize(cfg, merged))


expense_documents()
