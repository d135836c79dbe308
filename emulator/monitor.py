"""Azure Monitor, part 3 of the stand-in: the Logs Ingestion API and the Log Analytics query API.

Ingestion: `POST /dataCollectionRules/{dcrImmutableId}/streams/{stream}?api-version=2023-01-01`,
a (gzip) JSON array of rows, 204. Rows are checked against the stream's declared columns and
stored in the stream's table. Query: `POST /v1/workspaces/{id}/query` with `{"query",
"timespan"}` runs KQL with duckdb-kql (no hand-written parser), `now()` pinned to the stand-in
clock, the timespan applied as a TimeGenerated filter, and answers in the API's shape.

The state behind these routes (the DCR, streams, tables, queries) is `monitor_state.py`.
"""

from __future__ import annotations

import gzip
import json
import uuid
import zlib
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from emulator.errors import ArmError
from emulator.monitor_state import (
    INGESTION_API_VERSION,
    INGESTION_AUDIENCES,
    MAX_INGESTION_BYTES,
    QUERY_AUDIENCES,
    Monitor,
    QueryError,
)
from emulator.replies import json_response
from emulator.stand_in import StandIn

# ------------------------------------------------------------------------------------ routes


def endpoint_entries(stand_in: StandIn, base: str) -> dict[str, Any]:
    """What the endpoints file says about Azure Monitor."""
    config = stand_in.monitor.config
    stream = next(iter(config.streams))
    return {
        "ingestionEndpoint": base,
        "dcrImmutableId": config.dcr_immutable_id,
        "stream": stream,
        "monitorAudience": INGESTION_AUDIENCES[0],
        "logAnalyticsEndpoint": base,
        "logAnalyticsAudience": QUERY_AUDIENCES[0],
        "workspaceId": config.workspace_id,
    }


def routes(stand_in: StandIn) -> list[Route]:
    """The ingestion and query routes; they must come before the ARM catch-all."""

    def monitor() -> Monitor:
        return stand_in.monitor

    def record(
        request: Request, operation: str, status: int, principal: str | None, fault: int | None
    ) -> None:
        stand_in.record(request.method, request.url.path, operation, status, principal, [], fault)

    def faulted(request: Request) -> tuple[Response | None, int | None]:
        rule = stand_in.faults.match(request.method, request.url.path, ("status",))
        if rule is None:
            return None, None
        headers = {"Retry-After": rule.retry_after} if rule.retry_after else {}
        error = ArmError(rule.status, rule.code, rule.message, headers=headers)
        return json_response(error.status, error.body(), {**error.headers}), rule.id

    def front(
        operation: str, audiences: tuple[str, ...], handle: Callable[[Request], Awaitable[Response]]
    ) -> Callable[[Request], Awaitable[Response]]:
        """A route's front: fault rules, then the caller's token, then `handle`; every answer
        recorded in the request log, ARM errors answered as ARM writes them."""

        async def endpoint(request: Request) -> Response:
            principal = None
            answer, fault = faulted(request)
            if answer is not None:
                record(request, operation, answer.status_code, None, fault)
                return answer
            try:
                caller = stand_in.authority.verify(request.headers.get("authorization"), audiences)
                principal = caller.object_id
                response = await handle(request)
            except ArmError as error:
                record(request, operation, error.status, principal, None)
                return json_response(error.status, error.body(), error.headers)
            record(request, operation, response.status_code, principal, None)
            return response

        return endpoint

    async def ingest(request: Request) -> Response:
        if request.query_params.get("api-version") != INGESTION_API_VERSION:
            raise ArmError(
                400,
                "InvalidApiVersion",
                f"The api-version must be {INGESTION_API_VERSION}.",
            )
        raw = await request.body()
        encoding = (request.headers.get("content-encoding") or "").lower()
        if encoding == "gzip":
            try:
                raw = _gunzip(raw)
            except (OSError, EOFError, zlib.error, ValueError):
                raise ArmError(
                    400, "InvalidContentEncoding", "The body is not valid gzip."
                ) from None
        if len(raw) > MAX_INGESTION_BYTES:
            raise ArmError(
                413,
                "ContentLengthLimitExceeded",
                f"Maximum allowed content length: {MAX_INGESTION_BYTES} bytes "
                f"(1 MB). Provided content length: {len(raw)} bytes.",
            )
        try:
            rows = json.loads(raw)
        except ValueError:
            raise ArmError(400, "InvalidArgument", "The body is not valid JSON.") from None
        monitor().ingest(request.path_params["dcr"], request.path_params["stream"], rows)
        return Response(status_code=204)

    async def query(request: Request) -> Response:
        try:
            try:
                body = json.loads(await request.body() or b"{}")
            except ValueError:
                raise QueryError("BadArgumentError", "The request body is not JSON.") from None
            if not isinstance(body, dict) or not isinstance(body.get("query"), str):
                raise QueryError("BadArgumentError", "The request had no 'query'.")
            timespan = body.get("timespan") or request.query_params.get("timespan")
            try:
                result = monitor().query(
                    request.path_params["workspace"],
                    body["query"],
                    timespan,
                    stand_in.clock.now(),
                )
            except ValueError as e:
                raise QueryError("BadArgumentError", f"Invalid timespan: {e}") from None
        except QueryError as error:
            inner: dict[str, Any] = {"code": error.code, "message": error.message}
            if error.inner:
                inner["innererror"] = {"code": error.code, "message": error.inner[:2000]}
            return json_response(
                400,
                {
                    "error": {
                        "message": "The request had some invalid properties",
                        "code": "BadArgumentError",
                        "correlationId": str(uuid.uuid4()),
                        "innererror": inner,
                    }
                },
            )
        return json_response(200, result)

    async def admin(request: Request) -> Response:
        found = monitor()
        if request.method == "DELETE":
            found.clear()
            return Response(status_code=204)
        if request.method == "POST":
            body = json.loads(await request.body() or b"{}")
            if "queryRowLimit" in body:
                found.config.row_limit = max(0, int(body["queryRowLimit"]))
        return json_response(
            200,
            {
                "dcrImmutableId": found.config.dcr_immutable_id,
                "workspaceId": found.config.workspace_id,
                "streams": {
                    s.name: {"table": s.table, "columns": [list(c) for c in s.columns]}
                    for s in found.config.streams.values()
                },
                "rows": found.counts(),
                "ingestCalls": found.calls,
                "queryRowLimit": found.config.row_limit,
            },
        )

    return [
        Route("/admin/monitor", admin, methods=["GET", "POST", "DELETE"]),
        Route(
            "/dataCollectionRules/{dcr}/streams/{stream}",
            front("monitor/ingest", INGESTION_AUDIENCES, ingest),
            methods=["POST"],
        ),
        Route(
            "/v1/workspaces/{workspace}/query",
            front("monitor/query", QUERY_AUDIENCES, query),
            methods=["POST", "GET"],
        ),
    ]


def _gunzip(raw: bytes) -> bytes:
    out = gzip.decompress(raw)
    return out
