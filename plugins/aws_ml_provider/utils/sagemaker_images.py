"""Image URIs of SageMaker's built-in XGBoost algorithm, resolved offline.

SageMaker publishes the built-in algorithm images in one ECR registry (AWS account) per region.
The table below is the ``sagemaker-xgboost`` registry map the SageMaker Python SDK ships
(``image_uris/xgboost.json``, framework versions 0.90-1 to 1.7-1 share it), written into this module
so that a DAG resolves the image for its connection's region without the SDK and without a network
call. Call it at run time (in a task or a template), never at DAG parse time.
"""

from __future__ import annotations

#: framework versions of the ``sagemaker-xgboost`` image (all served by the registries below)
XGBOOST_VERSIONS: tuple[str, ...] = ("0.90-1", "0.90-2", "1.0-1", "1.2-1", "1.2-2", "1.3-1", "1.5-1", "1.7-1")

#: region -> AWS account that owns the region's ``sagemaker-xgboost`` ECR repository
XGBOOST_REGISTRIES: dict[str, str] = {
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

#: region prefix -> DNS suffix of the partition (first match wins; default amazonaws.com)
_DNS_SUFFIXES: tuple[tuple[str, str], ...] = (
    ("cn-", "amazonaws.com.cn"),
    ("us-isob-", "sc2s.sgov.gov"),
    ("us-isof-", "csp.hci.ic.gov"),
    ("us-iso-", "c2s.ic.gov"),
)


def dns_suffix(region: str) -> str:
    """The DNS suffix of the partition a region belongs to (``amazonaws.com`` for commercial and GovCloud)."""
    for prefix, suffix in _DNS_SUFFIXES:
        if region.startswith(prefix):
            return suffix
    return "amazonaws.com"


def xgboost_image_uri(region: str, version: str = "1.7-1") -> str:
    """``<account>.dkr.ecr.<region>.<dns suffix>/sagemaker-xgboost:<version>`` for a region.

    Raises ``ValueError`` naming the supported values for an unknown region or version.
    """
    region = (region or "").strip()
    if version not in XGBOOST_VERSIONS:
        raise ValueError(
            f"unsupported sagemaker-xgboost version {version!r}; supported: {', '.join(XGBOOST_VERSIONS)}"
        )
    account = XGBOOST_REGISTRIES.get(region)
    if account is None:
        raise ValueError(
            f"no sagemaker-xgboost registry known for region {region!r}; "
            f"known regions: {', '.join(sorted(XGBOOST_REGISTRIES))}"
        )
    return f"{account}.dkr.ecr.{region}.{dns_suffix(region)}/sagemaker-xgboost:{version}"


#: framework versions of SageMaker's scikit-learn image (``sagemaker-scikit-learn:<version>-cpu-py3``),
#: the image of the drift analysis Processing jobs; SageMaker publishes it from the same registry
#: accounts as ``sagemaker-xgboost`` (the SDK's ``image_uris/sklearn.json``)
SKLEARN_VERSIONS: tuple[str, ...] = ("0.20.0", "0.23-1", "1.0-1", "1.2-1")


def sklearn_image_uri(region: str, version: str = "1.2-1") -> str:
    """``<account>.dkr.ecr.<region>.<dns suffix>/sagemaker-scikit-learn:<version>-cpu-py3`` for a region.

    Raises ``ValueError`` naming the supported values for an unknown region or version.
    """
    region = (region or "").strip()
    if version not in SKLEARN_VERSIONS:
        raise ValueError(
            f"unsupported sagemaker-scikit-learn version {version!r}; supported: {', '.join(SKLEARN_VERSIONS)}"
        )
    account = XGBOOST_REGISTRIES.get(region)
    if account is None:
        raise ValueError(
            f"no sagemaker-scikit-learn registry known for region {region!r}; "
            f"known regions: {', '.join(sorted(XGBOOST_REGISTRIES))}"
        )
    return f"{account}.dkr.ecr.{region}.{dns_suffix(region)}/sagemaker-scikit-learn:{version}-cpu-py3"
