"""`lifeboat recover VM`: bring a VM back from one of Lifeboat's snapshot sets or an Azure Backup
recovery point (`--recovery-point latest|ID`), in one command.

It reads (the VM, its snapshot sets or its backup item and point, the source disks, the NIC,
quota), shows the plan (every resource created or changed, each disk with its source), asks
(unless `--yes`), does it with a progress line per step (a restore's job state and time while
Azure Backup restores the point's disks), and ends with the RTO by step and in total and the RPO.
`--dry-run` shows the plan and writes nothing (not even the restore's trigger). It runs with the
operator's own credential (DefaultAzureCredential, so `az login` works; the stand-in's identity
with `--emulator-endpoints`), never the app's (nor the backup writer's, for a restore), and records
a `recover` outcome row naming who ran it (best effort). Runbook: docs/recover.md.

Exit status: 0 recovered (or planned, with --dry-run); 1 refused, failed or not confirmed;
2 usage (conflicting options, a bad time, a staging account that is not a storage account id);
3 when Azure or the stand-in cannot be reached.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from cli.clock import NoLocalRows, clock_of
from cli.exits import Exit, require, stand_in_of
from cli.host_cmd import read_app_settings
from cli.progress import LiveProgress, duration

STEP_WORDS = {
    "restore": "restoring the disks from the recovery point (Azure Backup)",
    "disks": "creating disks from the snapshot set",
    "vm": "creating the VM",
    "deallocate": "deallocating the VM",
    "swap": "swapping the disks (If-Match on the ETag)",
    "start": "starting the VM",
    "agent-ready": "waiting for the VM agent",
}


def _fail(text: str, code: Exit) -> typer.Exit:
    print(f"lifeboat recover: {text}", file=sys.stderr)
    return typer.Exit(code)


def recover_command(
    vm: Annotated[str, typer.Argument(help="the VM's ARM id")],
    at: Annotated[
        str | None,
        typer.Option(help="the newest complete snapshot set at or before this time (RFC 3339)"),
    ] = None,
    set_id: Annotated[
        str | None, typer.Option("--set", help="this snapshot set: its lifeboat:set id or slot")
    ] = None,
    recovery_point: Annotated[
        str | None,
        typer.Option(help="an Azure Backup recovery point: latest, or its id or name"),
    ] = None,
    staging_account: Annotated[
        str | None,
        typer.Option(
            help="--recovery-point: the storage account id the restore stages through "
            "(default: RESTORE_STAGING_ACCOUNTS for the vault's region)"
        ),
    ] = None,
    new_vm: Annotated[
        bool, typer.Option("--new-vm", help="a new VM beside the original (the default)")
    ] = False,
    swap_disks: Annotated[
        bool, typer.Option("--swap-disks", help="in place: the VM's disks are swapped and kept")
    ] = False,
    disks_only: Annotated[
        bool, typer.Option("--disks-only", help="create the disks and print their ids")
    ] = False,
    rollback: Annotated[
        bool, typer.Option("--rollback", help="put back the disks a --swap-disks replaced")
    ] = False,
    name: Annotated[str | None, typer.Option(help="--new-vm: the new VM's name")] = None,
    resource_group: Annotated[
        str | None, typer.Option(help="where new resources go (default: the VM's group)")
    ] = None,
    size: Annotated[str | None, typer.Option(help="--new-vm: another VM size")] = None,
    subnet: Annotated[
        str | None, typer.Option(help="--new-vm: this subnet id (default: the original's)")
    ] = None,
    keep_ip: Annotated[
        bool, typer.Option("--keep-ip", help="--new-vm: the original's private IP address")
    ] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="show the plan; write nothing")
    ] = False,
    yes: Annotated[bool, typer.Option("--yes", help="do not ask for confirmation")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="one JSON document on stdout")] = False,
    timeout: Annotated[
        float, typer.Option(help="seconds each step may take (restore, disks, VM, agent)", min=1)
    ] = 1800.0,
    poll_seconds: Annotated[float, typer.Option(hidden=True, min=0.01)] = 2.0,
    settings: Annotated[Path | None, typer.Option(help="local.settings.json to read")] = None,
    emulator_endpoints: Annotated[
        Path | None, typer.Option(help="recover on the Azure stand-in (its endpoints file)")
    ] = None,
) -> None:
    """Recover a VM from a snapshot set or a recovery point: a new VM, its disks swapped in place,
    or disks only."""
    from shared.recovery import Request, parse_time

    modes = [m for m, on in (("new-vm", new_vm), ("swap-disks", swap_disks)) if on]
    modes += [m for m, on in (("disks-only", disks_only), ("rollback", rollback)) if on]
    if len(modes) > 1:
        raise _fail(f"choose one of --{', --'.join(modes)}", Exit.USAGE)
    mode = modes[0] if modes else "new-vm"
    given = (("--at", at), ("--set", set_id), ("--recovery-point", recovery_point))
    sources = [option for option, value in given if value is not None]
    if len(sources) > 1:
        raise _fail(f"choose one of {' and '.join(sources)}", Exit.USAGE)
    if mode == "rollback" and sources:
        raise _fail(
            f"--rollback puts back the replaced disks: it takes no {sources[0]}", Exit.USAGE
        )
    if staging_account is not None and recovery_point is None:
        raise _fail("--staging-account goes with --recovery-point only", Exit.USAGE)
    if staging_account is not None and not _storage_account_id(staging_account):
        raise _fail(
            f"--staging-account {staging_account!r} is not a storage account id "
            "(/subscriptions/.../providers/Microsoft.Storage/storageAccounts/NAME)",
            Exit.USAGE,
        )
    only_new = [o for o, v in (("--name", name), ("--size", size), ("--subnet", subnet)) if v]
    only_new += ["--keep-ip"] if keep_ip else []
    if mode != "new-vm" and only_new:
        raise _fail(f"{', '.join(only_new)} go with --new-vm only", Exit.USAGE)
    if not vm.lower().startswith("/subscriptions/") or "/virtualmachines/" not in vm.lower():
        raise _fail(f"{vm!r} is not a VM id (/subscriptions/.../virtualMachines/NAME)", Exit.USAGE)
    try:
        when = parse_time(at) if at else None
    except ValueError as e:
        raise _fail(str(e), Exit.USAGE) from None
    request = Request(
        vm_id=vm,
        mode=mode,  # type: ignore[arg-type]
        at=when,
        set_id=set_id,
        name=name,
        resource_group=resource_group,
        size=size,
        subnet_id=subnet,
        keep_ip=keep_ip,
        recovery_point=recovery_point,
        staging_account_id=staging_account,
    )
    config, _policies = read_app_settings("recover", settings, emulator=emulator_endpoints)
    require(stand_in_of(emulator_endpoints))
    if emulator_endpoints is None:
        # The operator's own credential (az login), never the app's managed identity.
        config = config.model_copy(update={"managed_identity_client_id": None})
    # The restore of a recovery point is the operator's request too, never the backup writer's.
    config = config.model_copy(update={"backup_writer_client_id": None})
    cloud, clock, reporter, backup = _ports(config, emulator_endpoints)
    console = Console(file=sys.stderr if as_json else sys.stdout)

    def confirm(text: str) -> bool:
        if yes:
            return True
        if not sys.stdin.isatty():
            raise _fail("not a terminal: pass --yes to recover without confirmation", Exit.USAGE)
        return typer.confirm(text, default=False)

    with LiveProgress(console, enabled=not as_json) as progress:
        document = perform(
            cloud,
            clock,
            reporter,
            request,
            config.snapshot_group,
            dry_run=dry_run,
            confirm=confirm,
            show=lambda plan: _print_plan(console, plan),
            on_step=lambda step: progress.phase(STEP_WORDS.get(step, step)),
            on_wait=lambda text: progress.phase(f"{STEP_WORDS['restore']}: {text}"),
            sleep=time.sleep,
            poll_seconds=poll_seconds,
            timeout=timeout,
            backup=backup,
            staging_accounts=config.staging_account,
        )
    if as_json:
        sys.stdout.write(json.dumps(document, indent=2) + "\n")
    else:
        _print_result(console, document)
    if document["status"] not in ("succeeded", "planned"):
        raise typer.Exit(Exit.FOUND_PROBLEMS)


def perform(
    cloud: Any,
    clock: Any,
    reporter: Any,
    request: Any,
    snapshot_group: Callable[[str], str],
    *,
    dry_run: bool = False,
    confirm: Callable[[str], bool] = lambda text: True,
    show: Callable[[Any], None] = lambda plan: None,
    on_step: Callable[[str], None] = lambda step: None,
    on_wait: Callable[[str], None] = lambda text: None,
    sleep: Callable[[float], None] = time.sleep,
    poll_seconds: float = 2.0,
    timeout: float = 1800.0,
    backup: Any = None,
    staging_accounts: Callable[[str, str], str | None] = lambda subscription, region: None,
) -> dict[str, Any]:
    """One recovery, start to end: the document `--json` prints (also the demo's entry).

    `backup` (the Backup port) and `staging_accounts` serve `--recovery-point` only."""
    from shared.recovery import Refusal, Result, Waiter, execute, prepare, record, recovery_id_of
    from shared.snapshots import slot_of

    now = clock.now()
    stamp = slot_of(now)
    recovery_id = recovery_id_of(request.vm_id, stamp)
    subscription = request.vm_id.strip("/").split("/")[1]
    decided = prepare(
        cloud,
        request,
        snapshot_group(subscription),
        now,
        backup=backup,
        staging_accounts=staging_accounts,
    )

    def record_row(result: Result) -> str | None:
        """The recover row; what could not be sent, if anything."""
        return record(
            reporter,
            clock,
            result,
            vm_id=request.vm_id,
            mode=request.mode,
            recovery_id=recovery_id,
            stamp=stamp,
        )

    if isinstance(decided, Refusal):
        result = Result(
            None, "refused", decided.reason + (f" ({decided.hint})" if decided.hint else "")
        )
        if not dry_run:
            result.caller = cloud.caller()
            result.reason = (result.reason or "") + _note(record_row(result))
        return _document(request, result)
    show(decided)
    if dry_run:
        return _document(request, Result(decided, "planned"))
    if not confirm(f"{len(decided.actions)} change(s) to recover {decided.vm.name}: go ahead?"):
        return _document(request, Result(decided, "cancelled", "not confirmed: nothing changed"))
    waiter = Waiter(clock, sleep, poll_seconds=poll_seconds, timeout_seconds=timeout)
    result = execute(
        cloud,
        decided,
        waiter,
        recovery_id=recovery_id,
        caller=cloud.caller(),
        on_step=on_step,
        backup=backup,
        on_wait=on_wait,
    )
    unsent = record_row(result)
    document = _document(request, result)
    if unsent:
        document["rowNotSent"] = unsent
    return document


def _note(unsent: str | None) -> str:
    return f"; the outcome row was not sent ({unsent})" if unsent else ""


def _document(request: Any, result: Any) -> dict[str, Any]:
    plan = result.plan
    return {
        "vmId": request.vm_id,
        "mode": request.mode,
        "source": plan.source if plan else None,
        "status": result.status,
        "reason": result.reason,
        "rtoSeconds": result.rto_seconds,
        "rpoSeconds": result.rpo_seconds,
        "newVmId": plan.new_vm_id if plan else None,
        "steps": result.steps,
        "disks": [d.id for d in plan.disks] if plan else [],
        "created": list(result.created),
        "pointId": plan.restore.point.id if plan and plan.restore else None,
        "restoreJob": result.restore_job,
        "caller": result.caller,
        "plan": [
            {"action": a.verb, "target": a.target, "detail": a.detail, "source": a.source}
            for a in (plan.actions if plan else ())
        ],
    }


def _print_plan(console: Console, plan: Any) -> None:
    table = Table(title=f"Recovery of {plan.vm.name} ({plan.mode}) from {plan.source}")
    for column in ("#", "action", "resource", "detail", "from"):
        table.add_column(column, overflow="fold")
    for i, action in enumerate(plan.actions, 1):
        table.add_row(
            str(i),
            action.verb,
            action.target.rsplit("/", 1)[-1],
            action.detail,
            (action.source or "").rsplit("/", 1)[-1],
        )
    console.print(table)
    for note in plan.notes:
        console.print(f"  {note}")


def _print_result(console: Console, document: dict[str, Any]) -> None:
    status = document["status"]
    if status == "planned":
        console.print("dry run: nothing was written")
        return
    if status in ("refused", "cancelled"):
        console.print(f"[red]not recovered[/]: {document['reason']}")
        return
    for step, seconds in document["steps"].items():
        console.print(f"  {STEP_WORDS.get(step, step)}: {duration(seconds)}")
    if status == "succeeded":
        console.print(
            f"[green]recovered[/] {document['vmId'].rsplit('/', 1)[-1]} ({document['mode']}): "
            f"RTO {duration(document['rtoSeconds'])}, RPO {duration(document['rpoSeconds'])}"
        )
        if document["newVmId"]:
            console.print(f"  new VM {document['newVmId']}")
        if document["mode"] == "disks-only":
            for disk in document["disks"]:
                console.print(f"  {disk}")
    else:
        console.print(f"[red]recovery failed[/]: {document['reason']}")
        if document["created"]:
            console.print("  what it made is kept: " + ", ".join(document["created"]))
    if document.get("rowNotSent"):
        console.print(f"  the outcome row was not sent: {document['rowNotSent']}")


def _storage_account_id(text: str) -> bool:
    parts = text.strip().strip("/").split("/")
    return (
        len(parts) == 8
        and parts[0].lower() == "subscriptions"
        and parts[5].lower() == "microsoft.storage"
        and parts[6].lower() == "storageaccounts"
    )


def _ports(config: Any, emulator: Path | None) -> tuple[Any, Any, Any, Any]:
    from shared.adapters.recovery import AzureRecovery
    from shared.services import build_backup, build_compute, build_runtime

    clock = clock_of(emulator)
    compute = build_compute(config)
    rt = build_runtime(config, clock=clock, reporter=NoLocalRows(), compute=compute)
    return AzureRecovery(compute), clock, rt.reporter, build_backup(config)  # type: ignore[arg-type]
