"""aws_ml_provider.utils.paths.include_path finds include/ in both layouts: beside the DAG files
(MWAA: dags/include/) and beside the DAGs folder (repository, docker compose, make up)."""

from __future__ import annotations

from pathlib import Path

import pytest
from aws_ml_provider.utils.paths import include_path

ROOT = Path(__file__).resolve().parents[2]


def _layout(root: Path, include_dir: Path) -> Path:
    (include_dir / "glue").mkdir(parents=True)
    (include_dir / "glue" / "job.py").write_text("print('job')\n")
    dag = root / "dags" / "my_dag.py"
    dag.parent.mkdir(parents=True, exist_ok=True)
    dag.write_text("")
    return dag


def test_mwaa_layout_include_inside_the_dags_folder(tmp_path):
    dag = _layout(tmp_path, tmp_path / "dags" / "include")
    assert include_path("glue/job.py", anchor=dag) == tmp_path / "dags" / "include" / "glue" / "job.py"
    assert include_path("glue", anchor=str(dag)).is_dir()


def test_repository_layout_include_beside_the_dags_folder(tmp_path):
    dag = _layout(tmp_path, tmp_path / "include")
    assert include_path("glue/job.py", anchor=dag) == tmp_path / "include" / "glue" / "job.py"


def test_the_dags_folder_copy_wins_over_the_parent(tmp_path):
    dag = _layout(tmp_path, tmp_path / "include")
    (tmp_path / "dags" / "include" / "glue").mkdir(parents=True)
    (tmp_path / "dags" / "include" / "glue" / "job.py").write_text("")
    assert include_path("glue/job.py", anchor=dag).parent.parent == tmp_path / "dags" / "include"


def test_missing_file_names_both_places(tmp_path):
    dag = _layout(tmp_path, tmp_path / "include")
    with pytest.raises(FileNotFoundError) as err:
        include_path("glue/absent.py", anchor=dag)
    assert str(tmp_path / "dags" / "include" / "glue" / "absent.py") in str(err.value)
    assert str(tmp_path / "include" / "glue" / "absent.py") in str(err.value)


def test_the_repository_dags_find_their_files():
    anchor = ROOT / "dags" / "expense_documents.py"
    assert include_path("templates/expense_review.liquid.html", anchor=anchor).is_file()
    assert include_path("data/mlc_churn.csv", anchor=anchor).is_file()
