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
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from cli.exits import Exit, require, stand_in_of
from cli.host_cmd import read_app_settings
from cli.hostprocess import running_host, write_json
from cli.progress import Gauges, LiveProgress, count_writes, duration, queue_depth

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
    from shared.policies import TAG_TYPO, UNKNOWN_POLICY

    tag_mistakes = (TAG_TYPO, UNKNOWN_POLICY)
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
            {"resource": s.resource_id, "reason": s.reason, "skip": s.kind}
            for s in [
                *night.skipped_vms,
                *(s for p in night.vms for s in p.skips),
                *night.skipped_disks,
            ]
            if s.kind not in tag_mistakes
        ],
        "tagMistakes": [
            {"resource": s.resource_id, "reason": s.reason, "skip": s.kind}
            for s in night.skipped_vms
            if s.kind in tag_mistakes
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
            for b in (b for d in prunes.disks for b in d.blocked)
        ],
        "held": [
            {"snapshot": b.snapshot.id, "reason": b.reason} for d in prunes.disks for b in d.held
        ],
        "notLifeboats": [{"snapshot": b.snapshot.id, "rule": b.reason} for b in prunes.suspicious],
        "remaining": {d.source_id: d.remaining for d in prunes.disks if d.remaining},
        "refused": prunes.refused,
        "warnings": [
            {
                "kind": w.kind,
                "message": w.message,
                "resource": w.resource_id,
                "region": w.region,
                "seenByLifeboat": w.seen,
                "limit": w.limit,
            }
            for w in night.warnings
        ],
    }


def _print(console: Console, document: dict[str, Any]) -> None:
    console.print(f"[bold]Rotation plan for slot {document['slot']}[/] (nothing is written)")
    for subscription, part in document["subscriptions"].items():
        console.rule(subscription)
        creates = Counter(c["vm"].rsplit("/", 1)[-1] for c in part["creates"])
        window = duration(part["windowSeconds"])
        console.print(f"{len(part['creates'])} snapshot(s), paced over {window}")
        table = Table()
        table.add_column("VM")
        table.add_column("disks", justify="right")
        for vm, count in sorted(creates.items()):
            table.add_row(vm, str(count))
        console.print(table)
        for title, key, field in (
            ("Prunes", "prunes", "reason"),
            ("Tag mistakes (fix the tag)", "tagMistakes", "reason"),
            ("Skipped", "skips", "reason"),
            ("Blocked", "blocks", "reason"),
            ("Held", "held", "reason"),
            ("Not Lifeboat's (never deleted)", "notLifeboats", "rule"),
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
        for source, left in sorted(part["remaining"].items()):
            name = source.rsplit("/", 1)[-1]
            console.print(f"{name}: {left} snapshot(s) past tonight's cap wait for the next nights")
        if part["refused"]:
            console.print(f"[red]prunes refused:[/] {part['refused']}")
        for warning in part["warnings"]:
            console.print(f"[yellow]warning:[/] {warning['message']}")


PROBLEM_STATUSES = ("failed", "blocked", "refused")
STALL_SECONDS = 600.0  # a night in which nothing happens for this long has stopped


def run_command(
    settings: Annotated[Path | None, typer.Option(help="local.settings.json to read")] = None,
    emulator_endpoints: Annotated[
        Path | None, typer.Option(help="run against the Azure stand-in (its endpoints file)")
    ] = None,
    storage_endpoints: Annotated[
        Path | None, typer.Option(help="Azurite endpoints file (default: start one)")
    ] = None,
    timeout: Annotated[
        float | None,
        typer.Option(help="seconds to wait for the night (default: as long as it moves)"),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="one JSON document on stdout")] = False,
) -> None:
    """Run one night of rotation now, through the local host, and summarise its outcomes.

    Shows its progress on a terminal; exits 1 when any outcome failed, was blocked or refused."""
    from cli.azurite import running_azurite, write_endpoints

    config, _ = read_app_settings("run", settings, emulator=emulator_endpoints)
    require(stand_in_of(emulator_endpoints))
    console = Console(stderr=True)
    started = time.monotonic()
    with (
        tempfile.TemporaryDirectory(prefix="lifeboat-run-") as tmp,
        LiveProgress(console, enabled=not as_json) as progress,
    ):
        progress.phase("starting Azurite")
        with running_azurite() as azurite:
            work = Path(tmp)
            if storage_endpoints is None:
                storage_endpoints = work / "azurite.json"
                write_endpoints(azurite, storage_endpoints)
            connection = json.loads(storage_endpoints.read_text())["connectionString"]
            args = [
                "--storage-endpoints",
                str(storage_endpoints.resolve()),
                "--no-timers",
                "--host-overrides",
                str(write_json(work / "host.json", FAST_HOST)),
            ]
            # The host runs from the project's folder: it is given absolute paths.
            if settings:
                args += ["--settings", str(settings.resolve())]
            if emulator_endpoints:
                clock = json.loads(emulator_endpoints.read_text())["clock"]
                args += [
                    "--emulator-endpoints",
                    str(emulator_endpoints.resolve()),
                    "--clock",
                    clock,
                ]
            progress.phase("starting the local host")
            with running_host(args) as host:
                depth = queue_depth(connection)
                progress.watch(
                    lambda: Gauges(
                        in_flight=depth(),
                        writes=count_writes(host.outcomes),
                        budget_per_second=config.arm_writes_per_second,
                    )
                )
                progress.phase("planning")
                host.invoke("rotation_timer")
                host.wait_for(lambda rows: any(r["Operation"] == "run-start" for r in rows))
                progress.phase("snapshots")
                host.wait_idle(timeout=timeout, settle=2.0, stall=STALL_SECONDS)
                outcomes = list(host.outcomes)
    document = summarise(outcomes, time.monotonic() - started)
    if as_json:
        sys.stdout.write(json.dumps(document, indent=2, sort_keys=True) + "\n")
    else:
        show_run(console, document)
    raise typer.Exit(Exit.FOUND_PROBLEMS if document["problems"] else Exit.OK)


def summarise(outcomes: list[dict[str, Any]], elapsed: float) -> dict[str, Any]:
    """The night's outcomes counted by operation and status, its problems, and how long Azure
    held the work (rows that waited on Azure carry Details.heldSeconds)."""
    tally = Counter(f"{r['Operation']} {r['Status']}" for r in outcomes)
    held = [
        float(seconds)
        for r in outcomes
        if (seconds := (r.get("Details") or {}).get("heldSeconds")) is not None
    ]
    problems = sum(n for key, n in tally.items() if key.rsplit(" ", 1)[-1] in PROBLEM_STATUSES)
    return {
        "outcomes": dict(sorted(tally.items())),
        "disks": disks_by_status(outcomes),
        "problems": problems,
        "elapsedSeconds": round(elapsed, 1),
        "held": {
            "rows": len(held),
            "totalSeconds": round(sum(held), 1),
            "longestSeconds": round(max(held), 1) if held else None,
        },
    }


# A disk's snapshot-create rows of one night, the one that says how it ended first: `blocked`
# is final (a later `unconfirmed` from the confirm does not make it failed); `waiting` (held by
# Azure, or the 500 limit) and `unconfirmed` (never taken, or not yet) only when nothing else.
_DECISIVE = ("failed", "blocked", "succeeded", "already-taken", "skipped", "waiting", "unconfirmed")
NIGHT_WORDS = ("succeeded", "blocked", "failed", "skipped", "waiting")


def disks_by_status(outcomes: list[dict[str, Any]]) -> dict[str, int]:
    """How the night ended per disk, counted separately: succeeded / blocked / failed / skipped
    (and waiting: Azure held it or the disk is at its limit). Each disk once, whatever rows it
    had; a duplicate delivery's row (the same OutcomeId) counts once too."""
    statuses: dict[str, set[str]] = {}
    seen: set[str] = set()
    for r in outcomes:
        if r.get("Operation") != "snapshot-create" or not r.get("ResourceId"):
            continue
        if r.get("OutcomeId"):
            if r["OutcomeId"] in seen:
                continue
            seen.add(r["OutcomeId"])
        statuses.setdefault(str(r["ResourceId"]).lower(), set()).add(str(r["Status"]))
    counts = dict.fromkeys(NIGHT_WORDS, 0)
    for found in statuses.values():
        status = next((s for s in _DECISIVE if s in found), None)
        word = {"already-taken": "succeeded", "unconfirmed": "waiting"}.get(status or "", status)
        if word in counts:
            counts[word] += 1
    return counts


def show_run(console: Console, document: dict[str, Any]) -> None:
    for key, count in document["outcomes"].items():
        mark = "red" if key.rsplit(" ", 1)[-1] in PROBLEM_STATUSES else "default"
        console.print(f"  {count:6d}  [{mark}]{key}[/]")
    disks = document["disks"]
    console.print("Disks: " + ", ".join(f"{disks[w]} {w}" for w in NIGHT_WORDS))
    held = document["held"]
    if held["rows"]:
        console.print(
            f"Azure held the work for {duration(held['totalSeconds'])} in all "
            f"({held['rows']} outcome(s); the longest wait {duration(held['longestSeconds'])})"
        )
    verdict = (
        f"[red]{document['problems']} outcome(s) failed, blocked or refused[/]"
        if document["problems"]
        else "[green]no failures[/]"
    )
    console.print(f"One night in {duration(document['elapsedSeconds'])}: {verdict}")


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
