"""The ASGI application: managed-identity endpoint, the ARM front (identity, throttling, faults,
the request log) over the providers' routes, Azure Monitor and the admin API."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import struct
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from emulator import admin, monitor
from emulator.arm_core import family_of
from emulator.clock import format_instant
from emulator.errors import ArmError
from emulator.faults import FaultRule
from emulator.identity import ARM_AUDIENCES
from emulator.ids import new_uuid, subscription_of
from emulator.replies import error_response, json_response
from emulator.routing import ArmRequest, Reply, operation_name
from emulator.stand_in import StandIn
from emulator.throttling import compute_throttled, policy_for

ALL_METHODS = ["GET", "PUT", "PATCH", "POST", "DELETE", "HEAD"]


class ResetFaults:
    """Outermost ASGI layer: a `reset` fault drops the TCP connection with an RST, no answer."""

    def __init__(self, app: ASGIApp, stand_in: StandIn) -> None:
        self.app = app
        self.stand_in = stand_in

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            rule = self.stand_in.faults.match(scope["method"], scope["path"], ("reset",))
            if rule is not None:
                self.stand_in.record(
                    scope["method"], scope["path"], "fault/reset", 0, fault=rule.id
                )
                transport = getattr(getattr(send, "__self__", None), "transport", None)
                if transport is not None:
                    sock = transport.get_extra_info("socket")
                    if sock is not None:
                        with contextlib.suppress(OSError):
                            sock.setsockopt(
                                socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                            )
                    transport.abort()
                    return
                raise ConnectionResetError("injected connection reset")
        await self.app(scope, receive, send)


def create_app(stand_in: StandIn) -> ASGIApp:
    def throttled(rule: FaultRule, method: str, path: str) -> ArmError:
        """An injected Compute 429: unwrapped body, one header per window, Retry-After or none."""
        now = stand_in.clock.now()
        policy = rule.policy or policy_for(method, path)
        end = rule.hold_until or now
        error = compute_throttled(
            [(f"{policy}3Min", 0), (f"{policy}30Min", 0)],
            f"{policy}30Min",
            stand_in.throttler.allowed_30min(policy),
            rule.retry_after_now(now),
            start=format_instant(end - timedelta(minutes=30)),
            end=format_instant(end),
        )
        error.code, error.message = rule.code, rule.message
        return error

    async def apply_faults(request: Request) -> tuple[Response | None, int | None]:
        rule = stand_in.faults.match(
            request.method,
            request.url.path,
            ("status", "latency", "stuck", "throttle"),
            now=stand_in.clock.now(),
        )
        if rule is None:
            return None, None
        if rule.action == "throttle":
            return error_response(throttled(rule, request.method, request.url.path)), rule.id
        if rule.action == "latency":
            await asyncio.sleep(rule.latency_ms / 1000)
            return None, rule.id
        if rule.action == "stuck":
            request.state.stuck = True  # the operation this request starts never finishes
            return None, rule.id
        headers = {"Retry-After": rule.retry_after} if rule.retry_after else {}
        error = ArmError(rule.status, rule.code, rule.message, headers=headers)
        return error_response(error), rule.id

    def record(
        request: Request,
        operation: str,
        status: int,
        principal: str | None,
        actions: list[str],
        fault: int | None,
    ) -> None:
        stand_in.record(
            request.method, request.url.path, operation, status, principal, actions, fault
        )

    async def msi_token(request: Request) -> Response:
        faulted, fault_id = await apply_faults(request)
        if faulted is not None:
            record(request, "identity/token", faulted.status_code, None, [], fault_id)
            return faulted
        q = request.query_params
        status, body = 200, {}
        header = request.headers.get("x-identity-header")
        if header != stand_in.authority.identity_header:
            status, body = (
                401,
                {"statusCode": 401, "message": "Unauthorized: missing or wrong X-IDENTITY-HEADER."},
            )
        elif q.get("api-version") != "2019-08-01":
            status, body = (
                400,
                {"statusCode": 400, "message": "Unsupported api-version; use 2019-08-01."},
            )
        elif not q.get("resource"):
            status, body = (
                400,
                {"statusCode": 400, "message": "The 'resource' query parameter is required."},
            )
        else:
            ident = stand_in.cloud.identity_by_client(q.get("client_id"))
            if ident is None:
                status, body = (
                    400,
                    {
                        "statusCode": 400,
                        "message": "No Managed Identity found for specified "
                        "ClientId/ResourceId/PrincipalId.",
                    },
                )
            else:
                resource = q["resource"]
                token, expires_on = stand_in.authority.mint(
                    resource, ident.object_id, ident.client_id
                )
                body = {
                    "access_token": token,
                    "expires_on": expires_on,
                    "resource": resource,
                    "token_type": "Bearer",
                    "client_id": ident.client_id,
                }
        record(request, "identity/token", status, None, [], fault_id)
        return json_response(status, body)

    async def arm_endpoint(request: Request) -> Response:
        method = request.method
        path = request.url.path
        request_id = new_uuid()
        correlation = request.headers.get("x-ms-correlation-request-id") or new_uuid()
        base = {
            "x-ms-request-id": request_id,
            "x-ms-correlation-request-id": correlation,
            "Cache-Control": "no-cache",
        }
        operation = f"{method} {path}"
        principal = None
        actions: list[str] = []
        faulted, fault_id = await apply_faults(request)
        if faulted is not None:
            faulted.headers.update(base)
            record(request, operation, faulted.status_code, None, [], fault_id)
            return faulted
        req: ArmRequest | None = None
        try:
            resolved = stand_in.router.resolve(method, path)
            if resolved is not None:
                found, args, handler = resolved
                operation = operation_name(found, args)
            caller = stand_in.authority.verify(request.headers.get("authorization"), ARM_AUDIENCES)
            principal = caller.object_id
            if not request.query_params.get("api-version"):
                raise ArmError(
                    400,
                    "MissingApiVersionParameter",
                    "The api-version query parameter (?api-version=) is required for all requests.",
                )
            subscription = subscription_of(path)
            if resolved is None or subscription is None:
                raise ArmError(
                    404,
                    "InvalidResourceType",
                    f"The resource type for '{method} {path}' is not served by the Lifeboat "
                    "stand-in.",
                )
            stand_in.arm.check_subscription(subscription)
            family = family_of(method)
            throttle_headers = stand_in.throttler.arm_check(subscription, caller.object_id, family)
            body: Any = None
            if method in ("PUT", "PATCH", "POST"):
                raw = await request.body()
                if raw:
                    try:
                        body = json.loads(raw)
                    except ValueError:
                        raise ArmError(
                            400,
                            "InvalidRequestContent",
                            "The request content was invalid and could not be deserialized.",
                        ) from None
            req = ArmRequest(
                method=method,
                path=path,
                query=dict(request.query_params),
                body=body,
                caller=caller,
                base_url=f"{request.url.scheme}://{request.url.netloc}",
                correlation_id=correlation,
                actions=[operation],
                throttle_headers=throttle_headers,
                stuck=getattr(request.state, "stuck", False),
                headers={k.lower(): v for k, v in request.headers.items()},
            )
            reply: Reply = handler(req, args)
            headers = {**base, **req.throttle_headers, **reply.headers}
            actions = req.actions
            record(request, operation, reply.status, principal, actions, None)
            return json_response(reply.status, reply.body, headers)
        except ArmError as error:
            extra = {**base, **(req.throttle_headers if req else {})}
            record(
                request, operation, error.status, principal, req.actions if req else actions, None
            )
            return error_response(error, extra)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await stand_in.events.start()
        try:
            yield
        finally:
            await stand_in.events.stop()

    routes = [
        Route("/msi/token", msi_token, methods=["GET"]),
        *admin.routes(stand_in),
        *monitor.routes(stand_in),
        Route("/{path:path}", arm_endpoint, methods=ALL_METHODS),
    ]
    app = Starlette(routes=routes, lifespan=lifespan)
    return ResetFaults(app, stand_in)
