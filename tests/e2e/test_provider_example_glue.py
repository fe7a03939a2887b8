"""The Amazon provider's own ``example_glue.py`` (tests/provider_examples/example_glue.py, its
adaptations listed at the top of that file) run with ``dag.test()`` against the twin: the crawler
really crawls the CSV (partition ``category=mixed``), the partition sensor finds the partition, the
Python shell job reads the crawled table and checks its schema, and the teardown removes it all.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

EXAMPLES = Path(__file__).resolve().parents[1] / "provider_examples"
EXAMPLE = "../tests/provider_examples/example_glue.py"
LOCAL_BUNDLE = "airflow.dag_processing.bundles.local.LocalDagBundle"
BODY = [
    "create_bucket",
    "upload_csv",
    "upload_script",
    "get_role_name",
    "crawl_s3",
    "wait_for_crawl",
    "wait_for_catalog_partition",
    "submit_glue_job",
    "wait_for_job",
    "glue_cleanup",
    "delete_bucket",
    "prune_logs",
]


@pytest.fixture(scope="module")
def example_run(dag_runner, twin):
    from tests.provider_examples import example_glue as example

    # the system test's environment has the job role (GlueJobOperator looks it up by name)
    iam = twin.client("iam")
    role = example.ROLE_ARN.rsplit("/", 1)[1]
    try:
        iam.create_role(
            RoleName=role,
            AssumeRolePolicyDocument=json.dumps(
                {
                    "Version": "2012-10-17",
                    "Statement": [
                        {
                            "Effect": "Allow",
                            "Principal": {"Service": "glue.amazonaws.com"},
                            "Action": "sts:AssumeRole",
                        }
                    ],
                }
            ),
        )
    except iam.exceptions.EntityAlreadyExistsException:
        pass
    # dag.test() runs a DAG of a configured bundle: the examples' folder is one, beside dags/
    bundles = [
        {"name": "dags-folder", "classpath": LOCAL_BUNDLE, "kwargs": {}},
        {"name": "provider-examples", "classpath": LOCAL_BUNDLE, "kwargs": {"path": str(EXAMPLES)}},
    ]
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST", json.dumps(bundles))
        return dag_runner("example_glue", dag_file=EXAMPLE), example


def test_example_glue_every_step_passes(example_run):
    run, _ = example_run
    failed = {t: s for t, s in run.task_states.items() if t in BODY and s != "success"}
    assert not failed, run.task_states
    assert run.task_states["watcher"] == "skipped"
    assert run.state == "success"
    # the job's run id went through XCom to the sensor (and the log pruning)
    assert str(run.xcom("submit_glue_job")).startswith("jr_")


def test_example_glue_teardown_removed_what_the_run_made(example_run, twin):
    _, example = example_run
    glue = twin.client("glue")
    for call, kwargs in (
        (glue.get_crawler, {"Name": f"{example.ENV_ID}_crawler"}),
        (glue.get_job, {"JobName": f"{example.ENV_ID}_glue_job"}),
        (glue.get_database, {"Name": f"{example.ENV_ID}_glue_db"}),
    ):
        with pytest.raises(ClientError) as err:
            call(**kwargs)
        assert err.value.response["Error"]["Code"] == "EntityNotFoundException"
    with pytest.raises(ClientError):
        twin.client("s3").head_bucket(Bucket=f"{example.ENV_ID}-bucket")
    streams = twin.client("logs").describe_log_streams(logGroupName="/aws-glue/crawlers")["logStreams"]
    assert f"{example.ENV_ID}_crawler" not in [s["logStreamName"] for s in streams]
