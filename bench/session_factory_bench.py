"""Session factory benchmark: what the hooks' clients cost a task process with the Amazon provider's
``BaseSessionFactory`` and with this provider's ``SharedLoaderSessionFactory``.

    .venv/bin/python bench/session_factory_bench.py [--clients 3]

For each factory, in a fresh interpreter: one SageMaker hook's client first (imports, the first
parse of each API model), then ``--clients`` more SageMaker hooks and as many S3 hooks, each client
kept alive as an operator keeps its hook's; prints the seconds those clients took to build and the
memory they hold (tracemalloc, after a collection; a second interpreter, so that tracing does not
slow the timed one). No AWS call is made.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FACTORIES = {
    "BaseSessionFactory": "airflow.providers.amazon.aws.hooks.base_aws.BaseSessionFactory",
    "SharedLoaderSessionFactory": "aws_ml_provider.hooks.session_factory.SharedLoaderSessionFactory",
}

_CHILD = """
import gc, json, sys, time, tracemalloc
from airflow.providers.amazon.aws.hooks.s3 import S3Hook
from airflow.providers.amazon.aws.hooks.sagemaker import SageMakerHook

count, traced = int(sys.argv[1]), sys.argv[2] == "memory"
SageMakerHook(aws_conn_id="aws_default").conn
gc.collect()
if traced:
    tracemalloc.start()
started = time.perf_counter()
kept = []
for _ in range(count):
    kept += [SageMakerHook(aws_conn_id="aws_default").conn, S3Hook(aws_conn_id="aws_default").conn]
seconds = time.perf_counter() - started
gc.collect()
print(json.dumps({"memory": {"held_mb": round(tracemalloc.get_traced_memory()[0] / 2**20, 1)}} if traced
                 else {"time": {"seconds": round(seconds, 3)}}))
"""


def measure(factory: str, clients: int, home: str) -> dict:
    env = {
        **os.environ,
        "AIRFLOW_HOME": home,
        "AIRFLOW__AWS__SESSION_FACTORY": factory,
        "AIRFLOW_CONN_AWS_DEFAULT": json.dumps(
            {
                "conn_type": "aws",
                "login": "bench",
                "password": "bench",
                "extra": {"endpoint_url": "http://127.0.0.1:9", "region_name": "us-east-1"},
            }
        ),
        "PYTHONPATH": str(ROOT / "plugins"),
    }
    out = {}
    for mode in ("time", "memory"):  # timed without tracemalloc, which slows allocation down
        proc = subprocess.run(
            [sys.executable, "-c", _CHILD, str(clients), mode], capture_output=True, text=True, env=env
        )
        if proc.returncode:
            raise RuntimeError(proc.stderr[-3000:])
        out.update(json.loads(proc.stdout.strip().splitlines()[-1])[mode])
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=3, help="SageMaker and S3 hooks each, after the first")
    args = parser.parse_args(argv)
    import tempfile

    home = tempfile.mkdtemp(prefix="session-factory-bench-")
    results = {name: measure(path, args.clients, home) for name, path in FACTORIES.items()}
    for name, figures in results.items():
        print(
            f"{name:28} {args.clients} SageMaker + {args.clients} S3 clients: built in "
            f"{figures['seconds']} s, holding {figures['held_mb']} MB"
        )
    print(json.dumps({"clients": args.clients, **results}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
