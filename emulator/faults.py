"""Fault rules and the request log, both driven and read over the admin API."""

from __future__ import annotations

import math
import random
import re
import threading
from collections import Counter, deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from emulator.throttling import THROTTLED_MESSAGE

ACTIONS = ("status", "latency", "reset", "stuck", "throttle")
THROTTLE_RETRY_AFTER = "1200"
"""A Compute 429's Retry-After as documented (Troubleshooting API throttling errors)."""


@dataclass
class FaultRule:
    id: int
    action: str
    method: str = "*"
    path: str = ""
    status: int = 500
    code: str = "InternalServerError"
    message: str = "An internal server error occurred (injected by the stand-in)."
    retry_after: str | None = None
    latency_ms: int = 0
    count: int | None = None  # remaining matches (throttle windows); None = unlimited
    probability: float = 1.0
    hits: int = 0
    hold_seconds: float = 0.0  # throttle: the window a first match opens (stand-in clock)
    policy: str | None = None  # throttle: the Compute family named in the headers
    hold_until: datetime | None = None
    _pattern: re.Pattern[str] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._pattern = re.compile(self.path, re.IGNORECASE)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "action": self.action,
            "method": self.method,
            "path": self.path,
            "status": self.status,
            "code": self.code,
            "retryAfter": self.retry_after,
            "latencyMs": self.latency_ms,
            "count": self.count,
            "probability": self.probability,
            "hits": self.hits,
            "holdSeconds": self.hold_seconds,
            "policy": self.policy,
            "holdUntil": None if self.hold_until is None else self.hold_until.isoformat(),
        }

    def retry_after_now(self, now: datetime) -> str | None:
        """Retry-After for a throttle answer: the rule's value, capped by the window's rest."""
        if self.retry_after is None:
            return None
        if self.hold_until is None:
            return self.retry_after
        left = math.ceil((self.hold_until - now).total_seconds())
        return str(max(1, min(int(float(self.retry_after)), left)))


class Faults:
    def __init__(self, seed: int | None = None) -> None:
        self._lock = threading.Lock()
        self._rules: list[FaultRule] = []
        self._next = 1
        self._random = random.Random(seed)

    def add(self, spec: dict[str, Any]) -> FaultRule:
        action = str(spec.get("action", "status"))
        if action not in ACTIONS:
            raise ValueError(f"action must be one of {ACTIONS}")
        with self._lock:
            throttle = action == "throttle"
            retry_after = None if spec.get("retryAfter") is None else str(spec["retryAfter"])
            if throttle and "retryAfter" not in spec:
                retry_after = THROTTLE_RETRY_AFTER  # `"retryAfter": null` sends none
            default_hold = float(retry_after) if throttle and retry_after is not None else 0.0
            hold = float(spec.get("holdSeconds", default_hold)) if throttle else 0.0
            count = None if spec.get("count") is None else int(spec["count"])
            if throttle and hold > 0 and count is None:
                count = 1  # one window, not a hold that never ends
            rule = FaultRule(
                id=self._next,
                action=action,
                method=str(spec.get("method", "*")).upper(),
                path=str(spec.get("path", "")),
                status=429 if throttle else int(spec.get("status", 500)),
                code=str(
                    spec.get("code", "OperationNotAllowed" if throttle else "InternalServerError")
                ),
                message=str(
                    spec.get(
                        "message",
                        THROTTLED_MESSAGE
                        if throttle
                        else "An internal server error occurred (injected by the stand-in).",
                    )
                ),
                retry_after=retry_after,
                latency_ms=int(spec.get("latencyMs", 0)),
                count=count,
                probability=float(spec.get("probability", 1.0)),
                hold_seconds=hold,
                policy=None if spec.get("policy") is None else str(spec["policy"]),
            )
            self._next += 1
            self._rules.append(rule)
            return rule

    def remove(self, rule_id: int | None = None) -> None:
        with self._lock:
            self._rules = [r for r in self._rules if rule_id is not None and r.id != rule_id]

    def list(self) -> list[dict[str, Any]]:
        with self._lock:
            return [r.to_json() for r in self._rules]

    def match(
        self,
        method: str,
        path: str,
        actions: tuple[str, ...] = ACTIONS,
        now: datetime | None = None,
    ) -> FaultRule | None:
        """The first rule that answers this request. A throttle rule with `hold_seconds` opens a
        window on the stand-in clock (`now`) at its first match and answers every matching
        request until the window closes; `count` counts its windows."""
        with self._lock:
            for rule in self._rules:
                if rule.action not in actions:
                    continue
                if rule.method not in ("*", method.upper()):
                    continue
                if not rule._pattern.search(path):
                    continue
                if rule.hold_until is not None and now is not None:
                    if now < rule.hold_until:
                        rule.hits += 1
                        return rule
                    rule.hold_until = None  # the window closed
                if rule.count is not None and rule.count <= 0:
                    continue
                if rule.probability < 1.0 and self._random.random() >= rule.probability:
                    continue
                if rule.count is not None:
                    rule.count -= 1
                if rule.hold_seconds > 0 and now is not None:
                    rule.hold_until = now + timedelta(seconds=rule.hold_seconds)
                rule.hits += 1
                return rule
        return None


@dataclass
class LogEntry:
    seq: int
    time: str
    clock: str
    method: str
    path: str
    operation: str
    status: int
    principal: str | None
    actions: list[str]
    fault: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "time": self.time,
            "clock": self.clock,
            "method": self.method,
            "path": self.path,
            "operation": self.operation,
            "status": self.status,
            "principal": self.principal,
            "actions": self.actions,
            "fault": self.fault,
        }


class RequestLog:
    def __init__(self, keep: int = 20000) -> None:
        self._lock = threading.Lock()
        self._entries: deque[LogEntry] = deque(maxlen=keep)
        self._seq = 0
        self.by_method: Counter[str] = Counter()
        self.by_operation: Counter[str] = Counter()
        self.by_status: Counter[str] = Counter()
        self.by_action: Counter[str] = Counter()

    def add(self, **fields: Any) -> None:
        with self._lock:
            self._seq += 1
            entry = LogEntry(seq=self._seq, **fields)
            self._entries.append(entry)
            self.by_method[entry.method] += 1
            self.by_operation[entry.operation] += 1
            self.by_status[str(entry.status)] += 1
            for action in entry.actions:
                self.by_action[action] += 1

    def reset(self) -> None:
        with self._lock:
            self._entries.clear()
            for counter in (self.by_method, self.by_operation, self.by_status, self.by_action):
                counter.clear()

    def snapshot(self, since: int = 0, limit: int = 1000) -> dict[str, Any]:
        with self._lock:
            entries = [e.to_json() for e in self._entries if e.seq > since][:limit]
            return {
                "total": self._seq,
                "counters": {
                    "byMethod": dict(self.by_method),
                    "byOperation": dict(self.by_operation),
                    "byStatus": dict(self.by_status),
                    "byAction": dict(self.by_action),
                },
                "entries": entries,
            }
