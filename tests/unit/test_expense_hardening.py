"""Hostile and odd input for the expense steps (issue 8): documents that fail checks or responses
that fail the reader are quarantined alone, CSV cells never run as formulas, any S3 key works,
fields that disagree go to review, and every DAG's Params carry AWS's own patterns.

The checks run on real bytes (a PNG header announcing 30000x30000 pixels, a password-protected
PDF); the operator test extracts real documents on the session twin."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import struct
import uuid
import zlib
from pathlib import Path

import pytest
from aws_ml_provider.utils import aws_patterns
from aws_ml_provider.utils import expense as ex

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "include" / "data" / "receipts"


# ---- hostile documents ----------------------------------------------------------------------------


def bomb_png(side: int = 30000) -> bytes:
    """A PNG whose header announces ``side`` x ``side`` 8-bit grey pixels (900 M at 30000): Pillow
    refuses to open it (DecompressionBombError) before reading the pixel data."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = zlib.compress(b"\x00" * (side + 1) * 16, 9)  # the first rows; the rest is not needed
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0))
        + chunk(b"IDAT", rows)
        + chunk(b"IEND", b"")
    )


def encrypted_pdf() -> bytes:
    """A one-page PDF with a Standard security handler (RC4, revision 2) whose user password is not
    empty: a reader needs the password to open it."""
    owner, user = hashlib.md5(b"owner").hexdigest() * 2, hashlib.md5(b"user").hexdigest() * 2
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 200 200] >>",
        f"<< /Filter /Standard /V 1 /R 2 /O <{owner}> /U <{user}> /P -4 >>".encode(),
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n".encode() + body + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += b"".join(f"{offset:010d} 00000 n \n".encode() for offset in offsets)
    file_id = hashlib.md5(b"id").hexdigest()
    out += (
        f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R /Encrypt 4 0 R /ID [<{file_id}><{file_id}>] >>\n"
        f"startxref\n{xref}\n%%EOF\n"
    ).encode()
    return bytes(out)


def test_a_decompression_bomb_is_too_large_not_a_crash():
    data = bomb_png()
    assert len(data) < 100_000
    check = ex.check_document("s3://b/bomb.png", data)
    assert not check.ok and check.code == "DocumentTooLarge", check
    assert "900,000,000 pixels" in check.reason and "decompression bomb" in check.reason
    assert check.reason.startswith("s3://b/bomb.png: ")


def test_a_password_protected_pdf_is_encrypted_not_corrupt():
    check = ex.check_document("s3://b/locked.pdf", encrypted_pdf())
    assert not check.ok and check.code == "EncryptedDocument", check
    assert "password" in check.reason and "corrupt" not in check.reason
    # a damaged PDF is still corrupt
    damaged = ex.check_document("s3://b/damaged.pdf", b"%PDF-1.4\n1 0 obj <<>> endobj\n%%EOF\n")
    assert damaged.code == "CorruptDocument"


# ---- S3 keys --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "key", ["receipt #2.jpg", "in box/ü receipt+1 (copy).jpg", "a?b=c&d.png", "dir//x#y#z.pdf", "%23.jpg"]
)
def test_any_key_survives_the_textract_hook(key):
    from aws_ml_provider.hooks.textract import TextractHook

    assert TextractHook.document(f"s3://bucket/{key}") == {"S3Object": {"Bucket": "bucket", "Name": key}}


# ---- CSV cells ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cell", "written"),
    [
        ('=HYPERLINK("http://x","y")', '\'=HYPERLINK("http://x","y")'),
        ("+cmd|' /C calc'!A0", "'+cmd|' /C calc'!A0"),
        ("-2+3", "'-2+3"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\t=1", "'\t=1"),
        ("\r=1", "'\r=1"),
        ("-", "'-"),
        ("-1.50", "-1.50"),
        ("+3", "+3"),
        ("-1,234.50", "-1,234.50"),
        ("-.5", "-.5"),
        ("-2e3", "-2e3"),
        ("12.50", "12.50"),
        ("RM 1.50", "RM 1.50"),
        ("", ""),
    ],
)
def test_csv_cells_never_start_a_formula(cell, written):
    assert ex.csv_safe(cell) == written


def _hostile_normalised() -> dict:
    return {
        "document_id": "d1",
        "source_uri": "s3://b/=evil.jpg",
        "expense_count": 1,
        "fields": {
            "VENDOR_NAME": {"value": '=HYPERLINK("http://evil","x")', "confidence": 99.0},
            "TOTAL": {"value": "-1.50", "confidence": 99.0, "amount": "-1.50"},
            "INVOICE_RECEIPT_ID": {"value": "@A1", "confidence": 99.0},
        },
        "line_items": [{"expense_index": 1, "group": 1, "row": 0, "ITEM": "+SUM(1)", "PRICE": "-0.50"}],
    }


def test_every_expense_csv_neutralises_formulas():
    merged = ex.auto_approve(_hostile_normalised())
    documents = list(csv.DictReader(io.StringIO(ex.documents_csv(ex.document_rows(merged, "s3://b/r.json")))))
    assert documents[0]["VENDOR_NAME"] == '\'=HYPERLINK("http://evil","x")'
    assert documents[0]["INVOICE_RECEIPT_ID"] == "'@A1"
    assert documents[0]["source_uri"] == "s3://b/=evil.jpg"  # starts with s: left alone
    assert documents[0]["TOTAL"] == "-1.50"  # a number stays a number
    items = list(csv.DictReader(io.StringIO(ex.line_items_csv([merged]))))
    assert items[0]["ITEM"] == "'+SUM(1)" and items[0]["PRICE"] == "-0.50"
    response = {
        "ExpenseDocuments": [
            {
                "ExpenseIndex": 1,
                "SummaryFields": [
                    {"Type": {"Text": "VENDOR_NAME"}, "ValueDetection": {"Text": "=1+1"}},
                    {"Type": {"Text": "TOTAL"}, "ValueDetection": {"Text": "-1.50"}},
                ],
                "LineItemGroups": [
                    {
                        "LineItemGroupIndex": 1,
                        "LineItems": [
                            {
                                "LineItemExpenseFields": [
                                    {"Type": {"Text": "ITEM"}, "ValueDetection": {"Text": "@cmd"}}
                                ]
                            }
                        ],
                    }
                ],
            }
        ]
    }
    summary_csv, grid = ex.pretty_outputs(response)
    cells = [cell for row in csv.reader(io.StringIO(summary_csv)) for cell in row]
    assert "'=1+1" in cells and "-1.50" in cells and "'@cmd" in cells
    assert not [c for c in cells if c[:1] in ("=", "+", "@", "\t", "\r") or (c[:1] == "-" and c != "-1.50")]
    assert "=1+1" in grid  # the grid is text for people, not a spreadsheet: unchanged


# ---- review routing: fields that disagree ------------------------------------------------------------


def _receipt(
    total="33.18", subtotal="31.30", tax="1.88", date="23/01/2024", prices=("13.80", "17.50")
) -> dict:
    def field(value, confidence=99.0):
        return {"value": value, "confidence": confidence, "amount": ex.parse_amount(value)}

    fields = {"TOTAL": field(total), "SUBTOTAL": field(subtotal), "TAX": field(tax)}
    fields["INVOICE_RECEIPT_DATE"] = {"value": date, "confidence": 99.0}
    fields["VENDOR_NAME"] = {"value": "SHOP", "confidence": 99.0}
    items = [{"expense_index": 1, "PRICE": p, "amount": ex.parse_amount(p)} for p in prices]
    return {"expense_count": 1, "fields": fields, "line_items": items}


def test_consistent_confident_fields_are_not_reviewed():
    assert ex.review_fields(_receipt()) == []
    assert ex.review_fields(_receipt(total="33.20")) == []  # cash rounding to 0.05
    assert ex.review_fields(_receipt(prices=("20.00", "13.18"))) == []  # items sum to the total


def test_a_confident_wrong_total_goes_to_review():
    """Issue 8: a total of 2.00 (truth 1.50) read with confidence 84.6 passed review."""
    fields = ex.review_fields(_receipt(total="2.00", subtotal="1.40", tax="0.10", prices=("1.00",)))
    by_name = {f["name"]: f for f in fields}
    assert set(by_name) == {"TOTAL", "SUBTOTAL", "TAX"}
    assert "TOTAL 2.00 is not SUBTOTAL 1.40 + TAX 0.10" in by_name["TOTAL"]["reason"]
    assert "sum of the 1 line items (1.00)" in by_name["TOTAL"]["reason"]
    assert by_name["TOTAL"]["value"] == "2.00" and by_name["TOTAL"]["confidence"] == 99.0
    assert ex.review_fields(_receipt(total="2.00", subtotal="1.40", tax="0.10"), consistency=False) == []


def test_line_items_that_do_not_add_up_send_the_total():
    fields = ex.review_fields(_receipt(subtotal="", tax="", prices=("10.00", "5.00")))
    assert [f["name"] for f in fields] == ["TOTAL"]
    assert fields[0]["reason"] == "TOTAL 33.18 is not the sum of the 2 line items (15.00)"


def test_a_date_that_does_not_parse_goes_to_review():
    for good in ("23/01/2024", "2024-02-11", "02 Jan 2018", "23-01-2019 10:22", "25/12/18"):
        assert ex.parse_date(good) is not None, good
    for bad in ("31/31/2024", "NOT A DATE", "12345678901", "1/1/1850"):
        assert ex.parse_date(bad) is None, bad
    fields = ex.review_fields(_receipt(date="31/31/2024"))
    assert fields == [
        {
            "name": "INVOICE_RECEIPT_DATE",
            "value": "31/31/2024",
            "confidence": 99.0,
            "reason": "date '31/31/2024' does not parse",
        }
    ]


def test_a_low_confidence_field_that_also_disagrees_is_listed_once():
    receipt = _receipt(total="2.00", subtotal="1.40", tax="0.10", prices=())
    receipt["fields"]["TOTAL"]["confidence"] = 50.0
    fields = [f for f in ex.review_fields(receipt) if f["name"] == "TOTAL"]
    assert len(fields) == 1
    assert fields[0]["reason"] == "confidence 50 % < 80 %; TOTAL 2.00 is not SUBTOTAL 1.40 + TAX 0.10"


# ---- Params carry AWS's patterns ----------------------------------------------------------------


def test_patterns_are_botocores():
    import botocore.session

    model = botocore.session.get_session().get_service_model("sagemaker")
    assert aws_patterns.ROLE_ARN == model.shape_for("RoleArn").metadata["pattern"]
    assert aws_patterns.WORKTEAM_ARN == model.shape_for("WorkteamArn").metadata["pattern"]
    assert aws_patterns.A2I_NAME == model.shape_for("FlowDefinitionName").metadata["pattern"]
    assert aws_patterns.SAGEMAKER_NAME == model.shape_for("EndpointName").metadata["pattern"]


@pytest.mark.parametrize(
    ("name", "ok"),
    [
        ("aws-ml-provider-demo", True),
        ("my.bucket.v2", True),
        ("abc", True),
        ("bad bucket", False),
        ("Bad-Bucket", False),
        ("ab", False),
        ("a" * 64, False),
        ("-bucket", False),
        ("bucket-", False),
        ("my..bucket", False),
        ("192.168.5.4", False),
        ("xn--bucket", False),
        ("sthree-bucket", False),
        ("bucket-s3alias", False),
        ("bucket--ol-s3", False),
        ("bucket_name", False),
    ],
)
def test_bucket_names(name, ok):
    assert aws_patterns.matches(aws_patterns.BUCKET_PARAM, name) is ok
    assert aws_patterns.matches(aws_patterns.S3_PREFIX_PARAM, f"s3://{name}/some/prefix/") is ok
    assert aws_patterns.matches(aws_patterns.S3_OBJECT_PARAM, f"s3://{name}/key #1.csv") is ok


def test_require_fails_without_retry():
    from airflow.providers.common.compat.sdk import AirflowFailException

    assert aws_patterns.require("arn:aws:iam::123456789012:role/x", aws_patterns.ROLE_ARN_PARAM, "role")
    with pytest.raises(AirflowFailException, match="Variable sagemaker_role_arn"):
        aws_patterns.require("not-an-arn", aws_patterns.ROLE_ARN_PARAM, "role", "Variable sagemaker_role_arn")


#: per DAG: a Param, a bad value the form must refuse, a good one it must take
BAD_PARAMS = {
    "expense_documents": [
        ("input_prefix", "s3://bad bucket/inbox/", "s3://good-bucket/inbox/"),
        ("output_prefix", "s3://Bad_Bucket/out/", "s3://good.bucket/out/"),
        ("quarantine_prefix", "https://x/y/", "s3://good-bucket/q/"),
        ("state_prefix", "s3://ab/state/", "s3://abc/state/"),
        (
            "workteam_arn",
            "arn:aws:sagemaker:us-east-1:123:workteam/x",
            "arn:aws:sagemaker:us-east-1:123456789012:workteam/private-crowd/t",
        ),
        ("a2i_role_arn", "arn:aws:iam::123456789012:user/x", "arn:aws:iam::123456789012:role/a2i"),
        ("flow_definition_name", "Expense_Review", "expense-review-2"),
        ("human_task_ui_name", "ui name", "expense-ui"),
    ],
    "churn_xgboost_pipeline": [
        ("bucket", "bad bucket", "good-bucket"),
        ("dataset_uri", "s3://bad bucket/x.csv", "s3://good-bucket/x y.csv"),
        ("sagemaker_role_arn", "arn:aws:iam::12:role/x", "arn:aws:iam::123456789012:role/sm"),
        ("glue_role_arn", "role/glue", "arn:aws:iam::123456789012:role/service-role/glue"),
        ("endpoint_name", "churn_xgb", "churn-xgb"),
        ("model_package_group", "-churn", "churn-2"),
    ],
}


@pytest.mark.parametrize("dag_id", sorted(BAD_PARAMS))
def test_bad_values_fail_the_trigger_form(dag_id):
    from airflow.dag_processing.dagbag import DagBag
    from airflow.sdk.exceptions import ParamValidationError

    dag = DagBag(dag_folder=str(ROOT / "dags" / f"{dag_id}.py")).dags[dag_id]
    for name, bad, good in BAD_PARAMS[dag_id]:
        param = dag.params.get_param(name)
        with pytest.raises(ParamValidationError):
            param.resolve(bad)
        assert param.resolve(good) == good
        if "null" in (param.schema.get("type") or []):
            assert param.resolve(None) is None and param.resolve("") == ""  # empty: the Variable


# ---- the batch operator: one bad document never fails its batch ------------------------------------


def test_a_malformed_response_quarantines_its_document_alone(twin, monkeypatch):
    """Two real documents through ExpenseBatchExtractOperator.execute on the twin; the response of
    one comes back with a member of the wrong JSON type (what a changed or broken service could
    send). That document is quarantined as MalformedResponse with its reason; the other is
    extracted; the task does not fail."""
    from aws_ml_provider.hooks.textract import TextractHook
    from aws_ml_provider.operators.expense import ExpenseBatchExtractOperator
    from aws_ml_provider.utils import s3 as s3_utils

    s3 = twin.client("s3")
    bucket = f"expense-hostile-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=bucket)
    docs = []
    for name in ("receipt_grocery.jpg", "invoice_northwind.png"):
        key = f"inbox/{name}"
        etag = s3.put_object(Bucket=bucket, Key=key, Body=(SAMPLES / name).read_bytes())["ETag"].strip('"')
        docs.append(
            {
                "document_id": ex.document_id(key, etag),
                "bucket": bucket,
                "key": key,
                "relative_key": name,
                "source_uri": f"s3://{bucket}/{key}",
                "etag": etag,
                "size": (SAMPLES / name).stat().st_size,
                "folder": name,
            }
        )
    manifest = s3_utils.write_json(s3, f"s3://{bucket}/manifest.json", {"batch": 0, "documents": docs})
    params = {
        "input_prefix": f"s3://{bucket}/inbox/",
        "output_prefix": f"s3://{bucket}/output/",
        "quarantine_prefix": f"s3://{bucket}/quarantine/",
        "state_prefix": f"s3://{bucket}/state/",
        "textract_tps": 50,
        "textract_retry_mode": "standard",
        "confidence_threshold": 0,
        "required_fields": [],
        "consistency_checks": [],
    }
    analyze = TextractHook.analyze

    def analyze_breaking_one(self, kind, uri, **kwargs):
        response = analyze(self, kind, uri, **kwargs)  # the twin's real answer
        if uri.endswith("invoice_northwind.png"):
            response["ExpenseDocuments"][0]["SummaryFields"] = {"not": "a list"}
        return response

    monkeypatch.setattr(TextractHook, "analyze", analyze_breaking_one)
    monkeypatch.setenv(
        "AIRFLOW_CONN_AWS_DEFAULT",
        json.dumps(
            {
                "conn_type": "aws",
                "login": "testing",
                "password": "testing",
                "extra": {"endpoint_url": twin.url, "region_name": "us-east-1"},
            }
        ),
    )
    op = ExpenseBatchExtractOperator(
        task_id="extract_batch", batch={"batch": 0, "manifest_uri": manifest, "documents": 2}, config={}
    )
    result = op.execute({"params": params, "run_id": "manual__hostile"})
    assert result["extracted"] == 1 and result["quarantined"] == 1, result
    reason_key = "quarantine/manual__hostile/invoice_northwind.png.reason.json"
    record = json.loads(s3.get_object(Bucket=bucket, Key=reason_key)["Body"].read())
    assert record["code"] == "MalformedResponse"
    assert "invoice_northwind.png: extraction failed: ExpenseResponseError" in record["reason"]
    assert "SummaryFields" in record["reason"]
    marker = s3_utils.read_json(s3, f"s3://{bucket}/state/processed/{docs[1]['document_id']}.json")
    assert marker["status"] == "quarantined"


def test_aws_and_network_errors_fail_the_task_instead():
    from aws_ml_provider.utils.expense_response import ExpenseResponseError
    from aws_ml_provider.utils.expense_state import is_transient
    from botocore.exceptions import ClientError, EndpointConnectionError

    throttled = ClientError(
        {"Error": {"Code": "ThrottlingException", "Message": "slow down"}}, "AnalyzeExpense"
    )
    assert is_transient(throttled) and is_transient(EndpointConnectionError(endpoint_url="http://x"))
    assert not is_transient(ExpenseResponseError("x")) and not is_transient(ValueError("x"))
    from airflow.providers.common.compat.sdk import AirflowException

    assert is_transient(AirflowException("the task runner's own: not the document's"))
