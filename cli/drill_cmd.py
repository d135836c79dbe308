"""`lifeboat drill start` and `lifeboat drill status` (also `drill list`): both kinds of drill.

`start` puts one drill of one VM on the drill-step queue, now; the app (in Azure, or `lifeboat
host` locally) runs it. `status` lists the drills whose resources exist right now, read from the
drill resource groups by their `lifeboat:drill` tags, and the site-recovery drills whose test
failover is up, read from Site Recovery (plans in a test failover on a drill network, their test
VMs and those VMs' `lifeboat:drill` tags), with the step each is at when its message can be
peeked on the queue. Both check first that the Azurite queues (when the settings name a
local one) and the stand-in answer, and fail in seconds when they do not. Exit status: 0; 1 when
the drill cannot start; 2 for bad settings; 3 when Azure, Azurite or the stand-in cannot be reached.
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from cli.clock import NoLocalRows, clock_of
from cli.exits import Exit, azurite_of, require, stand_in_of
from cli.host_cmd import read_app_settings

drill_app = typer.Typer(
    help="DR drills: start one now, or list the running ones.", no_args_is_help=True
)

SettingsOption = Annotated[Path | None, typer.Option(help="local.settings.json to read")]
EmulatorOption = Annotated[
    Path | None, typer.Option(help="use the Azure stand-in (its endpoints file)")
]
StorageOption = Annotated[
    Path | None, typer.Option(help="use these Azurite queues (its endpoints file)")
]


def _runtime(settings: Path | None, emulator: Path | None, storage: Path | None) -> Any:
    from shared.services import build_runtime

    config, policies = read_app_settings("drill", settings, emulator=emulator, storage=storage)
    require(azurite_of(config.storage_connection), stand_in_of(emulator))
    return build_runtime(
        config, clock=clock_of(emulator), reporter=NoLocalRows(), policies=policies
    )


@drill_app.command("start")
def start_command(
    vm: Annotated[str | None, typer.Option("--vm", help="the VM's ARM id, or its name")] = None,
    plan: Annotated[
        str | None,
        typer.Option(
            help="with --vm: the drill plan (default: the VM's tag or policy); without --vm: "
            "a Site Recovery recovery plan (name or id) to test-fail-over"
        ),
    ] = None,
    source: Annotated[
        str | None,
        typer.Option(
            "--from",
            help="snapshots | recovery-point (an Azure Backup restore) | site-recovery (a "
            "recovery plan's test failover); default: the plan's",
        ),
    ] = None,
    point: Annotated[
        str | None,
        typer.Option(help="recovery-point drills: latest | random | a recovery point's id"),
    ] = None,
    settings: SettingsOption = None,
    emulator_endpoints: EmulatorOption = None,
    storage_endpoints: StorageOption = None,
) -> None:
    """Start a drill of one VM, or a test failover of one recovery plan, now (it runs wherever
    the app runs)."""
    from shared.drills import start_drill_now

    if source not in (None, "snapshots", "recovery-point", "site-recovery"):
        print(
            f"lifeboat drill start: --from {source!r}: expected snapshots, recovery-point or "
            "site-recovery",
            file=sys.stderr,
        )
        raise typer.Exit(Exit.USAGE)
    if vm is None or source == "site-recovery":
        if vm is not None or plan is None or point is not None:
            print(
                "lifeboat drill start: a site-recovery drill takes --plan RECOVERY-PLAN only "
                "(no --vm, no --point); a VM's drill takes --vm",
                file=sys.stderr,
            )
            raise typer.Exit(Exit.USAGE)
        _start_plan(plan, settings, emulator_endpoints, storage_endpoints)
        return
    rt = _runtime(settings, emulator_endpoints, storage_endpoints)
    try:
        state = start_drill_now(rt, _vm_id(rt, vm), plan, source=source, point=point)
    except ValueError as e:
        print(f"lifeboat drill start: {e}", file=sys.stderr)
        raise typer.Exit(Exit.FOUND_PROBLEMS) from None
    print(
        f"drill {state.drill_id} of {state.vm_name} queued ({state.source}): plan {state.plan}, in "
        f"{state.drill_group} ({state.drill_subscription}), resources expire "
        f"{state.expires_at.isoformat()}"
    )


def _start_plan(
    plan: str, settings: Path | None, emulator: Path | None, storage: Path | None
) -> None:
    from shared.drills.failover import start_failover_drill_now

    rt = _runtime(settings, emulator, storage)
    try:
        state = start_failover_drill_now(rt, plan)
    except ValueError as e:
        print(f"lifeboat drill start: {e}", file=sys.stderr)
        raise typer.Exit(Exit.FOUND_PROBLEMS) from None
    assert state.failover is not None
    print(
        f"drill {state.drill_id} of recovery plan {state.failover.plan_name} queued "
        f"(site-recovery): a test failover in {state.location}, cleaned up by "
        f"{state.expires_at.isoformat()}"
    )


def _vm_id(rt: Any, vm: str) -> str:
    """The VM's id: `vm` itself when it is one, else the one VM of that name Lifeboat serves."""
    if vm.startswith("/"):
        return vm
    found = [
        v.id
        for sub in sorted(rt.settings.subscriptions)
        for v in rt.compute.list_vms(sub)
        if v.name.lower() == vm.lower()
    ]
    if len(found) != 1:
        how = "no VM" if not found else f"{len(found)} VMs"
        raise ValueError(f"{how} named {vm!r} in the served subscriptions: pass its ARM id")
    return str(found[0])


@drill_app.command("list")
@drill_app.command("status")
def status_command(
    as_json: Annotated[bool, typer.Option("--json", help="one JSON document on stdout")] = False,
    settings: SettingsOption = None,
    emulator_endpoints: EmulatorOption = None,
    storage_endpoints: StorageOption = None,
) -> None:
    """The drills whose resources exist now, by drill id, with their expiry and step."""
    rt = _runtime(settings, emulator_endpoints, storage_endpoints)
    drills = running_drills(rt)
    steps = _peek_steps(rt)
    for drill in drills:
        drill.update(steps.get(drill["drillId"], {}))
        if drill.get("recoveryPlan"):
            drill["vmName"] = f"plan {drill['recoveryPlan']}"
    if as_json:
        sys.stdout.write(json.dumps({"drills": drills}, indent=2, sort_keys=True) + "\n")
        return
    console = Console()
    if not drills:
        console.print("no drill resources exist")
        return
    table = Table(title="Running drills (resources in the drill resource groups)")
    for column in ("drill", "VM", "source", "step", "group", "expires", "resources"):
        table.add_column(column, overflow="fold")
    for drill in drills:
        expires = drill["expiresAt"] or "?"
        if drill["expired"]:
            expires += (
                " (expired: the sweeper cleans it up through Site Recovery)"
                if drill.get("recoveryPlan")
                else " (expired: the sweeper removes it)"
            )
        kinds = ", ".join(f"{len(v)} {k}" for k, v in sorted(drill["resources"].items()))
        table.add_row(
            drill["drillId"],
            drill.get("vmName", ""),
            drill.get("source", ""),
            drill.get("step", ""),
            drill["resourceGroup"],
            expires,
            kinds,
        )
    console.print(table)


def running_drills(rt: Any) -> list[dict[str, Any]]:
    """Drill resources grouped by their `lifeboat:drill` tag, in every drill resource group."""
    from shared.names import Tag
    from shared.policies import tag_value

    cloud = rt.drills
    now = rt.clock.now()
    subscriptions = set(rt.settings.subscriptions)
    if rt.settings.drill_subscription is not None:
        subscriptions.add(str(rt.settings.drill_subscription).lower())
    found: list[dict[str, Any]] = []
    for subscription in sorted(subscriptions):
        for group in cloud.list_resource_groups(subscription):
            if group not in rt.settings.drill_groups:
                continue
            by_drill: dict[str, dict[str, Any]] = {}
            for resource in cloud.list_drill_resources(subscription, group):
                drill_id = tag_value(resource.tags, Tag.DRILL)
                if not drill_id:
                    continue
                entry = by_drill.setdefault(
                    drill_id,
                    {
                        "drillId": drill_id,
                        "subscription": subscription,
                        "resourceGroup": group,
                        "expiresAt": tag_value(resource.tags, Tag.EXPIRES),
                        "resources": defaultdict(list),
                    },
                )
                entry["resources"][resource.kind].append(resource.name)
            for entry in by_drill.values():
                entry["resources"] = dict(entry["resources"])
                entry["expired"] = _expired(entry["expiresAt"], now)
                found.append(entry)
    # Site-recovery drills: their test VMs are Site Recovery's, in the recovery group.
    from shared.drills.failover import running_failovers

    known = {d["drillId"]: d for d in found}
    for failover in running_failovers(rt):
        failover["expired"] = _expired(failover["expiresAt"], now)
        same = known.get(failover["drillId"]) if failover["drillId"] else None
        if same is not None:  # a recovery group that is also a drill group lists it too
            same.update({k: v for k, v in failover.items() if k != "resources"})
            continue
        failover["drillId"] = failover["drillId"] or f"(untagged: {failover['recoveryPlan']})"
        found.append(failover)
    return sorted(found, key=lambda d: (d["subscription"], d["resourceGroup"], d["drillId"]))


def _expired(value: str | None, now: datetime) -> bool:
    """As the sweeper reads the tag: one it cannot read (or without a timezone) has expired."""
    try:
        expires = datetime.fromisoformat((value or "").replace("Z", "+00:00"))
    except ValueError:
        return True
    return expires.tzinfo is None or expires <= now


def _peek_steps(rt: Any) -> dict[str, dict[str, str]]:
    """The step of each drill whose message is visible on the queue (a peek: nothing taken)."""
    from azure.storage.queue import QueueClient, TextBase64DecodePolicy

    from shared import messages
    from shared.messages import DrillState
    from shared.names import Queue

    connection = rt.settings.storage_connection
    if not connection:
        return {}
    client = QueueClient.from_connection_string(
        connection, Queue.DRILL, message_decode_policy=TextBase64DecodePolicy()
    )
    steps: dict[str, dict[str, str]] = {}
    try:
        peeked = client.peek_messages(max_messages=32)
    except Exception:  # no queue yet, or not reachable: status still lists the resources
        return {}
    for message in peeked:
        try:
            _, payload = messages.decode(str(message.content))
        except messages.PoisonMessageError:
            continue
        if isinstance(payload, DrillState):
            steps[payload.drill_id] = {
                "step": payload.step,
                "vmName": payload.vm_name or "",
                "source": payload.source,
            }
    return steps
