"""Print the versions the test suite runs on, and fail when they are not Amazon MWAA's.

``make test`` runs this before pytest. It prints one line, e.g.::

    testing on apache-airflow 3.3.1, apache-airflow-core 3.3.1, apache-airflow-providers-amazon 9.34.0,
    ... (Amazon MWAA 3.3.1 constraints), Python 3.11.7 (MWAA runs Python 3.12)

listing every installed apache-airflow* distribution, and exits 1 when one of them differs from the
version MWAA pins for it (requirements/mwaa/airflow-<MWAA_AIRFLOW>/, see scripts/mwaa_package.py).
"""

from __future__ import annotations

import platform
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from mwaa_package import MwaaTarget, PackageError, installed_airflow_versions, load_target  # noqa: E402


def tested_on(target: MwaaTarget) -> tuple[str, list[str]]:
    """(the "testing on ..." line, the problems)."""
    rows, problems = installed_airflow_versions(target)
    unpinned = [name for name, _, pin in rows if pin is None]
    line = (
        "testing on "
        + ", ".join(f"{name} {have}" for name, have, _ in rows)
        + f" (Amazon MWAA {target.airflow} constraints), Python {platform.python_version()}"
        + f" (MWAA runs Python {target.python})"
    )
    if unpinned:
        line += f"; no MWAA pin for {', '.join(unpinned)}"
    return line, problems


def main(target: MwaaTarget | None = None) -> int:
    try:
        target = target or load_target()
    except PackageError as exc:
        print(f"tested_versions: {exc}", file=sys.stderr)
        return 1
    line, problems = tested_on(target)
    print(line, flush=True)
    for problem in problems:
        print(f"tested_versions: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
