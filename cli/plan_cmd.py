"""`lifeboat plan` previews the night without writing; `lifeboat run` runs one night for real.

Exit codes: `plan` exits 1 when the night would block work (blocked or refused prunes); `run` when
any outcome of the night failed, was blocked or was refused (cli/exits.py).

Both read the same settings the app reads (a local.settings.json file, the environment, and the
Azure stand-in's endpoints file when given). Against Azure they authenticate with
DefaultAzureCredential (or the managed identity named by AZURE_CLIENT_ID).
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import humanize
import typer
from rich.console import Console
from rich.table import Table

from cli.exits import Exit, require, stand_in_of
from cli.host_cmd import read_app_settings
from cli.hostprocess import running_host, write_json

FAST_HOST = {"extensions": {"queues": {"maxPollingInterval": "00:00:01"}}}


def plan_command(
    as_json: Annotated[bool, typer.Option("--json", help="one JSON document on stdout")] = False,
    settings: Annotated[Path | None, typer.Option(help="local.settings.json to read")] = None,
    emulator_endpoints: Annotated[
        Path | None, typer.Option(help="plan against the Azure stand-in (its endpoints file)")
    ] = None,
    at: Annotated[
        str | None, typer.Option(help="the night's slot, RFC 3339 (default: the next one)")
    ] = None,
) -> None:
    """Print tonight's plan — creates, prunes with reasons, skips, blocks, warnings. No writes."""
    from shared import rotation
    from shared.schedules import latest_occurrence, next_occurrence
    from shared.services import build_runtime

    config, policies = read_app_settings("plan", settings, emulator=emulator_endpoints)
    require(stand_in_of(emulator_endpoints))
    now = datetime.now().astimezone()
    occurrence = (
        latest_occurrence(
            config.rotation_schedule, datetime.fromisoformat(at.replace("Z", "+00:00"))
        )
        if at
        else next_occurrence(config.rotation_schedule, now)
    )
    rt = build_runtime(
        config, clock=_Fixed(now), reporter=_NoReports(), queues=_NoQueues(), policies=policies
    )
    document: dict[str, Any] = {"slot": occurrence.strftime("%Y%m%d%H%M"), "subscriptions": {}}
    for subscription in sorted(config.subscriptions):
        night, prunes = rotation.preview_night(rt, subscription, occurrence)
        document["subscriptions"][subscription] = _describe(night, prunes)
    if as_json:
        sys.stdout.write(json.dumps(document, indent=2) + "\n")
    else:
        _print(Console(), document)
    blocked = any(p["blocks"] or p["refused"] for p in document["subscriptions"].values())
    raise typer.Exit(Exit.FOUND_PROBLEMS if blocked else Exit.OK)


def _describe(night: Any, prunes: Any) -> dict[str, Any]:
    return {
        "windowSeconds": round(night.window_seconds, 1),
        "creates": [
            {
                "vm": p.vm.id,
                "policy": p.policy,
                "disk": a.disk_id,
                "snapshot": a.snapshot_name,
                "delaySeconds": p.delay_seconds,
            }
            for p in night.vms
            for a in p.creates
        ],
        "skips": [
            {"resource": s.resource_id, "reason": s.reason}
            for s in [*night.skipped_vms, *(s for p in night.vms for s in p.skips)]
        ],
        "prunes": [
            {
                "snapshot": r.snapshot.id,
                "source": d.source_id,
                "reason": r.reason,
                "orphan": d.orphan,
            }
            for d in prunes.disks
            for r in d.delete
        ]
        if not prunes.refused
        else [],
        "blocks": [
            {"snapshot": b.snapshot.id, "reason": b.reason}
            for b in [*prunes.suspicious, *(b for d in prunes.disks for b in d.blocked)]
        ],
        "refused": prunes.refused,
        "warnings": list(night.warnings),
    }


def _print(console: Console, document: dict[str, Any]) -> None:
    console.print(f"[bold]Rotation plan for slot {document['slot']}[/] (nothing is written)")
    for subscription, part in document["subscriptions"].items():
        console.rule(subscription)
        creates = Counter(c["vm"].rsplit("/", 1)[-1] for c in part["creates"])
        window = humanize.naturaldelta(timedelta(seconds=part["windowSeconds"]))
        console.print(f"{len(part['creates'])} snapshot(s), paced over {window}")
        table = Table()
        table.add_column("VM")
        table.add_column("disks", justify="right")
        for vm, count in sorted(creates.items()):
            table.add_row(vm, str(count))
        console.print(table)
        for title, key, field in (
            ("Prunes", "prunes", "reason"),
            ("Skipped", "skips", "reason"),
            ("Blocked", "blocks", "reason"),
        ):
            rows = part[key]
            if not rows:
                continue
            detail = Table(title=f"{title} ({len(rows)})")
            detail.add_column("resource", overflow="fold")
            detail.add_column(field, overflow="fold")
            for row in rows[:50]:
                name = (row.get("snapshot") or row.get("resource") or "").rsplit("/", 1)[-1]
                detail.add_row(name, row[field])
            console.print(detail)
        if part["refused"]:
            console.print(f"[red]prunes refused:[/] {part['refused']}")
        for warning in part["warnings"]:
            console.print(f"[yellow]warning:[/] {warning}")


def run_command(
    settings: Annotated[Path | None, typer.Option(help="local.settings.json to read")] = None,
    emulator_endpoints: Annotated[
        Path | None, typer.Option(help="run against the Azure stand-in (its endpoints file)")
    ] = None,
    storage_endpoints: Annotated[
        Path | None, typer.Option(help="Azurite endpoints file (default: start one)")
    ] = None,
    timeout: Annotated[float, typer.Option(help="seconds to wait for the night")] = 3600,
) -> None:
    """Run one night of rotation now, through the local host, and summarise its outcomes."""
    from cli.azurite import running_azurite, write_endpoints

    console = Console(stderr=True)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="lifeboat-run-") as tmp, running_azurite() as azurite:
        work = Path(tmp)
        if storage_endpoints is None:
            storage_endpoints = work / "azurite.json"
            write_endpoints(azurite, storage_endpoints)
        args = [
            "--storage-endpoints",
            str(storage_endpoints),
            "--no-timers",
            "--host-overrides",
            str(write_json(work / "host.json", FAST_HOST)),
        ]
        if settings:
            args += ["--settings", str(settings)]
        if emulator_endpoints:
            clock = json.loads(emulator_endpoints.read_text())["clock"]
            args += ["--emulator-endpoints", str(emulator_endpoints), "--clock", clock]
        with running_host(args) as host:
            host.invoke("rotation_timer")
            host.wait_for(lambda rows: any(r["Operation"] == "run-start" for r in rows))
            host.wait_idle(timeout=timeout, settle=2.0)
            outcomes = list(host.outcomes)
    tally = Counter(f"{r['Operation']} {r['Status']}" for r in outcomes)
    for key, count in sorted(tally.items()):
        console.print(f"  {count:6d}  {key}")
    console.print(f"one night in {time.monotonic() - started:.0f} s")


class _Fixed:
    def __init__(self, now: datetime) -> None:
        self._now = now

    def now(self) -> datetime:
        return self._now


class _NoReports:
    def report(self, outcomes: Any) -> None:
        return None


class _NoQueues:
    def send(self, queue: str, text: str, *, visibility_timeout: int = 0) -> None:
        raise RuntimeError("lifeboat plan never writes")

    def list_queues(self, *, suffix: str = "") -> list[str]:
        return []

    def receive(self, queue: str, *, max_messages: int = 32) -> Any:
        return iter(())

    def delete(self, queue: str, message: Any) -> None:
        raise RuntimeError("lifeboat plan never writes")
