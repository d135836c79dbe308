"""The admin API (`/admin/...`): clock, request log, faults, VMs, Event Grid, throttling, behaviour,
the estate's changes.

Loopback only and unauthenticated: it drives the stand-in, it is not part of Azure.
"""

from __future__ import annotations

import json
from dataclasses import asdict, fields
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from emulator.clock import format_instant, parse_instant
from emulator.estate import EstateError, add_vm
from emulator.ids import new_uuid
from emulator.network_state import STORES
from emulator.stand_in import StandIn
from emulator.throttling import ARM_SHAPES, SNAPSHOT_FAMILIES, ArmLimits

ADMIN_OBJECT_ID = "00000000-0000-0000-0000-00000000ad01"


def _json(body: Any, status: int = 200) -> Response:
    return Response(json.dumps(body).encode(), status_code=status, media_type="application/json")


def _bad(message: str, status: int = 400) -> Response:
    return _json({"error": {"code": "BadRequest", "message": message}}, status)


async def _body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if not raw:
        return {}
    data = json.loads(raw)
    if not isinstance(data, dict):
        raise ValueError("the body must be a JSON object")
    return data


def routes(stand_in: StandIn) -> list[Route]:
    async def health(request: Request) -> Response:
        return _json({"status": "ok", "now": format_instant(stand_in.clock.now())})

    async def clock(request: Request) -> Response:
        if request.method == "POST":
            try:
                body = await _body(request)
                if "set" in body:
                    stand_in.clock.set(parse_instant(str(body["set"])))
                if "advanceSeconds" in body:
                    stand_in.clock.advance(float(body["advanceSeconds"]))
                if "rate" in body:
                    stand_in.clock.set_rate(float(body["rate"]))
            except ValueError as e:
                return _bad(str(e))
            stand_in.catch_up()  # the estate's changes the new time has passed
        return _json({"now": format_instant(stand_in.clock.now()), "rate": stand_in.clock.rate})

    async def changes(request: Request) -> Response:
        """The estate's `changes:`: when each applies, and what applying did."""
        stand_in.catch_up()
        with stand_in.cloud.lock:
            return _json({"changes": [c.to_json() for c in stand_in.cloud.changes]})

    async def requests(request: Request) -> Response:
        if request.method == "DELETE":
            stand_in.log.reset()
            return Response(status_code=204)
        since = int(request.query_params.get("since", "0"))
        limit = int(request.query_params.get("limit", "1000"))
        return _json(stand_in.log.snapshot(since, limit))

    async def faults(request: Request) -> Response:
        if request.method == "POST":
            try:
                rule = stand_in.faults.add(await _body(request))
            except (ValueError, TypeError) as e:
                return _bad(str(e))
            return _json(rule.to_json(), 201)
        if request.method == "DELETE":
            stand_in.faults.remove(None)
            return Response(status_code=204)
        return _json({"rules": stand_in.faults.list()})

    async def fault(request: Request) -> Response:
        stand_in.faults.remove(int(request.path_params["rule_id"]))
        return Response(status_code=204)

    async def vms(request: Request) -> Response:
        """Create a VM as a user would; Event Grid sees two writes with one correlation id."""
        try:
            body = await _body(request)
            subscription = str(body["subscriptionId"])
            raw = body["vm"]
            now = stand_in.clock.now()
            with stand_in.cloud.lock:
                vm = add_vm(stand_in.cloud, subscription, raw, now)
        except (KeyError, ValueError, TypeError, EstateError) as e:
            return _bad(str(e))
        caller = str(body.get("callerObjectId", ADMIN_OBJECT_ID))
        correlation = new_uuid()
        for _ in range(int(body.get("writes", 2))):
            stand_in.events.resource_write(
                vm.id,
                "Microsoft.Compute/virtualMachines/write",
                caller,
                correlation,
                http_method="PUT-CREATE",
            )
        return _json(
            {"id": vm.id, "correlationId": correlation, "vm": stand_in.cloud.vm_json(vm)}, 201
        )

    async def boot_failures(request: Request) -> Response:
        """Script boot failures: VMs created later whose name matches `vmNamePattern` (a glob)
        or whose disks come from snapshots of `sourceVmId`'s disks never get an agent Ready."""
        cloud = stand_in.cloud
        if request.method == "POST":
            try:
                body = await _body(request)
            except ValueError as e:
                return _bad(str(e))
            rule = {k: str(body[k]) for k in ("vmNamePattern", "sourceVmId") if body.get(k)}
            if not rule:
                return _bad("give vmNamePattern (a glob) or sourceVmId")
            with cloud.lock:
                cloud.boot_failure_rules.append(rule)
            return _json({"rules": cloud.boot_failure_rules}, 201)
        if request.method == "DELETE":
            with cloud.lock:
                cloud.boot_failure_rules.clear()
            return Response(status_code=204)
        with cloud.lock:
            estate = sorted(vm.id for vm in cloud.vms.values() if vm.boot_fails and not vm.from_arm)
            return _json({"rules": cloud.boot_failure_rules, "estateVms": estate})

    async def eventgrid(request: Request) -> Response:
        if request.method == "POST":
            try:
                stand_in.events.configure(await _body(request))
            except (ValueError, TypeError) as e:
                return _bad(str(e))
        return _json(stand_in.events.status())

    async def throttle(request: Request) -> Response:
        t = stand_in.throttler
        if request.method == "POST":
            try:
                body = await _body(request)
                arm = body.get("arm") or {}
                compute = body.get("compute") or {}
                hourly = arm.get("hourly") or {}
                shape = str(arm.get("shape", t.arm.shape))
                if shape not in ARM_SHAPES:
                    raise ValueError(f"arm.shape must be one of {ARM_SHAPES}")
                arm_limits = ArmLimits(
                    reads=tuple(arm.get("reads", t.arm.reads)),
                    writes=tuple(arm.get("writes", t.arm.writes)),
                    deletes=tuple(arm.get("deletes", t.arm.deletes)),
                    global_factor=float(arm.get("globalFactor", t.arm.global_factor)),
                    shape=shape,
                    hourly_reads=float(hourly.get("reads", t.arm.hourly_reads)),
                    hourly_writes=float(hourly.get("writes", t.arm.hourly_writes)),
                    hourly_deletes=float(hourly.get("deletes", t.arm.hourly_deletes)),
                )
                current = t.compute.settings()
                for k, v in compute.items():
                    if k in current:
                        current[k] = type(current[k])(v)
                if current["incremental_family"] not in SNAPSHOT_FAMILIES:
                    raise ValueError(
                        f"compute.incremental_family must be one of {SNAPSHOT_FAMILIES}"
                    )
                t.configure(arm_limits, t.compute.with_settings(current))
                if "retryAfterScale" in body:
                    t.retry_after_scale = float(body["retryAfterScale"])
                if "enabled" in body:
                    t.enabled = bool(body["enabled"])
            except (ValueError, TypeError) as e:
                return _bad(str(e))
        return _json(
            {
                "enabled": t.enabled,
                "retryAfterScale": t.retry_after_scale,
                "arm": {
                    "reads": list(t.arm.reads),
                    "writes": list(t.arm.writes),
                    "deletes": list(t.arm.deletes),
                    "globalFactor": t.arm.global_factor,
                    "shape": t.arm.shape,
                    "hourly": {
                        "reads": t.arm.hourly_reads,
                        "writes": t.arm.hourly_writes,
                        "deletes": t.arm.hourly_deletes,
                    },
                },
                "compute": t.compute.settings(),
            }
        )

    async def behaviour(request: Request) -> Response:
        b = stand_in.behaviour
        names = {f.name: f for f in fields(b)}
        camel = {_camel(n): n for n in names}
        if request.method == "POST":
            try:
                for k, v in (await _body(request)).items():
                    name = camel.get(k, k)
                    if name not in names:
                        return _bad(f"unknown setting {k}")
                    current = getattr(b, name)
                    setattr(b, name, type(current)(v))
            except (ValueError, TypeError) as e:
                return _bad(str(e))
        return _json({_camel(k): v for k, v in asdict(b).items()})

    async def state(request: Request) -> Response:
        cloud = stand_in.cloud
        stand_in.catch_up()
        now = stand_in.clock.now()
        with cloud.lock:
            cloud.purge(now)
            return _json(
                {
                    "now": format_instant(now),
                    "subscriptions": sorted(cloud.subscriptions),
                    "vms": len(cloud.vms),
                    "disks": len(cloud.disks),
                    "snapshots": len(cloud.snapshots),
                    "operations": len(cloud.operations),
                    "networkResources": sum(len(cloud.network.store(kind)) for kind in STORES),
                }
            )

    return [
        Route("/admin/health", health, methods=["GET"]),
        Route("/admin/clock", clock, methods=["GET", "POST"]),
        Route("/admin/requests", requests, methods=["GET", "DELETE"]),
        Route("/admin/faults", faults, methods=["GET", "POST", "DELETE"]),
        Route("/admin/faults/{rule_id:int}", fault, methods=["DELETE"]),
        Route("/admin/vms", vms, methods=["POST"]),
        Route("/admin/eventgrid", eventgrid, methods=["GET", "POST"]),
        Route("/admin/boot-failures", boot_failures, methods=["GET", "POST", "DELETE"]),
        Route("/admin/throttle", throttle, methods=["GET", "POST"]),
        Route("/admin/behaviour", behaviour, methods=["GET", "POST"]),
        Route("/admin/state", state, methods=["GET"]),
        Route("/admin/changes", changes, methods=["GET"]),
    ]


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(p.title() for p in rest)
