"""scripts/mwaa_package.py builds what MWAA takes (plugins.zip, requirements.txt, dags/), the plugin works
from the unzipped plugins.zip alone, and the IAM policies in include/iam are valid and least-privilege
where IAM allows it."""

from __future__ import annotations

import fnmatch
import importlib.util
import json
import re
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import botocore.session
import pytest

ROOT = Path(__file__).resolve().parents[2]
IAM = ROOT / "include" / "iam"


def _load_packager():
    spec = importlib.util.spec_from_file_location("mwaa_package", ROOT / "scripts" / "mwaa_package.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


mwaa_package = _load_packager()


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    mwaa_package.build(out, iam_values=_iam_values())
    return out


def _iam_values() -> dict[str, str]:
    return {
        "AccountId": "123456789012",
        "Region": "eu-west-1",
        "EnvironmentName": "aws-ml",
        "MwaaBucket": "aws-ml-mwaa-123456789012",
        "DataBucket": "aws-ml-data-123456789012",
        "ResourcePrefix": "",
        "GlueRoleName": "AwsMlGlueJobRole",
        "SageMakerRoleName": "AwsMlSageMakerExecutionRole",
    }


# --- package layout ---------------------------------------------------------------------------------


def test_plugins_zip_holds_the_plugins_folder_contents_at_its_root(built):
    names = zipfile.ZipFile(built / "mwaa" / "plugins.zip").namelist()
    assert "aws_ml_provider/__init__.py" in names
    assert "aws_ml_provider_plugin.py" in names
    assert not [n for n in names if n.startswith("plugins/")]
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]
    # every source file of the provider is there, waiter JSON included
    expected = {
        p.relative_to(ROOT / "plugins").as_posix()
        for p in (ROOT / "plugins").rglob("*")
        if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"
    }
    assert set(names) == expected
    assert any(n.startswith("aws_ml_provider/waiters/") and n.endswith(".json") for n in names)


def test_requirements_target_mwaa_and_leave_the_twin_out(built):
    text = (built / "mwaa" / "requirements.txt").read_text()
    assert text == (ROOT / "requirements.txt").read_text()
    assert (
        '--constraint "https://raw.githubusercontent.com/apache/airflow/constraints-3.0.6/constraints-3.12.txt"'
        in text.splitlines()
    )
    _, reqs = mwaa_package.requirement_lines(ROOT / "requirements.txt")
    names = {r.name.lower() for r in reqs}
    assert {"amazon-textract-response-parser", "amazon-textract-prettyprinter"} <= names
    assert not names & {"moto", "rapidocr-onnxruntime", "python-liquid", "apache-airflow", "pytest"}


def test_requirement_check_catches_missing_and_unused_lines(tmp_path):
    code = tmp_path / "code"
    code.mkdir()
    (code / "job.py").write_text(
        "import json\nimport boto3\nimport trp\ntry:\n    import pypdfium2\nexcept ImportError:\n"
        "    pypdfium2 = None\nif TYPE_CHECKING:\n    import pandas\n"
    )
    req = tmp_path / "requirements.txt"
    req.write_text("amazon-textract-response-parser\nmoto\n")
    problems = "\n".join(mwaa_package.check_requirements(req, [code]))
    assert "--constraint" in problems  # the MWAA constraint line is missing
    assert "moto" in problems  # a twin-only package
    assert "'trp'" not in problems  # covered by amazon-textract-response-parser
    assert "boto3" not in problems and "pandas" not in problems and "pypdfium2" not in problems
    (code / "job.py").write_text("import xgboost\nimport aws_twin\n")
    problems = "\n".join(mwaa_package.check_requirements(req, [code]))
    assert "'xgboost'" in problems and "aws_twin is imported" in problems
    assert "amazon-textract-response-parser, which no module" in problems


def test_dags_folder_carries_include_and_ignores_it(built):
    dags = built / "mwaa" / "dags"
    for path in (ROOT / "dags").rglob("*.py"):
        if "__pycache__" not in path.parts:
            assert (dags / path.relative_to(ROOT / "dags")).is_file()
    for path in (ROOT / "include").rglob("*"):
        rel = path.relative_to(ROOT / "include")
        if path.is_file() and rel.parts[0] != "iam":
            assert (dags / "include" / rel).read_bytes() == path.read_bytes()
    assert not (dags / "include" / "iam").exists()
    assert "include/" in (dags / ".airflowignore").read_text().splitlines()
    assert not list(dags.rglob("__pycache__"))


def test_the_plugin_imports_from_the_unzipped_plugins_zip_alone(built, tmp_path):
    """As on MWAA: plugins.zip unpacked into the plugins folder, no editable install of the provider."""
    plugins = tmp_path / "plugins"
    zipfile.ZipFile(built / "mwaa" / "plugins.zip").extractall(plugins)
    operator_modules = sorted(
        f"aws_ml_provider.operators.{p.stem}"
        for p in (plugins / "aws_ml_provider" / "operators").glob("*.py")
    )
    script = f"""
import importlib, inspect, sys
# -S: no site-packages .pth files, so the editable install's finder is not active
sys.path.insert(0, {str(plugins)!r})
sys.path.append({sysconfig.get_paths()["purelib"]!r})
import aws_ml_provider
assert aws_ml_provider.__file__.startswith({str(plugins)!r}), aws_ml_provider.__file__
from airflow.sdk import BaseOperator
operators = []
for name in {operator_modules!r}:
    module = importlib.import_module(name)
    assert module.__file__.startswith({str(plugins)!r}), module.__file__
    operators += [o for _, o in inspect.getmembers(module, inspect.isclass)
                  if issubclass(o, BaseOperator) and o.__module__ == name]
assert operators, "no operator classes"
from airflow.plugins_manager import AirflowPlugin, get_import_errors, get_plugin_info
plugin_module = importlib.import_module("aws_ml_provider_plugin")
plugins = [p for p in vars(plugin_module).values()
           if inspect.isclass(p) and issubclass(p, AirflowPlugin) and p is not AirflowPlugin]
assert plugins, "aws_ml_provider_plugin defines no AirflowPlugin"
names = {{info["name"] for info in get_plugin_info()}}
assert {{p.name for p in plugins}} <= names, names
assert not get_import_errors(), get_import_errors()
print("OK", len(operators), sorted(names))
"""
    env = {
        "AIRFLOW_HOME": str(tmp_path / "airflow_home"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(plugins),
        "AIRFLOW__CORE__DAGS_FOLDER": str(tmp_path / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "PATH": "/usr/bin:/bin",
    }
    result = subprocess.run(
        [sys.executable, "-S", "-c", script],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.splitlines()[-1].startswith("OK "), result.stdout


def test_packaging_cli_fails_on_uncovered_imports(tmp_path):
    root = tmp_path / "repo"
    for folder in ("plugins", "dags", "include"):
        (root / folder).mkdir(parents=True)
    (root / "dags" / "d.py").write_text("import xgboost\n")
    (root / "requirements.txt").write_text(f'--constraint "{mwaa_package.CONSTRAINT_URL}"\n')
    with pytest.raises(mwaa_package.PackageError, match="xgboost"):
        mwaa_package.build(tmp_path / "out", root=root)
    (root / "requirements.txt").write_text(f'--constraint "{mwaa_package.CONSTRAINT_URL}"\nxgboost-cpu\n')
    mwaa_package.build(tmp_path / "out", root=root)
    assert (tmp_path / "out" / "mwaa" / "dags" / "d.py").is_file()


# --- IAM --------------------------------------------------------------------------------------------

# IAM service prefix -> botocore models whose operations it authorizes (A2I's runtime and SageMaker
# Runtime sign as "sagemaker"; MWAA signs as "airflow"; CloudWatch's endpoint is "monitoring").
PREFIX_MODELS = {
    "airflow": ["mwaa"],
    "cloudwatch": ["cloudwatch"],
    "ecr": ["ecr"],
    "glue": ["glue"],
    "iam": ["iam"],
    "kms": ["kms"],
    "logs": ["logs"],
    "s3": ["s3", "s3control"],
    "sagemaker": ["sagemaker", "sagemaker-runtime", "sagemaker-a2i-runtime"],
    "sqs": ["sqs"],
    "sts": ["sts"],
    "textract": ["textract"],
}
# IAM actions that name a permission, not an API operation of the same name.
PERMISSION_ONLY = {
    "iam:PassRole",
    "s3:ListBucket",  # ListObjects(V2)
    "s3:GetObjectVersion",  # GetObject with a VersionId (MWAA reads versioned plugins.zip)
    "s3:GetBucketPublicAccessBlock",  # GetPublicAccessBlock on a bucket
    "s3:GetAccountPublicAccessBlock",  # S3 Control's GetPublicAccessBlock
}
POLICIES = sorted(IAM.glob("*-policy.json"))
TRUSTS = sorted(IAM.glob("*-trust.json"))


@pytest.fixture(scope="module")
def prefix_operations() -> dict[str, set[str]]:
    session = botocore.session.get_session()
    result = {}
    for prefix, models in PREFIX_MODELS.items():
        ops = set()
        for name in models:
            model = session.get_service_model(name)
            meta = model.metadata
            names = {
                meta.get("signingName"),
                meta.get("endpointPrefix"),
                meta["serviceId"].lower().replace(" ", ""),
            }
            assert prefix in names or prefix == meta["endpointPrefix"].split(".")[-1], (prefix, name, names)
            ops |= set(model.operation_names)
        result[prefix] = ops
    return result


def _statements(doc: dict) -> list[dict]:
    statements = doc["Statement"]
    return statements if isinstance(statements, list) else [statements]


def _as_list(value) -> list:
    return value if isinstance(value, list) else [value]


def test_there_are_policies_for_the_three_roles():
    assert {p.name for p in POLICIES} == {
        "mwaa-execution-role-policy.json",
        "sagemaker-execution-role-policy.json",
        "glue-job-role-policy.json",
    }
    assert {p.name.replace("-trust", "-policy") for p in TRUSTS} == {p.name for p in POLICIES}


@pytest.mark.parametrize("path", POLICIES, ids=lambda p: p.name)
def test_policy_actions_are_real_and_scoped(path, prefix_operations):
    doc = json.loads(path.read_text())
    assert doc["Version"] == "2012-10-17"
    sids = [s.get("Sid") for s in _statements(doc)]
    assert len(sids) == len(set(sids)), "duplicate Sid"
    for statement in _statements(doc):
        assert statement["Effect"] in {"Allow", "Deny"}
        assert set(statement) <= {"Sid", "Effect", "Action", "Resource", "NotResource", "Condition"}
        assert ("Resource" in statement) != ("NotResource" in statement)
        for action in _as_list(statement["Action"]):
            prefix, _, name = action.partition(":")
            assert prefix in prefix_operations, f"{action}: unknown service prefix"
            assert "*" not in name, f"{action}: wildcard actions are not least privilege"
            assert action in PERMISSION_ONLY or name in prefix_operations[prefix], (
                f"{action}: no such operation"
            )
        resources = _as_list(statement.get("Resource", statement.get("NotResource")))
        for resource in resources:
            assert resource == "*" or resource.startswith("arn:aws:"), resource
        if resources == ["*"]:
            # only actions that have no resource-level permissions, or are narrowed by a condition
            ok_prefixes = {"textract", "ecr", "s3", "logs", "sagemaker"}
            assert "Condition" in statement or all(
                a.split(":")[0] in ok_prefixes
                and (a.split(":")[0] != "sagemaker" or a.split(":")[1].startswith("List"))
                for a in _as_list(statement["Action"])
            ), statement.get("Sid")


@pytest.mark.parametrize("path", POLICIES, ids=lambda p: p.name)
def test_policies_render_to_well_formed_arns_within_the_size_limit(path):
    text = mwaa_package.render_policy(path.read_text(), _iam_values())
    doc = json.loads(text)
    for statement in _statements(doc):
        for resource in _as_list(statement.get("Resource", statement.get("NotResource"))):
            if resource == "*":
                continue
            parts = resource.split(":", 5)
            assert len(parts) == 6 and parts[0] == "arn" and parts[1] == "aws", resource
            service, region, account = parts[2:5]
            if service in {"s3", "iam"}:
                assert region == "", resource
            else:
                assert region in {"eu-west-1", "*"}, resource
            assert account in {"", "123456789012", "*"}, resource
    # managed policies hold at most 6,144 characters, whitespace not counted
    assert len(re.sub(r"\s", "", text)) <= 6144


def test_pass_role_is_limited_to_the_two_roles_and_their_services():
    pass_role = []
    for path in POLICIES:
        for statement in _statements(json.loads(path.read_text())):
            actions = _as_list(statement["Action"])
            assert not any(fnmatch.fnmatch("iam:PassRole", a) for a in actions if a != "iam:PassRole"), path
            if "iam:PassRole" in actions:
                pass_role.append((path.name, statement))
    assert [name for name, _ in pass_role] == ["mwaa-execution-role-policy.json"]
    statement = pass_role[0][1]
    assert statement["Effect"] == "Allow"
    services = _as_list(statement["Condition"]["StringEquals"]["iam:PassedToService"])
    assert sorted(services) == ["glue.amazonaws.com", "sagemaker.amazonaws.com"]
    assert sorted(_as_list(statement["Resource"])) == [
        "arn:aws:iam::${AccountId}:role/${GlueRoleName}",
        "arn:aws:iam::${AccountId}:role/${SageMakerRoleName}",
    ]


@pytest.mark.parametrize("path", TRUSTS, ids=lambda p: p.name)
def test_trust_policies_let_only_the_service_assume_the_role(path):
    (statement,) = _statements(json.loads(path.read_text()))
    assert statement["Effect"] == "Allow" and statement["Action"] == "sts:AssumeRole"
    services = _as_list(statement["Principal"]["Service"])
    expected = {
        "mwaa-execution-role-trust.json": ["airflow-env.amazonaws.com", "airflow.amazonaws.com"],
        "sagemaker-execution-role-trust.json": ["sagemaker.amazonaws.com"],
        "glue-job-role-trust.json": ["glue.amazonaws.com"],
    }[path.name]
    assert sorted(services) == expected


def test_rendered_iam_files_are_written(built):
    rendered = sorted(p.name for p in (built / "iam").glob("*.json"))
    assert rendered == sorted(p.name for p in IAM.glob("*.json"))
    for path in (built / "iam").glob("*.json"):
        assert "${" not in path.read_text()
        json.loads(path.read_text())
