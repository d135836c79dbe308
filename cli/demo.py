"""`lifeboat demo`: Lifeboat's flows end to end on this machine, nothing from Azure needed.

Starts Azurite and the local host, then shows:
1. a VM-write event from Event Grid flowing vm_events -> onboarding queue -> onboarding -> outcome;
2. a malformed message and an undecodable one ending in onboarding-poison, with their reasons;
3. poison_drain reporting each poisoned message and emptying the poison queue.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from azure.storage.queue import QueueClient, TextBase64EncodePolicy
from rich.console import Console
from rich.table import Table

from cli.azurite import running_azurite, write_endpoints
from cli.events import post_events, vm_write_event
from cli.hostprocess import running_host, write_json
from cli.localhost import ROOT

# Fast polling so a demo takes seconds, not minutes (host.json overrides, as tests use).
FAST_HOST = {
    "extensions": {
        "queues": {"maxPollingInterval": "00:00:00.500", "visibilityTimeout": "00:00:00"}
    }
}


def demo_command() -> None:
    """Run Lifeboat's flows locally (Azurite + the local host) and show what happened."""
    console = Console(width=None if sys.stdout.isatty() else 120)
    settings = json.loads((ROOT / "local.settings.sample.json").read_text())["Values"]
    subscription = settings["TARGET_SUBSCRIPTIONS"].split(",")[0].strip()
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="lifeboat-demo-") as tmp:
        work = Path(tmp)
        log_file = (work / "host.log").open("w")
        console.print("[bold]Lifeboat demo[/] — starting Azurite and the local host")
        with running_azurite() as azurite:
            write_endpoints(azurite, work / "azurite.json")
            args = [
                "--settings", str(ROOT / "local.settings.sample.json"),
                "--storage-endpoints", str(work / "azurite.json"),
                "--host-overrides", str(write_json(work / "host.override.json", FAST_HOST)),
                "--no-timers",
            ]  # fmt: skip
            with running_host(args, log=log_file) as host:
                console.print(f"  Azurite queues  {azurite.queue_endpoint}")
                console.print(f"  local host      {host.base_url}")

                console.rule("1. A VM is created: Event Grid -> vm_events -> onboarding")
                event = vm_write_event(subscription, "rg-app-prod", "vm-web-01")
                status, _ = post_events(host.eventgrid_url, [event])
                console.print(f"  POST ResourceWriteSuccess for vm-web-01 -> HTTP {status}")
                host.wait_for(lambda rows: any(r["Operation"] == "vm-seen" for r in rows))

                console.rule("2. Bad messages: poisoned with their reason, nothing lost")
                onboarding = QueueClient.from_connection_string(
                    azurite.connection_string,
                    "onboarding",
                    message_encode_policy=TextBase64EncodePolicy(),
                )
                onboarding.send_message('{"type": "onboarding", "version": 1, "oops"')
                console.print("  sent a message that is not JSON")
                raw = QueueClient.from_connection_string(azurite.connection_string, "onboarding")
                raw.send_message("%%% not base64 %%%")
                console.print("  sent a message that is not base64")
                host.wait_for(lambda rows: any(r["Operation"] == "poison" for r in rows))
                _wait_queue_empty(raw)

                console.rule("3. poison_drain reports and empties every *-poison queue")
                _invoke(host.base_url, "poison_drain", host.endpoints["eventgrid"])
                host.wait_for(lambda rows: sum(1 for r in rows if _drained(r)) >= 2, timeout=30)
                outcomes = list(host.outcomes)
        log_file.close()
    console.print(_table(outcomes))
    console.print(
        f"[green]demo finished in {time.monotonic() - started:.1f} s[/]: "
        f"{len(outcomes)} outcome(s); Azurite and the host are stopped."
    )


def _drained(row: dict[str, Any]) -> bool:
    return row["Operation"] == "poison" and bool((row.get("Details") or {}).get("drained"))


def _invoke(base_url: str, function: str, eventgrid_url: str) -> None:
    key = eventgrid_url.rsplit("code=", 1)[1]
    request = urllib.request.Request(
        f"{base_url}/admin/functions/{function}",
        data=b"{}",
        headers={"x-functions-key": key, "Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        if response.status != 202:
            raise RuntimeError(f"could not invoke {function}: HTTP {response.status}")


def _wait_queue_empty(client: QueueClient, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not client.get_queue_properties().approximate_message_count:
            return
        time.sleep(0.2)
    raise TimeoutError(f"queue {client.queue_name} did not empty in {timeout:.0f} s")


def _table(outcomes: list[dict[str, Any]]) -> Table:
    table = Table(title="Outcomes reported (LifeboatOutcomes_CL rows)", show_lines=False)
    for column in ("Job", "Operation", "Status", "Resource", "Reason / details"):
        table.add_column(column, overflow="fold")
    for row in outcomes:
        details = row.get("Details") or {}
        resource = row.get("VmName") or details.get("poisonQueue") or details.get("queue") or ""
        reason = row.get("Reason") or ""
        if row["Operation"] == "vm-seen":
            reason = f"seen via event {details.get('eventId', '')[:8]}…"
        elif _drained(row):
            reason = f"drained: {reason}"
        table.add_row(row["Job"], row["Operation"], row["Status"], resource, reason)
    return table


if __name__ == "__main__":
    demo_command()
    sys.exit(0)
