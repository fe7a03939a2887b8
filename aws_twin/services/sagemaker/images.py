"""Recognise the SageMaker images the twin can run from their container image URI.

SageMaker publishes its first-party images as ``<account>.dkr.ecr.<region>.<dns suffix>/<repo>:<tag>``
(the partition's suffix: ``amazonaws.com``, ``amazonaws.com.cn``, ``c2s.ic.gov``, ``sc2s.sgov.gov``,
``csp.hci.ic.gov``) with one registry account per region. The twin runs two of them:

- ``sagemaker-xgboost`` (the built-in XGBoost algorithm: training, hosting, batch transform);
- ``sagemaker-scikit-learn`` (the scikit-learn framework image, used by Processing jobs).

The region -> account table below is the twin's own copy of what SageMaker publishes (the
SageMaker Python SDK's ``image_uri_config/xgboost.json`` and ``sklearn.json``, SDK 2.244.0: both
repositories share one registry per region). The twin imitates AWS, so it holds this table itself
and shares no code with the provider under test: a wrong table in one of them shows as a failed
job, not as a test that passes because both read the same mistake.
"""

from __future__ import annotations

import re

#: region -> AWS account that owns the region's ``sagemaker-xgboost`` and ``sagemaker-scikit-learn``
#: ECR repositories (as published in the SageMaker Python SDK's image_uri_config, 2.244.0)
REGISTRIES: dict[str, str] = {
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

#: framework versions of the ``sagemaker-scikit-learn`` image (tags ``<version>-cpu-py3``)
SKLEARN_VERSIONS: tuple[str, ...] = ("0.20.0", "0.23-1", "1.0-1", "1.2-1")

#: region prefix -> DNS suffix of the partition (first match wins; default amazonaws.com)
_DNS_SUFFIXES: tuple[tuple[str, str], ...] = (
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


def _pattern(repository: str) -> re.Pattern:
    return re.compile(
        r"^(?P<account>\d{12})\.dkr\.ecr\.(?P<region>[a-z0-9-]+)\.(?P<suffix>[a-z0-9.]+)"
        rf"/{repository}(?::(?P<tag>[A-Za-z0-9._-]+)|@sha256:[0-9a-f]{{64}})?$"
    )


_XGBOOST = _pattern("sagemaker-xgboost")
_SKLEARN = _pattern("sagemaker-scikit-learn")

NOT_XGBOOST = (
    "The twin runs only the SageMaker built-in XGBoost algorithm "
    "(<account>.dkr.ecr.<region>.amazonaws.com/sagemaker-xgboost:<version>, e.g. "
    "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.7-1); got image {image!r}."
)

NOT_SKLEARN = (
    "The twin runs Processing jobs only on SageMaker's scikit-learn framework image "
    "(<account>.dkr.ecr.<region>.amazonaws.com/sagemaker-scikit-learn:<version>-cpu-py3 with the "
    "region's published registry, versions " + ", ".join(SKLEARN_VERSIONS) + ", e.g. "
    "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.2-1-cpu-py3); got image {image!r}."
)


def _published(match: re.Match | None) -> bool:
    if not match:
        return False
    region = match.group("region")
    return REGISTRIES.get(region) == match.group("account") and match.group("suffix") == dns_suffix(region)


def xgboost_version(image: str | None) -> str | None:
    """The version tag of a built-in XGBoost image URI, '' for a digest, None for another image."""
    match = _XGBOOST.match((image or "").strip())
    if not _published(match):
        return None
    return match.group("tag") or ""


def sklearn_version(image: str | None) -> str | None:
    """The framework version of a scikit-learn framework image URI (``1.2-1`` for
    ``...:1.2-1-cpu-py3``), '' for a digest, None for another image or an unpublished tag."""
    match = _SKLEARN.match((image or "").strip())
    if not _published(match):
        return None
    tag = match.group("tag")
    if tag is None:
        return ""
    for version in SKLEARN_VERSIONS:
        if tag in (version, f"{version}-cpu-py3"):
            return version
    return None


def image_uri(repository: str, region: str, tag: str) -> str:
    """The published URI of ``repository:tag`` in ``region`` (KeyError for an unknown region)."""
    return f"{REGISTRIES[region]}.dkr.ecr.{region}.{dns_suffix(region)}/{repository}:{tag}"
