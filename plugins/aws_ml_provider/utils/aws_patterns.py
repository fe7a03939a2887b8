"""The name and ARN rules AWS enforces, as regular expressions: ``*_PARAM`` are anchored JSON-schema
``pattern`` s for DAG Params (a bad value fails the trigger form, before any task runs; ``^$|``
lets an empty value through where the Param means "the Variable, else the default"), and
:func:`require` checks a value that bypassed the form (a Variable) inside a task, raising
``AirflowFailException`` (a retry cannot fix a bad name).

Where botocore's service models carry a pattern, it is that pattern (tests/unit/test_aws_patterns.py
compares them): ``RoleArn``, ``WorkteamArn``, ``FlowDefinitionName``, ``HumanTaskUiName``,
``EndpointName``, ``ModelPackageGroupName``. S3 bucket names have none in the model; the rules are
the S3 user guide's "General purpose bucket naming rules": 3-63 characters of ``a-z 0-9 . -``,
starting and ending with a letter or digit, no two adjacent periods, not an IP address, not
starting ``xn--``, ``sthree-`` or ``amzn-s3-demo-``, not ending ``-s3alias``, ``--ol-s3``,
``.mrap``, ``--x-s3`` or ``--table-s3``. The expressions use only what Python's ``re`` and
JavaScript's ``RegExp`` (the trigger form) both read.
"""

from __future__ import annotations

import re

#: an S3 general purpose bucket name; usable inside a larger pattern (ends before ``/`` or the end)
BUCKET_NAME = (
    r"(?!xn--|sthree-|amzn-s3-demo-)"
    r"(?![a-z0-9.-]*\.\.)"
    r"(?!\d{1,3}(\.\d{1,3}){3}(/|$))"
    r"(?![a-z0-9.-]*(-s3alias|--ol-s3|\.mrap|--x-s3|--table-s3)(/|$))"
    r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]"
)
#: botocore sagemaker ``RoleArn`` (also what Glue's role takes)
ROLE_ARN = r"arn:aws[a-z\-]*:iam::\d{12}:role/?[a-zA-Z_0-9+=,.@\-_/]+"
#: botocore sagemaker ``WorkteamArn``
WORKTEAM_ARN = r"arn:aws[a-z\-]*:sagemaker:[a-z0-9\-]*:[0-9]{12}:workteam/.*"
#: botocore sagemaker ``FlowDefinitionName`` / ``HumanTaskUiName`` (at most 63 characters)
A2I_NAME = r"[a-z0-9](-*[a-z0-9]){0,62}"
#: botocore sagemaker ``EndpointName`` / ``ModelPackageGroupName``
SAGEMAKER_NAME = r"[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}"


def param(pattern: str, *, empty: bool = True) -> str:
    """An anchored Param ``pattern`` of ``pattern`` (``empty``: an empty string passes too)."""
    return f"^$|^(?:{pattern})$" if empty else f"^(?:{pattern})$"


BUCKET_PARAM = param(BUCKET_NAME)
#: ``s3://<bucket>/<prefix>`` (the prefix may be empty)
S3_PREFIX_PARAM = param(rf"s3://{BUCKET_NAME}(/.*)?")
#: ``s3://<bucket>/<key>`` (an object)
S3_OBJECT_PARAM = param(rf"s3://{BUCKET_NAME}/.+")
ROLE_ARN_PARAM = param(ROLE_ARN)
WORKTEAM_ARN_PARAM = param(WORKTEAM_ARN)
A2I_NAME_PARAM = param(A2I_NAME, empty=False)
SAGEMAKER_NAME_PARAM = param(SAGEMAKER_NAME, empty=False)


def matches(pattern: str, value: str) -> bool:
    """Whether ``value`` matches an (anchored) Param ``pattern``, as the trigger form checks it."""
    return isinstance(value, str) and re.search(pattern, value) is not None


def require(value: str, pattern: str, what: str, where: str = "") -> str:
    """``value`` when it matches the Param ``pattern``; else ``AirflowFailException`` (not retried)
    naming ``what``, the value and ``where`` it came from (a Variable, say)."""
    if matches(pattern, value):
        return value
    from airflow.providers.common.compat.sdk import AirflowFailException

    source = f" (from {where})" if where else ""
    raise AirflowFailException(
        f"{what} {value!r}{source} is not valid: it must match {pattern}; fix the value, a retry would not help"
    )
