"""aws_ml_provider.hooks.session_factory: the hooks' boto3 sessions share one botocore loader (each
API model parsed once per process) while credentials and regions stay per connection; real clients
against the twin over HTTP."""

from __future__ import annotations

import json

import botocore.loaders
from airflow.providers.amazon.aws.hooks import base_aws
from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook
from airflow.providers.amazon.aws.hooks.sagemaker import SageMakerHook
from aws_ml_provider.hooks.session_factory import SharedLoaderSessionFactory

FACTORY = f"{SharedLoaderSessionFactory.__module__}.{SharedLoaderSessionFactory.__qualname__}"


def _count_json_files(monkeypatch) -> list[str]:
    """Every API data file botocore parses from now on (its path)."""
    read: list[str] = []
    original = botocore.loaders.JSONFileLoader.load_file

    def load_file(self, file_path):
        read.append(file_path)
        return original(self, file_path)

    monkeypatch.setattr(botocore.loaders.JSONFileLoader, "load_file", load_file)
    return read


def test_the_test_session_uses_the_factory_as_a_deployment_configures_it():
    # tests/conftest.py sets AIRFLOW__AWS__SESSION_FACTORY before Airflow is imported, as the demo,
    # make up and docker-compose do: the provider resolved it into its module-level factory
    assert base_aws.SessionFactory is SharedLoaderSessionFactory
    assert base_aws.conf.get("aws", "session_factory") == FACTORY


def test_a_second_hook_parses_no_api_model_and_both_clients_work(twin, airflow_aws_conn, monkeypatch):
    first = SageMakerHook(aws_conn_id="aws_default")
    first.conn.list_training_jobs()
    read = _count_json_files(monkeypatch)
    second = SageMakerHook(aws_conn_id="aws_default")
    assert second.get_session() is not first.get_session()
    assert second.conn.list_endpoints()["Endpoints"] is not None
    # the SageMaker model, endpoints.json, the retry and default-configuration data: all cached
    assert read == []
    assert second.conn._loader is first.conn._loader

    # the unshared factory, as a control: a new session parses them again
    plain = base_aws.BaseSessionFactory(conn=first.conn_config).create_session()
    plain.client("sagemaker", endpoint_url=twin.url, region_name=twin.region)
    assert any("sagemaker" in path for path in read)


def test_credentials_and_regions_stay_per_connection(twin, monkeypatch):
    conn = twin.airflow_connection()
    other = {**conn, "login": "AKIDOTHERACCOUNT", "extra": {**conn["extra"], "region_name": "eu-west-1"}}
    monkeypatch.setenv("AIRFLOW_CONN_AWS_ONE", json.dumps(conn))
    monkeypatch.setenv("AIRFLOW_CONN_AWS_TWO", json.dumps(other))
    one = AwsBaseHook(aws_conn_id="aws_one", client_type="s3")
    two = AwsBaseHook(aws_conn_id="aws_two", client_type="s3")
    assert one.conn._loader is two.conn._loader
    assert one.get_credentials().access_key == conn["login"]
    assert two.get_credentials().access_key == "AKIDOTHERACCOUNT"
    assert (one.conn.meta.region_name, two.conn.meta.region_name) == (twin.region, "eu-west-1")
    one.conn.create_bucket(Bucket="session-factory-one")
    assert "session-factory-one" in [b["Name"] for b in one.conn.list_buckets()["Buckets"]]


def test_search_paths_do_not_grow_with_the_sessions(airflow_aws_conn):
    SageMakerHook(aws_conn_id="aws_default").get_session()
    loader = SageMakerHook(aws_conn_id="aws_default").get_session()._loader
    before = list(loader.search_paths)
    for _ in range(20):
        SageMakerHook(aws_conn_id="aws_default").get_session()
    assert loader.search_paths == before
    assert len(set(before)) == len(before)
