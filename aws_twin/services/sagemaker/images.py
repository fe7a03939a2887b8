"""Recognise the built-in XGBoost algorithm from its container image URI.

SageMaker publishes ``<account>.dkr.ecr.<region>.<dns suffix>/sagemaker-xgboost:<version>`` (the
partition's suffix: ``amazonaws.com``, ``amazonaws.com.cn``, ``c2s.ic.gov``, ``sc2s.sgov.gov``,
``csp.hci.ic.gov``) with one registry account per region (the table of the SageMaker Python SDK's
``image_uri_config/xgboost.json``, identical for every ``sagemaker-xgboost`` version from 0.90-1).
"""

from __future__ import annotations

import re

#: region -> registry account of the ``sagemaker-xgboost`` images
XGBOOST_REGISTRIES = {
    "af-south-1": "510948584623",
    "ap-east-1": "651117190479",
    "ap-northeast-1": "354813040037",
    "ap-northeast-2": "366743142698",
    "ap-northeast-3": "867004704886",
    "ap-south-1": "720646828776",
    "ap-south-2": "628508329040",
    "ap-southeast-1": "121021644041",
    "ap-southeast-2": "783357654285",
    "ap-southeast-3": "951798379941",
    "ap-southeast-4": "106583098589",
    "ca-central-1": "341280168497",
    "ca-west-1": "190319476487",
    "cn-north-1": "450853457545",
    "cn-northwest-1": "451049120500",
    "eu-central-1": "492215442770",
    "eu-central-2": "680994064768",
    "eu-north-1": "662702820516",
    "eu-south-1": "978288397137",
    "eu-south-2": "104374241257",
    "eu-west-1": "141502667606",
    "eu-west-2": "764974769150",
    "eu-west-3": "659782779980",
    "il-central-1": "898809789911",
    "me-central-1": "272398656194",
    "me-south-1": "801668240914",
    "sa-east-1": "737474898029",
    "us-east-1": "683313688378",
    "us-east-2": "257758044811",
    "us-gov-east-1": "237065988967",
    "us-gov-west-1": "414596584902",
    "us-iso-east-1": "833128469047",
    "us-isob-east-1": "281123927165",
    "us-isof-east-1": "108575199400",
    "us-isof-south-1": "124985052026",
    "us-west-1": "746614075791",
    "us-west-2": "246618743249",
}

_IMAGE = re.compile(
    r"^(?P<account>\d{12})\.dkr\.ecr\.(?P<region>[a-z0-9-]+)\.(?P<suffix>[a-z0-9.]+)"
    r"/sagemaker-xgboost(?::(?P<tag>[A-Za-z0-9._-]+)|@sha256:[0-9a-f]{64})?$"
)

NOT_XGBOOST = (
    "The twin runs only the SageMaker built-in XGBoost algorithm "
    "(<account>.dkr.ecr.<region>.amazonaws.com/sagemaker-xgboost:<version>, e.g. "
    "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.7-1); got image {image!r}."
)


_DNS_SUFFIXES = (
    ("cn-", "amazonaws.com.cn"),
    ("us-isob-", "sc2s.sgov.gov"),
    ("us-isof-", "csp.hci.ic.gov"),
    ("us-iso-", "c2s.ic.gov"),
)


def dns_suffix(region: str) -> str:
    for prefix, suffix in _DNS_SUFFIXES:
        if region.startswith(prefix):
            return suffix
    return "amazonaws.com"


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


def is_xgboost(image: str | None) -> bool:
    return xgboost_version(image) is not None
