"""``sagemaker-runtime`` InvokeEndpoint against the twin's endpoints (state in
:class:`~aws_twin.services.sagemaker.handlers.SageMakerService`).

Errors as SageMaker answers them: an unknown endpoint is ``ValidationError`` "Endpoint X of
account Y not found."; one that is not InService (Creating, Failed) is ``ValidationError`` too; a
payload the XGBoost container rejects is ``ModelError`` (HTTP 424) "Received client error (4xx)
from primary with message ...". See :mod:`aws_twin.services.sagemaker.xgb` for the formats.
"""

from __future__ import annotations

from ...core.errors import AwsError
from ...core.service import TwinService
from . import xgb


class SageMakerRuntimeService(TwinService):
    model = "sagemaker-runtime"

    def _sagemaker(self):
        from .handlers import SageMakerService

        for svc in self.twin.services:
            if isinstance(svc, SageMakerService):
                return svc
        raise AwsError("InternalFailure", "the twin's SageMaker service is not loaded", 500)

    def invoke_endpoint(self, ctx, params):
        hosting = self._sagemaker().hosting
        name = params["EndpointName"]
        endpoint = hosting.endpoints.get(name)
        if endpoint is None:
            raise AwsError("ValidationError", f"Endpoint {name} of account {ctx.account_id} not found.")
        # Updating endpoints keep serving the variants loaded before the update
        variants_ready = endpoint.status in ("InService", "Updating") and endpoint.variants
        if not variants_ready:
            raise AwsError(
                "ValidationError",
                f"Endpoint {name} of account {ctx.account_id} is not in service (status {endpoint.status}).",
            )
        variant = hosting.pick_variant(endpoint, params.get("TargetVariant"))
        body = params.get("Body") or b""
        if isinstance(body, str):
            body = body.encode()
        content_type = params.get("ContentType") or "application/octet-stream"
        try:
            answer, answer_type = xgb.predict_payload(
                variant.booster, body, content_type, params.get("Accept")
            )
        except xgb.InferenceError as exc:
            hosting.log(ctx, name, variant.name, f"inference error ({exc.status}): {exc.message}")
            raise AwsError(
                "ModelError",
                f'Received client error ({exc.status}) from primary with message "{exc.message}". '
                f"See https://{ctx.region}.console.aws.amazon.com/cloudwatch/home?region={ctx.region}#logEventViewer:"
                f"group=/aws/sagemaker/Endpoints/{name} in account {ctx.account_id} for more information.",
                424,
            ) from None
        capture = endpoint.capture
        if capture and capture.get("EnableCapture", True) and hosting.capture.sampled(capture):
            hosting.capture.record(
                capture,
                name,
                variant.name,
                body,
                params.get("ContentType"),
                answer,
                answer_type,
                params.get("InferenceId"),
            )
        return {"Body": answer, "ContentType": answer_type, "InvokedProductionVariant": variant.name}
