"""The one routing module: how an ARM request finds the provider method that answers it.

Each resource provider module lists its routes as data (`ROUTES`: method, path pattern, the RBAC
operation the request log names, and the name of the provider method that answers); a `Router`
binds those lists to the provider objects of one stand-in. Paths match case-insensitively, as
ARM's do. Handlers take an `ArmRequest` and return a `Reply`; refusals raise `ArmError`.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from emulator.identity import Caller

SUBSCRIPTION = r"^/subscriptions/([^/]+)"
GROUP = SUBSCRIPTION + r"/resourcegroups/([^/]+)"


@dataclass
class ArmRequest:
    method: str
    path: str
    query: dict[str, str]
    body: Any
    caller: Caller
    base_url: str
    correlation_id: str
    actions: list[str] = field(default_factory=list)
    throttle_headers: dict[str, str] = field(default_factory=dict)
    stuck: bool = False  # a fault rule: the operation this request starts never finishes
    headers: dict[str, str] = field(default_factory=dict)  # lower-case names (If-Match)

    def json_body(self) -> dict[str, Any]:
        """The body when it is a JSON object, else an empty one."""
        return self.body if isinstance(self.body, dict) else {}


@dataclass
class Reply:
    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


Handler = Callable[[ArmRequest, tuple[str, ...]], Reply]


@dataclass(frozen=True)
class Route:
    method: str
    pattern: re.Pattern[str]
    operation: str
    handler: str  # the name of the provider method that answers
    kind: str = ""  # for a method that serves several resource types: passed as `kind=`


def route(method: str, pattern: str, operation: str, handler: str, kind: str = "") -> Route:
    return Route(method, re.compile(pattern + "$", re.IGNORECASE), operation, handler, kind)


class Provider(Protocol):
    def routes(self) -> list[Route]: ...


def operation_name(found: Route, args: tuple[str, ...]) -> str:
    """The RBAC operation of a request; `{kind}` stands for Compute's two operation families."""
    if "{kind}" not in found.operation:
        return found.operation
    kind = "diskOperations" if args[2].lower() == "diskoperations" else "operations"
    return found.operation.replace("{kind}", kind)


class Router:
    """Every provider's routes, in the order the providers are given."""

    def __init__(self, providers: Iterable[Provider]) -> None:
        self.table: list[tuple[Route, Provider]] = [
            (r, provider) for provider in providers for r in provider.routes()
        ]

    def resolve(self, method: str, path: str) -> tuple[Route, tuple[str, ...], Handler] | None:
        path = path.rstrip("/")
        for found, provider in self.table:
            if found.method != method:
                continue
            match = found.pattern.match(path)
            if match:
                method_: Any = getattr(provider, found.handler)
                handler: Handler = (
                    functools.partial(method_, kind=found.kind) if found.kind else method_
                )
                return found, match.groups(), handler
        return None
