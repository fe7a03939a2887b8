"""Where a DAG finds the files of ``include/`` (pure Python: no Airflow import, nothing read here).

In the repository, docker compose and ``make up``, ``include/`` sits beside the DAGs folder. On
Amazon MWAA only the DAGs folder is synced, so ``make mwaa-package`` ships it as ``dags/include/``
(``/usr/local/airflow/dags/include``). :func:`include_path` tries both, nearest first. Call it from
a task (run time), never at module level (parse time).
"""

from __future__ import annotations

import os
from pathlib import Path


def include_path(relative: str, *, anchor: str | os.PathLike[str]) -> Path:
    """The file or folder ``include/<relative>`` for the DAG file ``anchor`` (pass ``__file__``):
    ``<dag dir>/include/<relative>`` (MWAA layout), else ``<dag dir>/../include/<relative>``.

    Raises ``FileNotFoundError`` naming both places when neither exists.
    """
    here = Path(anchor).resolve().parent
    candidates = [base / "include" / relative for base in (here, here.parent)]
    for path in candidates:
        if path.exists():
            return path
    raise FileNotFoundError(
        f"include/{relative} not found (looked at {', '.join(str(p) for p in candidates)})"
    )
