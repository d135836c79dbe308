"""`python -m emulator`: load an estate, serve HTTPS on loopback, write the endpoints file."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import socket
import sys
import tempfile
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import trustme
import uvicorn

from emulator.app import create_app
from emulator.clock import Clock, parse_instant
from emulator.config import Behaviour
from emulator.estate import EstateError, load_estate_file
from emulator.eventgrid import DeliveryOptions, EventGrid
from emulator.monitor import endpoint_entries
from emulator.stand_in import build_stand_in
from emulator.throttling import (
    ARM_SHAPES,
    CREATE_UPDATE,
    SNAPSHOT_FAMILIES,
    ArmLimits,
    ComputeLimits,
    Throttler,
)

log = logging.getLogger("emulator")
ARM_AUDIENCE = "https://management.azure.com/"


def _pair(text: str) -> tuple[float, float]:
    cap, _, rate = text.partition(":")
    return float(cap), float(rate)


def _num(kind: type, default: float | None, text: str) -> dict[str, Any]:
    return {"type": kind, "default": default, "help": text}


def _flag(text: str) -> dict[str, Any]:
    return {"action": "store_true", "help": text}


def _limit(text: str) -> dict[str, Any]:
    return {"type": _pair, "help": f"CAPACITY:REFILL_PER_S for ARM {text}"}


# The process's options in the order --help lists them: (flag, add_argument's keywords).
_OPTIONS: tuple[tuple[str, dict[str, Any]], ...] = (
    ("--estate", {"required": True, "help": "estate YAML file"}),
    ("--port", _num(int, 0, "TCP port on 127.0.0.1 (0: pick a free one)")),
    (
        "--endpoints",
        {"help": "where to write the endpoints JSON (default STATE_DIR/endpoints.json)"},
    ),
    (
        "--state-dir",
        {"help": "directory for the CA, certificate and endpoints (default: a temp dir)"},
    ),
    ("--event-grid-webhook", {"help": "URL that receives ResourceWriteSuccess events"}),
    ("--event-grid-duplicates", _num(float, 0.0, "probability of a duplicate delivery")),
    ("--event-grid-reorder", _num(float, 0.0, "random delay up to N s per delivery")),
    ("--event-grid-retry-scale", _num(float, 1.0, "scales Event Grid's retry schedule")),
    ("--event-grid-no-validate", _flag("skip the validation handshake")),
    ("--clock-start", {"help": "RFC 3339 instant the clock starts at (default: now)"}),
    ("--clock-rate", _num(float, 1.0, "stand-in seconds per real second (0: frozen)")),
    ("--page-size", _num(int, 50, "items per list page before nextLink")),
    (
        "--operation-seconds",
        _num(float, 1.0, "stand-in seconds a disk, snapshot or network operation runs"),
    ),
    (
        "--vm-create-seconds",
        _num(
            float,
            60.0,
            "stand-in seconds a VM created through ARM stays ProvisioningState/creating",
        ),
    ),
    ("--boot-seconds", _num(float, 45.0, "then seconds until PowerState/running")),
    ("--agent-seconds", _num(float, 30.0, "then seconds until the VM agent is Ready")),
    ("--vm-delete-seconds", _num(float, 30.0, "stand-in seconds a VM delete runs")),
    ("--hydration-seconds", _num(float, 600.0, "Premium SSD v2/Ultra background copy time")),
    ("--retry-after-scale", _num(float, 1.0, "multiplies every Retry-After sent")),
    ("--throttle-scale", _num(float, 1.0, "multiplies bucket sizes and refill rates")),
    ("--arm-reads", _limit("reads (default 250:25)")),
    ("--arm-writes", _limit("writes (default 200:10)")),
    ("--arm-deletes", _limit("deletes (default 200:10)")),
    (
        "--arm-header-shape",
        {
            "choices": ARM_SHAPES,
            "default": "token-bucket",
            "help": "ARM's remaining-request headers: token buckets with -global- twins "
            "(199/199/249) or the older hourly counters (1199/14999/11999)",
        },
    ),
    (
        "--incremental-snapshot-family",
        {
            "choices": SNAPSHOT_FAMILIES,
            "default": CREATE_UPDATE,
            "help": "the Compute family incremental snapshot creates count against (full "
            "creates: HighCostSnapshotCreateHydrate)",
        },
    ),
    (
        "--region-snapshot-limit",
        _num(int, 75000, "snapshots per subscription and region (ZRS and LRS apart)"),
    ),
    (
        "--untidy-shapes",
        _flag(
            "Compute list and GET bodies as Azure writes them (no leading slash in "
            "sourceResourceId, seven-digit +00:00 times, mixed-case ids)"
        ),
    ),
    ("--no-throttle", _flag("turn throttling off")),
    ("--seed", _num(int, None, "seed for faults, duplicates and reordering")),
    ("--log-level", {"default": "warning"}),
)


# The options that are `Behaviour` settings of the same name.
_BEHAVIOUR_OPTIONS = (
    "page_size",
    "operation_seconds",
    "hydration_seconds",
    "retry_after_scale",
    "vm_create_seconds",
    "boot_seconds",
    "agent_seconds",
    "vm_delete_seconds",
    "region_snapshot_limit",
    "untidy_shapes",
)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m emulator", description="Lifeboat's Azure stand-in.")
    for flag, options in _OPTIONS:
        p.add_argument(flag, **options)
    return p


def make_tls(state_dir: Path) -> tuple[Path, Path]:
    """A test CA (trustme) and a server certificate for 127.0.0.1 and localhost."""
    ca = trustme.CA(organization_name="Lifeboat stand-in test CA")
    cert = ca.issue_cert("127.0.0.1", "localhost")
    ca_path = state_dir / "ca.pem"
    server_path = state_dir / "server.pem"
    ca.cert_pem.write_to_path(str(ca_path))
    cert.private_key_and_cert_chain_pem.write_to_path(str(server_path))
    return ca_path.resolve(), server_path.resolve()


def scaled_limits(args: argparse.Namespace) -> tuple[ArmLimits, ComputeLimits]:
    s = args.throttle_scale
    base = ArmLimits()

    def pick(
        given: tuple[float, float] | None, default: tuple[float, float]
    ) -> tuple[float, float]:
        cap, rate = given or default
        return (max(1.0, cap * s), rate * s) if given is None else (cap, rate)

    arm = ArmLimits(
        reads=pick(args.arm_reads, base.reads),
        writes=pick(args.arm_writes, base.writes),
        deletes=pick(args.arm_deletes, base.deletes),
        shape=args.arm_header_shape,
        hourly_reads=max(1.0, base.hourly_reads * s),
        hourly_writes=max(1.0, base.hourly_writes * s),
        hourly_deletes=max(1.0, base.hourly_deletes * s),
    )
    compute = replace(
        ComputeLimits().scaled(s), incremental_family=args.incremental_snapshot_family
    )
    return arm, compute


async def serve(args: argparse.Namespace) -> int:
    start = parse_instant(args.clock_start) if args.clock_start else datetime.now(UTC)
    clock = Clock(start, rate=args.clock_rate)
    try:
        cloud = load_estate_file(args.estate, clock.now())
    except (EstateError, OSError) as e:
        print(f"error: {e}", file=sys.stderr, flush=True)
        return 2
    state_dir = Path(args.state_dir or tempfile.mkdtemp(prefix="lifeboat-stand-in-"))
    state_dir.mkdir(parents=True, exist_ok=True)
    ca_path, server_pem = make_tls(state_dir)
    behaviour = Behaviour(**{name: getattr(args, name) for name in _BEHAVIOUR_OPTIONS})
    arm_limits, compute_limits = scaled_limits(args)
    throttler = Throttler(
        arm_limits,
        compute_limits,
        retry_after_scale=args.retry_after_scale,
        enabled=not args.no_throttle,
    )
    events = EventGrid(
        clock,
        cloud.tenant_id,
        DeliveryOptions(
            webhook=args.event_grid_webhook,
            retry_scale=args.event_grid_retry_scale,
            duplicate_probability=args.event_grid_duplicates,
            reorder_seconds=args.event_grid_reorder,
            validate=not args.event_grid_no_validate,
            seed=args.seed,
        ),
    )
    stand_in = build_stand_in(cloud, clock, behaviour, throttler, events, seed=args.seed)
    app = create_app(stand_in)

    # proto=IPPROTO_TCP matters: asyncio sets TCP_NODELAY only on sockets that say so, and
    # without it every answer waits ~40 ms for a delayed ACK (Nagle).
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind(("127.0.0.1", args.port))
    sock.listen(2048)
    sock.set_inheritable(True)
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        app,
        ssl_certfile=str(server_pem),
        log_level=args.log_level,
        access_log=False,
        lifespan="on",
        timeout_keep_alive=120,
        timeout_graceful_shutdown=0,  # cancel at once: TLS closes wait on idle clients
        backlog=2048,
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        if task.done():
            return 1
        await asyncio.sleep(0.01)
    base = f"https://127.0.0.1:{port}"
    endpoints_path = Path(args.endpoints or state_dir / "endpoints.json").resolve()
    endpoints: dict[str, Any] = {
        "arm": base,
        "armAudience": ARM_AUDIENCE,
        "identityEndpoint": f"{base}/msi/token",
        "identityHeader": stand_in.authority.identity_header,
        "admin": f"{base}/admin",
        "clock": f"{base}/admin/clock",
        "caBundle": str(ca_path),
        "clientId": cloud.identities[0].client_id,
        "objectId": cloud.identities[0].object_id,
        "tenantId": cloud.tenant_id,
        "subscriptions": sorted(cloud.subscriptions),
        "eventGridWebhook": args.event_grid_webhook,
        "pid": os.getpid(),
        "stateDir": str(state_dir.resolve()),
        **endpoint_entries(stand_in, base),
    }
    endpoints_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = endpoints_path.with_suffix(".tmp")
    tmp.write_text(json.dumps(endpoints, indent=2) + "\n", encoding="utf-8")
    tmp.replace(endpoints_path)
    print(f"ready {base} endpoints={endpoints_path}", flush=True)
    await task
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr)
    return asyncio.run(serve(args))
