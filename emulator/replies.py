"""HTTP shapes shared by every route: JSON answers and ARM error answers."""

from __future__ import annotations

import json
from typing import Any

from starlette.responses import Response

from emulator.errors import ArmError

JSON = "application/json; charset=utf-8"


def json_response(status: int, body: Any, headers: dict[str, str] | None = None) -> Response:
    """A compact JSON answer; `None` is an empty body (and no body at all for a 204)."""
    if body is None:
        return Response(b"" if status != 204 else None, status_code=status, headers=headers)
    payload = json.dumps(body, separators=(",", ":")).encode()
    return Response(payload, status_code=status, headers=headers, media_type=JSON)


def error_response(error: ArmError, extra: dict[str, str] | None = None) -> Response:
    headers = dict(extra or {})
    headers.update(error.headers)
    response = json_response(error.status, error.body(), headers)
    for name, value in error.repeated_headers:
        response.raw_headers.append((name.lower().encode("latin-1"), value.encode("latin-1")))
    return response
