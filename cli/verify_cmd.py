"""`lifeboat verify`: one Azure Backup verification run, now, in this process.

The same code as the `verification_timer` and `verification_vault` functions: the runtime comes
from `shared.services.build_runtime`, the run starts and its messages are delivered through
`shared.dispatch`; the messages go to an in-memory queue and are handled here, one after the
other, instead of by the host (a message put back after throttling waits out its delay here).
Exit status 0 unless the run failed or a `--fail-on` finding occurred (then 1; 2 for settings).
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


def verify_command(
    as_json: Annotated[bool, typer.Option("--json", help="one JSON document on stdout")] = False,
    fail_on: Annotated[
        list[str] | None,
        typer.Option("--fail-on", help="exit 1 when this finding occurs (repeatable)"),
    ] = None,
    settings: Annotated[Path | None, typer.Option(help="local.settings.json to read")] = None,
    emulator_endpoints: Annotated[
        Path | None, typer.Option(help="verify against the Azure stand-in (its endpoints file)")
    ] = None,
) -> None:
    """Verify Azure Backup now: one finding per in-scope VM, by precedence, with its RPO."""
    from shared import dispatch, verification
    from shared.names import Job
    from shared.services import build_runtime

    unknown = sorted(set(fail_on or []) - set(verification.FINDINGS))
    if unknown:
        print(
            f"lifeboat verify: unknown finding(s) {unknown}; known: "
            f"{', '.join(verification.FINDINGS)}",
            file=sys.stderr,
        )
        raise typer.Exit(2)
    config, policies = read_app_settings("verify", settings, emulator=emulator_endpoints)
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
    }
    if as_json:
        sys.stdout.write(json.dumps(document, indent=2) + "\n")
    else:
        _print(Console(), document)
    hit = sorted({f.finding for f in found.values()} & set(fail_on or []))
    if failed or hit:
        raise typer.Exit(1)


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
