"""Build the Amazon MWAA upload set under dist/mwaa/ (``make mwaa-package``).

    dist/mwaa/plugins.zip       plugins/ contents at the zip root: aws_ml_provider/, aws_ml_provider_plugin.py
    dist/mwaa/requirements.txt  run-time requirements with MWAA's --constraint line (copy of requirements.txt)
    dist/mwaa/dags/             dags/ plus include/ as dags/include/ (MWAA syncs only the dags folder),
                                with an .airflowignore so the DAG processor skips include/
    dist/iam/*.json             (with --account-id ...) include/iam/ policies with the placeholders filled in

Upload: ``aws s3 sync dist/mwaa/dags s3://<bucket>/dags --delete`` and
``aws s3 cp dist/mwaa/plugins.zip s3://<bucket>/plugins.zip`` (same for requirements.txt), then point the
environment at the new object versions. Target: MWAA Apache Airflow v3.0.6 (Python 3.12).

The build checks what it ships: every third-party module the DAGs and the provider import is either
part of MWAA's Airflow install (apache-airflow + the Amazon provider and their dependencies) or listed
in requirements.txt, and requirements.txt carries none of aws_twin's packages.
"""

from __future__ import annotations

import argparse
import ast
import json
import re
import shutil
import sys
import zipfile
from importlib.metadata import PackageNotFoundError, packages_distributions, requires
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
MWAA_AIRFLOW_VERSION = "3.0.6"
MWAA_PYTHON_VERSION = "3.12"
CONSTRAINT_URL = (
    f"https://raw.githubusercontent.com/apache/airflow/constraints-{MWAA_AIRFLOW_VERSION}/"
    f"constraints-{MWAA_PYTHON_VERSION}.txt"
)
# What MWAA installs before requirements.txt: Airflow (with its pre-installed providers) and the
# Amazon provider. Their dependency closure is computed from the local install's metadata.
MWAA_BASE_DISTRIBUTIONS = ("apache-airflow", "apache-airflow-providers-amazon")
# Packages only the offline twin and the tests need; never on MWAA.
TWIN_ONLY = {
    "moto",
    "rapidocr-onnxruntime",
    "onnxruntime",
    "opencv-python",
    "python-liquid",
    "playwright",
    "pytest",
    "pytest-timeout",
    "ruff",
    "cbor2",
    "psycopg2-binary",
}
LOCAL_MODULES = {"aws_ml_provider", "aws_ml_provider_plugin", "include"}
INCLUDE_NOT_SHIPPED = {"iam"}  # IAM policies are applied to roles, not read by DAGs
SKIP_DIRS = {"__pycache__", ".pytest_cache", ".ruff_cache"}
IAM_PLACEHOLDERS = (
    "AccountId",
    "Region",
    "EnvironmentName",
    "MwaaBucket",
    "DataBucket",
    "ResourcePrefix",
    "GlueRoleName",
    "SageMakerRoleName",
)


class PackageError(Exception):
    pass


def _files(folder: Path):
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder)
        if any(part in SKIP_DIRS for part in rel.parts) or path.suffix == ".pyc" or not path.is_file():
            continue
        yield path, rel


def build_plugins_zip(plugins_dir: Path, target: Path) -> list[str]:
    """Zip the *contents* of plugins_dir (MWAA unpacks plugins.zip into its plugins folder)."""
    names = []
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as zf:
        for path, rel in _files(plugins_dir):
            info = zipfile.ZipInfo(rel.as_posix(), date_time=(1980, 1, 1, 0, 0, 0))  # reproducible
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, path.read_bytes())
            names.append(rel.as_posix())
    return names


def copy_dags(dags_dir: Path, include_dir: Path, target: Path) -> None:
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    for path, rel in _files(dags_dir):
        (target / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target / rel)
    for path, rel in _files(include_dir):
        if rel.parts[0] in INCLUDE_NOT_SHIPPED:
            continue
        dest = target / "include" / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, dest)
    ignore = target / ".airflowignore"
    lines = ignore.read_text().splitlines() if ignore.exists() else []
    if "include/" not in lines:
        lines.append("include/")
    ignore.write_text("\n".join(lines) + "\n")


def requirement_lines(path: Path) -> tuple[list[str], list[Requirement]]:
    options, reqs = [], []
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("-"):
            options.append(line)
        else:
            reqs.append(Requirement(line.split(" #", 1)[0].strip()))
    return options, reqs


def _closure(roots) -> set[str]:
    env = default_environment()
    seen: set[str] = set()
    todo = [canonicalize_name(r) for r in roots]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        try:
            reqs = requires(name) or []
        except PackageNotFoundError:
            continue
        for raw in reqs:
            req = Requirement(raw)
            if req.marker is None or req.marker.evaluate({**env, "extra": ""}):
                todo.append(canonicalize_name(req.name))
    return seen


def _catches_import_error(handler: ast.ExceptHandler) -> bool:
    types = handler.type.elts if isinstance(handler.type, ast.Tuple) else [handler.type]
    return any(isinstance(t, ast.Name) and t.id in {"ImportError", "ModuleNotFoundError"} for t in types)


def _imports(tree: ast.AST) -> tuple[set[str], set[str]]:
    """(required, optional) top-level modules; optional: imported in a try that catches ImportError."""
    found: set[str] = set()
    optional: set[str] = set()

    def visit(node, into=found):
        if isinstance(node, ast.If):
            test = node.test
            name = test.id if isinstance(test, ast.Name) else getattr(test, "attr", "")
            if name == "TYPE_CHECKING":
                for child in node.orelse:
                    visit(child, into)
                return
        if isinstance(node, ast.Try) and any(_catches_import_error(h) for h in node.handlers):
            for child in node.body:
                visit(child, optional)
            for child in [*node.handlers, *node.orelse, *node.finalbody]:
                visit(child, into)
            return
        if isinstance(node, ast.Import):
            into.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            into.add(node.module.split(".")[0])
        for child in ast.iter_child_nodes(node):
            visit(child, into)

    visit(tree)
    return found, optional - found


def third_party_imports(folders, *, optional: bool = False) -> dict[str, list[str]]:
    """Top-level modules imported by the .py files under ``folders`` that are neither stdlib nor ours
    (``optional``: those imported only where an ImportError is caught)."""
    local = set(LOCAL_MODULES)
    files = []
    for folder in folders:
        for path, rel in _files(folder):
            if path.suffix == ".py":
                files.append(path)
                local.add(rel.parts[0].removesuffix(".py"))
    result: dict[str, list[str]] = {}
    for path in files:
        required, maybe = _imports(ast.parse(path.read_text(), filename=str(path)))
        for module in maybe if optional else required:
            if module in sys.stdlib_module_names or module in local or module == "__future__":
                continue
            result.setdefault(module, []).append(
                str(path.relative_to(ROOT) if path.is_relative_to(ROOT) else path)
            )
    return result


def check_requirements(requirements: Path, code_folders) -> list[str]:
    """Return the problems with requirements.txt for the code in ``code_folders`` (empty: fine)."""
    problems = []
    options, reqs = requirement_lines(requirements)
    if f'--constraint "{CONSTRAINT_URL}"' not in options:
        problems.append(f'{requirements.name} lacks the line --constraint "{CONSTRAINT_URL}"')
    listed = {canonicalize_name(r.name) for r in reqs}
    for name in sorted(listed & {canonicalize_name(n) for n in TWIN_ONLY}):
        problems.append(f"{requirements.name} lists {name}, which only aws_twin/tests need")
    for name in sorted(listed & {canonicalize_name(n) for n in ("apache-airflow", "apache-airflow-core")}):
        problems.append(f"{requirements.name} lists {name}: MWAA pins Airflow itself")
    base = _closure(MWAA_BASE_DISTRIBUTIONS)
    dists = packages_distributions()
    used: set[str] = set()
    for module, files in sorted(third_party_imports(code_folders).items()):
        owners = {canonicalize_name(d) for d in dists.get(module, [])}
        used |= owners
        if module == "aws_twin":
            problems.append(f"aws_twin is imported by {', '.join(files)}: the twin does not exist on MWAA")
        elif not owners:
            problems.append(f"module {module!r} imported by {', '.join(files)} is not installed here")
        elif not owners & (base | listed):
            problems.append(
                f"module {module!r} ({', '.join(sorted(owners))}) imported by {', '.join(files)} "
                f"is neither part of MWAA's Airflow install nor in {requirements.name}"
            )
    for module in third_party_imports(code_folders, optional=True):
        used |= {canonicalize_name(d) for d in dists.get(module, [])}
    for name in sorted(listed - used - {canonicalize_name(n) for n in TWIN_ONLY}):
        problems.append(f"{requirements.name} lists {name}, which no module in dags/ or plugins/ imports")
    return problems


def render_policy(text: str, values: dict[str, str]) -> str:
    missing = [p for p in IAM_PLACEHOLDERS if f"${{{p}}}" in text and p not in values]
    if missing:
        raise PackageError(f"values missing for IAM placeholders: {', '.join(missing)}")
    for key, value in values.items():
        text = text.replace(f"${{{key}}}", value)
    left = re.findall(r"\$\{(\w+)\}", text)
    if left:
        raise PackageError(f"unknown IAM placeholders: {', '.join(sorted(set(left)))}")
    return text


def build(
    out: Path,
    *,
    root: Path = ROOT,
    iam_values: dict[str, str] | None = None,
    check: bool = True,
) -> dict:
    plugins, dags, include = root / "plugins", root / "dags", root / "include"
    requirements = root / "requirements.txt"
    if check:
        problems = check_requirements(requirements, [plugins, dags])
        if problems:
            raise PackageError("requirements.txt does not fit the code:\n  " + "\n  ".join(problems))
    mwaa = out / "mwaa"
    mwaa.mkdir(parents=True, exist_ok=True)
    names = build_plugins_zip(plugins, mwaa / "plugins.zip")
    shutil.copyfile(requirements, mwaa / "requirements.txt")
    copy_dags(dags, include, mwaa / "dags")
    rendered = []
    if iam_values:
        iam_out = out / "iam"
        iam_out.mkdir(parents=True, exist_ok=True)
        for policy in sorted((include / "iam").glob("*.json")):
            text = render_policy(policy.read_text(), iam_values)
            json.loads(text)
            (iam_out / policy.name).write_text(text)
            rendered.append(policy.name)
    return {"plugins_zip": names, "dags": str(mwaa / "dags"), "iam": rendered}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=ROOT / "dist")
    parser.add_argument("--account-id", help="also render include/iam/*.json into <out>/iam/")
    parser.add_argument("--region", default="us-east-1")
    parser.add_argument("--environment-name", default="aws-ml")
    parser.add_argument("--mwaa-bucket", default=None, help="default: <environment-name>-mwaa-<account-id>")
    parser.add_argument("--data-bucket", default=None, help="default: <environment-name>-data-<account-id>")
    parser.add_argument("--resource-prefix", default="", help="name prefix of Glue jobs/SageMaker resources")
    parser.add_argument("--glue-role-name", default="AwsMlGlueJobRole")
    parser.add_argument("--sagemaker-role-name", default="AwsMlSageMakerExecutionRole")
    args = parser.parse_args(argv)
    values = None
    if args.account_id:
        values = {
            "AccountId": args.account_id,
            "Region": args.region,
            "EnvironmentName": args.environment_name,
            "MwaaBucket": args.mwaa_bucket or f"{args.environment_name}-mwaa-{args.account_id}",
            "DataBucket": args.data_bucket or f"{args.environment_name}-data-{args.account_id}",
            "ResourcePrefix": args.resource_prefix,
            "GlueRoleName": args.glue_role_name,
            "SageMakerRoleName": args.sagemaker_role_name,
        }
    try:
        result = build(args.out, iam_values=values)
    except PackageError as exc:
        print(f"mwaa_package: {exc}", file=sys.stderr)
        return 1
    mwaa = args.out / "mwaa"
    print(f"{mwaa / 'plugins.zip'}: {len(result['plugins_zip'])} files")
    print(f"{mwaa / 'requirements.txt'} (MWAA Airflow {MWAA_AIRFLOW_VERSION}, Python {MWAA_PYTHON_VERSION})")
    print(f"{result['dags']}/ (include/ as dags/include/)")
    for name in result["iam"]:
        print(f"{args.out / 'iam' / name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
