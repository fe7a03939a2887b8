"""scripts/mwaa_package.py builds what MWAA takes (plugins.zip, requirements.txt, dags/), the plugin works
from the unzipped plugins.zip alone, and the IAM policies in include/iam are valid and least-privilege
where IAM allows it."""

from __future__ import annotations

import fnmatch
import importlib.util
import json
import platform
import re
import subprocess
import sys
import sysconfig
import zipfile
from importlib.metadata import distributions, requires, version
from pathlib import Path

import botocore.session
import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

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
        '--constraint "https://raw.githubusercontent.com/apache/airflow/constraints-3.3.1/constraints-3.12.txt"'
        in text.splitlines()
    )
    _, reqs = mwaa_package.requirement_lines(ROOT / "requirements.txt")
    names = {r.name.lower() for r in reqs}
    assert not names & {"moto", "rapidocr-onnxruntime", "python-liquid", "apache-airflow", "pytest"}
    # the peer libraries that cannot install under MWAA 3.3.1's constraints are test-only now
    assert not names & {"amazon-textract-response-parser", "amazon-textract-prettyprinter"}


@pytest.fixture(scope="module")
def target():
    return mwaa_package.load_target()


def test_the_target_is_the_makefiles_mwaa_version_and_its_files(target):
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(rf"^MWAA_AIRFLOW := {re.escape(target.airflow)}$", makefile, flags=re.M)
    assert (target.airflow, target.python) == ("3.3.1", "3.12")
    assert target.constraint_url == (
        "https://raw.githubusercontent.com/apache/airflow/constraints-3.3.1/constraints-3.12.txt"
    )
    constraints = target.constraints_file.read_text()
    assert (
        f"\napache-airflow-providers-amazon=={target.pins['apache-airflow-providers-amazon']}\n"
        in constraints
    )
    # apache-airflow itself is pinned by the image's package list and the essential constraints
    assert target.pins["apache-airflow"] == target.essential["apache-airflow"] == "3.3.1"
    assert "apache-airflow" not in target.constraints


def test_the_local_install_has_mwaas_airflow_and_providers(target):
    rows, problems = mwaa_package.installed_airflow_versions(target)
    assert problems == []
    by_name = {name: (have, pin) for name, have, pin in rows}
    for name in ("apache-airflow", "apache-airflow-core", "apache-airflow-providers-amazon"):
        assert by_name[name][0] == by_name[name][1] == target.pins[name]
    # a local install that drifted from MWAA's pin is reported (and so fails the package check)
    drifted = target._replace(constraints={**target.constraints, "apache-airflow-providers-amazon": "9.39.0"})
    _, problems = mwaa_package.installed_airflow_versions(drifted)
    assert problems == [
        f"installed apache-airflow-providers-amazon {by_name['apache-airflow-providers-amazon'][0]} differs "
        "from Amazon MWAA 3.3.1's pin apache-airflow-providers-amazon==9.39.0 (make lock && make install)"
    ]


def test_what_mwaa_provides_follows_the_image_packages_and_their_extras(target):
    provided = mwaa_package.mwaa_provided(target)
    image = {canonicalize_name(r.name) for r in target.image}
    assert image <= provided
    # through apache-airflow -> apache-airflow-core (tabulate), the Amazon provider (boto3) and its
    # [aiobotocore] extra, apache-airflow[celery] -> the Celery provider
    assert {"tabulate", "boto3", "botocore", "aiobotocore", "apache-airflow-providers-celery"} <= provided
    # not what only the dev set installs
    assert not provided & {"moto", "xgboost-cpu", "pypdfium2", "amazon-textract-response-parser"}


def test_shipped_requirements_pass_the_mwaa_checks(target):
    assert (
        mwaa_package.check_requirements(ROOT / "requirements.txt", [ROOT / "plugins", ROOT / "dags"], target)
        == []
    )


def _requirements(tmp_path, target, *lines) -> Path:
    req = tmp_path / "requirements.txt"
    req.write_text("\n".join([f'--constraint "{target.constraint_url}"', *lines]) + "\n")
    return req


def _specifier_of(owner: str, dependency: str) -> str:
    """The specifier ``owner``'s installed metadata puts on ``dependency``."""
    for raw in requires(owner):
        req = Requirement(raw)
        if canonicalize_name(req.name) == dependency and req.marker is None:
            return str(req.specifier)
    raise AssertionError(f"{owner} does not require {dependency}")


def test_peer_libraries_that_mwaas_pins_exclude_are_refused(tmp_path, target):
    code = tmp_path / "code"
    code.mkdir()
    (code / "job.py").write_text("import trp\nimport textractprettyprinter\n")
    req = _requirements(
        tmp_path,
        target,
        f"amazon-textract-response-parser=={version('amazon-textract-response-parser')}",
        f"amazon-textract-prettyprinter=={version('amazon-textract-prettyprinter')}",
    )
    problems = mwaa_package.check_requirements(req, [code], target)
    marshmallow = _specifier_of("amazon-textract-response-parser", "marshmallow")
    tabulate = _specifier_of("amazon-textract-prettyprinter", "tabulate")
    assert marshmallow.startswith("<4") or "<4" in marshmallow
    assert (
        f"amazon-textract-response-parser {version('amazon-textract-response-parser')} requires "
        f"marshmallow{marshmallow}, but Amazon MWAA 3.3.1's constraints pin "
        f"marshmallow=={target.constraints['marshmallow']}: pip cannot install amazon-textract-response-parser on MWAA"
    ) in problems
    assert any(
        p.startswith(
            f"amazon-textract-prettyprinter {version('amazon-textract-prettyprinter')} requires tabulate{tabulate}"
        )
        and f"tabulate=={target.constraints['tabulate']}" in p
        for p in problems
    ), problems
    # nothing else is wrong with the file
    assert all("requires" in p for p in problems), problems


def test_pins_that_mwaa_would_refuse_are_reported(tmp_path, target):
    code = tmp_path / "code"
    code.mkdir()
    (code / "job.py").write_text("import numpy\nimport pypdfium2\nimport sqlalchemy\nimport matplotlib\n")
    lock = mwaa_package._dev_lock()
    req = _requirements(tmp_path, target, "numpy==1.26.4", "pypdfium2", "SQLAlchemy", "matplotlib>=3")
    problems = mwaa_package.check_requirements(req, [code], target)
    assert problems == [
        f"numpy==1.26.4 differs from Amazon MWAA 3.3.1's constraints, which pin numpy=={target.constraints['numpy']}",
        "pypdfium2 is not pinned by Amazon MWAA 3.3.1's constraints: pin it to requirements/dev.lock's version, "
        f"the one tested (pypdfium2=={lock['pypdfium2']})",
        f"SQLAlchemy is in Amazon MWAA 3.3.1's mwaa_essential_constraints.txt (sqlalchemy=={target.essential['sqlalchemy']}): "
        "MWAA does not let requirements.txt override it; leave it out",
        "matplotlib>=3 is not pinned by Amazon MWAA 3.3.1's constraints: pin it to requirements/dev.lock's version, "
        f"the one tested (matplotlib=={lock['matplotlib']})",
    ]
    req = _requirements(
        tmp_path, target, "numpy", f"pypdfium2=={lock['pypdfium2']}", f"matplotlib=={lock['matplotlib']}"
    )
    assert mwaa_package.check_requirements(req, [code], target) == []  # sqlalchemy: part of MWAA's install


def test_requirement_check_catches_missing_and_unused_lines(tmp_path, target):
    code = tmp_path / "code"
    code.mkdir()
    (code / "job.py").write_text(
        "import json\nimport boto3\nimport trp\ntry:\n    import pypdfium2\nexcept ImportError:\n"
        "    pypdfium2 = None\nif TYPE_CHECKING:\n    import pandas\n"
    )
    req = tmp_path / "requirements.txt"
    req.write_text("amazon-textract-response-parser\nmoto\n")
    problems = "\n".join(mwaa_package.check_requirements(req, [code], target))
    assert "--constraint" in problems  # the MWAA constraint line is missing
    assert "moto" in problems  # a twin-only package
    assert "'trp'" not in problems  # covered by amazon-textract-response-parser
    assert "boto3" not in problems and "pandas" not in problems and "pypdfium2" not in problems
    (code / "job.py").write_text("import xgboost\nimport aws_twin\n")
    problems = "\n".join(mwaa_package.check_requirements(req, [code], target))
    assert "'xgboost'" in problems and "aws_twin is imported" in problems
    assert "amazon-textract-response-parser, which no module" in problems


def test_the_resolution_check_is_skipped_offline(tmp_path, monkeypatch, capsys):
    """``make mwaa-package`` resolves requirements.txt on the package index when it can reach it;
    offline (here: an index on a closed local port) it says so and still builds, unless --resolve
    always."""
    monkeypatch.setenv("UV_DEFAULT_INDEX", "https://127.0.0.1:9/simple")
    ok, why = mwaa_package.resolve_on_pypi(ROOT / "requirements.txt", mwaa_package.load_target())
    assert ok is None and "127.0.0.1 is unreachable" in why
    assert mwaa_package.main(["--out", str(tmp_path / "auto")]) == 0
    assert "resolution check skipped: 127.0.0.1 is unreachable" in capsys.readouterr().err
    assert (tmp_path / "auto" / "mwaa" / "plugins.zip").is_file()
    assert mwaa_package.main(["--out", str(tmp_path / "always"), "--resolve", "always"]) == 1


def test_make_test_prints_the_versions_it_tests_on(target):
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "tested_versions.py")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    (line,) = result.stdout.splitlines()
    installed = sorted(
        {canonicalize_name(d.metadata["Name"]): d.version for d in distributions()}.items(),
        key=lambda item: (item[0] != "apache-airflow", item[0]),
    )
    assert [n for n, _ in installed][:1] == ["apache-airflow"] and len(installed) > 3
    listed = ", ".join(f"{name} {have}" for name, have in installed if name.startswith("apache-airflow"))
    assert line.startswith(
        f"testing on {listed} (Amazon MWAA 3.3.1 constraints), Python {platform.python_version()}"
    )
    assert "apache-airflow-providers-amazon 9.34.0" in line
    # the Makefile's test target prints it before pytest runs
    recipe = re.search(r"^test:.*\n((?:\t.*\n)+)", (ROOT / "Makefile").read_text(), flags=re.M).group(1)
    assert recipe.index("scripts/tested_versions.py") < recipe.index("pytest")


def test_make_test_fails_when_an_airflow_distribution_is_not_mwaas(target, capsys):
    spec = importlib.util.spec_from_file_location("tested_versions", ROOT / "scripts" / "tested_versions.py")
    tested_versions = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tested_versions)
    assert tested_versions.main(target) == 0
    drifted = target._replace(
        constraints={**target.constraints, "apache-airflow-providers-standard": "1.99.0"}
    )
    assert tested_versions.main(drifted) == 1
    err = capsys.readouterr().err
    assert "installed apache-airflow-providers-standard 1.17.0 differs from Amazon MWAA 3.3.1's pin" in err
    assert "apache-airflow-providers-standard==1.99.0" in err


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


def test_packaging_cli_fails_on_uncovered_imports(tmp_path, target):
    root = tmp_path / "repo"
    for folder in ("plugins", "dags", "include"):
        (root / folder).mkdir(parents=True)
    (root / "dags" / "d.py").write_text("import xgboost\n")
    (root / "requirements.txt").write_text(f'--constraint "{target.constraint_url}"\n')
    with pytest.raises(mwaa_package.PackageError, match="xgboost"):
        mwaa_package.build(tmp_path / "out", root=root)
    pin = mwaa_package._dev_lock()["xgboost-cpu"]
    (root / "requirements.txt").write_text(f'--constraint "{target.constraint_url}"\nxgboost-cpu=={pin}\n')
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
    "rekognition": ["rekognition"],
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
            ok_prefixes = {"textract", "rekognition", "ecr", "s3", "logs", "sagemaker"}
            assert "Condition" in statement or all(
                a.split(":")[0] in ok_prefixes
                and (a.split(":")[0] != "sagemaker" or a.split(":")[1].startswith("List"))
                and (
                    a.split(":")[0] != "rekognition"
                    or a.split(":")[1] in ("DetectLabels", "DescribeProjects")
                )
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
