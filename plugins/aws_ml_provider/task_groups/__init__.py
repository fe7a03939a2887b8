"""Task groups of aws_ml_provider: wiring that several DAGs share, built with ``airflow.sdk``'s
``TaskGroup`` (call them inside a DAG; they import nothing heavy and call no AWS API at parse
time)."""
