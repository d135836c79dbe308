"""`lifeboat verify`: one Azure Backup verification run, now, in this process.

The same code as the `verification_timer` and `verification_vault` functions: the runtime comes
from `shared.services.build_runtime`, the run starts and its messages are delivered through
`shared.dispatch`; the messages go to an in-memory queue and are handled here, one after the
other, instead of by the host (a message put back after throttling waits out its delay here).
The outcomes are recorded in Azure Monitor as the app records them, unless `--no-record`.
Exit status 0 unless the run failed or a finding at or above `--fail-on` occurred (then 1); 2 for
settings (recording asked for but Monitor not configured is one); 3 when Azure cannot be reached.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from cli.exits import Exit, require, stand_in_of
from cli.host_cmd import read_app_settings


class _Collect:
    """Keeps every outcome of the run (and prints nothing: the command prints the summary)."""

    def __init__(self) -> None:
        self.outcomes: list[Any] = []

    def report(self, outcomes: Iterable[Any]) -> None:
        self.outcomes.extend(outcomes)


class _InMemoryQueues:
    """The run's queue, in this process: a message is due once its visibility delay is over."""

    def __init__(self) -> None:
        self.sent: dict[str, list[tuple[float, str]]] = {}

    def send(self, queue: str, text: str, *, visibility_timeout: int = 0) -> None:
        self.sent.setdefault(queue, []).append((time.monotonic() + visibility_timeout, text))

    def list_queues(self, *, suffix: str = "") -> list[str]:
        return [q for q in self.sent if q.endswith(suffix)]

    def receive(self, queue: str, *, max_messages: int = 32) -> Iterator[Any]:
        return iter(())

    def delete(self, queue: str, message: Any) -> None:
        return None

    def take(self, queue: str) -> tuple[float, str] | None:
        """The message due first (and when it is due), or None when the queue is empty."""
        waiting = self.sent.get(queue)
        if not waiting:
            return None
        first = min(range(len(waiting)), key=lambda i: waiting[i][0])
        return waiting.pop(first)


class _Clock:
    def __init__(self, url: str | None, ca_bundle: str | None) -> None:
        self._remote = None
        if url:
            from cli.clock import RemoteClock

            self._remote = RemoteClock(url, ca_bundle=ca_bundle)

    def now(self) -> datetime:
        return self._remote.now() if self._remote else datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class VmFinding:
    finding: str
    reason: str
    rpo_seconds: int | None


def findings_of(outcomes: Iterable[Any]) -> dict[str, VmFinding]:
    """The latest finding per VM among outcome records."""
    found: dict[str, VmFinding] = {}
    for o in outcomes:
        if o.operation == "verify-vm" and o.finding and o.resource_id:
            found[o.resource_id] = VmFinding(o.finding, o.reason or "", o.rpo_seconds)
    return found


def replication_findings_of(outcomes: Iterable[Any]) -> dict[str, VmFinding]:
    """The latest Site Recovery finding per replicated VM (`verify-replication` rows)."""
    found: dict[str, VmFinding] = {}
    for o in outcomes:
        if o.operation == "verify-replication" and o.finding and o.vm_name and o.resource_id:
            found[o.resource_id] = VmFinding(o.finding, o.reason or "", o.rpo_seconds)
    return found


def verify_command(
    as_json: Annotated[bool, typer.Option("--json", help="one JSON document on stdout")] = False,
    fail_on: Annotated[
        list[str] | None,
        typer.Option(
            "--fail-on",
            help="exit 1 when this finding, or a more severe one, occurs; or a severity "
            "(high, medium, info): exit 1 at or above it (repeatable)",
        ),
    ] = None,
    record: Annotated[
        bool,
        typer.Option(
            "--record/--no-record", help="record the outcomes in Azure Monitor, as the app does"
        ),
    ] = True,
    settings: Annotated[Path | None, typer.Option(help="local.settings.json to read")] = None,
    emulator_endpoints: Annotated[
        Path | None, typer.Option(help="verify against the Azure stand-in (its endpoints file)")
    ] = None,
) -> None:
    """Verify Azure Backup now: one finding per in-scope VM, by precedence, with its RPO."""
    from shared import dispatch, verification
    from shared.names import Job
    from shared.services import build_runtime

    failing = failing_findings(fail_on or [])
    config, policies = read_app_settings("verify", settings, emulator=emulator_endpoints)
    require(stand_in_of(emulator_endpoints))
    if not record:
        config = config.model_copy(
            update={"monitor_ingestion_endpoint": None, "monitor_dcr_immutable_id": None}
        )
    elif not config.monitor_configured:
        print(
            "lifeboat verify: cannot record the outcomes: set MONITOR_INGESTION_ENDPOINT and "
            "MONITOR_DCR_IMMUTABLE_ID (as the app has them), or pass --no-record",
            file=sys.stderr,
        )
        raise typer.Exit(Exit.USAGE)
    clock_url = None
    if emulator_endpoints is not None:
        clock_url = json.loads(emulator_endpoints.read_text())["clock"]
    reporter, queues = _Collect(), _InMemoryQueues()
    rt = build_runtime(
        config,
        clock=_Clock(clock_url, os.environ.get("REQUESTS_CA_BUNDLE")),
        reporter=reporter,
        queues=queues,
        policies=policies,
    )
    now = rt.clock.now().replace(second=0, microsecond=0)
    slot = now.strftime("%Y%m%d%H%M")
    run_id, key = verification.run_id_of(slot), f"verify-command:{slot}"
    failed, pending, reason = False, 0, ""
    try:
        dispatch.start(
            rt, Job.VERIFICATION, run_id, key, lambda ctx: verification.start_verification(ctx, now)
        )
        pending, refused = _run_units(rt, queues)
        if refused:
            failed, reason = True, f"{len(refused)} message(s) refused: {refused[0]}"
            print(f"lifeboat verify: {reason}", file=sys.stderr)
    except Exception as e:  # the run failed: say so, and still report what was found
        reason = f"{type(e).__name__}: {e}"
        print(f"lifeboat verify: the run failed: {reason}", file=sys.stderr)
        failed = True
    found = findings_of(reporter.outcomes)
    if failed:
        _record_failed_run(rt, run_id, key, found, reason)
    document = {
        "runId": run_id,
        "failed": failed,
        "totals": dict(sorted(_count(f.finding for f in found.values()).items())),
        "vms": {
            vm: {"finding": f.finding, "rpoSeconds": f.rpo_seconds, "reason": f.reason}
            for vm, f in sorted(found.items())
        },
        "pendingChecks": pending,
        # Azure Site Recovery: replicated VMs' findings, their own RPO (never a backup finding's).
        "replication": {
            vm: {"finding": f.finding, "rpoSeconds": f.rpo_seconds, "reason": f.reason}
            for vm, f in sorted(replication_findings_of(reporter.outcomes).items())
        },
    }
    if as_json:
        sys.stdout.write(json.dumps(document, indent=2) + "\n")
    else:
        _print(Console(), document)
    hit = sorted({f.finding for f in found.values()} & failing)
    if failed or hit:
        raise typer.Exit(Exit.FOUND_PROBLEMS)


def failing_findings(fail_on: Iterable[str]) -> set[str]:
    """The findings that fail the command: each --fail-on finding and every more severe one, or
    every finding at or above a --fail-on severity. A value that is neither is a usage error."""
    from shared import verification

    findings = [str(f) for f in verification.FINDINGS]  # most severe first
    ranks = {"high": 0, "medium": 1, "info": 2}
    failing: set[str] = set()
    for value in fail_on:
        if value in findings:
            failing.update(findings[: findings.index(value) + 1])
        elif value in ranks:
            failing.update(
                str(f)
                for f, severity in verification.SEVERITY.items()
                if ranks[severity] <= ranks[value]
            )
        else:
            raise typer.BadParameter(
                f"{value!r} is neither a finding ({', '.join(findings)}) nor a severity "
                f"({', '.join(ranks)})",
                param_hint="'--fail-on'",
            )
    return failing


def _run_units(rt: Any, queues: _InMemoryQueues) -> tuple[int, list[str]]:
    """Deliver the run's messages through the dispatch, as the host would, until none is left.

    A message put back (Azure throttled) is delivered again once its delay is over. A
    first-backup check is hours away: it is the host's work, counted and left. Returns the
    checks left and the reasons of messages refused.
    """
    from shared import dispatch
    from shared.names import MessageType, Queue

    pending, refused = 0, []
    while (taken := queues.take(Queue.VERIFICATION)) is not None:
        due, text = taken
        envelope = json.loads(text)
        if envelope.get("type") == MessageType.VERIFICATION_FIRST_BACKUP:
            pending += 1
            continue
        wait = due - time.monotonic()
        if wait > 0:
            if wait >= 5:
                print(f"lifeboat verify: Azure throttled; waiting {wait:.0f} s", file=sys.stderr)
            time.sleep(wait)
        result = dispatch.deliver(rt, Queue.VERIFICATION, text, message_id=envelope.get("id", ""))
        if isinstance(result, dispatch.Refuse):
            refused.append(result.reason)
    return pending, refused


def _record_failed_run(
    rt: Any, run_id: str, key: str, found: dict[str, VmFinding], reason: str
) -> None:
    """A run that broke: a failed run-end with what was found (the status command reads it)."""
    from shared import dispatch
    from shared.names import Job

    def run_end(ctx: Any) -> Any:
        ctx.out.failed(
            "run-end",
            reason[:1000],
            count=len(found),
            details={
                "scope": "run",
                "totals": dict(sorted(_count(f.finding for f in found.values()).items())),
            },
        )
        return dispatch.Done()

    dispatch.start(rt, Job.VERIFICATION, run_id, key, run_end)


def _count(values: Iterable[str]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for value in values:
        counts[value] = counts.get(value, 0) + 1
    return counts


def _print(console: Console, document: dict[str, Any]) -> None:
    console.print(f"[bold]Backup verification {document['runId']}[/]")
    table = Table()
    table.add_column("VM")
    table.add_column("finding")
    table.add_column("RPO (h)", justify="right")
    table.add_column("reason", overflow="fold")
    for vm, row in document["vms"].items():
        rpo = row["rpoSeconds"]
        table.add_row(
            vm.rsplit("/", 1)[-1],
            row["finding"],
            "" if rpo is None else f"{rpo / 3600:.1f}",
            row["reason"],
        )
    console.print(table)
    console.print("totals: " + ", ".join(f"{n} {k}" for k, n in document["totals"].items()))
    if document["replication"]:
        replicated = Table(title="Site Recovery (replicated VMs)")
        for column in ("VM", "finding", "RPO (s)", "reason"):
            replicated.add_column(column, overflow="fold")
        for vm, row in document["replication"].items():
            rpo = row["rpoSeconds"]
            replicated.add_row(vm.rsplit("/", 1)[-1], row["finding"], str(rpo or ""), row["reason"])
        console.print(replicated)
