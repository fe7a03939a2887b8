"""Faults and quotas on purpose: per service and operation, a requests-per-second quota (token
bucket answering throttling beyond it), an error rate for throttling and 5xx errors, and latency.

Rules are set by CLI flags (``--fault``), the ``AWS_TWIN_FAULTS`` environment variable and the
``/_twin/faults`` control endpoint. The text form, one rule per flag or ``;``-separated::

    textract:AnalyzeExpense:rps=5
    textract:*:throttle=0.3,error=0.05,latency=200
"""

from __future__ import annotations

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
    _tokens: float = field(default=0.0, repr=False)
    _stamp: float = field(default=0.0, repr=False)

    def matches(self, service: str, operation: str) -> bool:
        return self.service in ("*", service) and self.operation in ("*", operation)

    def public(self) -> dict:
        return {k: v for k, v in asdict(self).items() if not k.startswith("_")}

    @classmethod
    def parse(cls, text: str) -> FaultRule:
        try:
            service, operation, settings = text.strip().split(":", 2)
        except ValueError as exc:
            raise ValueError(f"fault rule {text!r}: expected service:operation:key=value,...") from exc
        rule = cls(service=service or "*", operation=operation or "*")
        names = {"rps": "rps", "throttle": "throttle_rate", "error": "error_rate", "latency": "latency_ms"}
        for item in filter(None, settings.split(",")):
            key, _, value = item.partition("=")
            if key not in names:
                raise ValueError(f"fault rule {text!r}: unknown setting {key!r} (use {', '.join(names)})")
            setattr(rule, names[key], float(value))
        return rule

    @classmethod
    def from_dict(cls, data: dict) -> FaultRule:
        allowed = {k for k in cls.__dataclass_fields__ if not k.startswith("_")}
        unknown = set(data) - allowed
        if unknown:
            raise ValueError(f"unknown fault settings: {sorted(unknown)}")
        return cls(**data)


class Decision:
    THROTTLE = "throttle"
    ERROR = "error"


class FaultInjector:
    def __init__(self, rules: list[FaultRule] | None = None, seed: int | None = None):
        self._lock = threading.Lock()
        self._rules: list[FaultRule] = []
        self._random = random.Random(seed)
        self.counters: dict[str, int] = {"throttled": 0, "errors": 0, "delayed": 0}
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
                if roll < rule.throttle_rate:
                    decision = Decision.THROTTLE
                elif roll < rule.throttle_rate + rule.error_rate:
                    decision = Decision.ERROR
            if decision == Decision.THROTTLE:
                self.counters["throttled"] += 1
            elif decision == Decision.ERROR:
                self.counters["errors"] += 1
            if latency:
                self.counters["delayed"] += 1
        return decision, latency
