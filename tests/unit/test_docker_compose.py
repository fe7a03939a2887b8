"""docker-compose.yaml is consistent with the repository (no Docker engine needed: PyYAML + Airflow's own
parsers): one Airflow image at the pinned version, Airflow 3 commands, mounted paths that exist, the
aws_default connection pointing at the twin service, depends_on targets and healthchecks."""

from __future__ import annotations

import importlib
import re
import shlex
import sys
from importlib.metadata import version
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
AIRFLOW_COMMANDS = {"api-server", "scheduler", "dag-processor", "triggerer"}
CODE_MOUNTS = {"./dags", "./plugins", "./include"}


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yaml").read_text())


@pytest.fixture(scope="module")
def services(compose) -> dict:
    return compose["services"]


def _pinned_airflow_version() -> str:
    for line in (ROOT / "requirements" / "dev.in").read_text().splitlines():
        m = re.fullmatch(r"apache-airflow==([\w.]+)", line.strip())
        if m:
            return m.group(1)
    raise AssertionError("apache-airflow is not pinned in requirements/dev.in")


def _command(service: dict) -> list[str]:
    cmd = service.get("command", [])
    return shlex.split(cmd) if isinstance(cmd, str) else list(cmd)


def _airflow_services(services: dict) -> dict:
    return {name: s for name, s in services.items() if name.startswith("airflow-")}


def _base_images(service: dict) -> list[str]:
    dockerfile = (service.get("build") or {}).get("dockerfile_inline", "")
    return re.findall(r"^FROM\s+(\S+)", dockerfile, flags=re.M)


def test_pinned_version_is_the_installed_one():
    assert _pinned_airflow_version() == version("apache-airflow")


def test_every_airflow_service_runs_one_image_built_from_the_pinned_airflow(services):
    pinned = _pinned_airflow_version()
    python = f"python{sys.version_info.major}.{sys.version_info.minor}"
    airflow = _airflow_services(services)
    assert {"airflow-init", "airflow-apiserver", "airflow-scheduler"} <= set(airflow)
    images = {s["image"] for s in airflow.values()}
    assert len(images) == 1, images
    assert f"{pinned}-{python}" in images.pop()
    for name, service in airflow.items():
        assert _base_images(service) == [f"apache/airflow:{pinned}-{python}"], name
        dockerfile = service["build"]["dockerfile_inline"]
        # the extra run-time requirements are the MWAA ones, installed without moving Airflow
        assert "requirements.txt" in dockerfile and f'"apache-airflow=={pinned}"' in dockerfile, name
        assert (
            f"constraints-{pinned}/constraints-{sys.version_info.major}.{sys.version_info.minor}"
            in dockerfile
        )
    twin_bases = _base_images(services["aws-twin"])
    assert twin_bases and twin_bases[0].startswith(f"apache/airflow:{pinned}"), twin_bases
    assert (ROOT / "requirements.txt").is_file()


def test_commands_are_the_airflow_3_ones(services):
    commands = {name: _command(s) for name, s in _airflow_services(services).items()}
    long_running = {c[0] for c in commands.values() if len(c) == 1}
    assert long_running == AIRFLOW_COMMANDS
    for name, cmd in commands.items():
        assert "webserver" not in cmd, f"{name}: Airflow 2's webserver is the api-server in Airflow 3"
    # each command is a real subcommand of the installed airflow CLI
    from airflow.cli.cli_parser import get_parser

    subcommands = set(get_parser()._subparsers._group_actions[0].choices)
    assert AIRFLOW_COMMANDS <= subcommands


def test_airflow_environment(services):
    env = services["airflow-scheduler"]["environment"]
    assert env["AIRFLOW__CORE__EXECUTOR"] == "LocalExecutor"
    module, _, cls = env["AIRFLOW__CORE__AUTH_MANAGER"].rpartition(".")
    auth_manager = getattr(importlib.import_module(module), cls)
    assert auth_manager.__name__ == "SimpleAuthManager"
    assert env["AIRFLOW__CORE__LOAD_EXAMPLES"] == "False"
    db = urlsplit(env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"])
    assert db.scheme.startswith("postgresql") and db.hostname in services
    assert services[db.hostname]["image"] == "postgres:16"
    # the scheduler's workers reach the Execution API of the api-server service
    api = urlsplit(env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"])
    assert api.hostname == "airflow-apiserver" and api.path == "/execution/"
    assert f"127.0.0.1:{api.port}:{api.port}" in services["airflow-apiserver"]["ports"]
    # every Airflow process signs/validates task tokens with the same secret: one environment
    for name, service in _airflow_services(services).items():
        assert service["environment"]["AIRFLOW__API_AUTH__JWT_SECRET"] == env["AIRFLOW__API_AUTH__JWT_SECRET"]
        assert service["environment"]["AIRFLOW_CONN_AWS_DEFAULT"] == env["AIRFLOW_CONN_AWS_DEFAULT"], name


def test_aws_default_connection_points_at_the_twin_service(services):
    from airflow.models.connection import Connection

    raw = services["airflow-scheduler"]["environment"]["AIRFLOW_CONN_AWS_DEFAULT"]
    conn = Connection.from_json(raw, conn_id="aws_default")
    assert conn.conn_type == "aws"
    endpoint = urlsplit(conn.extra_dejson["endpoint_url"])
    assert endpoint.scheme == "http"
    twin = services[endpoint.hostname]  # the host is a service name on the compose network
    cmd = _command(twin)
    assert cmd[0] == "serve" and twin["entrypoint"] == ["python", "-m", "aws_twin"]
    assert cmd[cmd.index("--host") + 1] == "0.0.0.0"
    assert int(cmd[cmd.index("--port") + 1]) == endpoint.port
    assert f"127.0.0.1:{endpoint.port}:{endpoint.port}" in twin["ports"]
    assert f":{endpoint.port}/" in " ".join(twin["healthcheck"]["test"])
    assert conn.extra_dejson["region_name"]
    # the twin service runs this repository's code
    assert any(v.split(":")[0] == "." for v in twin["volumes"])
    # the twin's code and the provider tables it imports (plugins/aws_ml_provider/utils)
    assert twin["environment"]["PYTHONPATH"].split(":") == [
        twin["working_dir"],
        f"{twin['working_dir']}/plugins",
    ]


def test_mounted_paths_exist(services):
    for name, service in services.items():
        for volume in service.get("volumes", []):
            host = volume.split(":")[0]
            if not host.startswith("."):
                continue  # a named volume
            if host in CODE_MOUNTS or host == ".":
                assert (ROOT / host).is_dir(), f"{name}: {host} missing"
    mounts = {v.split(":")[0]: v.split(":")[1] for v in services["airflow-scheduler"]["volumes"]}
    assert CODE_MOUNTS | {"./logs", "./config"} <= set(mounts)
    # DAGs find include/ next to the dags folder, as in the repository
    assert Path(mounts["./include"]).parent == Path(mounts["./dags"]).parent
    # logs/ and config/ are created by airflow-init and not committed
    ignored = (ROOT / ".gitignore").read_text().split()
    assert {"logs/", "config/airflow.cfg"} <= {p.lstrip("/") for p in ignored}


def test_depends_on_targets_exist_and_healthchecks_are_present(compose, services):
    for name, service in services.items():
        depends = service.get("depends_on", {})
        targets = depends if isinstance(depends, list) else list(depends)
        for target in targets:
            assert target in services, f"{name} depends on unknown {target}"
            condition = depends[target]["condition"] if isinstance(depends, dict) else None
            if condition == "service_healthy":
                assert "healthcheck" in services[target], f"{name} waits for {target}'s missing healthcheck"
            if condition == "service_completed_successfully":
                assert target == "airflow-init"
        long_running = name not in {"airflow-init", "airflow-cli"}
        if long_running:
            assert service.get("healthcheck", {}).get("test"), f"{name} has no healthcheck"
    for name in {"airflow-apiserver", "airflow-scheduler", "airflow-dag-processor", "airflow-triggerer"}:
        depends = services[name]["depends_on"]
        assert depends["airflow-init"]["condition"] == "service_completed_successfully"
        assert depends["postgres"]["condition"] == "service_healthy"
        assert depends["aws-twin"]["condition"] == "service_healthy"
    # named volumes are declared
    for service in services.values():
        for volume in service.get("volumes", []):
            host = volume.split(":")[0]
            if not host.startswith((".", "/")):
                assert host in compose.get("volumes", {})
    # the scheduler's health endpoint is only served when enabled
    assert services["airflow-scheduler"]["environment"]["AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK"] == "True"
    assert services["airflow-init"]["environment"]["_AIRFLOW_DB_MIGRATE"] == "true"


def test_published_ports_bind_127_0_0_1_only(services):
    """No login worth the name (every user admin, a fixed JWT secret, the twin's open S3): nothing is
    published beyond this machine."""
    published = {name: s["ports"] for name, s in services.items() if s.get("ports")}
    assert {"airflow-apiserver", "aws-twin"} <= set(published)
    for name, ports in published.items():
        for port in ports:
            spec = port if isinstance(port, str) else f"{port.get('host_ip', '')}:{port.get('published')}"
            assert spec.startswith("127.0.0.1:") and spec.count(":") == 2, f"{name}: {port}"
