"""botocore's service models: the specification the twin is written and validated against."""

from __future__ import annotations

import functools
import re

import botocore.session
from botocore.model import OperationModel, ServiceModel


@functools.cache
def _session() -> botocore.session.Session:
    return botocore.session.get_session()


@functools.cache
def service_model(name: str) -> ServiceModel:
    return _session().get_service_model(name)


@functools.cache
def operation_model(service: str, operation: str) -> OperationModel:
    return service_model(service).operation_model(operation)


@functools.cache
def rest_routes(service: str) -> list[tuple[str, re.Pattern, str]]:
    """(method, path regex, operation) for a rest-json service, most specific first."""
    routes = []
    model = service_model(service)
    for op_name in model.operation_names:
        http = model.operation_model(op_name).http
        path = http["requestUri"].split("?", 1)[0]
        pattern = ""
        for part in re.split(r"(\{[^}]+\})", path):
            if part.startswith("{"):
                name = part[1:-1]
                greedy = name.endswith("+")
                name = name.rstrip("+")
                pattern += f"(?P<{name}>{'.+' if greedy else '[^/]+'})"
            else:
                pattern += re.escape(part)
        literal = len(re.sub(r"\{[^}]+\}", "", path))
        routes.append((literal, http["method"], re.compile(f"^{pattern}/?$"), op_name))
    routes.sort(key=lambda r: -r[0])
    return [(m, p, o) for _, m, p, o in routes]


def documented_errors(service: str, operation: str) -> set[str]:
    op = operation_model(service, operation)
    codes = set()
    for shape in op.error_shapes:
        codes.add(shape.name)
        code = shape.metadata.get("error", {}).get("code")
        if code:
            codes.add(code)
    return codes
