"""Model evaluation and reporting used by the ML DAGs (run inside tasks: imports numpy, xgboost and
matplotlib lazily, so nothing heavy happens at DAG parse time)."""
