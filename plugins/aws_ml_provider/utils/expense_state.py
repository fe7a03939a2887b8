"""Where an ``expense_documents`` run keeps its state in S3, and the steps that write it: the run's
working prefix, quarantine records, processed markers and the start of the human review loops.

Layout (``params`` are the run's Params with its resolved locations):

- ``<output_prefix>/runs/<run>/`` - the run's working files (:func:`run_prefix`);
- ``<quarantine_prefix>/<run>/<relative key>`` + ``.reason.json`` - a bad document (:func:`quarantine`);
- ``<state_prefix>/claims/<document id>.json`` - the run that takes a document (:func:`claim`);
- ``<state_prefix>/processed/<document id>.json`` - a document no run takes again (:func:`mark_processed`);
- ``<output_prefix>/runs/<run>/review_pages/<document id>/page-0001.png`` ... + ``pages.json`` - the
  page images a reviewer sees of a PDF or TIFF (:func:`review_pages_prefix`).

A run that stages documents (:func:`stage_files`) claims each one for itself *before* uploading it,
so a run listing the input prefix meanwhile (an hourly run that unpausing the DAG started, say)
finds it claimed and leaves it to the run that staged it.

Imports nothing heavy at module level.
"""

from __future__ import annotations

from . import s3 as s3_utils
from .errors import error_code

#: the DAG whose runs name the human loops (:meth:`A2IRuntimeHook.human_loop_name`)
DAG_ID = "expense_documents"


def run_prefix(params: dict, run_id: str) -> str:
    """``<output_prefix>/runs/<run>``: the run's working files."""
    from .expense import run_key

    return f"{params['output_prefix'].rstrip('/')}/runs/{run_key(run_id)}"


#: S3's answers to a conditional put (``IfNoneMatch="*"``) of a key that exists
_CLAIM_TAKEN = ("PreconditionFailed", "ConditionalRequestConflict", "412")


def claim(s3, params: dict, run_id: str, doc_id: str, source_uri: str, etag: str) -> str:
    """Claim a document for ``run_id`` with a conditional put of
    ``<state_prefix>/claims/<document id>.json``; return the run that holds the claim: ``run_id``
    when this run made it now or earlier (a retried task takes its own claims again), else the
    other run's id."""
    import json

    from botocore.exceptions import ClientError

    uri = f"{params['state_prefix'].rstrip('/')}/claims/{doc_id}.json"
    bucket, key = s3_utils.split_uri(uri)
    body = {"run_id": run_id, "source_uri": source_uri, "etag": etag}
    try:
        s3.put_object(Bucket=bucket, Key=key, Body=json.dumps(body).encode(), IfNoneMatch="*")
        return run_id
    except ClientError as err:
        if error_code(err) not in _CLAIM_TAKEN:
            raise
    return s3_utils.read_json(s3, uri, default={}).get("run_id") or "unknown"


#: states of an Airflow run that no longer works on its claims
ENDED_RUN_STATES = ("failed", "success")


def take_over(
    s3, params: dict, run_id: str, doc_id: str, previous_owner: str, source_uri: str, etag: str
) -> str:
    """Take the claim of a document from ``previous_owner``, a run that ended without finishing
    it (failed, or a bug left it unprocessed): a conditional put (``IfMatch`` the claim's ETag) so
    that of two runs taking it over at once only one gets it. Returns the run holding the claim
    afterwards (``run_id``, or the run that took it first)."""
    import json

    from botocore.exceptions import ClientError

    uri = f"{params['state_prefix'].rstrip('/')}/claims/{doc_id}.json"
    bucket, key = s3_utils.split_uri(uri)
    try:
        current = s3.get_object(Bucket=bucket, Key=key)
    except ClientError as err:
        if not s3_utils.is_not_found(err):
            raise
        return claim(s3, params, run_id, doc_id, source_uri, etag)  # deleted by hand meanwhile
    body = json.loads(current["Body"].read())
    if body.get("run_id") != previous_owner:
        return body.get("run_id") or "unknown"
    body.update(run_id=run_id, taken_over_from=previous_owner)
    try:
        s3.put_object(Bucket=bucket, Key=key, Body=json.dumps(body).encode(), IfMatch=current["ETag"])
        return run_id
    except ClientError as err:
        if error_code(err) not in _CLAIM_TAKEN:
            raise
    return s3_utils.read_json(s3, uri, default={}).get("run_id") or "unknown"


def is_transient(exc: BaseException) -> bool:
    """Whether an error is not the document's fault, so retrying the task is the answer (AWS and
    network errors, Airflow's own): everything else that a document's processing raises (a
    malformed response, an image library's error, ...) quarantines that document alone."""
    from botocore.exceptions import BotoCoreError, ClientError

    if isinstance(exc, (ClientError, BotoCoreError, ConnectionError, TimeoutError)):
        return True
    return type(exc).__module__.split(".")[0] in ("airflow", "urllib3", "requests")


def quarantine_failure(s3, params: dict, run_id: str, doc: dict, exc: BaseException, stage: str) -> dict:
    """Quarantine a document whose ``stage`` (extraction, review, merge) raised ``exc``: code
    ``MalformedResponse`` for a Textract response that does not have botocore's shape, else
    ``ProcessingFailed``; the reason names the document, the stage and the error."""
    from .expense_response import ExpenseResponseError

    code = "MalformedResponse" if isinstance(exc, ExpenseResponseError) else "ProcessingFailed"
    reason = f"{doc['source_uri']}: {stage} failed: {type(exc).__name__}: {exc}"
    return quarantine(s3, params, run_id, doc, code, reason)


def stage_files(s3, params: dict, run_id: str, files) -> dict:
    """Upload ``files`` (paths) to the input prefix for ``run_id``: each document is claimed for the
    run before its bytes land (its ETag is the MD5 of the body), so no other run can take it in
    between. A file already processed, or claimed by another run, is left alone; the same bytes
    already in place are not uploaded again (the retry of a run finds its own claims and objects).

    Returns counts: ``uploaded``, ``already_there``, ``processed`` and ``claimed_by`` (run -> n)."""
    import hashlib

    from .expense import document_id

    bucket, prefix = s3_utils.split_prefix(params["input_prefix"])
    state = params["state_prefix"].rstrip("/")
    counts: dict = {"uploaded": 0, "already_there": 0, "processed": 0, "claimed_by": {}}
    for path in files:
        body = path.read_bytes()
        key = prefix + path.name
        source_uri = f"s3://{bucket}/{key}"
        etag = hashlib.md5(body, usedforsecurity=False).hexdigest()
        doc_id = document_id(key, etag)
        if s3_utils.exists(s3, f"{state}/processed/{doc_id}.json"):
            counts["processed"] += 1
            continue
        owner = claim(s3, params, run_id, doc_id, source_uri, etag)
        if owner != run_id:
            counts["claimed_by"][owner] = counts["claimed_by"].get(owner, 0) + 1
            continue
        if _etag(s3, bucket, key) == etag:
            counts["already_there"] += 1
            continue
        put = s3.put_object(Bucket=bucket, Key=key, Body=body)
        counts["uploaded"] += 1
        stored = put["ETag"].strip('"')
        if stored != etag:  # not the MD5 (SSE-KMS): claim what S3 stored, as the listing sees it
            claim(s3, params, run_id, document_id(key, stored), source_uri, stored)
    return counts


def _etag(s3, bucket: str, key: str) -> str | None:
    from botocore.exceptions import ClientError

    try:
        return s3.head_object(Bucket=bucket, Key=key)["ETag"].strip('"')
    except ClientError as err:
        if not s3_utils.is_not_found(err):
            raise
    return None


def nothing_taken_reason(skipped: dict, claimed_by: dict, input_prefix: str) -> str:
    """Why a run took no document, from its listing's counts: none present, already processed,
    claimed by which other run(s)."""
    if not any(skipped.values()):
        return f"no document under {input_prefix}"
    parts = []
    if claimed_by:
        runs = ", ".join(f"{run} ({n})" for run, n in sorted(claimed_by.items()))
        parts.append(f"{sum(claimed_by.values())} claimed by another run: {runs}")
    if skipped.get("processed"):
        parts.append(f"{skipped['processed']} already processed")
    if skipped.get("not_a_document"):
        parts.append(f"{skipped['not_a_document']} not a document (folder marker)")
    return f"no new document under {input_prefix}: " + "; ".join(parts)


def review_pages_prefix(params: dict, run_id: str, document_id: str) -> str:
    """``<output_prefix>/runs/<run>/review_pages/<document id>``: the PNG pages of a PDF/TIFF under review."""
    return f"{run_prefix(params, run_id)}/review_pages/{document_id}"


def quarantine(s3, params: dict, run_id: str, doc: dict, code: str, reason: str, copy: bool = True) -> dict:
    """Copy a bad document to ``<quarantine_prefix>/<run>/<relative key>`` with a ``.reason.json``
    beside it, and mark it processed (it is not taken again). ``copy=False``: the object is gone
    (deleted after the listing), only the record is written (``"copied": false``)."""
    from .expense import quarantine_record, run_key

    qbucket, qprefix = s3_utils.split_prefix(params["quarantine_prefix"])
    target_key = f"{qprefix}{run_key(run_id)}/{doc['relative_key']}"
    record = quarantine_record(
        source_uri=doc["source_uri"],
        code=code,
        reason=reason,
        run_id=run_id,
        size=doc["size"],
        etag=doc["etag"],
    )
    record["document_id"] = doc["document_id"]
    record["quarantine_uri"] = f"s3://{qbucket}/{target_key}"
    if copy:  # managed copy: multipart for objects over 5 GB (CopyObject's limit)
        s3.copy({"Bucket": doc["bucket"], "Key": doc["key"]}, qbucket, target_key)
    else:
        record["copied"] = False
    s3_utils.write_json(s3, f"s3://{qbucket}/{target_key}.reason.json", record)
    mark_processed(s3, params, run_id, doc, "quarantined", record["quarantine_uri"] + ".reason.json")
    return record


def mark_processed(s3, params: dict, run_id: str, doc: dict, status: str, result_uri: str) -> None:
    """Write ``<state_prefix>/processed/<document id>.json``: no later run takes the document."""
    state = params["state_prefix"].rstrip("/")
    s3_utils.write_json(
        s3,
        f"{state}/processed/{doc['document_id']}.json",
        {
            "document_id": doc["document_id"],
            "source_uri": doc["source_uri"],
            "etag": doc["etag"],
            "run_id": run_id,
            "status": status,
            "result_uri": result_uri,
        },
    )


def merge_document(s3, hook, params: dict, run_id: str, doc: dict, loops: dict) -> dict:
    """The human answers over the machine values of one document (``merge_batch``): ``{}`` (quarantined at extraction, counted there),
    ``{"quarantined": record}`` or ``{"merged": ..., "result_uri": ...}`` (outputs written,
    marked processed)."""
    from ..hooks.a2i import LOOP_DONE
    from .a2i_output import answers
    from .expense import apply_corrections, auto_approve, merge_review, pretty_outputs

    prefix, out = run_prefix(params, run_id), params["output_prefix"].rstrip("/")

    machine = s3_utils.read_json(s3, f"{prefix}/machine/{doc['document_id']}.json", default={})
    if not machine:
        return {}  # quarantined at extraction (counted there)
    name = loops.get(doc["document_id"])
    if name:
        state = hook.human_loop_state(name)
        if state["status"] != LOOP_DONE or not state.get("output_s3_uri"):
            reason = f"human loop {name} ended {state['status']}: {state.get('failure_reason') or ''}"
            return {"quarantined": quarantine(s3, params, run_id, doc, "ReviewNotCompleted", reason)}
        answer = answers(hook.read_output(state["output_s3_uri"]))
        merged = merge_review(machine["normalised"], machine["review_fields"], answer, loop=name)
        if merged["status"] == "unreadable":
            reason = f"the reviewer of human loop {name} marked {doc['source_uri']} unreadable"
            return {"quarantined": quarantine(s3, params, run_id, doc, "ReviewerUnreadable", reason)}
    else:
        merged = auto_approve(machine["normalised"])
    response = s3_utils.read_json(s3, machine["raw_uri"])
    csv_text, grid_text = pretty_outputs(apply_corrections(response, merged))
    folder = f"{out}/documents/{doc['folder']}"
    result_uri = s3_utils.write_json(s3, f"{folder}/expense.json", merged)
    s3_utils.put_text(s3, f"{folder}/summary.csv", csv_text, "text/csv")
    s3_utils.put_text(s3, f"{folder}/grid.txt", grid_text, "text/plain; charset=utf-8")
    mark_processed(s3, params, run_id, doc, merged["status"], result_uri)
    return {"merged": merged, "result_uri": result_uri}


def start_loops_for_batch(
    params: dict,
    run_id: str,
    extracted: dict,
    flow_definition_arn: str,
    *,
    dag_id: str = DAG_ID,
    aws_conn_id: str = "aws_default",
) -> dict:
    """Start (or attach to) the human loop of every document of a batch that needs review; what
    the ``start_review_loops`` task runs, on each try alike. A PDF or TIFF document's pages are
    rendered to PNGs first (:func:`review_pages_prefix`; once per document and run) and the loop
    input carries their S3 URIs. Returns the batch dict with ``loops_uri``, ``loops`` (names) and
    ``created`` (loops this call started)."""
    from ..hooks.a2i import A2IRuntimeHook, flow_definition_name_from_arn
    from .expense import TokenBucket, loop_input
    from .review_pages import ensure_page_images, is_paged

    s3 = s3_utils.client(aws_conn_id)
    manifest = s3_utils.read_json(s3, extracted["manifest_uri"])
    hook = A2IRuntimeHook(aws_conn_id=aws_conn_id)
    bucket = TokenBucket(float(params["a2i_tps"]))
    prefix = run_prefix(params, run_id)
    flow_name = flow_definition_name_from_arn(flow_definition_arn)
    loops: dict[str, str] = {}
    failed: list[dict] = []
    created = 0
    for doc in manifest["documents"]:
        machine = s3_utils.read_json(s3, f"{prefix}/machine/{doc['document_id']}.json", default={})
        if not machine.get("review_fields"):
            continue  # auto-approved, or quarantined at extraction (no machine result)
        name = hook.human_loop_name(doc["document_id"], flow_name, dag_id, run_id)
        try:
            pages = None
            if is_paged(doc["key"]):
                pages = ensure_page_images(
                    s3, doc["source_uri"], review_pages_prefix(params, run_id, doc["document_id"])
                )
            content = loop_input(machine["normalised"], machine["review_fields"], doc["source_uri"], pages)
        except Exception as exc:  # its pages do not render: quarantined alone (merge_batch counts it)
            if is_transient(exc):
                raise
            failed.append(quarantine_failure(s3, params, run_id, doc, exc, "preparing the review"))
            continue
        bucket.acquire()
        started = hook.start_human_loop(name, flow_definition_arn, content)
        created += int(started["created"])
        loops[doc["document_id"]] = name
    loops_uri = f"{prefix}/loops/{extracted['batch']:05d}.json"
    s3_utils.write_json(s3, loops_uri, loops)
    failed_uri = s3_utils.write_json(s3, f"{prefix}/loops/{extracted['batch']:05d}.failed.json", failed)
    print(
        f"batch {extracted['batch']}: {len(loops)} human loop(s), {created} started now, {len(failed)} failed"
    )
    return {
        **extracted,
        "loops_uri": loops_uri,
        "failed_uri": failed_uri,
        "loops": sorted(loops.values()),
        "created": created,
    }
