"""Build the Amazon MWAA upload set under dist/mwaa/ (``make mwaa-package``).

    dist/mwaa/plugins.zip       plugins/ contents at the zip root: aws_ml_provider/, aws_ml_provider_plugin.py
    dist/mwaa/requirements.txt  run-time requirements with MWAA's --constraint line (copy of requirements.txt)
    dist/mwaa/dags/             dags/ plus include/ as dags/include/ (MWAA syncs only the dags folder),
                                with an .airflowignore so the DAG processor skips include/
    dist/iam/*.json             (with --account-id ...) include/iam/ policies with the placeholders filled in

Upload: ``aws s3 sync dist/mwaa/dags s3://<bucket>/dags --delete`` and
``aws s3 cp dist/mwaa/plugins.zip s3://<bucket>/plugins.zip`` (same for requirements.txt), then point the
environment at the new object versions. Target: the Amazon MWAA version in the Makefile
(``MWAA_AIRFLOW``, Apache Airflow 3.3.1, Python 3.12), whose files are in requirements/mwaa/.

The build checks what it ships against those files, not against the local install's versions:

- every third-party module the DAGs and the provider import is part of what the MWAA image installs
  (image_packages.txt and their dependency closure, read from the local install's metadata, which
  must hold the very apache-airflow* versions MWAA pins) or listed in requirements.txt;
- requirements.txt has MWAA's ``--constraint`` line, none of aws_twin's packages, no pin that
  differs from the constraints' pin, no package of mwaa_essential_constraints.txt (MWAA does not let
  requirements.txt override those), an exact pin equal to requirements/dev.lock's for every package
  the constraints do not pin, and no package whose own dependencies exclude the version MWAA pins
  (read from the installed distribution's metadata, for Python 3.12 on Linux x86_64);
- with ``--resolve`` (``make mwaa-package``: when PyPI is reachable) ``uv pip compile`` resolves
  requirements.txt under the constraints for Python 3.12 / manylinux x86_64, as MWAA's pip would.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import zipfile
from importlib.metadata import PackageNotFoundError, distributions, packages_distributions, requires, version
from pathlib import Path
from typing import NamedTuple
from urllib.parse import urlsplit

from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
CONSTRAINT_URL_RE = re.compile(
    r"https://raw\.githubusercontent\.com/apache/airflow/constraints-([\w.]+)/constraints-(\d+\.\d+)\.txt"
)
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


# --- what MWAA installs (requirements/mwaa/airflow-<version>/) ---------------------------------------


def _pins(path: Path) -> dict[str, str]:
    """``name==version`` lines of a constraints-style file, by canonical name."""
    pins = {}
    for raw in path.read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line or line.startswith("-"):
            continue
        req = Requirement(line)
        exact = [s.version for s in req.specifier if s.operator == "=="]
        if exact:
            pins[canonicalize_name(req.name)] = exact[0]
    return pins


class MwaaTarget(NamedTuple):
    """An Amazon MWAA image version: the files in requirements/mwaa/airflow-<airflow>/."""

    airflow: str
    python: str
    constraint_url: str  # the --constraint line requirements.txt must carry
    folder: Path
    constraints: dict[str, str]  # airflow_constraints.txt
    essential: dict[str, str]  # mwaa_essential_constraints.txt: not overridable
    image: tuple[Requirement, ...]  # image_packages.txt: what the image's bootstrap installs

    @property
    def constraints_file(self) -> Path:
        return self.folder / "airflow_constraints.txt"

    @property
    def pins(self) -> dict[str, str]:
        """Every version MWAA fixes: the constraints, the image's own ``==`` pins (apache-airflow,
        apache-airflow-core) and the essential constraints."""
        image = {
            canonicalize_name(r.name): s.version
            for r in self.image
            for s in r.specifier
            if s.operator == "=="
        }
        return {**self.constraints, **image, **self.essential}


def mwaa_airflow_version(root: Path = ROOT) -> str:
    """``MWAA_AIRFLOW`` of the Makefile: the MWAA image version the project targets."""
    match = re.search(r"^MWAA_AIRFLOW\s*:?=\s*(\S+)\s*$", (root / "Makefile").read_text(), flags=re.M)
    if not match:
        raise PackageError("the Makefile sets no MWAA_AIRFLOW")
    return match.group(1)


def load_target(root: Path = ROOT, airflow: str | None = None) -> MwaaTarget:
    airflow = airflow or mwaa_airflow_version(root)
    folder = root / "requirements" / "mwaa" / f"airflow-{airflow}"
    files = [
        folder / n
        for n in ("airflow_constraints.txt", "mwaa_essential_constraints.txt", "image_packages.txt")
    ]
    missing = [str(f.relative_to(root)) for f in files if not f.is_file()]
    if missing:
        raise PackageError(
            f"MWAA {airflow}'s files are missing: {', '.join(missing)} (see requirements/mwaa/README.md)"
        )
    match = CONSTRAINT_URL_RE.search(files[0].read_text()[:2000])
    if not match or match.group(1) != airflow:
        raise PackageError(f"{files[0].relative_to(root)} does not name Airflow {airflow}'s constraints URL")
    image = tuple(
        Requirement(line.strip())
        for line in files[2].read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    )
    return MwaaTarget(
        airflow=airflow,
        python=match.group(2),
        constraint_url=match.group(0),
        folder=folder,
        constraints=_pins(files[0]),
        essential=_pins(files[1]),
        image=image,
    )


def target_environment(python: str) -> dict[str, str]:
    """Marker environment of MWAA's workers: CPython ``python`` on Linux x86_64."""
    env = default_environment()
    env.update(
        python_version=python,
        python_full_version=f"{python}.0",
        implementation_name="cpython",
        platform_python_implementation="CPython",
        sys_platform="linux",
        platform_system="Linux",
        platform_machine="x86_64",
        os_name="posix",
    )
    return env


def installed_airflow_versions(target: MwaaTarget) -> tuple[list[tuple[str, str, str | None]], list[str]]:
    """``[(name, installed version, MWAA's pin or None)]`` of every installed apache-airflow*
    distribution, and the problems: an installed version that differs from MWAA's pin."""
    found: dict[str, str] = {}
    for dist in distributions():
        name = canonicalize_name(dist.metadata["Name"] or "")
        if name.startswith("apache-airflow"):
            found[name] = dist.version
    rows = [
        (name, found[name], target.pins.get(name))
        for name in sorted(found, key=lambda n: (n != "apache-airflow", n))
    ]
    problems = [
        f"installed {name} {have} differs from Amazon MWAA {target.airflow}'s pin {name}=={pin} "
        f"(make lock && make install)"
        for name, have, pin in rows
        if pin is not None and have != pin
    ]
    return rows, problems


def _dependencies(name: str, extras, env: dict[str, str]) -> list[Requirement] | None:
    """The requirements of installed distribution ``name`` that apply in ``env`` with ``extras``
    (None: not installed here)."""
    try:
        raw = requires(name) or []
    except PackageNotFoundError:
        return None
    out = []
    for line in raw:
        req = Requirement(line)
        if req.marker is None or any(req.marker.evaluate({**env, "extra": e}) for e in {"", *extras}):
            out.append(req)
    return out


def mwaa_provided(target: MwaaTarget) -> set[str]:
    """What MWAA's image installs: image_packages.txt and their dependency closure (extras followed,
    markers for the target Python on Linux), read from the local install's metadata."""
    env = target_environment(target.python)
    done: dict[str, set[str]] = {}
    todo = [(canonicalize_name(r.name), set(r.extras)) for r in target.image]
    while todo:
        name, extras = todo.pop()
        if name in done and extras <= done[name]:
            continue
        done.setdefault(name, set()).update(extras)
        for req in _dependencies(name, extras, env) or []:
            todo.append((canonicalize_name(req.name), set(req.extras)))
    return set(done)


def _dev_lock(root: Path = ROOT) -> dict[str, str]:
    return _pins(root / "requirements" / "dev.lock")


def check_pins(reqs: list[Requirement], target: MwaaTarget, lock: dict[str, str]) -> list[str]:
    """Problems of requirements.txt's lines with MWAA's versions (see the module's docstring)."""
    problems = []
    mwaa = f"Amazon MWAA {target.airflow}"
    env = target_environment(target.python)
    pins = target.pins
    for req in reqs:
        name = canonicalize_name(req.name)
        pin = pins.get(name)
        if name in target.essential:
            problems.append(
                f"{req} is in {mwaa}'s mwaa_essential_constraints.txt ({name}=={target.essential[name]}): "
                "MWAA does not let requirements.txt override it; leave it out"
            )
            continue
        if pin is not None and req.specifier and not req.specifier.contains(pin, prereleases=True):
            problems.append(f"{req} differs from {mwaa}'s constraints, which pin {name}=={pin}")
        if pin is None:
            exact = [s.version for s in req.specifier if s.operator in ("==", "===")]
            want = lock.get(name)
            if want is None:
                problems.append(
                    f"{req.name} is neither pinned by {mwaa}'s constraints nor in requirements/dev.lock"
                )
            elif exact != [want] or len(req.specifier) != 1:
                problems.append(
                    f"{req} is not pinned by {mwaa}'s constraints: pin it to requirements/dev.lock's "
                    f"version, the one tested ({req.name}=={want})"
                )
        try:
            have = version(name)
        except PackageNotFoundError:
            problems.append(
                f"{req.name} is not installed here, so its dependencies cannot be checked (make install)"
            )
            continue
        # its own dependencies (and theirs, through packages MWAA does not pin) must take MWAA's pins
        seen = {name}
        todo = [(name, have, set(req.extras), f"{req.name} {have}")]
        while todo:
            owner, owner_version, extras, chain = todo.pop()
            for dep in _dependencies(owner, extras, env) or []:
                dep_name = canonicalize_name(dep.name)
                dep_pin = pins.get(dep_name)
                if dep_pin is not None:
                    if not dep.specifier.contains(dep_pin, prereleases=True):
                        problems.append(
                            f"{chain} requires {dep.name}{dep.specifier}, but {mwaa}'s constraints pin "
                            f"{dep_name}=={dep_pin}: pip cannot install {req.name} on MWAA"
                        )
                    continue
                if dep_name in seen:
                    continue
                seen.add(dep_name)
                try:
                    dep_version = version(dep_name)
                except PackageNotFoundError:
                    continue  # not needed on this Python/platform here; the PyPI resolution covers it
                todo.append((dep_name, dep_version, set(dep.extras), f"{chain} -> {dep.name} {dep_version}"))
    return problems


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


def check_requirements(requirements: Path, code_folders, target: MwaaTarget | None = None) -> list[str]:
    """Return the problems with requirements.txt for the code in ``code_folders`` and the MWAA image
    ``target`` (default: the Makefile's; empty: fine)."""
    target = target or load_target()
    problems = []
    options, reqs = requirement_lines(requirements)
    if f'--constraint "{target.constraint_url}"' not in options:
        problems.append(f'{requirements.name} lacks the line --constraint "{target.constraint_url}"')
    listed = {canonicalize_name(r.name) for r in reqs}
    for name in sorted(listed & {canonicalize_name(n) for n in TWIN_ONLY}):
        problems.append(f"{requirements.name} lists {name}, which only aws_twin/tests need")
    for name in sorted(listed & {canonicalize_name(n) for n in ("apache-airflow", "apache-airflow-core")}):
        problems.append(f"{requirements.name} lists {name}: MWAA pins Airflow itself")
    # the closure of MWAA's install is read from the local one: it must hold MWAA's versions
    _, version_problems = installed_airflow_versions(target)
    problems += version_problems
    problems += check_pins(
        [r for r in reqs if canonicalize_name(r.name) not in {canonicalize_name(n) for n in TWIN_ONLY}],
        target,
        _dev_lock(),
    )
    base = mwaa_provided(target)
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


def _index_host() -> str:
    for var in ("UV_DEFAULT_INDEX", "UV_INDEX_URL", "PIP_INDEX_URL"):
        if os.environ.get(var):
            return urlsplit(os.environ[var].split()[0]).hostname or "pypi.org"
    return "pypi.org"


def resolve_on_pypi(requirements: Path, target: MwaaTarget, timeout: float = 600) -> tuple[bool | None, str]:
    """``uv pip compile`` of requirements.txt under MWAA's constraints for Python <target> on
    manylinux x86_64: (True, resolution) / (False, uv's error) / (None, why it was skipped: no uv,
    the package index unreachable). The local copy of the constraints file replaces the URL."""
    uv = shutil.which("uv", path=str(Path(sys.executable).parent)) or shutil.which("uv")
    if not uv:
        return None, "uv is not installed"
    host = _index_host()
    try:
        socket.create_connection((host, 443), timeout=5).close()
    except OSError as exc:
        return None, f"{host} is unreachable ({exc})"
    _, reqs = requirement_lines(requirements)
    with tempfile.TemporaryDirectory() as tmp:
        local = Path(tmp) / "requirements.txt"
        local.write_text("".join(f"{r}\n" for r in reqs))
        cmd = [
            uv,
            "pip",
            "compile",
            str(local),
            "-c",
            str(target.constraints_file),
            "--python-version",
            target.python,
            "--python-platform",
            "x86_64-manylinux_2_28",
            "--no-header",
            "--no-annotate",
            "--quiet",
        ]
        try:
            result = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            return None, f"uv pip compile did not finish in {timeout:.0f}s"
    if result.returncode == 0:
        return True, result.stdout
    return False, (result.stderr or result.stdout).strip()


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
    target: MwaaTarget | None = None,
) -> dict:
    plugins, dags, include = root / "plugins", root / "dags", root / "include"
    requirements = root / "requirements.txt"
    if check:
        problems = check_requirements(requirements, [plugins, dags], target)
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
    parser.add_argument(
        "--resolve",
        choices=("auto", "always", "never"),
        default="auto",
        help="resolve requirements.txt under MWAA's constraints on PyPI with uv pip compile "
        "(auto: when the index is reachable; always: fail when it is not)",
    )
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
        target = load_target()
        result = build(args.out, iam_values=values, target=target)
    except PackageError as exc:
        print(f"mwaa_package: {exc}", file=sys.stderr)
        return 1
    if args.resolve != "never":
        ok, detail = resolve_on_pypi(ROOT / "requirements.txt", target)
        if ok is None:
            print(f"mwaa_package: resolution check skipped: {detail}", file=sys.stderr)
            if args.resolve == "always":
                return 1
        elif not ok:
            print(
                f"mwaa_package: requirements.txt does not resolve under MWAA {target.airflow}'s constraints "
                f"(Python {target.python}, manylinux x86_64):\n{detail}",
                file=sys.stderr,
            )
            return 1
        else:
            print(
                f"requirements.txt resolves under MWAA {target.airflow}'s constraints (uv pip compile, PyPI)"
            )
    mwaa = args.out / "mwaa"
    print(f"{mwaa / 'plugins.zip'}: {len(result['plugins_zip'])} files")
    print(f"{mwaa / 'requirements.txt'} (MWAA Airflow {target.airflow}, Python {target.python})")
    print(f"{result['dags']}/ (include/ as dags/include/)")
    for name in result["iam"]:
        print(f"{args.out / 'iam' / name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
