"""Glue crawlers on the twin: a crawl reads CSV / JSON lines / Parquet under S3 targets, writes the
tables (and key=value partitions) to the Data Catalog (GetTable answers), READY with LastCrawl and
metrics; the Amazon provider's GlueCrawlerOperator (deferrable too) against it. And a glueetl (Spark)
job is refused with NotImplemented, never run as Python. boto3 over HTTP, the twin in --strict mode.

Expected columns and types come from the data (pandas' dtypes of the rows written), not from the twin.
"""

from __future__ import annotations

import io
import json
import time
import uuid
from pathlib import Path

import pandas as pd
import pytest
from botocore.exceptions import ClientError

ROOT = Path(__file__).resolve().parents[2]
CHURN_CSV = ROOT / "include" / "data" / "mlc_churn.csv"
ROLE = "arn:aws:iam::123456789012:role/AWSGlueServiceRole-test"
#: pandas dtype -> the Hive type a Glue crawler gives that column, per format
CSV_TYPES = {"int64": "bigint", "float64": "double", "object": "string", "str": "string", "bool": "boolean"}
JSON_TYPES = {**CSV_TYPES, "int64": "int"}  # JSON: 32-bit values are int
PARQUET_TYPES = {**CSV_TYPES}


@pytest.fixture(scope="module")
def glue(twin):
    return twin.client("glue")


@pytest.fixture(scope="module")
def rows() -> pd.DataFrame:
    return pd.read_csv(CHURN_CSV, nrows=60)


def expected(frame: pd.DataFrame, types: dict[str, str]) -> list[tuple[str, str]]:
    return [(name, types[str(dtype)]) for name, dtype in frame.dtypes.items()]


def wait_ready(glue, name: str, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        crawler = glue.get_crawler(Name=name)["Crawler"]
        if crawler["State"] == "READY" and "LastCrawl" in crawler:
            return crawler
        time.sleep(0.2)
    raise AssertionError(f"crawler {name} not READY after {timeout}s: {crawler}")


def crawl(glue, bucket: str, path: str, **extra) -> tuple[str, str, dict]:
    name, db = f"crawler-{uuid.uuid4().hex[:8]}", f"db_{uuid.uuid4().hex[:8]}"
    glue.create_crawler(
        Name=name,
        Role=ROLE,
        DatabaseName=db,
        Targets={"S3Targets": [{"Path": f"s3://{bucket}/{path}"}]},
        **extra,
    )
    assert glue.get_crawler(Name=name)["Crawler"]["State"] == "READY"
    glue.start_crawler(Name=name)
    return name, db, wait_ready(glue, name)


def columns(table: dict) -> list[tuple[str, str]]:
    return [(c["Name"], c["Type"]) for c in table["StorageDescriptor"]["Columns"]]


def test_csv_crawl_creates_the_table_with_the_data_columns(glue, s3, bucket, rows, twin):
    # two files in one folder: one table named after the folder
    half = len(rows) // 2
    for i, part in enumerate((rows.iloc[:half], rows.iloc[half:])):
        s3.put_object(Bucket=bucket, Key=f"churn/part-{i}.csv", Body=part.to_csv(index=False).encode())
    s3.put_object(Bucket=bucket, Key="churn/_SUCCESS", Body=b"x")  # skipped, as Glue does
    name, db, crawler = crawl(glue, bucket, "churn")
    assert crawler["LastCrawl"]["Status"] == "SUCCEEDED", crawler["LastCrawl"]
    table = glue.get_table(DatabaseName=db, Name="churn")["Table"]
    assert columns(table) == expected(rows, CSV_TYPES)
    params = table["Parameters"]
    assert params["classification"] == "csv"
    assert params["skip.header.line.count"] == "1"
    assert params["delimiter"] == ","
    assert int(params["recordCount"]) == len(rows)
    assert int(params["objectCount"]) == 2
    assert table["StorageDescriptor"]["Location"] == f"s3://{bucket}/churn/"
    metrics = glue.get_crawler_metrics(CrawlerNameList=[name])["CrawlerMetricsList"][0]
    assert (metrics["TablesCreated"], metrics["TablesUpdated"], metrics["TablesDeleted"]) == (1, 0, 0)
    assert metrics["LastRuntimeSeconds"] > 0
    # the crawl's log, where Glue writes it
    events = twin_log(twin, name)
    assert any(f"Created table churn in database {db}" in e for e in events), events

    # a second crawl with an added column updates the table (and counts it)
    wider = rows.assign(score=[i * 0.5 for i in range(len(rows))])
    s3.put_object(Bucket=bucket, Key="churn/part-0.csv", Body=wider.to_csv(index=False).encode())
    s3.delete_object(Bucket=bucket, Key="churn/part-1.csv")
    glue.start_crawler(Name=name)
    crawler = wait_ready(glue, name)
    assert crawler["LastCrawl"]["Status"] == "SUCCEEDED"
    assert columns(glue.get_table(DatabaseName=db, Name="churn")["Table"]) == expected(wider, CSV_TYPES)
    metrics = glue.get_crawler_metrics(CrawlerNameList=[name])["CrawlerMetricsList"][0]
    assert (metrics["TablesCreated"], metrics["TablesUpdated"]) == (0, 1)
    assert len(glue.list_crawls(CrawlerName=name)["Crawls"]) == 2


def twin_log(twin, name: str) -> list[str]:
    answer = twin.client("logs").get_log_events(logGroupName="/aws-glue/crawlers", logStreamName=name)
    return [e["message"] for e in answer["events"]]


def test_json_lines_crawl(glue, s3, bucket, rows):
    body = "\n".join(json.dumps(record) for record in rows.to_dict(orient="records"))
    s3.put_object(Bucket=bucket, Key="events/data.json", Body=body.encode())
    _, db, crawler = crawl(glue, bucket, "events/")
    assert crawler["LastCrawl"]["Status"] == "SUCCEEDED", crawler["LastCrawl"]
    table = glue.get_table(DatabaseName=db, Name="events")["Table"]
    assert table["Parameters"]["classification"] == "json"
    assert (
        table["StorageDescriptor"]["SerdeInfo"]["SerializationLibrary"]
        == "org.openx.data.jsonserde.JsonSerDe"
    )
    assert columns(table) == expected(rows, JSON_TYPES)


def test_parquet_crawl_with_partitions(glue, s3, bucket, rows):
    # input/state=KS/... and input/state=OH/...: one table "input", partition key "state"
    by_state = {
        state: part.drop(columns=["state"]) for state, part in rows.groupby("state") if len(part) >= 2
    }
    for state, part in by_state.items():
        buffer = io.BytesIO()
        part.to_parquet(buffer, index=False)
        s3.put_object(Bucket=bucket, Key=f"input/state={state}/part.parquet", Body=buffer.getvalue())
    _, db, crawler = crawl(glue, bucket, "input")
    assert crawler["LastCrawl"]["Status"] == "SUCCEEDED", crawler["LastCrawl"]
    table = glue.get_table(DatabaseName=db, Name="input")["Table"]
    assert table["Parameters"]["classification"] == "parquet"
    assert columns(table) == expected(next(iter(by_state.values())), PARQUET_TYPES)
    assert [k["Name"] for k in table["PartitionKeys"]] == ["state"]
    partitions = glue.get_partitions(DatabaseName=db, TableName="input")["Partitions"]
    assert sorted(p["Values"][0] for p in partitions) == sorted(by_state)
    one = sorted(by_state)[0]
    found = glue.get_partitions(DatabaseName=db, TableName="input", Expression=f"state='{one}'")["Partitions"]
    assert [p["StorageDescriptor"]["Location"] for p in found] == [f"s3://{bucket}/input/state={one}/"]


def test_folders_of_different_data_are_separate_tables(glue, s3, bucket, rows):
    s3.put_object(
        Bucket=bucket, Key="lake/customers/a.csv", Body=rows.iloc[:, :4].to_csv(index=False).encode()
    )
    s3.put_object(Bucket=bucket, Key="lake/calls/b.csv", Body=rows.iloc[:, 5:9].to_csv(index=False).encode())
    _, db, crawler = crawl(glue, bucket, "lake", TablePrefix="raw_")
    names = sorted(t["Name"] for t in glue.get_tables(DatabaseName=db)["TableList"])
    assert names == ["raw_calls", "raw_customers"]
    calls = glue.get_table(DatabaseName=db, Name="raw_calls")["Table"]
    assert columns(calls) == expected(rows.iloc[:, 5:9], CSV_TYPES)


def test_missing_bucket_fails_the_crawl_with_its_reason(glue):
    _, _, crawler = crawl(glue, f"no-such-bucket-{uuid.uuid4().hex[:6]}", "x")
    assert crawler["LastCrawl"]["Status"] == "FAILED"
    assert "NoSuchBucket" in crawler["LastCrawl"]["ErrorMessage"]


def test_stop_crawler_cancels_and_update_needs_ready(glue, s3, bucket, rows):
    body = rows.iloc[:3].to_csv(index=False).encode()
    for i in range(120):  # a crawl reads them one by one: long enough to be stopped
        s3.put_object(Bucket=bucket, Key=f"slow/f{i:03d}.csv", Body=body)
    name, db = f"crawler-{uuid.uuid4().hex[:8]}", f"db_{uuid.uuid4().hex[:8]}"
    glue.create_crawler(
        Name=name, Role=ROLE, DatabaseName=db, Targets={"S3Targets": [{"Path": f"{bucket}/slow"}]}
    )
    with pytest.raises(ClientError) as err:
        glue.stop_crawler(Name=name)
    assert err.value.response["Error"]["Code"] == "CrawlerNotRunningException"
    glue.start_crawler(Name=name)
    assert glue.get_crawler(Name=name)["Crawler"]["State"] == "RUNNING"
    with pytest.raises(ClientError) as err:
        glue.start_crawler(Name=name)
    assert err.value.response["Error"]["Code"] == "CrawlerRunningException"
    with pytest.raises(ClientError) as err:
        glue.update_crawler(Name=name, Description="while running")
    assert err.value.response["Error"]["Code"] == "CrawlerRunningException"
    glue.stop_crawler(Name=name)
    assert glue.get_crawler(Name=name)["Crawler"]["State"] == "STOPPING"
    crawler = wait_ready(glue, name)
    assert crawler["LastCrawl"]["Status"] == "CANCELLED"
    assert glue.list_crawls(CrawlerName=name)["Crawls"][0]["State"] == "STOPPED"
    glue.update_crawler(Name=name, Description="updated", TablePrefix="t_")
    got = glue.get_crawler(Name=name)["Crawler"]
    assert (got["Description"], got["TablePrefix"], got["Version"]) == ("updated", "t_", 2)
    assert got["Targets"]["S3Targets"] == [{"Path": f"{bucket}/slow"}]
    glue.start_crawler(Name=name)
    assert wait_ready(glue, name)["LastCrawl"]["Status"] == "SUCCEEDED"
    table = glue.get_table(DatabaseName=db, Name="t_slow")["Table"]
    assert table["Parameters"]["objectCount"] == "120"
    glue.delete_crawler(Name=name)
    with pytest.raises(ClientError) as err:
        glue.get_crawler(Name=name)
    assert err.value.response["Error"]["Code"] == "EntityNotFoundException"


def test_unsupported_crawler_features_answer_not_implemented(glue):
    for extra in (
        {"Targets": {"JdbcTargets": [{"ConnectionName": "c", "Path": "db/%"}]}},
        {"Targets": {"S3Targets": [{"Path": "s3://b/p"}]}, "Schedule": "cron(0 1 * * ? *)"},
        {"Targets": {"S3Targets": [{"Path": "s3://b/p"}]}, "Classifiers": ["mine"]},
    ):
        with pytest.raises(ClientError) as err:
            glue.create_crawler(Name=f"c-{uuid.uuid4().hex[:6]}", Role=ROLE, DatabaseName="d", **extra)
        assert err.value.response["Error"]["Code"] == "NotImplemented", extra


def test_glueetl_job_run_is_refused_not_run(glue, s3, bucket):
    marker = f"ran-{uuid.uuid4().hex[:6]}"
    script = f"import boto3\nboto3.client('s3').put_object(Bucket='{bucket}', Key='{marker}', Body=b'x')\n"
    s3.put_object(Bucket=bucket, Key="etl.py", Body=script.encode())
    job = f"etl-{uuid.uuid4().hex[:6]}"
    glue.create_job(
        Name=job,
        Role=ROLE,
        Command={"Name": "glueetl", "ScriptLocation": f"s3://{bucket}/etl.py"},
        GlueVersion="4.0",
        WorkerType="G.1X",
        NumberOfWorkers=2,
    )
    with pytest.raises(ClientError) as err:
        glue.start_job_run(JobName=job)
    error = err.value.response["Error"]
    assert error["Code"] == "NotImplemented"
    assert "glueetl" in error["Message"] and "pythonshell" in error["Message"]
    assert glue.get_job_runs(JobName=job)["JobRuns"] == []
    time.sleep(1)
    assert "Contents" not in s3.list_objects_v2(Bucket=bucket, Prefix=marker)


def test_glue_crawler_operator_deferrable(glue, s3, bucket, rows, aws, task_context):
    """The Amazon provider's GlueCrawlerOperator: creates the crawler, starts it, defers on its
    crawler_ready waiter; the trigger's event completes the task with the crawler's name."""
    import asyncio

    from airflow.providers.amazon.aws.operators.glue_crawler import GlueCrawlerOperator

    s3.put_object(Bucket=bucket, Key="op/in.csv", Body=rows.to_csv(index=False).encode())
    name, db = f"op-{uuid.uuid4().hex[:8]}", f"db_{uuid.uuid4().hex[:8]}"
    config = {
        "Name": name,
        "Role": ROLE,
        "DatabaseName": db,
        "Targets": {"S3Targets": [{"Path": f"{bucket}/op"}]},
    }
    crawl_task = GlueCrawlerOperator(task_id="crawl_task", config=config, deferrable=True, poll_interval=1)
    from airflow.providers.common.compat.sdk import TaskDeferred

    with pytest.raises(TaskDeferred) as deferred:
        crawl_task.execute(task_context(task_id="crawl_task"))
    trigger = deferred.value.trigger

    async def first_event():
        async for event in trigger.run():
            return event

    event = asyncio.run(first_event())
    assert event.payload["status"] == "success", event.payload
    result = getattr(crawl_task, deferred.value.method_name)(
        task_context(task_id="crawl_task"), event.payload
    )
    assert result == name
    assert columns(glue.get_table(DatabaseName=db, Name="op")["Table"]) == expected(rows, CSV_TYPES)
    # run again (non-deferrable): the existing crawler is updated and crawled again, and waited for
    crawl_again = GlueCrawlerOperator(task_id="crawl_again", config=config, poll_interval=1)
    assert crawl_again.execute(task_context(task_id="crawl_again")) == name
    assert glue.get_crawler(Name=name)["Crawler"]["LastCrawl"]["Status"] == "SUCCEEDED"


def test_crawler_tags_and_listing(glue):
    name = f"tagged-{uuid.uuid4().hex[:8]}"
    glue.create_crawler(
        Name=name,
        Role=ROLE,
        DatabaseName="d",
        Targets={"S3Targets": [{"Path": "s3://some-bucket/p"}]},
        Tags={"team": "ml"},
    )
    arn = f"arn:aws:glue:{glue.meta.region_name}:123456789012:crawler/{name}"
    assert glue.get_tags(ResourceArn=arn)["Tags"] == {"team": "ml"}
    assert name in glue.list_crawlers(Tags={"team": "ml"})["CrawlerNames"]
    assert name not in glue.list_crawlers(Tags={"team": "other"})["CrawlerNames"]
    got = glue.batch_get_crawlers(CrawlerNames=[name, "nope-nothing"])
    assert [c["Name"] for c in got["Crawlers"]] == [name] and got["CrawlersNotFound"] == ["nope-nothing"]
    with pytest.raises(ClientError) as err:
        glue.create_crawler(Name=name, Role=ROLE, DatabaseName="d", Targets={"S3Targets": [{"Path": "b/p"}]})
    assert err.value.response["Error"]["Code"] == "AlreadyExistsException"


def test_nested_json_headerless_csv_and_gzip(glue, s3, bucket, rows):
    import gzip

    records = [
        {
            "id": i,
            "big": 2**40 + i,
            "tags": ["a", "b"][: i % 3],
            "address": {"city": f"c{i}", "zip": 10000 + i},
        }
        for i in range(20)
    ]
    body = "\n".join(json.dumps(r) for r in records).encode()
    s3.put_object(Bucket=bucket, Key="mixed/nested/part.json.gz", Body=gzip.compress(body))
    # every field a string: Glue cannot tell a header from data, so the columns are col0, col1, ...
    s3.put_object(Bucket=bucket, Key="mixed/words/w.csv", Body=b"alpha,beta\ngamma,delta\nepsilon,zeta\n")
    _, db, crawler = crawl(glue, bucket, "mixed")
    assert crawler["LastCrawl"]["Status"] == "SUCCEEDED", crawler["LastCrawl"]
    nested = glue.get_table(DatabaseName=db, Name="nested")["Table"]
    assert columns(nested) == [
        ("id", "int"),
        ("big", "bigint"),
        ("tags", "array<string>"),
        ("address", "struct<city:string,zip:int>"),
    ]
    assert nested["Parameters"]["compressionType"] == "gzip"
    assert nested["Parameters"]["recordCount"] == str(len(records))
    words = glue.get_table(DatabaseName=db, Name="words")["Table"]
    assert columns(words) == [("col0", "string"), ("col1", "string")]
    assert "skip.header.line.count" not in words["Parameters"]
