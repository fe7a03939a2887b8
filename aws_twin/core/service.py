"""The base of every twin service: state and handlers, separate from the wire format.

A service subclasses :class:`TwinService`, names the botocore service model it serves in
``model`` and implements operations as methods named like boto3's client methods
(``create_training_job``). A method takes ``(ctx, params)`` (params as boto3 would pass them,
with bytes and datetimes) and returns the output dict; errors are raised as ``AwsError``. Several
classes may serve one model (SageMaker training and A2I's flow definitions both live in the
``sagemaker`` model): the first class with a method for the operation answers it.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from werkzeug.wrappers import Request

    from .app import Twin

ACCOUNT_ID = "123456789012"


@dataclass
class RequestContext:
    twin: Twin
    service: str  # botocore service model name
    operation: str
    region: str
    request: Request | None = None
    account_id: str = ACCOUNT_ID

    def arn(self, resource: str, service: str | None = None) -> str:
        svc = service or self.service.split("-")[0]
        return f"arn:aws:{svc}:{self.region}:{self.account_id}:{resource}"


class TwinService:
    model: ClassVar[str]
    #: fall through to moto's implementation for operations this class does not implement
    moto_fallthrough: ClassVar[bool] = False

    def __init__(self, twin: Twin):
        self.twin = twin
        self.lock = threading.RLock()
        self.reset()

    def reset(self) -> None:
        """Forget all state (the ``/_twin/reset`` control endpoint)."""

    def state(self) -> dict[str, Any]:
        """A JSON-able summary of the state (the ``/_twin/state`` control endpoint)."""
        return {}

    def web_routes(self) -> list:
        """werkzeug ``Rule``s whose endpoint is a callable ``(request, **values) -> Response``."""
        return []

    def warm_up(self) -> None:
        """Slow preparation (heavy imports, worker pools) done in the background once the server
        serves, so that the first request needing it does not wait (:meth:`Twin.warm_up`)."""

    def shutdown(self) -> None:
        """Stop background work (the server is stopping)."""

    def handler(self, operation: str):
        from botocore import xform_name

        return getattr(self, xform_name(operation), None)
