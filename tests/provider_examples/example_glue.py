"""The Amazon provider's own Glue example DAG, step for step, run against aws_twin.

Source: apache-airflow-providers-amazon 9.34.0,
``providers/amazon/tests/system/amazon/aws/example_glue.py`` (apache/airflow, Apache-2.0). The same
task ids, operators, sensors, arguments, data and chain; written out here with these adaptations:

1. No ``SystemTestContextBuilder``: ``ENV_ID`` and ``ROLE_ARN`` are fixed names (the test creates the
   role in the twin's IAM first, as the system test's environment has it).
2. The job script is a Python shell script (``Command.Name`` ``pythonshell``, 0.0625 DPU) instead of
   the original's Spark script (``glueetl``, Glue 3.0, 2 x G.1X), which the twin refuses (it runs no
   Spark). The script does what the Spark one does: reads the crawled catalog table ``input``, prints
   how many items it has, writes them as CSV under ``s3://<bucket>/output``; and it checks the
   table's schema against the CSV, failing the job run when the crawl got it wrong.
3. ``glue_cleanup`` uses the ``aws_default`` connection (a ``GlueCrawlerHook``'s client) instead of a
   bare ``boto3.client("glue")``, so it reaches the twin like every other task.
4. ``prune_logs`` (a system-test utility) is a small task here that deletes the same log streams;
   the Python shell job logs to ``/aws-glue/python-jobs/{output,error}`` (``/aws-glue/jobs/...`` is
   the Spark jobs' group).
5. ``watcher`` (tests_common) is a task here with the same rule: it fails the run when any task failed.
6. Poke intervals of 1 second (the twin's crawl and job take seconds, not minutes), and a 120 s
   timeout on the catalog partition sensor (its default is 7 days).
7. No ``get_test_run``: tests/e2e/test_provider_example_glue.py runs the DAG with ``dag.test()``.
"""

from __future__ import annotations

from datetime import datetime

from airflow.providers.amazon.aws.hooks.glue_crawler import GlueCrawlerHook
from airflow.providers.amazon.aws.operators.glue import GlueJobOperator
from airflow.providers.amazon.aws.operators.glue_crawler import GlueCrawlerOperator
from airflow.providers.amazon.aws.operators.s3 import (
    S3CreateBucketOperator,
    S3CreateObjectOperator,
    S3DeleteBucketOperator,
)
from airflow.providers.amazon.aws.sensors.glue import GlueJobSensor
from airflow.providers.amazon.aws.sensors.glue_catalog_partition import GlueCatalogPartitionSensor
from airflow.providers.amazon.aws.sensors.glue_crawler import GlueCrawlerSensor
from airflow.sdk import DAG, chain, task
from airflow.utils.trigger_rule import TriggerRule

DAG_ID = "example_glue"
ENV_ID = "twinexample"  # adaptation 1
ROLE_ARN = "arn:aws:iam::123456789012:role/example-glue-role"  # adaptation 1

# the sample data of the original
EXAMPLE_CSV = """product,value
apple,0.5
milk,2.5
bread,4.0
"""

# adaptation 2: a Python shell script doing what the original Spark script does
EXAMPLE_SCRIPT = """
import csv, io, sys
import boto3

glue, s3 = boto3.client("glue"), boto3.client("s3")
table = glue.get_table(DatabaseName="{db_name}", Name="input")["Table"]
columns = [(c["Name"], c["Type"]) for c in table["StorageDescriptor"]["Columns"]]
keys = [k["Name"] for k in table["PartitionKeys"]]
if columns != [("product", "string"), ("value", "double")] or keys != ["category"]:
    sys.exit("crawled schema is wrong: columns %s, partition keys %s" % (columns, keys))
rows = []
for partition in glue.get_partitions(DatabaseName="{db_name}", TableName="input")["Partitions"]:
    location = partition["StorageDescriptor"]["Location"]
    bucket, _, prefix = location[len("s3://"):].partition("/")
    for obj in s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", []):
        text = s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read().decode()
        for row in list(csv.reader(io.StringIO(text)))[1:]:
            rows.append(row + partition["Values"])
print("There are %s items in the table" % len(rows))
out = io.StringIO()
csv.writer(out).writerows(rows)
s3.put_object(Bucket="{bucket_name}", Key="output/part-00000.csv", Body=out.getvalue().encode())
"""


@task
def get_role_name(arn: str) -> str:
    return arn.split("/")[-1]


@task(trigger_rule=TriggerRule.ALL_DONE)
def glue_cleanup(crawler_name: str, job_name: str, db_name: str) -> None:
    client = GlueCrawlerHook(aws_conn_id="aws_default").glue_client  # adaptation 3

    client.delete_crawler(Name=crawler_name)
    client.delete_job(JobName=job_name)
    client.delete_database(Name=db_name)


@task(trigger_rule=TriggerRule.ALL_DONE)
def prune_logs(logs: list[tuple[str, str | None]]) -> None:
    """Adaptation 4: delete the log streams (group, stream prefix) the run wrote."""
    from airflow.providers.amazon.aws.hooks.logs import AwsLogsHook

    client = AwsLogsHook(aws_conn_id="aws_default").conn
    for group, prefix in logs:
        if not prefix:
            continue
        try:
            streams = client.describe_log_streams(logGroupName=group, logStreamNamePrefix=prefix)
        except client.exceptions.ResourceNotFoundException:
            continue
        for stream in streams["logStreams"]:
            client.delete_log_stream(logGroupName=group, logStreamName=stream["logStreamName"])


@task(trigger_rule=TriggerRule.ONE_FAILED, retries=0)
def watcher() -> None:
    """Adaptation 5: fail the run when any task failed (the teardown tasks run anyway)."""
    raise RuntimeError("Failing task because one or more upstream tasks failed.")


with DAG(
    dag_id=DAG_ID,
    schedule="@once",
    start_date=datetime(2021, 1, 1),
    tags=["example"],
    catchup=False,
) as dag:
    env_id = ENV_ID
    role_arn = ROLE_ARN
    glue_crawler_name = f"{env_id}_crawler"
    glue_db_name = f"{env_id}_glue_db"
    glue_job_name = f"{env_id}_glue_job"
    bucket_name = f"{env_id}-bucket"
    role_name = get_role_name(role_arn)

    glue_crawler_config = {
        "Name": glue_crawler_name,
        "Role": role_arn,
        "DatabaseName": glue_db_name,
        "Targets": {"S3Targets": [{"Path": f"{bucket_name}/input"}]},
    }

    create_bucket = S3CreateBucketOperator(task_id="create_bucket", bucket_name=bucket_name)

    upload_csv = S3CreateObjectOperator(
        task_id="upload_csv",
        s3_bucket=bucket_name,
        s3_key="input/category=mixed/input.csv",
        data=EXAMPLE_CSV,
        replace=True,
    )

    upload_script = S3CreateObjectOperator(
        task_id="upload_script",
        s3_bucket=bucket_name,
        s3_key="etl_script.py",
        data=EXAMPLE_SCRIPT.format(db_name=glue_db_name, bucket_name=bucket_name),
        replace=True,
    )

    crawl_s3 = GlueCrawlerOperator(task_id="crawl_s3", config=glue_crawler_config)
    # the original sets this to test the sensor below
    crawl_s3.wait_for_completion = False

    wait_for_crawl = GlueCrawlerSensor(task_id="wait_for_crawl", crawler_name=glue_crawler_name)
    wait_for_crawl.timeout = 500
    wait_for_crawl.poke_interval = 1  # adaptation 6

    wait_for_catalog_partition = GlueCatalogPartitionSensor(
        task_id="wait_for_catalog_partition",
        table_name="input",
        database_name=glue_db_name,
        expression="category='mixed'",
    )
    wait_for_catalog_partition.poke_interval = 1  # adaptation 6
    wait_for_catalog_partition.timeout = 120  # adaptation 6

    submit_glue_job = GlueJobOperator(
        task_id="submit_glue_job",
        job_name=glue_job_name,
        script_location=f"s3://{bucket_name}/etl_script.py",
        s3_bucket=bucket_name,
        iam_role_name=role_name,
        # adaptation 2: a Python shell job (the original: GlueVersion 3.0, 2 x G.1X, glueetl)
        num_of_dpus=0.0625,
        create_job_kwargs={
            "Command": {
                "Name": "pythonshell",
                "PythonVersion": "3.9",
                "ScriptLocation": f"s3://{bucket_name}/etl_script.py",
            },
        },
    )
    # the original sets this to test the sensor below
    submit_glue_job.wait_for_completion = False

    wait_for_job = GlueJobSensor(
        task_id="wait_for_job",
        job_name=glue_job_name,
        run_id=submit_glue_job.output,
        verbose=True,
    )
    wait_for_job.poke_interval = 1  # adaptation 6 (the original: 5)

    delete_bucket = S3DeleteBucketOperator(
        task_id="delete_bucket",
        trigger_rule=TriggerRule.ALL_DONE,
        bucket_name=bucket_name,
        force_delete=True,
    )

    log_cleanup = prune_logs(
        [
            ("/aws-glue/crawlers", glue_crawler_name),
            ("/aws-glue/python-jobs/output", submit_glue_job.output),  # adaptation 4
            ("/aws-glue/python-jobs/error", submit_glue_job.output),
        ]
    )

    chain(
        # TEST SETUP
        create_bucket,
        upload_csv,
        upload_script,
        # TEST BODY
        crawl_s3,
        wait_for_crawl,
        wait_for_catalog_partition,
        submit_glue_job,
        wait_for_job,
        # TEST TEARDOWN
        glue_cleanup(glue_crawler_name, glue_job_name, glue_db_name),
        delete_bucket,
        log_cleanup,
    )

    list(dag.tasks) >> watcher()
