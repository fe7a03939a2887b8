"""A minimal stand-in for AWS Glue's ``awsglue`` package, on the PYTHONPATH of twin job runs.

Only ``awsglue.utils.getResolvedOptions`` is provided: enough for Python shell jobs, which is what
the twin runs. On real Glue the real package is there instead.
"""
