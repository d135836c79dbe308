"""`lifeboat verify`: one Azure Backup verification run, now, in this process.

The same code as the `verification_timer` and `verification_vault` functions: the run's messages
go to an in-memory queue and are handled here, one after the other, instead of by the host.
Exit status 0 unless the run failed or a `--fail-on` finding occurred (then 1; 2 for settings).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from cli.host_cmd import default_settings_file, endpoint_settings, load_local_settings

RUN_TYPES = ("verification-plan", "verification-vault")


class _Collect:
    """Keeps every outcome of the run (and prints nothing: the command prints the summary)."""

    def __init__(self) -> None:
        self.outcomes: list[Any] = []

    def report(self, outcomes: Iterable[Any]) -> None:
        self.outcomes.extend(outcomes)


class _InMemoryQueues:
    def __init__(self) -> None:
        self.sent: dict[str, list[str]] = {}

    def send(self, queue: str, text: str, *, visibility_timeout: int = 0) -> None:
        self.sent.setdefault(queue, []).append(text)

    def list_queues(self, *, suffix: str = "") -> list[str]:
        return [q for q in self.sent if q.endswith(suffix)]

    def receive(self, queue: str, *, max_messages: int = 32) -> Iterator[Any]:
        return iter(())

    def delete(self, queue: str, message: Any) -> None:
        return None


class _Clock:
    def __init__(self, url: str | None, ca_bundle: str | None) -> None:
        self._remote = None
        if url:
            from cli.clock import RemoteClock

            self._remote = RemoteClock(url, ca_bundle=ca_bundle)

    def now(self) -> datetime:
        return self._remote.now() if self._remote else datetime.now(UTC)


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
    from shared import messages, verification
    from shared.policies import load_policies
    from shared.ports import Runtime
    from shared.services import build_backup, build_compute
    from shared.settings import Settings, SettingsError

    unknown = sorted(set(fail_on or []) - set(verification.FINDINGS))
    if unknown:
        print(
            f"lifeboat verify: unknown finding(s) {unknown}; known: "
            f"{', '.join(verification.FINDINGS)}",
            file=sys.stderr,
        )
        raise typer.Exit(2)
    try:
        for name, value in load_local_settings(settings or default_settings_file()).items():
            os.environ.setdefault(name, value)
        os.environ.update(endpoint_settings(None, emulator_endpoints))
        config = Settings.from_env()
        policies = load_policies(config.policies_path)
    except (SettingsError, ValueError, OSError) as e:
        print(f"lifeboat verify: {e}", file=sys.stderr)
        raise typer.Exit(2) from None
    clock_url = None
    if emulator_endpoints is not None:
        clock_url = json.loads(emulator_endpoints.read_text())["clock"]
    reporter, queues = _Collect(), _InMemoryQueues()
    rt = Runtime(
        config,
        _Clock(clock_url, os.environ.get("REQUESTS_CA_BUNDLE")),
        reporter,
        queues,
        compute=build_compute(config),
        policies=policies,
        backup=build_backup(config),
    )
    run_id = verification.run_id_of(rt.clock.now().strftime("%Y%m%d%H%M"))
    failed, pending, reason = False, 0, ""
    try:
        verification.start_verification(rt, rt.clock.now())
        run_id = reporter.outcomes[-1].run_id
        while queues.sent.get(verification.QUEUE):
            batch, queues.sent[verification.QUEUE] = queues.sent[verification.QUEUE], []
            for text in batch:
                envelope, payload = messages.decode(text)
                if envelope.type not in RUN_TYPES:
                    pending += 1  # a first-backup check hours from now: the host's work
                    continue
                verification.HANDLERS[envelope.type](rt, envelope, payload)
    except Exception as e:  # the run failed: say so, and still report what was found
        reason = f"{type(e).__name__}: {e}"
        print(f"lifeboat verify: the run failed: {reason}", file=sys.stderr)
        failed = True
    found = verification.findings_of(reporter.outcomes)
    if failed:
        verification.run_failed(rt, run_id, found, reason)
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
