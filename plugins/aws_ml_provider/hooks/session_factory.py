"""A session factory whose boto3 sessions share one botocore data loader per process.

Every boto3 session builds its own botocore ``Loader``, and the loader caches each AWS API model it
reads: a task that builds hooks for SageMaker, S3 and Glue parses ``endpoints.json`` once per hook
and the SageMaker model (2.4 MB of JSON) once per SageMaker hook, and keeps every copy alive as long
as the hook. The Amazon provider already shares one loader between its async (triggerer) sessions
for that reason (boto/botocore#3078); this factory does the same for the synchronous sessions of
hooks, operators and sensors. Three more SageMaker and three more S3 hooks' clients in a task
process: built in 0.13 s instead of 0.85 s, holding 8.4 MB instead of 83 MB
(``bench/session_factory_bench.py``); a ``dag.test()`` of the churn pipeline, where all tasks run in
one process, takes 12.3 s instead of 13.7 s (``bench/pipeline_bench.py``).

Enable it with the Amazon provider's own setting (read when the provider's ``base_aws`` is first
imported), on MWAA as the configuration option ``aws.session_factory``::

    [aws]
    session_factory = aws_ml_provider.hooks.session_factory.SharedLoaderSessionFactory

or ``AIRFLOW__AWS__SESSION_FACTORY=aws_ml_provider.hooks.session_factory.SharedLoaderSessionFactory``.

Only what a session would load anyway is shared: the loader of the first session built for a
``data_path`` setting (``AWS_DATA_PATH``, else botocore's and boto3's own data) serves every later
session with the same setting. Credentials, region, profile and clients stay per session. Sessions
that assume a role (the connection's ``role_arn``) are built by the base factory, unchanged.
"""

from __future__ import annotations

import threading
from typing import Any

import boto3
import botocore.session
from airflow.providers.amazon.aws.hooks.base_aws import BaseSessionFactory

_lock = threading.Lock()
#: the shared loader of each ``data_path`` setting (None: botocore's default search paths)
_loaders: dict[str | None, Any] = {}


def shared_loader_session(session_kwargs: dict[str, Any]) -> boto3.session.Session:
    """``boto3.session.Session(**session_kwargs)`` whose botocore loader is the process's shared one."""
    core = botocore.session.Session()
    data_path = core.get_config_variable("data_path")
    with _lock:
        loader = _loaders.get(data_path)
        if loader is not None:
            core.register_component("data_loader", loader)
        session = boto3.session.Session(botocore_session=core, **session_kwargs)
        loader = _loaders.setdefault(data_path, core.get_component("data_loader"))
        # boto3 appends its own data folder to the loader of every session it builds: once is enough
        loader.search_paths[:] = list(dict.fromkeys(loader.search_paths))
    return session


class SharedLoaderSessionFactory(BaseSessionFactory):
    """:class:`BaseSessionFactory` whose sessions from the connection share one data loader."""

    def _create_basic_session(self, session_kwargs: dict[str, Any]) -> boto3.session.Session:
        return shared_loader_session(session_kwargs)
