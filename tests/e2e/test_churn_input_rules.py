"""churn_xgboost_pipeline end to end on messy real rows (../shared/data/mlc_churn.csv, mutated): blank
cells, an ID column and "$" amounts train, deploy and pass the smoke test (the endpoint gets rows with
missing values); a one-class label fails the run at preprocess on the first try, with the reason
from the Glue run in the task's error, and nothing is trained.
"""

from __future__ import annotations

import csv
import io
import json
import random
import uuid

import pytest

from tests.shared_data import shared_dir

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

DAG_ID = "churn_xgboost_pipeline"
SUFFIX = uuid.uuid4().hex[:6]
BUCKET = f"churn-rules-{SUFFIX}"
FAST = {
    "num_round": 20,
    "bucket": BUCKET,
    "endpoint_name": f"churn-rules-{SUFFIX}",
    "model_package_group": f"churn-rules-{SUFFIX}",
    "quality_threshold": 0.6,
}


@pytest.fixture(scope="module")
def rows(need) -> tuple[list[str], list[dict[str, str]]]:
    path = shared_dir() / "data" / "mlc_churn.csv"
    need(path.is_file(), str(path))
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        data = list(reader)
        return list(reader.fieldnames), random.Random(21).sample(data, 800)


def upload(twin, key: str, header: list[str], rows: list[dict[str, str]]) -> str:
    s3 = twin.client("s3")
    try:
        s3.create_bucket(Bucket=BUCKET)
    except s3.exceptions.BucketAlreadyOwnedByYou:
        pass
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=header, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    s3.put_object(Bucket=BUCKET, Key=key, Body=out.getvalue().encode())
    return f"s3://{BUCKET}/{key}"


def read(twin, uri: str) -> bytes:
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    return twin.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()


def test_messy_csv_trains_deploys_and_answers(dag_runner, twin, rows):
    header, source = rows
    rng = random.Random(2)
    messy = []
    blanks = {"total_day_minutes": 0, "international_plan": 0}
    for i, row in enumerate(source):
        row = {"customer_id": f"C{rng.randint(10**7, 10**8 - 1)}-{i}", **row}
        row["total_day_charge"] = f"${float(row['total_day_charge']):.2f}"
        for name, share in (("total_day_minutes", 0.1), ("international_plan", 0.05)):
            if rng.random() < share:
                row[name] = ""
                blanks[name] += 1
        messy.append(row)
    uri = upload(twin, "incoming/messy.csv", ["customer_id", *header], messy)
    run = dag_runner(DAG_ID, {**FAST, "dataset_uri": uri})
    assert run.state == "success", run.task_states
    assert run.task_states["deploy.smoke_test"] == "success"

    schema = json.loads(read(twin, run.xcom("prepare.resolve_config", "schema_uri")))
    assert schema["counts"]["received"] == len(messy) and schema["counts"]["quarantined"] == 0
    rules = schema["input_rules"]
    assert rules["missing_values"] == blanks
    assert rules["parsed_columns"] == {"total_day_charge": ["currency"]}
    assert list(rules["dropped_columns"]) == ["customer_id"]
    assert not [c for c in schema["feature_columns"] if c.startswith("customer_id")]
    test_rows = read(twin, run.xcom("prepare.resolve_config", "test_uri")).decode().splitlines()
    assert any(",," in line or line.endswith(",") for line in test_rows)  # missing values reach XGBoost


def test_one_class_label_fails_preprocess_once_with_the_reason(dag_runner, twin, rows, capfd):
    from airflow import settings
    from airflow.models.taskinstance import TaskInstance
    from sqlalchemy import select

    header, source = rows
    uri = upload(twin, "incoming/one-class.csv", header, [{**r, "churn": "no"} for r in source[:300]])
    run = dag_runner(DAG_ID, {**FAST, "dataset_uri": uri, "endpoint_name": f"churn-rules-{SUFFIX}-oc"})
    assert run.state == "failed"
    assert run.task_states["prepare.preprocess"] == "failed"
    assert run.task_states["train"] == "upstream_failed"
    with settings.Session() as session:
        ti = session.scalars(
            select(TaskInstance).where(
                TaskInstance.dag_id == DAG_ID,
                TaskInstance.run_id == run.run_id,
                TaskInstance.task_id == "prepare.preprocess",
            )
        ).one()
        assert ti.try_number == 1  # not retried
    output = capfd.readouterr()
    text = output.out + output.err
    assert "AirflowFailException" in text
    assert "PreprocessError: input s3://" in text and "one class" in text and "'no' (300 rows)" in text
    # one Glue run for this input: no retry started another
    glue = twin.client("glue")
    runs = [
        r
        for r in glue.get_job_runs(JobName="churn-xgboost-preprocess")["JobRuns"]
        if r["Arguments"].get("--input_uri") == uri
    ]
    assert len(runs) == 1 and runs[0]["JobRunState"] == "FAILED"
