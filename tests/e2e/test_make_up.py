"""``make up`` / ``make down`` as a user runs them: scripts/up.sh on free ports with a fresh AIRFLOW_HOME,
then what it left listening (127.0.0.1 only), the login (no anonymous access, the printed password
works), the parallelism (4, and 4 LocalExecutor workers), then scripts/down.sh and nothing left running.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer")

pytestmark = [pytest.mark.deployment, pytest.mark.timeout(900)]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _group_pids(pgids: set[int]) -> set[int]:
    """Every live process whose process group is one of ``pgids``."""
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != "Z" and int(fields[2]) in pgids:  # state, ppid, pgrp
            found.add(int(entry.name))
    return found


def _listening(pids: set[int]) -> list[tuple[str, int]]:
    """(address, port) of the TCP sockets in LISTEN state that ``pids`` hold, IPv4 and IPv6."""
    inodes = set()
    for pid in pids:
        try:
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                target = os.readlink(fd)
                if target.startswith("socket:["):
                    inodes.add(target[8:-1])
        except OSError:
            continue
    found = []
    for table, family in (("/proc/net/tcp", socket.AF_INET), ("/proc/net/tcp6", socket.AF_INET6)):
        for line in Path(table).read_text().splitlines()[1:]:
            cols = line.split()
            local, state, inode = cols[1], cols[3], cols[9]
            if state != "0A" or inode not in inodes:  # 0A: TCP_LISTEN
                continue
            hex_addr, hex_port = local.split(":")
            raw = bytes.fromhex(hex_addr)
            # /proc/net/tcp* print the address as 32-bit words in host (little-endian) order
            raw = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
            found.append((socket.inet_ntop(family, raw), int(hex_port, 16)))
    return found


def _http(method: str, url: str, body: dict | None = None, token: str | None = None):
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, headers=headers, method=method)
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as err:
        return err.code, None


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    home = tmp_path_factory.mktemp("airflow-up")
    ports = {"TWIN_PORT": _free_port(), "AIRFLOW_PORT": _free_port(), "AIRFLOW_LOG_PORT": _free_port()}
    # the test session's own Airflow settings (AIRFLOW_HOME, its SQLite URL, ...) stay out
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "AWS_TWIN"))}
    env.update({k: str(v) for k, v in ports.items()}, AIRFLOW_HOME=str(home), READY_TIMEOUT="400")
    started = time.monotonic()
    proc = subprocess.run(
        [str(ROOT / "scripts" / "up.sh")], env=env, capture_output=True, text=True, timeout=600
    )
    seconds = round(time.monotonic() - started, 1)
    state = home / "run"
    pgids = {int(p.read_text()) for p in state.glob("*.pid")}
    try:
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        yield {"home": home, "env": env, "out": proc.stdout, "seconds": seconds, "pgids": pgids, **ports}
    finally:
        down = subprocess.run(
            [str(ROOT / "scripts" / "down.sh")], env=env, capture_output=True, text=True, timeout=120
        )
        print(f"make up took {seconds}s; down: {down.stdout}")
        left = _group_pids(pgids)
        for pid in left:  # do not leak processes into the rest of the session
            os.kill(pid, 9)
        assert down.returncode == 0, down.stdout + down.stderr
        assert not left, f"processes left after down.sh: {left}"
        assert not list(state.glob("*.pid"))


def test_up_listens_on_127_0_0_1_only(stack):
    pgids = stack["pgids"]
    names = {p.stem for p in (stack["home"] / "run").glob("*.pid")}
    assert names == {*COMPONENTS, "serve-logs", "twin"}
    sockets = _listening(_group_pids(pgids))
    ports = {port for _, port in sockets}
    assert {stack["TWIN_PORT"], stack["AIRFLOW_PORT"], stack["AIRFLOW_LOG_PORT"]} <= ports, sockets
    assert {addr for addr, _ in sockets} == {"127.0.0.1"}, sockets
    # the log server answers on 127.0.0.1 (a request without its signed token is refused, not dropped)
    status, _ = _http("GET", f"http://127.0.0.1:{stack['AIRFLOW_LOG_PORT']}/log/x.log")
    assert status == 403


def test_api_needs_a_login_and_takes_the_printed_password(stack):
    url = f"http://127.0.0.1:{stack['AIRFLOW_PORT']}"
    # anonymous: refused, and no free token either (that only exists with all_admins)
    assert _http("GET", f"{url}/api/v2/dags")[0] in (401, 403)
    assert _http("GET", f"{url}/auth/token")[0] in (401, 403)
    assert _http("POST", f"{url}/auth/token", {"username": "admin", "password": "admin"})[0] in (401, 403)
    match = re.search(r"user admin, password (\S+)\s+\(generated now, shown once", stack["out"])
    assert match, stack["out"]
    status, body = _http("POST", f"{url}/auth/token", {"username": "admin", "password": match.group(1)})
    assert status == 201 or status == 200, status
    status, dags = _http("GET", f"{url}/api/v2/dags", token=body["access_token"])
    assert status == 200
    assert {"churn_xgboost_pipeline", "expense_documents"} <= {d["dag_id"] for d in dags["dags"]}
    # the password is printed once: the passwords file keeps it, readable by the owner only
    passwords = stack["home"] / "simple_auth_manager_passwords.json.generated"
    assert json.loads(passwords.read_text()) == {"admin": match.group(1)}
    assert passwords.stat().st_mode & 0o077 == 0


def test_at_most_four_tasks_at_a_time(stack):
    run = stack["home"] / "run"
    scheduler = int((run / "scheduler.pid").read_text())
    # the configuration the scheduler process runs with, read back by the airflow CLI
    environ = _environ(scheduler)
    got = subprocess.run(
        [sys.executable, "-m", "airflow", "config", "get-value", "core", "parallelism"],
        env=environ,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert got.returncode == 0, got.stderr[-2000:]
    assert got.stdout.strip() == "4"
    assert environ["AIRFLOW_HOME"] == str(stack["home"])
    # and the LocalExecutor started that many workers, not one per CPU thread
    workers = [
        pid
        for pid in _group_pids({scheduler})
        if b"LocalExecutor" in Path(f"/proc/{pid}/cmdline").read_bytes()
    ]
    assert len(workers) == 4, workers


def _environ(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes().decode()
    return dict(item.split("=", 1) for item in raw.split("\0") if "=" in item)


def test_the_printed_viewer_token_opens_twin_objects_and_reaches_the_tasks(stack):
    import boto3

    match = re.search(r"S3 object viewer:\s+(\S+)/_twin/s3/<bucket>/<key>\?token=(\S+)", stack["out"])
    assert match, stack["out"]
    twin_url, token = match.groups()
    assert twin_url == f"http://127.0.0.1:{stack['TWIN_PORT']}"
    s3 = boto3.client(
        "s3",
        endpoint_url=twin_url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    s3.create_bucket(Bucket="make-up-test")
    s3.put_object(Bucket="make-up-test", Key="r/report.html", Body=b"<p>report</p>", ContentType="text/html")
    url = f"{twin_url}/_twin/s3/make-up-test/r/report.html"
    with urllib.request.urlopen(f"{url}?token={token}", timeout=30) as resp:
        assert resp.read() == b"<p>report</p>"
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(url, timeout=30)
    assert refused.value.code == 403
    # the scheduler (whose LocalExecutor workers run the tasks and build the Report link) has it too
    scheduler = int((stack["home"] / "run" / "scheduler.pid").read_text())
    assert _environ(scheduler)["AWS_TWIN_VIEWER_TOKEN"] == token
