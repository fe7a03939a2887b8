"""Recognise the built-in XGBoost algorithm from its container image URI.

SageMaker publishes ``<account>.dkr.ecr.<region>.<dns suffix>/sagemaker-xgboost:<version>`` (the
partition's suffix: ``amazonaws.com``, ``amazonaws.com.cn``, ``c2s.ic.gov``, ``sc2s.sgov.gov``,
``csp.hci.ic.gov``) with one registry account per region. The region -> account table and the
partition suffixes are the provider's (``aws_ml_provider.utils.sagemaker_images``, pure Python):
one table, so the image URI a DAG builds is always one the twin runs.
"""

from __future__ import annotations

import re

from aws_ml_provider.utils.sagemaker_images import XGBOOST_REGISTRIES, dns_suffix

_IMAGE = re.compile(
    r"^(?P<account>\d{12})\.dkr\.ecr\.(?P<region>[a-z0-9-]+)\.(?P<suffix>[a-z0-9.]+)"
    r"/sagemaker-xgboost(?::(?P<tag>[A-Za-z0-9._-]+)|@sha256:[0-9a-f]{64})?$"
)

NOT_XGBOOST = (
    "The twin runs only the SageMaker built-in XGBoost algorithm "
    "(<account>.dkr.ecr.<region>.amazonaws.com/sagemaker-xgboost:<version>, e.g. "
    "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.7-1); got image {image!r}."
)


def xgboost_version(image: str | None) -> str | None:
    """The version tag of a built-in XGBoost image URI, '' for a digest, None for another image."""
    match = _IMAGE.match((image or "").strip())
    if not match:
        return None
    region = match.group("region")
    if XGBOOST_REGISTRIES.get(region) != match.group("account"):
        return None
    if match.group("suffix") != dns_suffix(region):
        return None
    return match.group("tag") or ""
