"""The local stand-in for the A2I worker portal: a review page served by the twin.

- ``GET /review/?token=T`` lists pending tasks; the token (printed at start-up, ``twin.review_token``,
  ``--review-token`` / ``AWS_TWIN_REVIEW_TOKEN``) is then kept in a cookie for the following pages.
  Without it: 403, with a form that asks for the token and comes back to the same page.
  ``?flow=<flow definition name>`` lists that flow's tasks only.
- Each pending task is named by what its input carries, as far as the twin can tell without
  knowing the task: ``document_name`` (else the last part of ``document_s3_uri`` / ``taskObject``),
  and ``fields`` (``[{"name", "confidence", "reason"}]``: the fields to check); else the flow's
  ``TaskTitle`` and the loop name alone.
- ``GET /review/<loop>`` renders the loop's task from its human task UI template;
  ``POST /review/<loop>/submit`` records the answer (303 back to the list).
- Per-loop links: ``/review/<loop>?t=<loop token>`` opens that one loop (and submits its answer)
  without the review token; the loop token is an HMAC of the loop's name under the review token,
  so it opens no other loop. The list and the API's ``taskUrl`` give these links.
- The answer form carries the worker's name (a field of the page, remembered in a cookie): it is the
  ``workerId`` recorded in the loop's output. A submit is refused (403) unless its ``Origin`` (else
  ``Referer``) is the twin's own origin and it carries the form's token (``__csrf``, an HMAC of the
  loop under the review token), so another site's page (even one on the same host) cannot post an
  answer with the reviewer's cookie.
- ``GET /review/api/loops?status=InProgress`` and ``POST /review/api/loops/<loop>/answer``
  (JSON ``{"answers": {...}, "workerId": "..."}``, ``Content-Type: application/json``) do the same
  for scripts; the token as the ``X-Review-Token`` header or ``?token=`` (never the cookie: a
  browser sends that to any request of another page too). The API is the review token holder's: it
  names its worker itself.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import html
import json
import re
import threading
import time
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote, urlsplit

from werkzeug.routing import Rule
from werkzeug.wrappers import Request, Response

from . import render
from .engine import A2IEngine, A2IError, HumanLoop

if TYPE_CHECKING:
    from ...core.app import Twin

TOKEN_COOKIE = "aws_twin_review_token"
WORKER_COOKIE = "aws_twin_worker"
PRESIGN_SECONDS = 300
#: a worker's name: what the page records as workerId
WORKER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 ._@-]{0,63}$")
LOOP_TOKEN = "t"
_STATUS = {"not_found": 404, "conflict": 409, "in_use": 409, "invalid": 400}

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;background:#f4f6f8;color:#16191f}
header{background:#232f3e;color:#fff;padding:12px 24px;display:flex;gap:16px;align-items:baseline}
header a{color:#fff;text-decoration:none;font-weight:600}header span{color:#d5dbdb;font-size:14px}
main{padding:20px 24px;max-width:1400px}
table{border-collapse:collapse;background:#fff;width:100%}
th,td{text-align:left;padding:8px 12px;border-bottom:1px solid #e1e4e8;font-size:14px}
th{background:#fafafa}
.banner{background:#e6f4ea;border:1px solid #8fd19e;padding:10px 14px;margin-bottom:16px}
.error{background:#fdecea;border:1px solid #f5a9a0;padding:10px 14px;margin-bottom:16px}
.task{background:#fff;border:1px solid #e1e4e8;padding:16px 20px}
.task h1{font-size:20px;margin:0 0 4px}.task .desc{color:#545b64;margin:0 0 16px}
label.crowd-input,label.crowd-text-area{display:block;margin:10px 0}
.crowd-label{display:block;font-weight:600;font-size:14px;margin-bottom:4px}
label.crowd-input input,label.crowd-text-area textarea{width:100%;max-width:420px;padding:6px 8px;
 font-size:15px;border:1px solid #aab7b8;border-radius:3px;box-sizing:border-box}
label.crowd-checkbox,label.crowd-radio-button{display:block;margin:8px 0}
.crowd-form-actions{margin-top:18px}
button{background:#ec7211;color:#fff;border:0;border-radius:3px;padding:8px 20px;font-size:15px;cursor:pointer}
button[type=button]{background:#545b64}
details.crowd-instructions{margin:0 0 12px;background:#f1faff;border:1px solid #99cbe4;padding:6px 10px}
img{max-width:100%}
td .sub{color:#545b64;font-size:12px;margin-top:2px}ul.checks{margin:0;padding-left:18px}
"""


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _page(title: str, body: str, status: int = 200) -> Response:
    doc = (
        f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{_e(title)}</title>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<style>{_CSS}</style></head><body><header><a href='/review/'>aws_twin &middot; A2I review</a>"
        "<span>local stand-in for the Amazon A2I worker portal</span></header>"
        f"<main>{body}</main></body></html>"
    )
    return Response(
        doc, status, content_type="text/html; charset=utf-8", headers={"Cache-Control": "no-store"}
    )


def _json(data: Any, status: int = 200) -> Response:
    return Response(json.dumps(data, default=str), status, content_type="application/json")


def _when(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _number(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def task_summary(task_input: Any) -> dict:
    """What names a task in the list, from its input alone: ``{"document": "receipt.pdf" | "",
    "fields": [{"name", "detail"}]}``. ``detail`` is one line: the field's ``reason`` when it states
    a percentage (``confidence 67.5 % < 80 %``), else ``confidence <c> %`` and the reason."""
    out: dict[str, Any] = {"document": "", "fields": []}
    if not isinstance(task_input, dict):
        return out
    name = task_input.get("document_name")
    if not isinstance(name, str) or not name.strip():
        uri = task_input.get("document_s3_uri") or task_input.get("taskObject")
        name = uri.rstrip("/").rsplit("/", 1)[-1] if isinstance(uri, str) and "/" in uri else ""
    out["document"] = name.strip()
    fields = task_input.get("fields")
    for item in fields if isinstance(fields, list) else []:
        if not isinstance(item, dict) or not item.get("name"):
            continue
        reason = str(item.get("reason") or "").strip()
        confidence = _number(item.get("confidence"))
        detail = reason
        if confidence and "%" not in reason:  # a reason with a percentage states the confidence itself
            shown = f"confidence {confidence:.1f} %"
            detail = f"{shown} ({reason})" if reason else shown
        out["fields"].append({"name": str(item["name"]), "detail": detail})
    return out


class ReviewSite:
    def __init__(self, twin: Twin, engine: A2IEngine):
        self.twin = twin
        self.engine = engine
        self._s3_clients: dict[str, Any] = {}
        self._lock = threading.Lock()

    def rules(self) -> list[Rule]:
        return [
            Rule("/review/", endpoint=self.index, strict_slashes=False),
            Rule("/review/api/loops", endpoint=self.api_list),
            Rule("/review/api/loops/<loop_name>", endpoint=self.api_get),
            Rule("/review/api/loops/<loop_name>/answer", endpoint=self.api_answer),
            Rule("/review/ui/<ui_name>", endpoint=self.task_ui_template),
            Rule("/review/<loop_name>", endpoint=self.task_page),
            Rule("/review/<loop_name>/submit", endpoint=self.submit),
        ]

    # ---- access -------------------------------------------------------------------------------
    def _sign(self, purpose: str, value: str) -> str:
        secret = (self.twin.review_token or "").encode()
        return hmac.new(secret, f"{purpose}:{value}".encode(), hashlib.sha256).hexdigest()[:32]

    def loop_token(self, loop_name: str) -> str:
        """The token of one loop's link (``/review/<loop>?t=``): it opens that loop only."""
        return self._sign("loop", loop_name)

    def loop_url(self, loop_name: str) -> str:
        return f"/review/{quote(loop_name)}?{LOOP_TOKEN}={self.loop_token(loop_name)}"

    def _token_ok(
        self, request: Request, loop_name: str | None = None, api: bool = False
    ) -> tuple[bool, bool]:
        """(authorized, token came in the query string). ``loop_name``: a page of that loop, which
        its loop token opens too; ``api``: the cookie does not count."""
        expected = self.twin.review_token
        if not expected:
            return False, False
        candidates = [(request.args.get("token"), True), (request.headers.get("X-Review-Token"), False)]
        if not api:
            candidates.append((request.cookies.get(TOKEN_COOKIE), False))
        for supplied, from_query in candidates:
            if supplied and hmac.compare_digest(supplied.encode(), expected.encode()):
                return True, from_query
        if loop_name is not None:
            supplied = request.args.get(LOOP_TOKEN) or (
                request.form.get("__t") if request.method == "POST" else None
            )
            if supplied and hmac.compare_digest(supplied.encode(), self.loop_token(loop_name).encode()):
                return True, False
        return False, False

    def _guard(
        self, request: Request, api: bool = False, loop_name: str | None = None
    ) -> tuple[Response | None, bool]:
        ok, from_query = self._token_ok(request, loop_name, api)
        if ok:
            return None, from_query
        if api:
            return _json(
                {"error": "a valid review token is required (X-Review-Token header or ?token=)"}, 403
            ), False
        keep = "".join(
            f"<input type='hidden' name='{_e(k)}' value='{_e(v)}'>"
            for k, v in request.args.items()
            if k != "token"
        )
        body = (
            "<div class='error'><h1>403 Forbidden</h1><p>Open the review URL printed when the twin "
            "started (<code>aws_twin review page .../review/?token=...</code>), or enter its token "
            "(<code>AWS_TWIN_REVIEW_TOKEN</code>):</p>"
            f"<form id='token-form' method='get' action='{_e(request.path)}'>{keep}"
            "<input type='password' name='token' aria-label='Review token' autocomplete='off'> "
            "<button type='submit'>Open</button></form></div>"
        )
        return _page("Forbidden", body, 403), False

    def _finish(self, request: Request, response: Response, from_query: bool) -> Response:
        if from_query:
            response.set_cookie(
                TOKEN_COOKIE, self.twin.review_token, httponly=True, samesite="Lax", path="/review"
            )
        return response

    @staticmethod
    def _worker_name(request: Request) -> str:
        """The name this browser last submitted with (the form's default), or ''."""
        name = unquote(request.cookies.get(WORKER_COOKIE) or "").strip()
        return name if WORKER_NAME.match(name) else ""

    def _same_origin(self, request: Request) -> bool:
        """The request comes from a page of the twin itself (``Origin``, else ``Referer``)."""
        own = f"{request.scheme}://{request.host}".lower()
        origin = request.headers.get("Origin")
        if origin is None or origin == "null":
            referer = request.headers.get("Referer")
            if not referer or origin == "null":
                return False
            parts = urlsplit(referer)
            origin = f"{parts.scheme}://{parts.netloc}"
        return origin.lower() == own

    def _form_fields(self, loop: HumanLoop, request: Request, worker: str = "") -> str:
        """Hidden fields (loop token, form token, when the page was opened) and the worker's name."""
        opened = str(int(time.time()))
        hidden = {
            "__t": self.loop_token(loop.name),
            "__csrf": self._sign("csrf", loop.name),
            "__opened": f"{opened}.{self._sign('opened', loop.name + ':' + opened)}",
        }
        fields = "".join(f"<input type='hidden' name='{k}' value='{_e(v)}'>" for k, v in hidden.items())
        name = worker or self._worker_name(request)
        return fields + (
            "<label class='crowd-input worker-name'><span class='crowd-label'>Your name (recorded as the "
            f"worker)</span><input type='text' name='__worker' value='{_e(name)}' required maxlength='64' "
            "pattern='[A-Za-z0-9][A-Za-z0-9 ._@-]{0,63}' autocomplete='name'></label>"
        )

    def _opened_at(self, loop_name: str, value: str) -> dt.datetime | None:
        stamp, _, signature = value.partition(".")
        if not stamp.isdigit() or not hmac.compare_digest(
            signature.encode(), self._sign("opened", f"{loop_name}:{stamp}").encode()
        ):
            return None
        return dt.datetime.fromtimestamp(int(stamp), dt.UTC)

    # ---- S3 for grant_read_access -------------------------------------------------------------
    def presigner(self, request: Request):
        """s3:// URI -> a presigned GET on the twin's S3, at the host the browser used."""
        base = request.host_url.rstrip("/")
        with self._lock:
            client = self._s3_clients.get(base)
            if client is None:
                import boto3
                from botocore.config import Config

                client = boto3.client(
                    "s3",
                    endpoint_url=base,
                    region_name="us-east-1",
                    # an ordinary credential: the browser's GETs are client calls like any other
                    aws_access_key_id="aws-twin-review-page",
                    aws_secret_access_key="twin",
                    config=Config(signature_version="s3v4", s3={"addressing_style": "path"}),
                )
                self._s3_clients[base] = client

        def presign(uri: str) -> str:
            bucket, _, key = uri[len("s3://") :].partition("/")
            if not bucket or not key:
                return ""
            return client.generate_presigned_url(
                "get_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=PRESIGN_SECONDS
            )

        return presign

    # ---- pages --------------------------------------------------------------------------------
    def index(self, request: Request) -> Response:
        denied, from_query = self._guard(request)
        if denied:
            return denied
        flow_name = request.args.get("flow") or ""
        loops = [loop for loop in self.engine.all_loops() if not flow_name or loop.flow.name == flow_name]
        pending = [loop for loop in loops if loop.status == "InProgress"]
        done = [loop for loop in loops if loop.status != "InProgress"][-10:]
        parts = []
        if request.args.get("done"):
            parts.append(
                f"<div class='banner'>Submitted the answer to <b>{_e(request.args['done'])}</b>.</div>"
            )
        scope = f" of <code>{_e(flow_name)}</code> (<a href='/review/'>all</a>)" if flow_name else ""
        parts.append(f"<h1>Pending tasks{scope} ({len(pending)})</h1>")
        if pending:
            rows = "".join(self._pending_row(loop, self.loop_url(loop.name)) for loop in pending)
            parts.append(
                "<table id='pending'><thead><tr><th>Task</th><th>To check</th><th>Flow definition</th>"
                f"<th>Created</th><th>Answers</th></tr></thead><tbody>{rows}</tbody></table>"
            )
        else:
            parts.append("<p id='pending-empty'>No task waits for review.</p>")
        if done:
            rows = "".join(
                f"<tr><td>{_e(loop.name)}</td><td>{_e(loop.flow.name)}</td><td>{_e(loop.status)}</td>"
                f"<td>{_e(loop.output_s3_uri or loop.failure_reason or '')}</td></tr>"
                for loop in reversed(done)
            )
            parts.append(
                "<h2>Recently finished</h2><table id='finished'><thead><tr><th>Human loop</th>"
                f"<th>Flow definition</th><th>Status</th><th>Output</th></tr></thead><tbody>{rows}</tbody></table>"
            )
        return self._finish(request, _page("A2I review", "".join(parts)), from_query)

    @staticmethod
    def _pending_row(loop: HumanLoop, url: str) -> str:
        summary = task_summary(loop.task_input)
        name = summary["document"] or loop.flow.title or loop.name
        title = f"<a class='task-link' href='{_e(url)}'>{_e(name)}</a>"
        sub = f"{_e(loop.flow.title)} &middot; " if summary["document"] and loop.flow.title else ""
        title += f"<div class='sub'>{sub}<code>{_e(loop.name)}</code></div>"
        checks = "".join(
            f"<li data-field='{_e(f['name'])}'><b>{_e(f['name'])}</b>"
            + (f" &middot; {_e(f['detail'])}" if f["detail"] else "")
            + "</li>"
            for f in summary["fields"]
        )
        checks = f"<ul class='checks'>{checks}</ul>" if checks else ""
        return (
            f"<tr data-human-loop='{_e(loop.name)}'><td class='task-cell'>{title}</td><td>{checks}</td>"
            f"<td>{_e(loop.flow.name)}</td><td>{_when(loop.created)}</td>"
            f"<td>{len(loop.answers)}/{loop.flow.task_count}</td></tr>"
        )

    def task_page(self, request: Request, loop_name: str) -> Response:
        denied, from_query = self._guard(request, loop_name=loop_name)
        if denied:
            return denied
        try:
            loop = self.engine.find_loop(loop_name)
        except A2IError as exc:
            return self._finish(
                request, _page("Not found", f"<div class='error'>{_e(exc.message)}</div>", 404), from_query
            )
        if loop.status != "InProgress":
            body = (
                f"<div class='banner'>Human loop <b>{_e(loop.name)}</b> is {_e(loop.status)}; there is "
                "nothing to do.</div><p><a href='/review/'>Back to the task list</a></p>"
            )
            return self._finish(request, _page(loop.name, body), from_query)
        try:
            rendered = render.render_task(
                loop.flow.ui_content,
                loop.task_input,
                f"/review/{quote(loop.name)}/submit",
                self.presigner(request),
            )
        except render.TemplateError as exc:
            body = f"<div class='error'>The task template of {_e(loop.flow.name)} failed to render: {_e(exc)}</div>"
            return self._finish(request, _page(loop.name, body, 500), from_query)
        response = _page(loop.flow.title or loop.name, self._task_html(loop, rendered, request=request))
        return self._finish(request, response, from_query)

    def _task_html(
        self,
        loop: HumanLoop,
        rendered: render.RenderedTask,
        error: str = "",
        request: Request | None = None,
        worker: str = "",
    ) -> str:
        head = (
            f"<div class='task' data-human-loop='{_e(loop.name)}'><h1>{_e(loop.flow.title)}</h1>"
            f"<p class='desc'>{_e(loop.flow.description)} &middot; human loop <code>{_e(loop.name)}</code> "
            f"&middot; flow definition <code>{_e(loop.flow.name)}</code> &middot; time limit "
            f"{loop.flow.time_limit_seconds} s</p>"
        )
        if error:
            head += f"<div class='error'>{_e(error)}</div>"
        if not rendered.has_form:
            head += "<div class='error'>This task template has no &lt;crowd-form&gt;: it cannot be submitted.</div>"
        body = rendered.html
        if request is not None:
            body = re.sub(
                r'(<form class="crowd-form"[^>]*>)',
                lambda m: m.group(1) + self._form_fields(loop, request, worker),
                body,
                count=1,
            )
        return head + body + "</div>"

    def submit(self, request: Request, loop_name: str) -> Response:
        if request.method != "POST":
            return _page("Method not allowed", "<div class='error'>POST the task form here.</div>", 405)
        denied, _ = self._guard(request, loop_name=loop_name)
        if denied:
            return denied
        csrf = request.form.get("__csrf") or ""
        if not self._same_origin(request) or not hmac.compare_digest(
            csrf.encode(), self._sign("csrf", loop_name).encode()
        ):
            body = (
                "<div class='error'><h1>403 Forbidden</h1><p>An answer is taken from the task's own page "
                "only (same origin, with the form's token). Open the task again and submit it there.</p></div>"
            )
            return _page("Forbidden", body, 403)
        try:
            loop = self.engine.find_loop(loop_name)
            rendered = render.render_task(loop.flow.ui_content, loop.task_input, "", lambda uri: "")
        except A2IError as exc:
            return _page("Not found", f"<div class='error'>{_e(exc.message)}</div>", 404)
        answers = render.collect_answers(rendered.fields, request.form)
        missing = render.missing_required(rendered.fields, answers)
        worker = (request.form.get("__worker") or "").strip()
        errors = [f"Required fields are empty: {', '.join(missing)}."] if missing else []
        if not WORKER_NAME.match(worker):
            errors.append(
                "Your name is required (1-64 letters, digits, spaces and . _ @ -): it is recorded as the worker."
            )
        if not errors:
            opened = self._opened_at(loop_name, request.form.get("__opened") or "")
            try:
                self.engine.submit(loop_name, worker, answers, opened)
            except A2IError as exc:
                body = f"<div class='error'>{_e(exc.message)}</div><p><a href='/review/'>Back to the task list</a></p>"
                return _page(loop_name, body, _STATUS.get(exc.kind, 400))
            response = Response(status=303, headers={"Location": f"/review/?done={quote(loop_name)}"})
            response.set_cookie(
                WORKER_COOKIE, quote(worker), httponly=True, samesite="Strict", path="/review"
            )
            return response
        again = render.render_task(
            loop.flow.ui_content,
            loop.task_input,
            f"/review/{quote(loop.name)}/submit",
            self.presigner(request),
        )
        html_ = self._task_html(loop, again, " ".join(errors), request=request, worker=worker)
        return _page(loop_name, html_, 400)

    def task_ui_template(self, request: Request, ui_name: str) -> Response:
        """The raw template of a human task UI (DescribeHumanTaskUi's UiTemplate.Url)."""
        denied, _ = self._guard(request, api=True)
        if denied:
            return denied
        with self.engine.lock:
            uis = [ui for (_, name), ui in self.engine.task_uis.items() if name == ui_name]
        if not uis:
            return _json({"error": f"Human task UI {ui_name} does not exist."}, 404)
        return Response(uis[0].content, content_type="text/plain; charset=utf-8")

    # ---- JSON API -----------------------------------------------------------------------------
    def _loop_json(self, request: Request, loop: HumanLoop) -> dict:
        return {
            "name": loop.name,
            "arn": loop.arn,
            "status": loop.status,
            "flowDefinitionArn": loop.flow.arn,
            "flowDefinitionName": loop.flow.name,
            "title": loop.flow.title,
            "creationTime": loop.created.isoformat(),
            "inputContent": loop.task_input,
            "answers": len(loop.answers),
            "taskCount": loop.flow.task_count,
            "outputS3Uri": loop.output_s3_uri,
            "failureReason": loop.failure_reason,
            "taskUrl": f"{request.host_url.rstrip('/')}{self.loop_url(loop.name)}",
        }

    def api_list(self, request: Request) -> Response:
        denied, _ = self._guard(request, api=True)
        if denied:
            return denied
        loops = self.engine.all_loops(request.args.get("status") or None)
        flow = request.args.get("flowDefinitionArn")
        if flow:
            loops = [loop for loop in loops if loop.flow.arn == flow]
        return _json([self._loop_json(request, loop) for loop in loops])

    def api_get(self, request: Request, loop_name: str) -> Response:
        denied, _ = self._guard(request, api=True)
        if denied:
            return denied
        try:
            return _json(self._loop_json(request, self.engine.find_loop(loop_name)))
        except A2IError as exc:
            return _json({"error": exc.message}, _STATUS.get(exc.kind, 400))

    def api_answer(self, request: Request, loop_name: str) -> Response:
        denied, _ = self._guard(request, api=True)
        if denied:
            return denied
        if request.method != "POST":
            return _json({"error": 'POST {"answers": {...}, "workerId": "..."}'}, 405)
        if request.mimetype != "application/json":
            # a page of another site can post text/plain without a preflight; JSON needs CORS
            return _json({"error": "Content-Type must be application/json"}, 415)
        body = request.get_json(force=True, silent=True)
        if not isinstance(body, dict) or not isinstance(body.get("answers"), dict):
            return _json({"error": 'the body must be JSON {"answers": {...}, "workerId": "..."}'}, 400)
        worker = str(body.get("workerId") or "twin-api-worker")
        if not WORKER_NAME.match(worker):
            return _json({"error": "workerId: 1-64 letters, digits, spaces and . _ @ -"}, 400)
        accepted = None
        if body.get("acceptanceTime"):
            try:
                accepted = dt.datetime.fromisoformat(str(body["acceptanceTime"]).replace("Z", "+00:00"))
            except ValueError:
                return _json({"error": "acceptanceTime must be an ISO 8601 timestamp"}, 400)
            if accepted.tzinfo is None:
                accepted = accepted.replace(tzinfo=dt.UTC)
        try:
            loop = self.engine.submit(loop_name, worker, body["answers"], accepted)
        except A2IError as exc:
            return _json({"error": exc.message}, _STATUS.get(exc.kind, 400))
        return _json(self._loop_json(request, loop))
