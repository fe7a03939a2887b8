"""aws_ml_provider as an Airflow provider: the entry point, ProvidersManager registration, the
custom waiter files as botocore waiter models of real operations, console links, the MWAA plugin,
and importability from the plugins folder without heavy imports."""

from __future__ import annotations

import importlib
import importlib.metadata
import json
import subprocess
import sys
from pathlib import Path

import aws_ml_provider
import botocore.session
import jmespath
import jsonschema
import pytest
from botocore.waiter import WaiterModel

ROOT = Path(__file__).resolve().parents[2]
PLUGINS = ROOT / "plugins"
WAITERS = PLUGINS / "aws_ml_provider" / "waiters"
#: waiter file -> the botocore service models its waiters may call
WAITER_SERVICES = {
    "textract.json": ("textract",),
    "a2i.json": ("sagemaker-a2i-runtime", "sagemaker"),
    "rekognition.json": ("rekognition",),
}


def _provider_info() -> dict:
    (entry,) = [
        ep
        for ep in importlib.metadata.entry_points(group="apache_airflow_provider")
        if ep.value.startswith("aws_ml_provider.")
    ]
    return entry.load()()


def _import(path: str):
    module, _, name = path.rpartition(".")
    return getattr(importlib.import_module(module), name)


def test_entry_point_resolves_and_matches_airflows_schema():
    import airflow

    info = _provider_info()
    schema = json.loads((Path(airflow.__file__).parent / "provider_info.schema.json").read_text())
    jsonschema.validate(info, schema)
    dist = importlib.metadata.distribution("aws-ml-provider")
    assert info["package-name"] == dist.metadata["Name"] and info["versions"][0] == dist.version
    assert info["versions"][0] == aws_ml_provider.__version__
    for section in ("operators", "sensors", "hooks", "triggers"):
        for entry in info[section]:
            for module in entry["python-modules"]:
                importlib.import_module(module)
    integrations = {i["integration-name"] for i in info["integrations"]}
    assert {
        e["integration-name"] for s in ("operators", "hooks", "triggers") for e in info[s]
    } <= integrations


def test_providers_manager_lists_links_and_triggers():
    from airflow.providers_manager import ProvidersManager

    manager = ProvidersManager()
    info = _provider_info()
    assert manager.providers["aws-ml-provider"].version == info["versions"][0]
    assert set(info["extra-links"]) <= set(manager.extra_links_class_names)
    triggers = {t.trigger_class_name for t in manager.trigger if t.package_name == "aws-ml-provider"}
    assert triggers == {
        "aws_ml_provider.triggers.textract",
        "aws_ml_provider.triggers.a2i",
        "aws_ml_provider.triggers.rekognition",
    }


@pytest.mark.parametrize("filename", sorted(WAITER_SERVICES))
def test_waiter_files_are_botocore_waiter_models_of_real_operations(filename):
    config = json.loads((WAITERS / filename).read_text())
    model = WaiterModel(config)
    assert model.waiter_names
    session = botocore.session.get_session()
    services = [session.get_service_model(s) for s in WAITER_SERVICES[filename]]
    for name in model.waiter_names:
        waiter = model.get_waiter(name)
        (service,) = [s for s in services if waiter.operation in s.operation_names]
        op = service.operation_model(waiter.operation)
        states = {a.state for a in waiter.acceptors}
        assert {"success", "failure"} <= states, name
        for acceptor in waiter.acceptors:
            if acceptor.matcher in ("path", "pathAll", "pathAny"):
                shape = _path_shape(op.output_shape, acceptor.argument)
                assert shape is not None, (name, acceptor.argument)
                enum = getattr(shape, "enum", None)
                assert not enum or acceptor.expected in enum, (name, acceptor.expected)
                jmespath.compile(acceptor.argument)
            elif acceptor.matcher == "error":
                assert acceptor.expected in {e.name for e in op.error_shapes}, (name, acceptor.expected)


def _path_shape(shape, argument: str):
    """The botocore shape a simple JMESPath (``A.B``, ``A[].B``, ``A[0].B``) selects; None if absent."""
    for part in argument.split("."):
        name = part.split("[", 1)[0]
        if getattr(shape, "type_name", "") != "structure" or name not in shape.members:
            return None
        shape = shape.members[name]
        if "[" in part:
            shape = shape.member  # a list's items
    return shape


def test_textract_job_waiter_acceptors():
    waiter = WaiterModel(json.loads((WAITERS / "textract.json").read_text())).get_waiter(
        "expense_analysis_complete"
    )
    by_state = {(a.expected, a.state) for a in waiter.acceptors if a.matcher == "path"}
    assert by_state == {
        ("SUCCEEDED", "success"),
        ("PARTIAL_SUCCESS", "success"),
        ("FAILED", "failure"),
        ("IN_PROGRESS", "retry"),
    }


def test_hooks_load_the_custom_waiters():
    from aws_ml_provider.hooks.a2i import A2IHook, A2IRuntimeHook
    from aws_ml_provider.hooks.textract import TextractHook

    textract = TextractHook(aws_conn_id=None, region_name="us-east-1")
    assert textract.conn.meta.service_model.service_name == "textract"
    assert Path(textract.waiter_path) == WAITERS / "textract.json"
    assert {"expense_analysis_complete", "document_analysis_complete", "text_detection_complete"} <= set(
        textract.list_waiters()
    )
    waiter = textract.get_waiter("document_analysis_complete")
    assert waiter.name == "document_analysis_complete"
    runtime = A2IRuntimeHook(aws_conn_id=None, region_name="us-east-1")
    assert runtime.conn.meta.service_model.service_name == "sagemaker-a2i-runtime"
    assert runtime.get_waiter("human_loop_completed").config.operation == "DescribeHumanLoop"
    sagemaker = A2IHook(aws_conn_id=None, region_name="us-east-1")
    assert sagemaker.get_waiter("flow_definition_active").config.operation == "DescribeFlowDefinition"
    # throttling is retried with backoff (10 retries) unless the hook or connection configures retries
    assert textract.conn.meta.config.retries == {"mode": "standard", "total_max_attempts": 11}
    custom = TextractHook(aws_conn_id=None, region_name="us-east-1", config={"retries": {"max_attempts": 2}})
    assert custom.conn.meta.config.retries["total_max_attempts"] == 3


def test_links_format_console_urls():
    info = _provider_info()
    links = {path.rsplit(".", 1)[1]: _import(path)() for path in info["extra-links"]}
    conf = {"region_name": "eu-west-1", "aws_domain": "aws.amazon.com"}
    assert links["A2IFlowDefinitionLink"].format_link(**conf, flow_definition_name="review") == (
        "https://console.aws.amazon.com/a2i/home?region=eu-west-1#/human-review-workflows/review"
    )
    assert links["A2IHumanLoopLink"].format_link(
        **conf, flow_definition_name="review", human_loop_name="l-1"
    ) == (
        "https://console.aws.amazon.com/a2i/home?region=eu-west-1#/human-review-workflows/review/human-loops/l-1"
    )
    assert links["TextractConsoleLink"].format_link(**conf) == (
        "https://console.aws.amazon.com/textract/home?region=eu-west-1#/"
    )
    assert links["TextractResultLink"].format_link(**conf, bucket="b", key="out/a b.json") == (
        "https://s3.console.aws.amazon.com/s3/object/b?region=eu-west-1&prefix=out%2Fa%20b.json"
    )
    assert links["S3ReportLink"].format_link(**conf, bucket="b", key="runs/r 1/report.html") == (
        "https://s3.console.aws.amazon.com/s3/object/b?region=eu-west-1&prefix=runs%2Fr%201%2Freport.html"
    )
    assert len({link.key for link in links.values()}) == len(links)
    assert len({link.name for link in links.values()}) == len(links)


def test_mwaa_plugin_registers_every_extra_link():
    sys.path.insert(0, str(PLUGINS))
    try:
        plugin_module = importlib.import_module("aws_ml_provider_plugin")
    finally:
        sys.path.remove(str(PLUGINS))
    from airflow.plugins_manager import AirflowPlugin

    plugin = plugin_module.AwsMlProviderPlugin
    assert issubclass(plugin, AirflowPlugin) and plugin.name == "aws_ml_provider"
    registered = {
        f"{type(link).__module__}.{type(link).__qualname__}" for link in plugin.operator_extra_links
    }
    assert registered == set(_provider_info()["extra-links"])


def test_importable_from_the_plugins_folder_without_heavy_imports(tmp_path):
    """As on MWAA: plugins/ on sys.path, the package not installed; importing the package and its
    provider info pulls in neither Airflow nor boto3, and operators import from there too."""
    code = (
        "import sys\n"
        "import aws_ml_provider, aws_ml_provider.get_provider_info as g\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('airflow', 'boto3', 'botocore'))\n"
        "print(aws_ml_provider.__file__); print(heavy); print(g.get_provider_info()['package-name'])\n"
        "import aws_ml_provider.operators.textract, aws_ml_provider.sensors.a2i\n"
    )
    out = subprocess.run(
        [sys.executable, "-S", "-c", code],
        capture_output=True,
        text=True,
        timeout=180,
        cwd=str(PLUGINS),
        env={
            "PYTHONPATH": f"{PLUGINS}:{_site_packages()}",
            "PATH": "/usr/bin:/bin",
            "AIRFLOW_HOME": str(tmp_path),
        },
    )
    assert out.returncode == 0, out.stderr[-3000:]
    file, heavy, name = out.stdout.splitlines()[:3]
    assert Path(file) == PLUGINS / "aws_ml_provider" / "__init__.py"
    assert heavy == "[]" and name == "aws-ml-provider"


def _site_packages() -> str:
    import airflow

    return str(Path(airflow.__file__).resolve().parents[1])
