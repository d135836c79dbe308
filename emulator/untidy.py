"""Bodies as Azure writes them, not as the REST specification tidies them.

Real list and GET answers are untidy (REFERENCE.md, "Compute under pressure"): the REST
specification's snapshot list example writes `creationData.sourceResourceId` without its leading
slash; timestamps carry seven fractional digits and `+00:00`; resource ids come in any casing
(Compute writes resource group names upper-cased in references it builds itself). With
`Behaviour.untidy_shapes` the Compute list and GET routes pass their bodies through `untidy`.
Tag values are left alone: they are the caller's strings.
"""

from __future__ import annotations

import re
from typing import Any

_INSTANT = re.compile(
    r"^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.(\d{1,9}))?(?:Z|[+-]00:?00)$", re.IGNORECASE
)
_ARM_ID = re.compile(r"^/?subscriptions/", re.IGNORECASE)
_GROUP = re.compile(r"/resourcegroups/([^/]+)", re.IGNORECASE)
_PROVIDER = re.compile(r"/providers/([^/]+)", re.IGNORECASE)


def seven_digits(text: str) -> str:
    """`2026-11-27T02:00:03.123456Z` -> `2026-11-27T02:00:03.1234560+00:00`."""
    match = _INSTANT.match(text)
    if match is None:
        return text
    fraction = (match.group(2) or "").ljust(7, "0")[:7]
    return f"{match.group(1)}.{fraction}+00:00"


def mixed_case(resource_id: str) -> str:
    """One of the casings Azure writes an id in: `/subscriptions/{s}/resourcegroups/RG-APP/
    providers/microsoft.compute/...` (names of the resource itself keep their casing)."""
    text = _GROUP.sub(lambda m: f"/resourcegroups/{m.group(1).upper()}", resource_id)
    return _PROVIDER.sub(lambda m: f"/providers/{m.group(1).lower()}", text, count=1)


def untidy(body: Any) -> Any:
    """A copy of `body` with every ARM id in mixed case, every instant in seven digits and
    `+00:00`, and `creationData.sourceResourceId` without its leading slash."""
    return _walk(body)


def _walk(value: Any) -> Any:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for k, v in value.items():
            out[k] = v if k == "tags" else _walk(v)
        creation = out.get("creationData")
        if isinstance(creation, dict) and isinstance(creation.get("sourceResourceId"), str):
            creation["sourceResourceId"] = creation["sourceResourceId"].lstrip("/")
        return out
    if isinstance(value, list):
        return [_walk(v) for v in value]
    if isinstance(value, str):
        if _ARM_ID.match(value):
            return mixed_case(value)
        if _INSTANT.match(value):
            return seven_digits(value)
    return value
