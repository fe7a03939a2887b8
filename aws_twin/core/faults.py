"""Faults and quotas on purpose: per service and operation, a requests-per-second quota (token
bucket answering throttling beyond it), an error rate for throttling and 5xx errors, and latency.

Rules are set by CLI flags (``--fault``), the ``AWS_TWIN_FAULTS`` environment variable and the
``/_twin/faults`` control endpoint. The text form, one rule per flag or ``;``-separated::

    textract:AnalyzeExpense:rps=5
    textract:*:throttle=0.3,error=0.05,latency=200
    sagemaker:CreateModelPackage:drop=1,times=1
    sagemaker*:*:reset=1,times=3

The service is botocore's service name, as ``boto3.client(...)`` takes it (``sagemaker``,
``sagemaker-runtime``, ``sagemaker-a2i-runtime``, ``s3``...), or a glob over those names
(``sagemaker*`` covers all three SageMaker APIs); a name that is no botocore service is refused,
so a rule cannot silently match nothing. The operation is botocore's operation name or a glob.

Besides refusing a request (``throttle``, ``error``), a rule can lose the answer of a request the
twin has executed (``drop``: the caller gets a 503, as when a response is lost on the way, and
botocore retries a request that did happen) or close the connection without an answer
(``reset``: the request is not executed). ``times=N`` makes a rule act on its first N matching
requests only (then it stays listed, spent); a request an earlier rule already decided does not
count against a later rule's ``times`` (unless that rule adds latency to it).
"""

from __future__ import annotations

import fnmatch
import functools
import random
import threading
import time
from dataclasses import asdict, dataclass, field


@dataclass
class FaultRule:
    service: str = "*"
    operation: str = "*"
    rps: float | None = None  # quota: requests per second (token bucket, burst = max(1, rps))
    throttle_rate: float = 0.0  # share of requests answered with a throttling error
    error_rate: float = 0.0  # share of requests answered with a 5xx error
    latency_ms: float = 0.0  # added to every matching request
    drop_response: float = 0.0  # share of requests executed whose answer is lost (a 503 instead)
    reset_rate: float = 0.0  # share of requests answered by closing the connection (not executed)
    times: int | None = None  # act on the first N matching requests only (None: no limit)
    _tokens: float = field(default=0.0, repr=False)
    _stamp: float = field(default=0.0, repr=False)

    def __post_init__(self) -> None:
        check_service(self.service)
        if self.times is not None:
            self.times = int(self.times)
        for name in ("throttle_rate", "error_rate", "drop_response", "reset_rate"):
            value = float(getattr(self, name))
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"fault rule {self.service}:{self.operation}: {name} must be in [0, 1]")
            setattr(self, name, value)

    def matches(self, service: str, operation: str) -> bool:
        return fnmatch.fnmatchcase(service, self.service) and fnmatch.fnmatchcase(operation, self.operation)

    def public(self) -> dict:
        return {k: v for k, v in asdict(self).items() if not k.startswith("_")}

    @classmethod
    def parse(cls, text: str) -> FaultRule:
        try:
            service, operation, settings = text.strip().split(":", 2)
        except ValueError as exc:
            raise ValueError(f"fault rule {text!r}: expected service:operation:key=value,...") from exc
        rule = cls(service=service or "*", operation=operation or "*")
        names = {
            "rps": "rps",
            "throttle": "throttle_rate",
            "error": "error_rate",
            "latency": "latency_ms",
            "drop": "drop_response",
            "drop_response": "drop_response",
            "reset": "reset_rate",
            "times": "times",
        }
        for item in filter(None, settings.split(",")):
            key, _, value = item.partition("=")
            if key not in names:
                raise ValueError(f"fault rule {text!r}: unknown setting {key!r} (use {', '.join(names)})")
            try:
                setattr(rule, names[key], int(value) if key == "times" else float(value))
            except ValueError as exc:
                raise ValueError(f"fault rule {text!r}: {key}={value!r} is not a number") from exc
        rule.__post_init__()
        return rule

    @classmethod
    def from_dict(cls, data: dict) -> FaultRule:
        allowed = {k for k in cls.__dataclass_fields__ if not k.startswith("_")}
        unknown = set(data) - allowed
        if unknown:
            raise ValueError(f"unknown fault settings: {sorted(unknown)}")
        return cls(**data)


@functools.cache
def botocore_services() -> frozenset[str]:
    import botocore.session

    return frozenset(botocore.session.get_session().get_available_services())


def check_service(pattern: str) -> None:
    """Refuse a rule's service that matches no botocore service name (e.g. ``a2i``, ``SageMaker``)."""
    names = botocore_services()
    if not any(fnmatch.fnmatchcase(name, pattern) for name in names):
        close = sorted(n for n in names if pattern.lower().strip("*") in n)[:6]
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise ValueError(
            f"fault rule service {pattern!r} is no botocore service name{hint}; use the name "
            "boto3.client() takes, e.g. sagemaker-a2i-runtime, or a glob such as sagemaker*"
        )


class Decision:
    THROTTLE = "throttle"
    ERROR = "error"
    DROP = "drop"  # execute the request, lose its answer
    RESET = "reset"  # close the connection, do not execute


class FaultInjector:
    def __init__(self, rules: list[FaultRule] | None = None, seed: int | None = None):
        self._lock = threading.Lock()
        self._rules: list[FaultRule] = []
        self._random = random.Random(seed)
        self.counters: dict[str, int] = {"throttled": 0, "errors": 0, "delayed": 0, "dropped": 0, "reset": 0}
        self.set_rules(rules or [])

    def set_rules(self, rules: list[FaultRule]) -> None:
        now = time.monotonic()
        with self._lock:
            for rule in rules:
                rule._tokens = max(1.0, rule.rps or 0.0)
                rule._stamp = now
            self._rules = list(rules)
            self.counters = dict.fromkeys(self.counters, 0)

    def rules(self) -> list[dict]:
        with self._lock:
            return [r.public() for r in self._rules]

    def decide(self, service: str, operation: str) -> tuple[str | None, float]:
        """Return (decision, latency seconds) for one request."""
        latency = 0.0
        decision = None
        with self._lock:
            for rule in self._rules:
                if not rule.matches(service, operation):
                    continue
                if rule.times is not None and rule.times <= 0:
                    continue  # spent
                if decision and not rule.latency_ms:
                    continue  # an earlier rule decided: this one did nothing, and keeps its times
                if rule.times is not None:
                    rule.times -= 1
                latency = max(latency, rule.latency_ms / 1000.0)
                if decision:
                    continue
                if rule.rps is not None:
                    now = time.monotonic()
                    burst = max(1.0, rule.rps)
                    rule._tokens = min(burst, rule._tokens + (now - rule._stamp) * rule.rps)
                    rule._stamp = now
                    if rule._tokens >= 1.0:
                        rule._tokens -= 1.0
                    else:
                        decision = Decision.THROTTLE
                        continue
                roll = self._random.random()
                for name, outcome in (
                    ("throttle_rate", Decision.THROTTLE),
                    ("error_rate", Decision.ERROR),
                    ("drop_response", Decision.DROP),
                    ("reset_rate", Decision.RESET),
                ):
                    rate = getattr(rule, name)
                    if roll < rate:
                        decision = outcome
                        break
                    roll -= rate
            counter = {
                Decision.THROTTLE: "throttled",
                Decision.ERROR: "errors",
                Decision.DROP: "dropped",
                Decision.RESET: "reset",
            }.get(decision or "")
            if counter:
                self.counters[counter] += 1
            if latency:
                self.counters["delayed"] += 1
        return decision, latency
