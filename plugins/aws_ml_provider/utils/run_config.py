"""The settings steps the image DAGs share: S3 location Params, their resolution (Param, else
``s3://<Variable ml_bucket>/<default>``), the A2I ARNs (Param, else Variable, else the twin
default) and the run's Params with the resolved settings over them.

:func:`prefix_param` and :func:`a2i_params` are for DAG parse time (they build ``Param`` s, nothing
else); the others read Variables or the task context: call them inside tasks only.
"""

from __future__ import annotations

from typing import Any

#: an ``s3://bucket/prefix`` Param, or empty (the default location)
S3_PREFIX_PATTERN = r"^$|^s3://[^/]+/.*$"


def prefix_param(
    title: str,
    description: str,
    default: str,
    *,
    section: str = "Locations",
    pattern: str = S3_PREFIX_PATTERN,
):
    """A nullable S3 prefix Param whose empty value means ``s3://<Variable ml_bucket>/<default>``."""
    from airflow.sdk import Param

    return Param(
        None,
        type=["null", "string"],
        pattern=pattern,
        title=title,
        description=f"{description} Empty: s3://<Variable ml_bucket>/{default}",
        section=section,
    )


def resolve_prefixes(
    params: dict[str, Any], defaults: dict[str, str], *, default_bucket: str, trailing_slash: bool = False
) -> dict[str, str]:
    """``{name: the Param's value, else s3://<Variable ml_bucket>/<defaults[name]>}`` for each name
    of ``defaults`` (the Variable is read only when a Param is empty); ``trailing_slash``: each ends
    with one ``/``."""
    prefixes = {name: params[name] for name in defaults}
    if not all(prefixes.values()):
        from airflow.sdk import Variable

        bucket = Variable.get("ml_bucket", default=default_bucket)
        prefixes = {name: value or f"s3://{bucket}/{defaults[name]}" for name, value in prefixes.items()}
    if trailing_slash:
        prefixes = {name: value.rstrip("/") + "/" for name, value in prefixes.items()}
    return prefixes


def a2i_params(*, human_task_ui_name: str, flow_definition_name: str, section: str = "Review") -> dict:
    """The review Params :func:`a2i_arns` and the A2I task group read: ``workteam_arn``,
    ``a2i_role_arn`` (empty: the Variables) and the names of the task UI and flow definition."""
    from airflow.sdk import Param

    return {
        "workteam_arn": Param(
            None,
            type=["null", "string"],
            pattern=r"^$|^arn:aws[a-z-]*:sagemaker:",
            title="A2I private work team ARN",
            description="Empty: Variable a2i_workteam_arn.",
            section=section,
        ),
        "a2i_role_arn": Param(
            None,
            type=["null", "string"],
            pattern=r"^$|^arn:aws[a-z-]*:iam::",
            title="A2I execution role ARN",
            description="Empty: Variable a2i_role_arn, else Variable sagemaker_role_arn.",
            section=section,
        ),
        "human_task_ui_name": Param(
            human_task_ui_name, type=["null", "string"], title="A2I worker task UI name", section=section
        ),
        "flow_definition_name": Param(
            flow_definition_name, type=["null", "string"], title="A2I flow definition name", section=section
        ),
    }


def a2i_arns(params: dict[str, Any], *, workteam_default: str, role_default: str) -> dict[str, str]:
    """The A2I work team (Param ``workteam_arn``, else Variable ``a2i_workteam_arn``) and role
    (Param ``a2i_role_arn``, else Variable ``a2i_role_arn``, else Variable ``sagemaker_role_arn``),
    each else its default."""
    from airflow.sdk import Variable

    return {
        "workteam_arn": params["workteam_arn"] or Variable.get("a2i_workteam_arn", default=workteam_default),
        "a2i_role_arn": (
            params["a2i_role_arn"]
            or Variable.get("a2i_role_arn", default=None)
            or Variable.get("sagemaker_role_arn", default=role_default)
        ),
    }


def run_settings(cfg: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """(run id, the run's Params with the resolved settings of ``cfg`` over them)."""
    from airflow.sdk import get_current_context

    context = get_current_context()
    return context["run_id"], {**context["params"], **cfg}
