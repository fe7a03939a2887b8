"""The twin's WSGI application: one endpoint URL for every service.

Requests are routed by the SigV4 credential scope (botocore signs sagemaker, sagemaker-runtime
and sagemaker-a2i-runtime all as ``sagemaker``, so the path and ``X-Amz-Target`` decide between
them). The twin's own services answer their operations; everything else falls through to moto's
server application.
"""

from __future__ import annotations

import collections
import concurrent.futures
import hmac
import io
import json
import logging
import os
import re
import threading
import time
from typing import Any
from urllib.parse import parse_qs

import boto3
from botocore.config import Config
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge
from werkzeug.routing import Map
from werkzeug.wrappers import Request, Response

from . import models
from .errors import AwsError, NotImplementedByTwin
from .faults import Decision, FaultInjector
from .limits import body_limit, too_large_error
from .protocol import parse_request, serialize_error, serialize_result
from .service import RequestContext, TwinService
from .validate import validate

log = logging.getLogger("aws_twin")

_SCOPE = re.compile(r"Credential=([^/]+)/\d{8}/([^/]+)/([^/]+)/aws4_request")
#: WSGI environ key set on the twin's own in-process calls (:meth:`Twin.client`): a request from the
#: network cannot carry it (headers arrive as ``HTTP_*``), so no credential skips fault injection
INTERNAL_ENVIRON = "aws_twin.internal"
#: the control endpoints' token header (``/_twin/reset``, ``/_twin/faults``, ``/_twin/state``)
CONTROL_HEADER = "X-Twin-Control-Token"
#: the most a control endpoint reads of a request body
CONTROL_BODY_LIMIT = 64 * 1024
#: errors every AWS API may answer (AWS "common errors"), beside those an operation documents
COMMON_ERRORS = {
    "ValidationException",
    "ThrottlingException",
    "Throttling",
    "AccessDeniedException",
    "InternalFailure",
    "InternalServerError",
    "ServiceUnavailable",
    "NotImplemented",
    "UnknownOperationException",
    "UnrecognizedClientException",
    "MissingAction",
    "SerializationException",
}


def signing_scope(request: Request) -> tuple[str | None, str, str | None]:
    """(access key, region, signing name) from the Authorization header or a presigned URL."""
    auth = request.headers.get("Authorization", "")
    match = _SCOPE.search(auth)
    if not match:
        cred = request.args.get("X-Amz-Credential", "")
        parts = cred.split("/")
        if len(parts) == 5:
            return parts[0], parts[2], parts[3]
        return None, "us-east-1", None
    return match.group(1), match.group(2), match.group(3)


def resolve_service(signing: str | None, request: Request) -> str | None:
    """The botocore service model a request is for."""
    if signing == "sagemaker":
        target = request.headers.get("X-Amz-Target", "")
        if target.startswith("SageMaker."):
            return "sagemaker"
        if request.path.startswith("/endpoints/"):
            return "sagemaker-runtime"
        if request.path.startswith("/human-loops"):
            return "sagemaker-a2i-runtime"
        return "sagemaker"
    if signing == "monitoring":
        return "cloudwatch"
    return signing


def guess_operation(service: str, request: Request) -> str:
    """The operation name, cheaply, for fault rules (no body parsing for moto's services)."""
    target = request.headers.get("X-Amz-Target")
    if target:
        return target.rsplit(".", 1)[-1]
    if "/operation/" in request.path:
        return request.path.rstrip("/").rsplit("/", 1)[-1]
    if "Action" in request.args:
        return request.args["Action"]
    if request.mimetype == "application/x-www-form-urlencoded":
        action = parse_qs(request.get_data(cache=True).decode("utf-8", "replace")).get("Action")
        if action:
            return action[0]
    if service == "s3":
        has_key = "/" in request.path.strip("/")
        verb = {"GET": "Get", "PUT": "Put", "DELETE": "Delete", "HEAD": "Head", "POST": "Post"}
        return verb.get(request.method, request.method.title()) + ("Object" if has_key else "Bucket")
    try:
        model = models.service_model(service)
        if model.protocol == "rest-json":
            for method, pattern, op in models.rest_routes(service):
                if method == request.method and pattern.match(request.path):
                    return op
    except Exception:  # unknown service name: leave it to moto
        pass
    return "*"


def _protocol(service: str, request: Request) -> str:
    """The wire protocol a request came in, for answering it with an error."""
    if request.headers.get("smithy-protocol") == "rpc-v2-cbor":
        return "cbor"
    if request.headers.get("X-Amz-Target"):
        return "json"
    try:
        protocol = models.service_model(service).protocol
    except Exception:
        return "json"
    return {"smithy-rpc-v2-cbor": "cbor"}.get(protocol, protocol)


def fault_error(service: str, decision: str, request: Request) -> tuple[str, AwsError]:
    protocol = _protocol(service, request)
    if protocol == "rest-xml":
        if decision == Decision.THROTTLE:
            return protocol, AwsError("SlowDown", "Please reduce your request rate.", 503, False)
        return protocol, AwsError(
            "InternalError", "We encountered an internal error. Please try again.", 500, False
        )
    if decision == Decision.THROTTLE:
        code = "Throttling" if protocol == "query" else "ThrottlingException"
        return protocol, AwsError(code, "Rate exceeded", 400)
    return protocol, AwsError("ServiceUnavailable", "Service is unavailable, please try again.", 503, False)


class Twin:
    """The application object: services, moto, faults, control endpoints."""

    def __init__(
        self,
        service_classes: list[type[TwinService]] | None = None,
        faults: FaultInjector | None = None,
        strict: bool = False,
        work_dir: str | None = None,
        review_token: str | None = None,
        viewer_token: str | None = None,
        control_token: str | None = None,
    ):
        from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

        from ..services import default_service_classes

        self.url = "http://127.0.0.1:4566"
        self.strict = strict
        self.faults = faults or FaultInjector()
        self.work_dir = work_dir
        self.review_token = review_token
        #: token of the S3 object viewer (``GET /_twin/s3/<bucket>/<key>?token=``); None: viewer off
        self.viewer_token = viewer_token
        #: token of the control endpoints (header X-Twin-Control-Token); None: they answer 403
        self.control_token = control_token
        self.violations: list[str] = []
        #: "<access key> <service>:<operation>" -> count of the client calls received (not the
        #: twin's own): what a caller did, e.g. to check an IAM policy covers it
        self.calls: collections.Counter[str] = collections.Counter()
        #: set when :meth:`warm_up` has finished (the state reports it)
        self.warmed = threading.Event()
        self.executor = concurrent.futures.ThreadPoolExecutor(max_workers=16, thread_name_prefix="twin-job")
        self._clients: dict[str, Any] = {}
        self._clients_lock = threading.Lock()
        self.moto_app = DomainDispatcherApplication(create_backend_app)
        classes = service_classes if service_classes is not None else default_service_classes()
        self.services: list[TwinService] = [cls(self) for cls in classes]
        self.by_model: dict[str, list[TwinService]] = {}
        for svc in self.services:
            self.by_model.setdefault(svc.model, []).append(svc)
        rules = []
        for svc in self.services:
            rules.extend(svc.web_routes())
        self.web_map = Map(rules)

    # ---- helpers for services -------------------------------------------------------------
    def client(self, service: str, region: str = "us-east-1"):
        """A boto3 client to this twin, for a service's own use (a Textract job reading its document
        from S3...). Its requests never leave the process: botocore's ``before-send`` hands them to
        :meth:`internal_call`, which serves them without fault injection (AWS's own services do not
        meet the faults a caller's client meets) and without counting them as client calls."""
        key = f"{service}/{region}"
        with self._clients_lock:
            if key not in self._clients:
                client = boto3.client(
                    service,
                    endpoint_url=self.url,
                    region_name=region,
                    aws_access_key_id="aws-twin-internal",
                    aws_secret_access_key="twin",
                    config=Config(retries={"max_attempts": 5, "mode": "standard"}),
                )
                client.meta.events.register("before-send", self.internal_call)
                self._clients[key] = client
            return self._clients[key]

    def internal_call(self, request, **kwargs):
        """botocore ``before-send`` handler: serve a prepared request in-process."""
        from urllib.parse import urlsplit

        from botocore.awsrequest import AWSResponse
        from werkzeug.test import EnvironBuilder, run_wsgi_app

        url = urlsplit(request.url)
        body = request.body
        if hasattr(body, "read"):
            body = body.read()
        if isinstance(body, str):
            body = body.encode()
        environ = EnvironBuilder(
            method=request.method,
            base_url=f"{url.scheme}://{url.netloc}",
            query_string=url.query,
            headers=[
                (k, v.decode("latin-1") if isinstance(v, bytes) else str(v))
                for k, v in request.headers.items()
            ],
            data=body or b"",
        ).get_environ()
        # the path as sent (percent-encoded by botocore), decoded the way a WSGI server decodes it
        from urllib.parse import unquote_to_bytes

        environ["PATH_INFO"] = unquote_to_bytes(url.path).decode("latin-1")
        environ["RAW_URI"] = environ["REQUEST_URI"] = url.path + (f"?{url.query}" if url.query else "")
        environ[INTERNAL_ENVIRON] = True
        app_iter, status, headers = run_wsgi_app(self, environ, buffered=True)
        try:
            data = b"".join(app_iter)
        finally:
            if hasattr(app_iter, "close"):
                app_iter.close()
        return AWSResponse(request.url, int(status.split(" ", 1)[0]), dict(headers), _Raw(data))

    def background(self, fn, *args, **kwargs) -> concurrent.futures.Future:
        future = self.executor.submit(fn, *args, **kwargs)
        future.add_done_callback(_log_failure)
        return future

    def reset(self) -> None:
        from moto.moto_api._internal.models import moto_api_backend

        moto_api_backend.reset()
        for svc in self.services:
            svc.reset()
        self.faults.set_rules([])
        self.violations.clear()
        self.calls.clear()

    def state(self) -> dict:
        return {
            "url": self.url,
            "services": {type(s).__name__: s.state() for s in self.services},
            "faults": {"rules": self.faults.rules(), "counters": dict(self.faults.counters)},
            "violations": list(self.violations),
            "calls": dict(self.calls),
            "warmed_up": self.warmed.is_set(),
        }

    def warm_up(self) -> threading.Thread:
        """Every service's :meth:`TwinService.warm_up`, one after another in a daemon thread (the
        server calls this once it serves); a failure is logged, and the work is then done when
        first needed."""

        def run() -> None:
            for svc in self.services:
                try:
                    svc.warm_up()
                except Exception:
                    log.exception("warm-up of %s failed", type(svc).__name__)
            self._warm_internal_clients()
            self.warmed.set()

        thread = threading.Thread(target=run, name="twin-warm-up", daemon=True)
        thread.start()
        return thread

    #: read-only calls (region: AWS_DEFAULT_REGION, else us-east-1) that build the internal clients
    #: jobs use (S3 data, CloudWatch logs and metrics) and load what serving those services and
    #: SageMaker / Glue first needs (API models, moto's backends): 0.1-0.4 s the first training job
    #: or Glue run would wait for. Internal calls: no faults, not counted as client calls.
    WARM_CALLS = (
        ("s3", "list_buckets", {}),
        ("logs", "describe_log_groups", {"limit": 1}),
        ("cloudwatch", "list_metrics", {}),
        ("sagemaker", "list_training_jobs", {"MaxResults": 1}),
        ("glue", "get_jobs", {"MaxResults": 1}),
    )

    def _warm_internal_clients(self) -> None:
        region = os.environ.get("AWS_DEFAULT_REGION", "us-east-1")
        for service, operation, params in self.WARM_CALLS:
            try:
                getattr(self.client(service, region), operation)(**params)
            except Exception:
                log.exception("warm-up call %s.%s failed", service, operation)

    def shutdown(self) -> None:
        for svc in self.services:
            try:
                svc.shutdown()
            except Exception:
                log.exception("shutdown of %s failed", type(svc).__name__)
        self.executor.shutdown(wait=False, cancel_futures=True)

    # ---- WSGI -----------------------------------------------------------------------------
    def __call__(self, environ, start_response):
        request = Request(environ)
        try:
            response = self.handle(request)
        except HTTPException as exc:
            response = exc.get_response()
        return response(environ, start_response)

    def handle(self, request: Request):
        if request.path.startswith("/_twin/"):
            request.max_content_length = CONTROL_BODY_LIMIT
            return self.control(request)
        access_key, region, signing = signing_scope(request)
        if signing is None:
            adapter = self.web_map.bind_to_environ(request.environ)
            try:
                endpoint, values = adapter.match()
            except HTTPException:
                return self._bounded(request, "s3", _MotoCall(self.moto_app, "s3", request))
            request.max_content_length = body_limit(None, request)
            return endpoint(request, **values)
        service = resolve_service(signing, request)
        request.max_content_length = body_limit(service, request)
        if request.content_length is not None and request.content_length > request.max_content_length:
            return self._too_large(service, request)
        decision = None
        if not request.environ.get(INTERNAL_ENVIRON):
            try:
                operation = guess_operation(service, request)
            except RequestEntityTooLarge:
                return self._too_large(service, request)
            self.calls[f"{access_key} {service}:{operation}"] += 1
            decision, latency = self.faults.decide(service, operation)
            if latency:
                time.sleep(latency)
            if decision == Decision.RESET:
                return _reset_connection(request)
            if decision and decision != Decision.DROP:
                protocol, err = fault_error(service, decision, request)
                return serialize_error(protocol, err)
        owners = self.by_model.get(service)
        if not owners:
            response = self._bounded(request, service, _MotoCall(self.moto_app, service, request))
        else:
            response = self.dispatch(request, service, region, owners)
        if decision == Decision.DROP:
            return self._drop(service, request, response)
        return response

    def _bounded(self, request: Request, service: str, app):
        """Read the body (at most the limit) before handing the request to moto."""
        request.max_content_length = body_limit(service, request)
        try:
            request.get_data(cache=True)
        except RequestEntityTooLarge:
            return self._too_large(service, request)
        return app

    def _too_large(self, service: str, request: Request):
        limit = request.max_content_length
        log.warning("refused a %s request body over %d bytes", service, limit)
        return serialize_error(_protocol(service, request), too_large_error(service, limit))

    def _drop(self, service: str, request: Request, response):
        """The ``drop_response`` fault: the request was executed (its effect stays); the answer is
        lost, and the caller gets a 503 it will retry, as after a response lost on the way."""
        if isinstance(response, Response):
            response.close()
        log.info("dropped the response to an executed %s request", service)
        protocol, err = fault_error(service, Decision.ERROR, request)
        return serialize_error(protocol, err)

    def dispatch(self, request: Request, service: str, region: str, owners: list[TwinService]):
        model = models.service_model(service)
        protocol = "json" if model.protocol != "rest-json" else "rest-json"
        operation = None
        try:
            try:
                wire = parse_request(request, model)
            except RequestEntityTooLarge:
                return self._too_large(service, request)
            protocol, operation = wire.protocol, wire.operation
            for svc in owners:
                handler = svc.handler(wire.operation)
                if handler is not None:
                    break
            else:
                if any(s.moto_fallthrough for s in owners):
                    return _MotoCall(self.moto_app, service, request)
                raise NotImplementedByTwin(service, wire.operation)
            ctx = RequestContext(self, service, wire.operation, region, request)
            op = models.operation_model(service, wire.operation)
            result = handler(ctx, wire.params) or {}
            if self.strict:
                problems = validate(op.output_shape, result)
                if problems:
                    self._violation(f"{service}.{wire.operation} response: " + "; ".join(problems[:10]))
                    raise AwsError(
                        "InternalFailure", "twin response violates the model: " + "; ".join(problems[:5]), 500
                    )
            return serialize_result(wire, op, result)
        except AwsError as err:
            if self.strict and operation and err.code not in COMMON_ERRORS and err.status < 500:
                documented = models.documented_errors(service, operation)
                if err.code not in documented:
                    self._violation(f"{service}: error code {err.code} not documented for the operation")
            return serialize_error(protocol, err)
        except Exception as exc:  # a bug in a handler: answer like AWS, log the trace
            log.exception("twin handler failed for %s", service)
            return serialize_error(
                protocol, AwsError("InternalFailure", f"{type(exc).__name__}: {exc}", 500, False)
            )

    def _violation(self, text: str) -> None:
        log.error("fidelity violation: %s", text)
        self.violations.append(text)

    # ---- control endpoints ----------------------------------------------------------------
    def control(self, request: Request) -> Response:
        path = request.path
        if path.startswith("/_twin/s3/"):
            return self.view_object(request)
        if path == "/_twin/health":
            return _json({"status": "ok", "url": self.url})
        supplied = request.headers.get(CONTROL_HEADER) or ""
        expected = self.control_token or ""
        if not expected or not hmac.compare_digest(supplied.encode(), expected.encode()):
            return _json(
                {
                    "error": f"{path} needs the control token in the {CONTROL_HEADER} header "
                    "(printed at start-up as 'aws_twin control token ...'; AWS_TWIN_CONTROL_TOKEN)"
                },
                403,
            )
        if path == "/_twin/reset" and request.method == "POST":
            self.reset()
            return _json({"reset": True})
        if path == "/_twin/state":
            return _json(self.state())
        if path == "/_twin/faults":
            from .faults import FaultRule

            if request.method in ("POST", "PUT"):
                try:
                    body = json.loads(request.get_data() or b"{}")
                except RequestEntityTooLarge:
                    return _json({"error": f"the body is over {CONTROL_BODY_LIMIT} bytes"}, 413)
                except ValueError as exc:
                    return _json({"error": f"the body is not JSON: {exc}"}, 400)
                if not isinstance(body, dict):
                    return _json({"error": 'expected {"specs": [...], "rules": [...]}'}, 400)
                try:
                    rules = [FaultRule.from_dict(r) for r in body.get("rules", [])]
                    rules += [FaultRule.parse(t) for t in body.get("specs", [])]
                except (TypeError, ValueError) as exc:
                    return _json({"error": str(exc)}, 400)
                self.faults.set_rules(rules)
            elif request.method == "DELETE":
                self.faults.set_rules([])
            return _json({"rules": self.faults.rules(), "counters": dict(self.faults.counters)})
        return _json({"error": f"no control endpoint {path}"}, 404)

    def view_object(self, request: Request) -> Response:
        """``GET /_twin/s3/<bucket>/<key>?token=T``: an S3 object for a browser, with its content type
        (what the S3 console's "Open" does on AWS, where a signed-in user needs no token). Read-only;
        403 without the viewer token, 404 when the object does not exist."""
        if request.method not in ("GET", "HEAD"):
            return _json({"error": "only GET and HEAD"}, 405)
        supplied = request.args.get("token") or request.headers.get("X-Twin-Viewer-Token") or ""
        expected = self.viewer_token or ""
        if not expected or not hmac.compare_digest(supplied.encode(), expected.encode()):
            return _json({"error": "a valid viewer token is required (?token=, printed at start-up)"}, 403)
        bucket, _, key = request.path.removeprefix("/_twin/s3/").partition("/")
        if not bucket or not key:
            return _json({"error": "expected /_twin/s3/<bucket>/<key>"}, 400)
        from botocore.exceptions import ClientError

        try:
            obj = self.client("s3").get_object(Bucket=bucket, Key=key)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            status = 404 if code in ("NoSuchKey", "NoSuchBucket", "404") else 502
            return _json({"error": f"s3://{bucket}/{key}: {code}"}, status)
        body = obj["Body"].read()
        return Response(
            b"" if request.method == "HEAD" else body,
            200,
            content_type=obj.get("ContentType") or "application/octet-stream",
            headers={
                "Content-Length": str(len(body)),
                "Cache-Control": "no-store",
                "X-Content-Type-Options": "nosniff",
                # the object is data, not the twin's page: no scripts, no access to the twin's origin
                "Content-Security-Policy": "sandbox",
                "Referrer-Policy": "no-referrer",
            },
        )


class _MotoCall:
    """Forward to moto; turn its 'not implemented' crashes into an AWS-shaped error."""

    def __init__(self, moto_app, service: str, request: Request):
        self.moto_app = moto_app
        self.service = service
        self.request = request

    def __call__(self, environ, start_response):
        captured: dict[str, Any] = {}
        # the twin may have read the body already (operation name, fault rules): hand moto a fresh stream
        body_in = self.request.get_data(cache=True)
        environ["wsgi.input"] = io.BytesIO(body_in)
        environ["CONTENT_LENGTH"] = str(len(body_in))

        def capture(status, headers, exc_info=None):
            captured["status"] = status
            captured["headers"] = headers
            return lambda data: None

        try:
            body_iter = self.moto_app(environ, capture)
            body = b"".join(body_iter)
            if hasattr(body_iter, "close"):
                body_iter.close()
        except NotImplementedError as exc:
            return self._not_implemented(environ, start_response, str(exc))
        status = captured.get("status", "500 INTERNAL SERVER ERROR")
        if status.startswith("500") and (b"not yet implemented" in body or b"<html" in body.lower()[:200]):
            return self._not_implemented(environ, start_response, body[:200].decode(errors="replace"))
        start_response(status, captured.get("headers", []))
        return [body]

    def _not_implemented(self, environ, start_response, detail: str):
        request = Request(environ)
        op = guess_operation(self.service, request)
        err = NotImplementedByTwin(self.service, op)
        log.warning("not implemented: %s.%s (%s)", self.service, op, detail)
        return serialize_error(_protocol(self.service, request), err)(environ, start_response)


class _Raw(io.BytesIO):
    """The raw body of an in-process answer, as botocore's ``AWSResponse`` reads it (``stream()``
    for its content, ``read()`` for a streaming body such as GetObject's)."""

    def stream(self, **kwargs):
        contents = self.read()
        while contents:
            yield contents
            contents = self.read()


def _reset_connection(request: Request) -> Response:
    """The ``reset`` fault: close the client's connection without an answer (a connection reset by
    the peer, as a restarted load balancer does); the request is not executed."""
    import socket

    sock = request.environ.get("werkzeug.socket")
    if sock is not None:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        return Response(b"", 500)
    # in-process calls have no socket; they are never faulted
    return Response(b"", 500)


def _json(data: Any, status: int = 200) -> Response:
    return Response(json.dumps(data, default=str), status, content_type="application/json")


def _log_failure(future: concurrent.futures.Future) -> None:
    if not future.cancelled() and future.exception() is not None:
        log.error("background job failed", exc_info=future.exception())
