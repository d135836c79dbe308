"""`lifeboat status`: the estate's recoverability evidence, read back from Azure Monitor.

Per VM: the age of its last good snapshot, its last recovery point's age against its RPO target,
its last drill's result and RTO, its last drill from a snapshot set beside its last from an Azure
Backup recovery point, and its last real recovery (`lifeboat recover`: mode, source, RTO, when,
who); the snapshots and VMs under `lifeboat:hold` (read from ARM);
and one posture for the estate, with the reason for each verdict that is not OK (which evidence,
how old, against which target). `--vm NAME` adds one VM's evidence history; `--at-risk` lists
only the VMs at risk. Exit code 0 healthy, 1 at risk or no evidence, 2 usage, 3 unreachable.
Outcomes are read with azure-monitor-query (`LogsQueryClient`) from `LifeboatOutcomes_CL` by
shared/posture.py's queries, the same the posture timer and the workbook run, so the verdicts agree;
ages are computed by the query service's clock (`now()`).
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import humanize
import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from cli.exits import Exit, require, stand_in_of
from shared import posture
from shared.posture import HISTORY_ROWS

HOLD_TAG = "lifeboat:hold"
LOG_ANALYTICS = "https://api.loganalytics.io"


@dataclass(frozen=True)
class Source:
    workspace_id: str
    endpoint: str
    audience: str
    arm_endpoint: str | None
    arm_audience: str | None
    subscriptions: tuple[str, ...]
    client_id: str | None


def status_command(
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON document")] = False,
    workspace_id: Annotated[
        str | None,
        typer.Option(envvar="LOG_ANALYTICS_WORKSPACE_ID", help="Log Analytics workspace id"),
    ] = None,
    endpoint: Annotated[str, typer.Option(help="Log Analytics query endpoint")] = LOG_ANALYTICS,
    days: Annotated[int, typer.Option(min=1, max=90, help="how far back to read outcomes")] = 30,
    subscription: Annotated[
        list[str] | None,
        typer.Option(help="subscription to read holds from (default TARGET_SUBSCRIPTIONS)"),
    ] = None,
    holds: Annotated[
        bool,
        typer.Option("--holds/--ignore-holds", help="read lifeboat:hold tags from ARM"),
    ] = True,
    vm: Annotated[
        str | None, typer.Option("--vm", help="also show this VM's full evidence history")
    ] = None,
    at_risk: Annotated[
        bool, typer.Option("--at-risk", help="list only the VMs that are at risk")
    ] = False,
    emulator_endpoints: Annotated[
        Path | None,
        typer.Option(help="read from the Azure stand-in of this endpoints file instead of Azure"),
    ] = None,
) -> None:
    """Show, per VM, the evidence that it can be recovered, why not, and the estate's posture."""
    require(stand_in_of(emulator_endpoints))
    try:
        source = workspace_source(workspace_id, endpoint, subscription, emulator_endpoints)
    except (ValueError, OSError, KeyError) as e:
        print(f"lifeboat status: {e}", file=sys.stderr)
        raise typer.Exit(Exit.USAGE) from None
    report = build_report(source, days=days, holds=holds, vm=vm)
    if vm is not None:
        report["vms"] = [v for v in report["vms"] if v["vm"].lower() == vm.lower()]
        if not report["vms"] and not report["history"]:
            print(f"lifeboat status: no outcome names a VM called {vm!r}", file=sys.stderr)
            raise typer.Exit(Exit.FOUND_PROBLEMS)
    if at_risk:
        report["vms"] = [v for v in report["vms"] if v["atRisk"]]
    if as_json:
        sys.stdout.write(json.dumps(report, indent=2, sort_keys=True, default=str) + "\n")
    else:
        show(Console(), report)
    raise typer.Exit(exit_code(report, vm=vm))


def exit_code(report: dict[str, Any], *, vm: str | None = None) -> Exit:
    """0 healthy; 1 at risk, or nothing to judge by (for one VM: that VM at risk)."""
    if vm is not None:
        return Exit.FOUND_PROBLEMS if any(v["atRisk"] for v in report["vms"]) else Exit.OK
    return Exit.OK if report["posture"] == "healthy" else Exit.FOUND_PROBLEMS


def workspace_source(
    workspace_id: str | None,
    endpoint: str,
    subscriptions: list[str] | None,
    emulator_endpoints: Path | None,
) -> Source:
    subs = tuple(subscriptions or ())
    if emulator_endpoints is not None:
        doc = json.loads(emulator_endpoints.read_text(encoding="utf-8"))
        os.environ["IDENTITY_ENDPOINT"] = doc["identityEndpoint"]
        os.environ["IDENTITY_HEADER"] = doc["identityHeader"]
        os.environ["REQUESTS_CA_BUNDLE"] = doc["caBundle"]
        return Source(
            workspace_id=workspace_id or doc["workspaceId"],
            endpoint=doc["logAnalyticsEndpoint"],
            audience=doc["logAnalyticsAudience"],
            arm_endpoint=doc["arm"],
            arm_audience=doc["armAudience"],
            subscriptions=subs or tuple(doc.get("subscriptions") or ()),
            client_id=doc.get("clientId"),
        )
    if not workspace_id:
        raise ValueError("no workspace: pass --workspace-id or set LOG_ANALYTICS_WORKSPACE_ID")
    if not subs:
        subs = tuple(
            s.strip() for s in os.environ.get("TARGET_SUBSCRIPTIONS", "").split(",") if s.strip()
        )
    return Source(
        workspace_id=workspace_id,
        endpoint=endpoint,
        audience=endpoint if endpoint != LOG_ANALYTICS else LOG_ANALYTICS,
        arm_endpoint=os.environ.get("ARM_ENDPOINT", "https://management.azure.com"),
        arm_audience=os.environ.get("ARM_AUDIENCE", "https://management.azure.com/.default"),
        subscriptions=subs,
        client_id=os.environ.get("AZURE_CLIENT_ID") or None,
    )


def credential_of(source: Source) -> Any:
    from azure.identity import DefaultAzureCredential, ManagedIdentityCredential

    if source.client_id and os.environ.get("IDENTITY_ENDPOINT"):
        return ManagedIdentityCredential(client_id=source.client_id)
    return DefaultAzureCredential()  # a person's laptop, never the tests


def build_report(
    source: Source, *, days: int = 30, holds: bool = True, vm: str | None = None
) -> dict[str, Any]:
    """The per-VM evidence and posture (shared/posture.py, as the posture timer and the workbook
    judge it), the holds read from ARM, and with `vm` that VM's evidence history."""
    credential = credential_of(source)
    reader = posture.LogAnalyticsReader(
        credential, source.workspace_id, endpoint=source.endpoint, audience=source.audience
    )
    tables = posture.read_tables(reader, posture.evidence_queries(vm), days=days)
    held = _holds(source, credential) if holds else {"snapshots": [], "vms": []}
    report = posture.assemble(
        tables.rows, [str(v["id"]) for v in held["vms"]], tables.partial, days=days
    )
    report["heldSnapshots"] = held["snapshots"]
    report["heldVms"] = held["vms"]
    if vm is not None:
        report["history"] = [
            {k: _iso(v) if isinstance(v, datetime) else v for k, v in row.items()}
            for row in tables.rows["history"]
        ]
    return report


def _holds(source: Source, credential: Any) -> dict[str, list[dict[str, Any]]]:
    """Snapshots and VMs tagged lifeboat:hold, read from ARM (the tags are the truth)."""
    from azure.mgmt.compute import ComputeManagementClient

    snapshots: list[dict[str, Any]] = []
    vms: list[dict[str, Any]] = []
    if not source.arm_endpoint:
        return {"snapshots": snapshots, "vms": vms}
    scopes = [source.arm_audience or "https://management.azure.com/.default"]
    scopes = [s if s.endswith("/.default") else s.rstrip("/") + "/.default" for s in scopes]
    for subscription in source.subscriptions:
        compute = ComputeManagementClient(
            credential, subscription, base_url=source.arm_endpoint, credential_scopes=scopes
        )
        for snapshot in compute.snapshots.list():
            tags = {k.lower(): v for k, v in (snapshot.tags or {}).items()}
            if HOLD_TAG in tags:
                snapshots.append(
                    {
                        "id": snapshot.id,
                        "name": snapshot.name,
                        "hold": tags[HOLD_TAG],
                        "timeCreated": _iso(snapshot.time_created),
                    }
                )
        for vm in compute.virtual_machines.list_all():
            tags = {k.lower(): v for k, v in (vm.tags or {}).items()}
            if HOLD_TAG in tags:
                vms.append({"id": vm.id, "name": vm.name, "hold": tags[HOLD_TAG]})
    return {"snapshots": snapshots, "vms": vms}


_iso = posture.iso


def _ago(value: float | None) -> str:
    return "never" if value is None else f"{humanize.naturaldelta(timedelta(hours=value))} ago"


def _span(seconds: Any) -> str:
    return "?" if seconds is None else humanize.naturaldelta(timedelta(seconds=float(seconds)))


_STYLE = {
    "ok": "green",
    "healthy": "green",
    "stale": "red",
    "partial": "red",
    "none": "yellow",
    "breached": "red",
    "failing": "red",
    "failed": "red",
    "over-rto": "red",
    "unknown": "yellow",
    "at-risk": "red",
    "succeeded": "green",
    "blocked": "red",
    "unhealthy": "red",
    "rpo-breached": "red",
    "overdue": "red",
    "warning": "yellow",
}


def _mark(state: str, text: str) -> str:
    return f"[{_STYLE.get(state, 'white')}]{text}[/]"


def show(console: Console, report: dict[str, Any]) -> None:
    table = Table(title="Recoverability evidence per VM (from LifeboatOutcomes_CL)")
    for column in (
        "VM",
        "verdict",
        "group",
        "last good snapshot",
        "recovery point vs RPO",
        "last drill",
        "replication (Site Recovery)",
        "hold",
    ):
        table.add_column(column, overflow="fold")
    for vm in report["vms"]:
        snap = _ago(vm["snapshotAgeHours"]) if vm["snapshotAgeHours"] is not None else "none"
        if vm["snapshot"] == "partial":
            snap += " (set incomplete)"
        rpo = (
            f"{_ago(vm['recoveryPointAgeHours'])} / {_span((vm['rpoTargetHours'] or 0) * 3600)}"
            if vm["recoveryPointAgeHours"] is not None
            else "not verified"
        )
        drill = (
            f"{vm['drillStatus']}, RTO {_span(vm['rtoSeconds'])} / {_span(vm['rtoTargetSeconds'])}"
            if vm["drillStatus"]
            else "no drill"
        )
        table.add_row(
            vm["vm"],
            _mark(vm["verdict"], "held" if vm["held"] else vm["verdict"]),
            vm["resourceGroup"],
            _mark(vm["snapshot"], snap),
            _mark(vm["rpo"], rpo),
            _mark(vm["drill"], drill),
            _mark(vm.get("replication", "none"), _replication(vm)),
            "held" if vm["held"] else "",
        )
    console.print(table)
    _show_drills_and_recoveries(console, report["vms"])
    risky = [vm for vm in report["vms"] if vm["reasons"]]
    if risky:
        why = Table(title="Why (each verdict that is not OK)")
        why.add_column("VM")
        why.add_column("reason", overflow="fold")
        for vm in risky:
            for reason in vm["reasons"]:
                why.add_row(vm["vm"] + (" (held)" if vm["held"] else ""), reason)
        console.print(why)
    if report.get("history") is not None:
        _show_history(console, report["history"])
    if report["heldSnapshots"] or report["heldVms"]:
        held = Table(title=f"Under {HOLD_TAG}")
        held.add_column("kind")
        held.add_column("name", overflow="fold")
        held.add_column("hold")
        for item in report["heldVms"]:
            held.add_row("VM", item["name"], item["hold"])
        for item in report["heldSnapshots"]:
            held.add_row("snapshot", item["name"], item["hold"])
        console.print(held)
    beats = ", ".join(f"{job} {_ago(b['ageHours'])}" for job, b in report["heartbeats"].items())
    console.print(f"Last runs: {beats or 'none'}")
    for problem in report["partialErrors"]:
        console.print(f"[yellow]partial result:[/] {problem}")
    posture = _mark(report["posture"], report["posture"].upper())
    console.print(f"Posture: {posture}" + "".join(f"\n  - {r}" for r in report["postureReasons"]))


def _show_drills_and_recoveries(console: Console, vms: list[dict[str, Any]]) -> None:
    """Per VM: its last drill from a snapshot set beside its last from an Azure Backup recovery
    point, and its last real recovery (only the VMs that have one of them)."""
    shown = [
        vm
        for vm in vms
        if vm.get("lastSnapshotDrill") or vm.get("lastRecoveryPointDrill") or vm.get("lastRecovery")
    ]
    if not shown:
        return
    table = Table(title="Drills by source, and the last recovery (lifeboat recover)")
    for column in ("VM", "last snapshot drill", "last recovery-point drill", "last recovery"):
        table.add_column(column, overflow="fold")
    for vm in shown:
        table.add_row(
            vm["vm"],
            _drill_of(vm.get("lastSnapshotDrill")),
            _drill_of(vm.get("lastRecoveryPointDrill")),
            _recovery(vm.get("lastRecovery")),
        )
    console.print(table)


def _drill_of(drill: dict[str, Any] | None) -> str:
    if drill is None:
        return "none"
    text = f"{drill['status']} {_since(drill['at'])}, RTO {_span(drill['rtoSeconds'])}"
    if "rpoSeconds" in drill:
        text += f", RPO {_span(drill['rpoSeconds'])}"
    return _mark("ok" if drill["status"] == "succeeded" else "failed", escape(text))


def _recovery(found: dict[str, Any] | None) -> str:
    """The last `lifeboat recover` of the VM: mode, source, result, RTO, when and who."""
    if found is None:
        return "none"
    text = (
        f"{found['mode'] or '?'} from {found['source'] or '?'}: {found['status']} "
        f"{_since(found['at'])}, RTO {_span(found['rtoSeconds'])}, by {found['by'] or 'unknown'}"
    )
    return _mark("ok" if found["status"] == "succeeded" else "failed", escape(text))


def _since(at: str | None) -> str:
    return f"at {at}" if at else "(time unknown)"


def _replication(vm: dict[str, Any]) -> str:
    """A replicated VM's Site Recovery finding with its RPO against its target, beside backup."""
    if vm.get("replication", "none") == "none":
        return "not replicated"
    rpo = vm.get("replicationRpoSeconds")
    target = vm.get("replicationRpoTargetSeconds")
    return f"{vm['replicationFinding']}, RPO {_span(rpo)} / {_span(target)}"


def _show_history(console: Console, rows: list[dict[str, Any]]) -> None:
    table = Table(title=f"Evidence history, newest first (up to {HISTORY_ROWS} outcomes)")
    for column in ("time", "job", "operation", "status", "resource", "detail"):
        table.add_column(column, overflow="fold")
    for row in rows:
        detail = row.get("Finding") or row.get("Reason") or ""
        if row.get("RtoSeconds") is not None:
            detail = f"RTO {_span(row['RtoSeconds'])}; {detail}".rstrip("; ")
        table.add_row(
            str(row.get("TimeGenerated") or ""),
            str(row.get("Job") or ""),
            str(row.get("Operation") or ""),
            _mark(str(row.get("Status")), str(row.get("Status") or "")),
            str(row.get("ResourceId") or "").rsplit("/", 1)[-1],
            detail,
        )
    console.print(table)
