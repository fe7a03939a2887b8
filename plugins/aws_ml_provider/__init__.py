"""aws_ml_provider: an Airflow provider for the AWS ML / document-AI services that
apache-airflow-providers-amazon lacks (Textract, Amazon A2I human loops, ...).

Importable as ``aws_ml_provider`` both from the plugins folder (MWAA puts ``plugins/`` on sys.path)
and when pip-installed (pyproject maps the package to ``plugins/aws_ml_provider``). This module and
``get_provider_info`` import nothing heavy; hooks, operators, sensors and triggers import Airflow
and boto3 only when their own module is imported.
"""

from __future__ import annotations

__version__ = "0.1.0"
