"""Wire formats: parse a request into operation parameters, serialize results and errors.

Covers the protocols of the services the twin serves itself (json, rest-json and Smithy RPCv2
CBOR), and the error shapes of every protocol (query and rest-xml too) for injected faults on the
services that fall through to moto.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import uuid
from typing import Any
from urllib.parse import unquote

import cbor2
from botocore.model import OperationModel, Shape
from werkzeug.wrappers import Request, Response

from .errors import AwsError

UTC = dt.UTC


def _to_datetime(value: Any) -> dt.datetime:
    if isinstance(value, dt.datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, int | float):
        return dt.datetime.fromtimestamp(value, UTC)
    text = str(value)
    try:
        return dt.datetime.fromtimestamp(float(text), UTC)
    except ValueError:
        return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


def decode_value(shape: Shape | None, value: Any, wire: str) -> Any:
    """Turn wire values (base64 blobs, epoch timestamps) into Python ones, guided by the shape."""
    if shape is None or value is None:
        return value
    t = shape.type_name
    if t == "structure" and isinstance(value, dict):
        members = shape.members
        return {k: decode_value(members.get(k), v, wire) for k, v in value.items()}
    if t == "list" and isinstance(value, list):
        return [decode_value(shape.member, v, wire) for v in value]
    if t == "map" and isinstance(value, dict):
        return {k: decode_value(shape.value, v, wire) for k, v in value.items()}
    if t == "blob" and wire == "json" and isinstance(value, str):
        return base64.b64decode(value)
    if t == "timestamp":
        return _to_datetime(value)
    return value


def encode_value(shape: Shape | None, value: Any, wire: str) -> Any:
    """Turn Python results into wire values for the json or cbor protocols."""
    if value is None:
        return None
    t = shape.type_name if shape is not None else None
    if isinstance(value, dict):
        if t == "structure":
            members = shape.members
            return {k: encode_value(members.get(k), v, wire) for k, v in value.items() if v is not None}
        inner = shape.value if t == "map" else None
        return {k: encode_value(inner, v, wire) for k, v in value.items() if v is not None}
    if isinstance(value, list | tuple):
        inner = shape.member if t == "list" else None
        return [encode_value(inner, v, wire) for v in value]
    if isinstance(value, bytes):
        return base64.b64encode(value).decode() if wire == "json" else value
    if isinstance(value, dt.datetime):
        value = value if value.tzinfo else value.replace(tzinfo=UTC)
        return value.timestamp() if wire == "json" else value
    if t in ("float", "double") and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


def _cbor_dumps(obj: Any) -> bytes:
    return cbor2.dumps(obj, datetime_as_timestamp=True, timezone=UTC)


class WireRequest:
    """What the dispatcher needs to know of a request for one of the twin's services."""

    def __init__(self, protocol: str, operation: str, params: dict, target_prefix: str | None = None):
        self.protocol = protocol
        self.operation = operation
        self.params = params
        self.target_prefix = target_prefix


def parse_request(request: Request, service_model, op_name_hint: str | None = None) -> WireRequest:
    """Find the operation and its parameters in a request to a json, rest-json or cbor service."""
    path = request.path
    if request.headers.get("smithy-protocol") == "rpc-v2-cbor" or "/operation/" in path:
        op_name = path.rstrip("/").rsplit("/", 1)[-1]
        op = _op(service_model, op_name)
        raw = request.get_data()
        try:
            params = cbor2.loads(raw) if raw else {}
        except Exception as exc:  # CBORDecodeError and friends
            raise _serialization(f"the body is not valid CBOR: {exc}") from exc
        if not isinstance(params, dict):
            raise _serialization("the body must be a CBOR map")
        return WireRequest("cbor", op_name, decode_value(op.input_shape, params or {}, "cbor"))
    target = request.headers.get("X-Amz-Target")
    if target:
        op_name = target.rsplit(".", 1)[-1]
        op = _op(service_model, op_name)
        params = _json_body(request.get_data())
        return WireRequest("json", op_name, decode_value(op.input_shape, params, "json"))
    if service_model.protocol == "rest-json":
        return _parse_rest_json(request, service_model)
    raise AwsError("UnknownOperationException", f"cannot tell the operation of {request.method} {path}")


def _op(service_model, op_name: str) -> OperationModel:
    try:
        return service_model.operation_model(op_name)
    except Exception as exc:  # botocore raises OperationNotFoundError
        raise AwsError("UnknownOperationException", f"Unknown operation {op_name}") from exc


def _parse_rest_json(request: Request, service_model) -> WireRequest:
    from .models import rest_routes

    path = unquote(request.path)
    for method, pattern, op_name in rest_routes(service_model.service_name):  # noqa: B007
        if method != request.method:
            continue
        match = pattern.match(path)
        if match:
            break
    else:
        raise AwsError("UnknownOperationException", f"no operation for {request.method} {path}")
    op = service_model.operation_model(op_name)
    shape = op.input_shape
    params: dict[str, Any] = {}
    if shape is None:
        return WireRequest("rest-json", op_name, params)
    uri_names = match.groupdict()
    payload_member = shape.serialization.get("payload")
    body_members = {}
    for name, member in shape.members.items():
        loc = member.serialization.get("location")
        wire_name = member.serialization.get("name", name)
        if loc == "uri":
            if wire_name in uri_names:
                params[name] = uri_names[wire_name]
        elif loc == "querystring":
            if member.type_name == "list":
                values = request.args.getlist(wire_name)
                if values:
                    params[name] = values
            elif wire_name in request.args:
                params[name] = _scalar(member, request.args[wire_name])
        elif loc == "header":
            if wire_name in request.headers:
                params[name] = _scalar(member, request.headers[wire_name])
        elif name == payload_member:
            if member.type_name == "blob":
                params[name] = request.get_data()
            else:
                raw = request.get_data()
                if raw.strip():
                    params[name] = decode_value(member, _json_body(raw), "json")
        else:
            body_members[name] = member
    if body_members and payload_member is None:
        raw = request.get_data()
        if raw.strip():
            params.update(decode_value(shape, _json_body(raw), "json"))
    return WireRequest("rest-json", op_name, params)


def _serialization(message: str) -> AwsError:
    return AwsError("SerializationException", message, 400)


def _json_body(raw: bytes) -> dict:
    """The JSON object of a request body; malformed JSON is the caller's SerializationException (as
    AWS answers it), not an InternalFailure that botocore would retry."""
    if not raw.strip():
        return {}
    try:
        params = json.loads(raw)
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError
        raise _serialization(f"the request body is not valid JSON: {exc}") from exc
    if not isinstance(params, dict):
        raise _serialization(f"the request body must be a JSON object, not {type(params).__name__}")
    return params


def _scalar(shape: Shape, text: str) -> Any:
    t = shape.type_name
    if t in ("integer", "long"):
        return int(text)
    if t in ("float", "double"):
        return float(text)
    if t == "boolean":
        return text.lower() == "true"
    if t == "timestamp":
        return _to_datetime(text)
    return text


def request_id() -> str:
    return str(uuid.uuid4())


def serialize_result(wire: WireRequest, op: OperationModel, result: dict) -> Response:
    rid = request_id()
    shape = op.output_shape
    if wire.protocol == "cbor":
        body = _cbor_dumps(encode_value(shape, result or {}, "cbor"))
        return Response(
            body,
            200,
            headers={"x-amzn-RequestId": rid, "smithy-protocol": "rpc-v2-cbor"},
            content_type="application/cbor",
        )
    if wire.protocol == "json":
        body = json.dumps(encode_value(shape, result or {}, "json"))
        return Response(
            body, 200, headers={"x-amzn-RequestId": rid}, content_type="application/x-amz-json-1.1"
        )
    # rest-json
    headers = {"x-amzn-RequestId": rid}
    body: bytes | str = b""
    content_type = "application/json"
    if shape is not None:
        payload_member = shape.serialization.get("payload")
        json_body = {}
        for name, value in (result or {}).items():
            member = shape.members.get(name)
            if member is None or value is None:
                continue
            loc = member.serialization.get("location")
            if loc == "header":
                header = member.serialization.get("name", name)
                if header.lower() == "content-type":
                    content_type = str(value)
                else:
                    headers[header] = str(value)
            elif name == payload_member:
                if member.type_name == "blob":
                    body = value
                else:
                    body = json.dumps(encode_value(member, value, "json"))
            else:
                json_body[name] = encode_value(member, value, "json")
        if payload_member is None:
            body = json.dumps(json_body)
    status = op.http.get("responseCode", 200)
    return Response(body, status, headers=headers, content_type=content_type)


def serialize_error(protocol: str, err: AwsError) -> Response:
    rid = request_id()
    if "at 0x" in err.message:  # set on the error after it was made
        err = AwsError(err.code, err.message, err.status, err.sender_fault)
    headers = {"x-amzn-RequestId": rid, "x-amzn-ErrorType": err.code}
    if protocol == "cbor":
        body = _cbor_dumps({"__type": err.code, "message": err.message})
        headers["smithy-protocol"] = "rpc-v2-cbor"
        return Response(body, err.status, headers=headers, content_type="application/cbor")
    if protocol in ("json", "rest-json"):
        body = json.dumps({"__type": err.code, "message": err.message, "Message": err.message})
        ctype = "application/x-amz-json-1.1" if protocol == "json" else "application/json"
        return Response(body, err.status, headers=headers, content_type=ctype)
    if protocol == "rest-xml":
        body = (
            f"<?xml version='1.0' encoding='UTF-8'?><Error><Code>{err.code}</Code>"
            f"<Message>{_xml(err.message)}</Message><RequestId>{rid}</RequestId></Error>"
        )
        return Response(body, err.status, headers={"x-amz-request-id": rid}, content_type="application/xml")
    fault = "Sender" if err.sender_fault else "Receiver"
    body = (
        f"<?xml version='1.0' encoding='UTF-8'?><ErrorResponse><Error><Type>{fault}</Type>"
        f"<Code>{err.code}</Code><Message>{_xml(err.message)}</Message></Error>"
        f"<RequestId>{rid}</RequestId></ErrorResponse>"
    )
    return Response(body, err.status, headers={"x-amzn-RequestId": rid}, content_type="text/xml")


def _xml(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
