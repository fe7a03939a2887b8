"""Render an A2I / Ground Truth task template: Liquid (python-liquid 2, autoescaped like Ground
Truth) with A2I's filters, then the ``crowd-*`` elements rewritten into plain HTML form controls so
that a browser without crowd-html-elements.js submits the named fields.

Answers follow crowd-html's output shapes: crowd-input / crowd-text-area -> ``{name: "text"}``,
crowd-checkbox -> ``{name: {value: bool}}`` (value defaults to ``"on"``), crowd-radio-button ->
``{button_name: {button_value: bool}}``, crowd-image-classifier / crowd-classifier ->
``{name: {"label": category}}``; native ``<input>``/``<select>``/``<textarea>`` -> ``{name: "text"}``.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any

from liquid import Environment, Markup
from liquid.exceptions import LiquidError


class TemplateError(ValueError):
    pass


def _environment(presign: Callable[[str], str] | None = None) -> Environment:
    env = Environment(autoescape=True)

    def grant_read_access(value: Any) -> str:
        if not isinstance(value, str) or not value:
            return ""
        if value.startswith("s3://") and presign is not None:
            return presign(value)
        return value

    def to_json(value: Any) -> str:
        return json.dumps(value, default=str)

    def skip_autoescape(value: Any) -> Markup:
        return Markup(str(value) if value is not None else "")

    env.filters["grant_read_access"] = grant_read_access
    env.filters["to_json"] = to_json
    env.filters["skip_autoescape"] = skip_autoescape
    return env


def parse_template(content: str) -> None:
    """Raise :class:`TemplateError` when the Liquid template does not parse."""
    if not isinstance(content, str) or not content.strip():
        raise TemplateError("the template is empty")
    try:
        _environment().from_string(content)
    except LiquidError as exc:
        raise TemplateError(str(exc)) from exc


@dataclass
class FieldSpec:
    kind: str  # text | checkbox | radio | classifier
    name: str
    value: str = ""
    label: str = ""
    required: bool = False
    #: radio groups: [(button name, button value)], index = the submitted value
    buttons: list[tuple[str, str]] = field(default_factory=list)
    categories: list[str] = field(default_factory=list)


@dataclass
class RenderedTask:
    html: str
    fields: list[FieldSpec]
    has_form: bool


def render_task(
    content: str,
    task_input: Any,
    submit_url: str,
    presign: Callable[[str], str] | None = None,
) -> RenderedTask:
    """Liquid with ``task.input`` = the loop's input, then crowd elements -> HTML form controls."""
    try:
        template = _environment(presign).from_string(content)
        liquid_html = template.render(task={"input": task_input})
    except LiquidError as exc:
        raise TemplateError(str(exc)) from exc
    return transform_crowd(liquid_html, submit_url)


def transform_crowd(source: str, submit_url: str) -> RenderedTask:
    has_submit = bool(re.search(r"<crowd-button\b[^>]*form-action\s*=\s*[\"']?submit", source, re.I))
    parser = _CrowdTransform(submit_url, has_submit)
    parser.feed(source)
    parser.close()
    return RenderedTask("".join(parser.out), parser.fields, parser.has_form)


def _attrs(pairs: list[tuple[str, str | None]]) -> dict[str, str | None]:
    return {k.lower(): v for k, v in pairs}


def _flag(attrs: dict, name: str) -> bool:
    return name in attrs and (attrs[name] is None or attrs[name].lower() not in ("false", "0"))


def _esc(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _categories(raw: str | None) -> list[str]:
    if not raw:
        return []
    try:
        value = json.loads(raw)
    except ValueError:
        value = json.loads(raw.replace("'", '"')) if raw.strip().startswith("[") else raw.split(",")
    return [str(v).strip() for v in value]


_INSTRUCTION_PARTS = {
    "short-summary": "Summary",
    "detailed-instructions": "Instructions",
    "positive-example": "Good example",
    "negative-example": "Bad example",
    "short-instructions": "",
    "full-instructions": "",
}
_CROWD_SCRIPT = re.compile(r"crowd\.aws|crowd-html-elements", re.I)


class _CrowdTransform(HTMLParser):
    def __init__(self, submit_url: str, has_submit_button: bool):
        super().__init__(convert_charrefs=False)
        self.submit_url = submit_url
        self.has_submit_button = has_submit_button
        self.out: list[str] = []
        self.fields: list[FieldSpec] = []
        self.has_form = False
        self.stack: list[tuple[str, str]] = []  # (crowd tag, closing html)
        self.groups: list[FieldSpec] = []
        self.textarea: tuple[FieldSpec, list[str], bool] | None = None
        self.skip_script = False
        self.n = 0

    def _id(self) -> str:
        self.n += 1
        return f"crowd-{self.n}"

    # ---- pass-through -------------------------------------------------------------------------
    def handle_data(self, data):
        if self.skip_script:
            return
        if self.textarea is not None:
            self.textarea[1].append(data)
            return
        self.out.append(data)

    def handle_entityref(self, name):
        self.handle_data(f"&{name};")

    def handle_charref(self, name):
        self.handle_data(f"&#{name};")

    def handle_comment(self, data):
        self.out.append(f"<!--{data}-->")

    def handle_decl(self, decl):
        self.out.append(f"<!{decl}>")

    def handle_pi(self, data):
        self.out.append(f"<?{data}>")

    def unknown_decl(self, data):
        self.out.append(f"<![{data}]>")

    # ---- tags ---------------------------------------------------------------------------------
    def handle_startendtag(self, tag, attrs):
        if tag.startswith("crowd-") or tag in _INSTRUCTION_PARTS:
            self.handle_starttag(tag, attrs)
            self.handle_endtag(tag)
        else:
            self.out.append(self.get_starttag_text())

    def handle_starttag(self, tag, attrs):
        a = _attrs(attrs)
        if tag == "script" and _CROWD_SCRIPT.search(a.get("src") or ""):
            self.skip_script = True
            self.out.append("<!-- crowd-html-elements.js: rendered as plain HTML by aws_twin -->")
            return
        if tag in _INSTRUCTION_PARTS:
            title = _INSTRUCTION_PARTS[tag]
            heading = f"<h4>{title}</h4>" if title else ""
            self.out.append(f'<div class="{tag}">{heading}')
            self.stack.append((tag, "</div>"))
            return
        if not tag.startswith("crowd-"):
            self.out.append(self.get_starttag_text())
            return
        handler = getattr(self, "_start_" + tag[len("crowd-") :].replace("-", "_"), None)
        if handler is None:
            self.out.append(f'<div class="{tag}">')
            self.stack.append((tag, "</div>"))
        else:
            self.stack.append((tag, handler(a) or ""))

    def handle_endtag(self, tag):
        if tag == "script" and self.skip_script:
            self.skip_script = False
            return
        if not (tag.startswith("crowd-") or tag in _INSTRUCTION_PARTS):
            self.out.append(f"</{tag}>")
            return
        if not any(t == tag for t, _ in self.stack):
            return  # a stray end tag
        while self.stack:
            open_tag, closing = self.stack.pop()
            end = getattr(self, "_end_" + open_tag[len("crowd-") :].replace("-", "_"), None)
            if end is not None:
                closing = end() + closing
            self.out.append(closing)
            if open_tag == tag:
                break

    # ---- crowd elements -----------------------------------------------------------------------
    def _start_form(self, a):
        self.has_form = True
        self.out.append(f'<form class="crowd-form" method="post" action="{_esc(self.submit_url)}">')
        if self.has_submit_button:
            return "</form>"
        return '<div class="crowd-form-actions"><button type="submit" class="crowd-submit">Submit</button></div></form>'

    def _start_input(self, a):
        spec = FieldSpec("text", a.get("name") or "", a.get("value") or "", a.get("label") or "")
        spec.required = _flag(a, "required")
        self.fields.append(spec)
        kind = a.get("type") or "text"
        extra = [f'type="{_esc(kind)}"', f'name="{_esc(spec.name)}"', f'value="{_esc(spec.value)}"']
        for src, dst in (
            ("placeholder", "placeholder"),
            ("max-length", "maxlength"),
            ("min", "min"),
            ("max", "max"),
            ("step", "step"),
        ):
            if a.get(src) is not None:
                extra.append(f'{dst}="{_esc(a[src])}"')
        if kind == "number" and a.get("step") is None:
            extra.append('step="any"')
        for flag, attr in (("required", "required"), ("disabled", "disabled"), ("auto-focus", "autofocus")):
            if _flag(a, flag):
                extra.append(attr)
        label = f'<span class="crowd-label">{_esc(spec.label)}</span>' if spec.label else ""
        self.out.append(f'<label class="crowd-input">{label}<input {" ".join(extra)}></label>')
        return ""

    def _start_text_area(self, a):
        spec = FieldSpec("text", a.get("name") or "", a.get("value") or "", a.get("label") or "")
        spec.required = _flag(a, "required")
        self.fields.append(spec)
        extra = [f'name="{_esc(spec.name)}"', f'rows="{_esc(a.get("rows") or 4)}"']
        if a.get("placeholder") is not None:
            extra.append(f'placeholder="{_esc(a["placeholder"])}"')
        if a.get("max-length") is not None:
            extra.append(f'maxlength="{_esc(a["max-length"])}"')
        for flag in ("required", "disabled"):
            if _flag(a, flag):
                extra.append(flag)
        label = f'<span class="crowd-label">{_esc(spec.label)}</span>' if spec.label else ""
        self.out.append(f'<label class="crowd-text-area">{label}<textarea {" ".join(extra)}>')
        self.textarea = (spec, [], "value" in a)
        if "value" in a:
            self.out.append(_esc(spec.value))
        return "</textarea></label>"

    def _end_text_area(self):
        if self.textarea is None:
            return ""
        spec, inner, has_value = self.textarea
        self.textarea = None
        if has_value:
            return ""
        spec.value = html.unescape("".join(inner))
        return _esc(spec.value)

    def _start_checkbox(self, a):
        value = a.get("value") or "on"
        spec = FieldSpec("checkbox", a.get("name") or "", value)
        spec.required = _flag(a, "required")
        self.fields.append(spec)
        extra = [f'name="{_esc(spec.name)}"', f'value="{_esc(value)}"']
        for flag, attr in (("checked", "checked"), ("disabled", "disabled"), ("required", "required")):
            if _flag(a, flag):
                extra.append(attr)
        self.out.append(f'<label class="crowd-checkbox"><input type="checkbox" {" ".join(extra)}> <span>')
        return "</span></label>"

    def _start_radio_group(self, a):
        group = FieldSpec("radio", a.get("name") or f"__radio_{len(self.fields)}")
        self.fields.append(group)
        self.groups.append(group)
        self.out.append('<fieldset class="crowd-radio-group">')
        return "</fieldset>"

    def _end_radio_group(self):
        if self.groups:
            self.groups.pop()
        return ""

    def _start_radio_button(self, a):
        name, value = a.get("name") or "", a.get("value") or "on"
        if self.groups:
            group = self.groups[-1]
        else:  # radio buttons outside a group: grouped by their name
            group_name = f"__radio_{name}"
            group = next((f for f in self.fields if f.kind == "radio" and f.name == group_name), None)
            if group is None:
                group = FieldSpec("radio", group_name)
                self.fields.append(group)
        group.buttons.append((name, value))
        extra = [f'name="{_esc(group.name)}"', f'value="{len(group.buttons) - 1}"']
        for flag in ("checked", "disabled"):
            if _flag(a, flag):
                extra.append(flag)
        self.out.append(f'<label class="crowd-radio-button"><input type="radio" {" ".join(extra)}> <span>')
        return "</span></label>"

    def _start_button(self, a):
        kind = "submit" if (a.get("form-action") or "").lower() == "submit" else "button"
        extra = ' disabled="disabled"' if _flag(a, "disabled") else ""
        self.out.append(f'<button type="{kind}" class="crowd-button"{extra}>')
        return "</button>"

    def _start_instructions(self, a):
        text = a.get("link-text") or "Instructions"
        self.out.append(f'<details class="crowd-instructions"><summary>{_esc(text)}</summary>')
        return "</details>"

    def _classifier(self, a, image: bool):
        name = a.get("name") or "category"
        spec = FieldSpec("classifier", name, categories=_categories(a.get("categories")))
        self.fields.append(spec)
        parts = [f'<fieldset class="crowd-classifier"><legend>{_esc(a.get("header") or "")}</legend>']
        if image and a.get("src"):
            parts.append(f'<img class="crowd-classifier-image" src="{_esc(a["src"])}" alt="{_esc(name)}">')
        parts.append('<div class="crowd-classifier-options">')
        for category in spec.categories:
            parts.append(
                f'<label class="crowd-radio-button"><input type="radio" name="{_esc(name)}" '
                f'value="{_esc(category)}" required> <span>{_esc(category)}</span></label>'
            )
        parts.append("</div>")
        self.out.append("".join(parts))
        return "</fieldset>"

    def _start_image_classifier(self, a):
        return self._classifier(a, image=True)

    def _start_classifier(self, a):
        return self._classifier(a, image=False)


def collect_answers(fields: list[FieldSpec], form) -> dict:
    """answerContent from a submitted form (a werkzeug MultiDict), in crowd-html's output shapes."""
    answers: dict[str, Any] = {}
    known: set[str] = set()
    for spec in fields:
        if not spec.name:
            continue
        known.add(spec.name)
        if spec.kind == "text":
            answers[spec.name] = form.get(spec.name, "")
        elif spec.kind == "checkbox":
            answers.setdefault(spec.name, {})[spec.value] = spec.value in form.getlist(spec.name)
        elif spec.kind == "radio":
            chosen = form.get(spec.name)
            for i, (name, value) in enumerate(spec.buttons):
                answers.setdefault(name, {})[value] = chosen == str(i)
        elif spec.kind == "classifier":
            chosen = form.get(spec.name)
            if chosen is not None:
                answers[spec.name] = {"label": chosen}
    for key in form:
        if key not in known and not key.startswith("__"):
            values = form.getlist(key)
            answers[key] = values[0] if len(values) == 1 else values
    return answers


def missing_required(fields: list[FieldSpec], answers: dict) -> list[str]:
    missing = []
    for spec in fields:
        if not spec.required:
            continue
        if spec.kind == "text" and not str(answers.get(spec.name, "")).strip():
            missing.append(spec.label or spec.name)
        elif spec.kind == "checkbox" and not any((answers.get(spec.name) or {}).values()):
            missing.append(spec.name)
    return missing
