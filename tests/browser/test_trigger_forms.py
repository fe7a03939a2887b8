"""Every DAG of dags/ runs from its Airflow trigger form with the defaults, as a user does it.

One deployment-shaped Airflow for the module (tests/deployment.py: api-server, scheduler,
dag-processor, triggerer, LocalExecutor on PostgreSQL, simple auth manager with every user an admin,
``aws_default`` on a twin of its own). For each DAG (discovered from dags/, so a new DAG gets this
test too) headless Chromium opens the DAG's page, opens the trigger form with the "Trigger" button,
types nothing, leaves "Unpause on trigger" as it is, and clicks the form's Trigger button: the button
must be enabled with the defaults, no field may say "This field is required", and the manual run
the click created (its conf: the Params' defaults) must reach ``success`` (polled through the REST
API). A screenshot of the page goes to ``tmp_path`` when a step fails.
"""

from __future__ import annotations

import time
import urllib.error
import urllib.parse
from pathlib import Path

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.deployment, pytest.mark.timeout(1800)]

ROOT = Path(__file__).resolve().parents[2]
REQUIRED = "This field is required"
#: the slowest DAG run (the churn pipeline: Glue, training, endpoint on the twin) takes a few minutes
#: on a busy machine
RUN_TIMEOUT_S = 900


def _dag_ids() -> list[str]:
    """The DAG ids of dags/, parsed as the dag-processor does (at collection: the ids parametrize)."""
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(ROOT / "dags"))
    assert not bag.import_errors, bag.import_errors
    return sorted(bag.dags)


DAG_IDS = _dag_ids()


@pytest.fixture(scope="module")
def airflow(deployment):
    """The deployment with every DAG of dags/ parsed, without an import error."""
    dep = deployment

    def parsed():
        dags = dep.request("GET", "/api/v2/dags?limit=100")["dags"]
        return {d["dag_id"] for d in dags} >= set(DAG_IDS)

    dep.wait("the DAGs of dags/ to be parsed", parsed, timeout=300, interval=2)
    errors = _get(dep, "/api/v2/importErrors")
    assert errors["total_entries"] == 0, errors
    return dep


def _get(dep, path: str, tries: int = 5):
    """GET from the REST API, tried again when the api-server (on a busy machine) is slow to answer."""
    for attempt in range(1, tries + 1):
        try:
            return dep.request("GET", path)
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            if attempt == tries:
                raise
            time.sleep(2)


def _runs(dep, dag_id: str) -> dict[str, dict]:
    runs = _get(dep, f"/api/v2/dags/{urllib.parse.quote(dag_id)}/dagRuns?limit=100")["dag_runs"]
    return {r["dag_run_id"]: r for r in runs}


def _defaults(dep, dag_id: str) -> dict:
    params = _get(dep, f"/api/v2/dags/{urllib.parse.quote(dag_id)}/details")["params"] or {}
    return {name: spec["value"] for name, spec in params.items()}


def _screenshot(page, path: Path) -> None:
    """The page as it is, for the report of a failure (never masking that failure)."""
    try:
        page.screenshot(path=str(path), full_page=True, timeout=60_000)
        print(f"screenshot: {path}")
    except Exception as exc:  # the test's own failure is what matters
        print(f"no screenshot ({exc!r})")


@pytest.mark.parametrize("dag_id", DAG_IDS)
def test_dag_runs_from_its_trigger_form_with_the_defaults(dag_id, airflow, page, tmp_path):
    dep = airflow
    shot = tmp_path / f"{dag_id}.png"
    # the machine runs Airflow, the twin and Chromium at once: rendering the form can take a minute
    page.set_default_timeout(180_000)
    before = set(_runs(dep, dag_id))
    try:
        page.goto(f"{dep.url}/dags/{dag_id}")
        # the simple auth manager with all admins logs the browser in by itself (/auth/... then back)
        page.wait_for_url(f"**/dags/{dag_id}")
        page.get_by_role("button", name="Trigger Dag").click()
        form = page.get_by_role("dialog")
        form.wait_for()
        assert form.get_by_text(f"Trigger Dag - {dag_id}").is_visible()
        trigger = form.get_by_role("button", name="Trigger", exact=True)
        trigger.wait_for()
        page.wait_for_timeout(1_000)  # the form validates every field once it is rendered
        required = form.get_by_text(REQUIRED)
        assert required.count() == 0, f"{required.count()} field(s) say '{REQUIRED}' with the defaults"
        # a field without a value whose type does not allow null disables the button even inside a
        # collapsed section (which the form then marks with a red "!", see the screenshot)
        assert trigger.is_enabled(), f"the form's Trigger button is disabled with the defaults ({shot})"
        trigger.click()
        # the UI opens the run it created
        page.wait_for_url(f"**/dags/{dag_id}/runs/**")
        opened = urllib.parse.unquote(page.url.split(f"/dags/{dag_id}/runs/", 1)[1].split("?")[0])
    except BaseException:
        _screenshot(page, shot)
        raise

    new = {run_id: run for run_id, run in _runs(dep, dag_id).items() if run_id not in before}
    manual = [run for run in new.values() if run["run_type"] == "manual"]
    assert [run["dag_run_id"] for run in manual] == [opened], new
    run = manual[0]
    # nothing typed: the run's conf holds the Params' defaults
    assert run["conf"] == _defaults(dep, dag_id)

    started = time.monotonic()

    def finished():
        state = _runs(dep, dag_id)[opened]["state"]
        return state if state in {"success", "failed"} else None

    state = dep.wait(f"{dag_id} run {opened}", finished, timeout=RUN_TIMEOUT_S, interval=2)
    if state != "success":
        page.goto(f"{dep.url}/dags/{dag_id}/runs/{urllib.parse.quote(opened)}")
        page.wait_for_timeout(3_000)
        _screenshot(page, shot)
    tis = _get(dep, f"/api/v2/dags/{dag_id}/dagRuns/{urllib.parse.quote(opened)}/taskInstances?limit=100")[
        "task_instances"
    ]
    states = {
        ti["task_id"] + (f"[{ti['map_index']}]" if ti["map_index"] >= 0 else ""): ti["state"] for ti in tis
    }
    assert state == "success", (
        f"{dag_id} run {opened} {state}: {states}\n--- scheduler ---\n{dep.tail('scheduler')}"
    )
    assert set(states.values()) <= {"success", "skipped"}, states
    print(f"{dag_id}: manual run from the form succeeded in {time.monotonic() - started:.0f} s")
    # "Unpause on trigger", left as it was, unpaused the DAG (a paused DAG's run would never start)
    assert _get(dep, f"/api/v2/dags/{dag_id}")["is_paused"] is False
