"""``make demo``'s console: warnings, errors and the summary; every other log line goes to the log file
(scripts/demo.py ``logs_to_file``); ``make demo V=1 KEEP=1`` passes ``-v --keep-twin``."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = r"""
import logging, subprocess, sys, warnings
sys.path.insert(0, sys.argv[2])
import demo
from pathlib import Path

logging.basicConfig(level=logging.INFO, format="%(levelname)s - %(message)s")
print("before: on the console")
with demo.logs_to_file(Path(sys.argv[1])):
    print("2026-11-30T11:36:46Z [info     ] No new log from the Glue Job in /aws-glue/python-jobs/error")
    logging.getLogger("task").info("an info line")
    logging.getLogger("task").warning("the quality gate is close")
    print("2026-11-30T11:29:17Z [warning  ] old API [py.warnings] category=DeprecatedImportWarning")
    print("2026-11-30T11:29:18Z [error    ] Task failed with exception [airflow.task]", file=sys.stderr)
    subprocess.run([sys.executable, "-c", "print('child info line'); print('child ERROR - broken')"])
    try:
        raise LookupError("Job with name: churn-xgboost-preprocess not found.")
    except LookupError:
        logging.getLogger("task").warning("no previous run", exc_info=True)
print("after: the summary")
"""


def test_quiet_console_shows_warnings_errors_and_the_summary_and_logs_everything(tmp_path):
    log = tmp_path / "demo.log"
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(log), str(ROOT / "scripts")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    console = proc.stdout + proc.stderr
    for shown in (
        "before: on the console",
        "WARNING - the quality gate is close",
        "[error    ] Task failed",
        "child ERROR - broken",
        "Traceback (most recent call last):",
        "LookupError: Job with name: churn-xgboost-preprocess not found.",  # what the traceback says
        "after: the summary",
    ):
        assert shown in console, console
    for hidden in (
        "No new log from the Glue Job",
        "an info line",
        "DeprecatedImportWarning",
        "child info",
        'raise LookupError("Job',  # the traceback's middle stays in the log
    ):
        assert hidden not in console, console
    logged = log.read_text()
    for line in ("No new log", "an info line", "the quality gate is close", "Task failed", "child info line"):
        assert line in logged
    assert "before:" not in logged and "after:" not in logged


def test_make_demo_flags():
    def command(*args: str) -> str:
        out = subprocess.run(
            ["make", "-n", "demo", *args], cwd=ROOT, capture_output=True, text=True, timeout=60
        )
        assert out.returncode == 0, out.stderr
        return next(line for line in out.stdout.splitlines() if "scripts/demo.py" in line)

    assert command().split()[-1] == "scripts/demo.py"
    assert command("V=1", "KEEP=1").split()[-2:] == ["-v", "--keep-twin"]
    assert command("V=0").split()[-1] == "scripts/demo.py"
