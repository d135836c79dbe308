"""A recovery-point drill's own steps: choose the point, have Azure Backup restore its disks.

    prepare (choose the point; isolation pre-flight) -> restore -> create-vm -> ... (the drill)

The vault restores with `RestoreDisks` into the drill group of the vault's own subscription and
region, staged through Lifeboat's staging account there; never `AlternateLocation` (Azure would
build the VM and its NIC itself, outside the isolation pre-flight) nor `OriginalLocation`.
The trigger names an operation, the operation a job; the step follows both by handing the drill
on to itself, never by waiting. A redelivered step finds the restore it started (the vault's
restore jobs of the VM since the point was chosen) and never starts a second one. When the job
completes, the disks it made are tagged as this drill's at once; teardown deletes them by tag,
and the sweeper removes untagged restored disks that outlive every drill's lifetime.
"""

from __future__ import annotations

import logging
import re
from datetime import datetime, timedelta
from typing import Any

from shared.dispatch import Context, Result
from shared.drills.source import (
    NoRestorePoint,
    RecoveryPoints,
    choose_recovery_point,
    protected_item_of,
)
from shared.messages import DrillRestore, DrillSnapshot, DrillState
from shared.model import DrillResource, ProtectedItem, RecoveryPoint, Vault, Vm, format_time
from shared.names import Tag
from shared.policies import tag_value
from shared.ports import RestoreRequest
from shared.rules import same_id
from shared.snapshots import slot_of

log = logging.getLogger(__name__)

TERMINAL_OK = ("completed", "completedwithwarnings")
TERMINAL_FAILED = ("failed", "cancelled", "canceled")
# A restored disk is named after its source with the restore's date and time appended.
RESTORED_SUFFIX = re.compile(r"^-(?:\d{1,3}-)?\d{8}-?\d{6}$")
TIERS = {"snapshot": "snapshot tier", "vault": "vault tier"}
NO_WRITER = (
    "no backup-writer identity (BACKUP_WRITER_CLIENT_ID): a recovery-point drill's restore runs "
    "as that identity (Azure requires VM write on the source VM for it), never as Lifeboat's own"
)


def choose_point(ctx: Context, state: DrillState, now: datetime) -> DrillState | Result:
    """Read the source VM, find its backup item and take the point; a Result when it ends."""
    from shared.drills.steps import copied_security, finish

    if not ctx.settings.recovery_point_drills:
        return finish(
            state,
            now,
            "skipped",
            "recovery-point drills are off (RECOVERY_POINT_DRILLS): the restore needs VM write "
            "on the source VM, held by the backup-writer identity",
        )
    if not ctx.settings.backup_writer_client_id:
        return finish(state, now, "failed", NO_WRITER)
    if state.vm_id is None or state.subscription_id is None:
        return finish(state, now, "failed", "the drill names no source VM")
    vm = ctx.compute.get_vm(state.vm_id)
    if vm is None:
        return finish(state, now, "failed", "the source VM no longer exists")
    found = protected_item_of(ctx.backup, vm)
    if isinstance(found, NoRestorePoint):
        return finish(state, now, found.outcome, found.reason)
    vault, item = found
    region = vault.location.replace(" ", "").lower()
    group = ctx.settings.drill_groups.for_region(region)
    if group not in ctx.drills.list_resource_groups(vault.subscription_id):
        return finish(
            state,
            now,
            "failed",
            f"no drill group {group} in the vault's subscription {vault.subscription_id}: Azure "
            f"Backup restores a recovery point into a group of the vault's own subscription and "
            f"region ({region}); create it (cross-subscription restore is not used)",
        )
    staging = ctx.settings.staging_account(vault.subscription_id, region)
    if staging is None:
        return finish(
            state,
            now,
            "failed",
            f"no staging storage account for subscription {vault.subscription_id} in {region}: "
            "set RESTORE_STAGING_ACCOUNTS (region=storage account id; Lifeboat's, same region "
            "as the vault, not zone-redundant)",
        )
    wanted = state.restore or DrillRestore()
    chosen = _point(ctx, state, item, wanted)
    if isinstance(chosen, str):
        return finish(state, now, "failed", chosen)
    point, why = chosen
    restore = wanted.model_copy(
        update={
            "point_id": point.id,
            "point_time": point.time,
            "point_type": point.consistency,
            "point_tiers": list(point.tiers),
            "why": why[:500],
            "item_id": item.id,
            "vault_id": vault.id,
            "staging_account_id": staging,
        }
    )
    log.info("drill %s: recovery point %s (%s)", state.drill_id, point.id, why)
    return state.model_copy(
        update={
            "restore": restore,
            "drill_subscription": vault.subscription_id.lower(),
            "drill_group": group,
            "location": region,
            "set_slot": slot_of(point.time),
            "chosen_at": now,
            "vm_size": state.vm_size or vm.size,
            "os_type": vm.os_type or state.os_type,
            "security_profile": copied_security(vm.security_profile),
            "hyper_v_generation": vm.hyper_v_generation,
            "marketplace_plan": dict(vm.plan) if vm.plan else None,
        }
    )


def _point(
    ctx: Context, state: DrillState, item: ProtectedItem, wanted: DrillRestore
) -> tuple[RecoveryPoint, str] | str:
    if wanted.choose == "named":
        if wanted.point_id is None:
            return "the drill names no recovery point"
        point = ctx.backup.get_point(item, wanted.point_id)
        if point is None:
            return f"recovery point {wanted.point_id} of {item.name} does not exist"
        return point, "named when the drill was started"
    anchor = state.started_at
    since = anchor - timedelta(days=wanted.window_days)
    choice = choose_recovery_point(
        ctx.backup.list_points(item, since, anchor),
        drill_id=state.drill_id,
        choose=wanted.choose,
        window_days=wanted.window_days,
        app_consistent_only=wanted.app_consistent_only,
        tier=wanted.tier,
        anchor=anchor,
    )
    if isinstance(choice, str):
        return f"{choice} of {item.name}: nothing to restore"
    return choice.point, choice.why


# ------------------------------------------------------------------------------ the restore step


def restore_step(ctx: Context, state: DrillState, now: datetime) -> Result:
    """Trigger the restore once, follow its operation to the job, the job to its end, then tag
    the disks it made and go on to the VM."""
    from shared.drills.steps import (
        abort,
        again,
        goto,
        hand_on,
        isolated_now,
        outside_drill_group,
        refuse,
    )

    outside = outside_drill_group(ctx, state)
    if outside is not None:
        return refuse(state, outside)
    r = state.restore
    if state.source != "recovery-point" or r is None or r.point_id is None:
        return refuse(state, "it names no recovery point to restore")
    if r.item_id is None or r.vault_id is None or r.staging_account_id is None:
        return refuse(state, "it names no backup item, vault or staging account")
    item = _item(r, state)
    if item is None:
        return refuse(state, f"{r.item_id} is not a backup item of vault {r.vault_id}")
    timeout = timedelta(seconds=r.restore_timeout_seconds)
    if r.job_id is None and r.operation_id is None:
        stopped = _checked_before_trigger(ctx, state, item, now)
        if stopped is not None:
            return stopped
        started = _restore_started(ctx, state, r)
        if started is not None:
            r = r.model_copy(update={"job_id": started, "triggered_at": now})
        else:
            assert r.point_id is not None
            point = ctx.backup.get_point(item, r.point_id)
            if point is None:
                return abort(
                    state,
                    now,
                    f"the recovery point {_point_label(r)} no longer exists "
                    "(expired or deleted since it was chosen)",
                )
            stopped = isolated_now(ctx, state, now)
            if stopped is not None:
                return stopped
            if not ctx.settings.backup_writer_client_id:  # the settings changed since prepare
                return abort(state, now, NO_WRITER)
            operation = ctx.backup.trigger_restore(item, _request(state, r))
            log.info("drill %s: restore triggered, operation %s", state.drill_id, operation)
            restored = r.model_copy(update={"operation_id": operation[:128], "triggered_at": now})
            return again(ctx, state.model_copy(update={"restore": restored}))
    began = r.triggered_at or state.started_at
    late = now - began >= timeout
    limit = f"{timeout.total_seconds() / 60:.0f} min"
    if r.job_id is None:
        assert r.operation_id is not None
        job_id = ctx.backup.get_restore_operation(item, r.operation_id)
        if job_id is None:
            if late:
                return abort(
                    state, now, f"the restore operation {r.operation_id} named no job in {limit}"
                )
            return again(ctx, state)
        r = r.model_copy(update={"job_id": job_id[:128]})
    assert r.job_id is not None
    assert r.vault_id is not None
    job = ctx.backup.get_job(r.vault_id, r.job_id)
    if job is None:
        return abort(state, now, f"the restore job {r.job_id} does not exist")
    r = r.model_copy(
        update={
            "job_status": job.status[:128] or None,
            "job_started": job.start_time or r.job_started,
            "job_ended": job.end_time,
        }
    )
    state = state.model_copy(update={"restore": r})
    status = job.status.lower()
    if status in TERMINAL_FAILED:
        cause = ": ".join(x for x in (job.error_code, job.error_message) if x) or "no error given"
        failed = state.model_copy(update={"restore": r.model_copy(update={"job_error": cause})})
        return abort(failed, now, f"the restore job {r.job_id} {job.status}: {cause}")
    if status not in TERMINAL_OK:
        if late:
            return abort(
                state,
                now,
                f"the restore job {r.job_id} did not end within {limit} "
                f"(still {job.status}); disks it makes later are removed by the sweeper",
            )
        return again(ctx, state)
    blobs = staging_blobs_of(job.properties or {})
    if blobs:
        r = r.model_copy(update={"staging_blobs": blobs})
        state = state.model_copy(update={"restore": r})
    vm = ctx.compute.get_vm(state.vm_id or "")
    if vm is None:
        return abort(state, now, "the source VM no longer exists: its disks cannot be matched")
    disks, missing = _restored_disks(ctx, state, vm, job.start_time)
    if not any(s.lun is None for s in disks):
        return abort(
            state,
            now,
            f"the restore job {r.job_id} {job.status} but no restored OS disk of {vm.name} "
            f"is in {state.drill_group}",
        )
    update: dict[str, Any] = {"snapshots": disks, "missing_disks": missing}
    return hand_on(goto(state.model_copy(update=update), "create-vm", now))


# ------------------------------------------------------------------------------ staging blobs
# What a RestoreDisks job leaves in the staging account, as the recorded job names it
# (tests/data/recording_restore_flow.json): "Config Blob Uri"
# https://{account}.blob.core.windows.net/vhd<32 hex digits>/config<job id>.json, the container
# made for the restore. Only blobs the job names are deleted, and their container only when it
# is named so and is empty afterwards.
STAGING_CONTAINER = re.compile(r"^vhd[0-9a-f]{32}$")
CONFIG_BLOB = re.compile(
    r"^config[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\.json$"
)
_BLOB_URI = re.compile(r"^https?://([^/?#]+)/([^/?#]+)/([^?#]+)$")


def staging_blobs_of(properties: dict[str, str]) -> list[str]:
    """The blobs a completed restore job names in its property bag (`... Blob Uri`)."""
    named = [
        str(value)[:1024]
        for name, value in sorted(properties.items())
        if name.strip().lower().endswith("blob uri") and value
    ]
    return named[:4]


def _blob_of(uri: str) -> tuple[str, str, str] | None:
    """(account, container, blob) of a blob URI as a job names it, the account being the host's
    first label (https://{account}.blob.core.windows.net/{container}/{blob})."""
    found = _BLOB_URI.match(uri.strip())
    if found is None:
        return None
    host, container, blob = found.groups()
    return host.split(".", 1)[0].lower(), container, blob


def remove_staging(ctx: Context, state: DrillState) -> dict[str, Any]:
    """Delete the staging blobs the restore job named, then their container if it is a
    restore's and holds nothing else; never anything else. A refusal or an account that does not
    answer leaves them, named with the reason, for the sweeper's next pass. The report's
    `stagingRemoved`, `stagingLeft` and `stagingLeftReason`."""
    from shared.ports import StagingBlobsError

    r = state.restore
    if r is None or not r.staging_blobs:
        return {"stagingRemoved": [], "stagingLeft": [], "stagingLeftReason": None}
    account = (r.staging_account_id or "").rstrip("/").rsplit("/", 1)[-1].lower()
    removed: list[str] = []
    left: list[str] = []
    reasons: list[str] = []
    emptied: dict[str, str] = {}  # a restore's container -> its URI
    kept: set[str] = set()  # containers with a blob the job named still in them
    for uri in r.staging_blobs:
        blob = _blob_of(uri)
        if blob is None or blob[0] != account:
            left.append(uri)
            reasons.append(f"{uri} is not a blob of the staging account {account}: not deleted")
            continue
        _, container, name = blob
        try:
            ctx.rt.staging.delete_blob(account, container, name)
        except StagingBlobsError as e:
            left.append(uri)
            reasons.append(str(e))
            kept.add(container)
            continue
        removed.append(uri)
        if STAGING_CONTAINER.fullmatch(container):
            emptied[container] = uri.rsplit("/", 1)[0]
    for container, where in emptied.items():
        if container in kept:
            continue
        try:
            others = ctx.rt.staging.list_blobs(account, container)
            if others:
                left.append(where)
                reasons.append(
                    f"container {container} holds {len(others)} blob(s) the job did not name: "
                    "left as it is"
                )
                continue
            ctx.rt.staging.delete_container(account, container)
        except StagingBlobsError as e:
            left.append(where)
            reasons.append(str(e))
            continue
        removed.append(where)
    if left:
        log.warning("drill %s: staging left: %s", state.drill_id, "; ".join(reasons))
    return {
        "stagingRemoved": removed,
        "stagingLeft": left,
        "stagingLeftReason": "; ".join(reasons)[:1000] or None,
    }


def _checked_before_trigger(
    ctx: Context, state: DrillState, item: ProtectedItem, now: datetime
) -> Result | None:
    """A message is a request: the item is the drill's VM's, read now, in a served subscription."""
    from shared.drills.steps import abort, refuse

    assert state.vm_id is not None
    if (state.subscription_id or "").lower() not in ctx.settings.subscriptions:
        return refuse(state, f"subscription {state.subscription_id} is not one Lifeboat serves")
    vm = ctx.compute.get_vm(state.vm_id)
    if vm is None:
        return abort(state, now, "the source VM no longer exists")
    if vm.resource_group in ctx.settings.drill_groups:
        return refuse(state, f"{vm.name} is in drill resource group {vm.resource_group}")
    found = protected_item_of(ctx.backup, vm)
    if isinstance(found, NoRestorePoint):
        return abort(state, now, found.reason)
    _vault, current = found
    if not same_id(current.id, item.id):
        return refuse(state, f"{item.id} is not {vm.name}'s backup item ({current.id})")
    return None


def _restore_started(ctx: Context, state: DrillState, r: DrillRestore) -> str | None:
    """The restore this drill already triggered (a redelivery after the POST): a restore job of
    the VM in the vault since the point was chosen."""
    assert r.vault_id is not None
    since = state.chosen_at or state.started_at
    vault = _vault(r.vault_id, state.location)
    name = (state.vm_name or "").lower()
    for job in ctx.backup.list_restore_jobs(vault, since, ctx.now()):
        if job.entity_name.lower() == name and job.operation.lower() == "restore":
            return job.id.rsplit("/", 1)[-1]
    return None


def _request(state: DrillState, r: DrillRestore) -> RestoreRequest:
    assert r.point_id is not None
    assert r.staging_account_id is not None
    assert state.vm_id
    return RestoreRequest(
        point_id=r.point_id,
        source_vm_id=state.vm_id,
        region=state.location,
        target_group_id=(
            f"/subscriptions/{state.drill_subscription}/resourceGroups/{state.drill_group}"
        ),
        staging_account_id=r.staging_account_id,
    )


def _restored_disks(
    ctx: Context, state: DrillState, vm: Vm, job_start: datetime | None
) -> tuple[list[DrillSnapshot], list[str]]:
    """Each disk of the VM and the disk the restore made of it, tagged as this drill's now."""
    from shared.drills.steps import tags_of

    r = state.restore
    assert r is not None
    assert r.point_time is not None
    candidates = [
        d
        for d in ctx.drills.list_drill_resources(state.drill_subscription, state.drill_group)
        if d.kind.lower() == "disks"
        and (tag_value(d.tags, Tag.DRILL) or state.drill_id).strip().lower() == state.drill_id
        and (job_start is None or d.time_created is None or d.time_created >= job_start)
    ]
    found: list[DrillSnapshot] = []
    missing: list[str] = []
    for attachment in sorted(vm.attachments, key=lambda a: -1 if a.lun is None else a.lun):
        if attachment.disk_id is None:
            continue
        source_name = attachment.disk_id.rsplit("/", 1)[-1]
        disk = restored_disk_of(source_name, candidates)
        if disk is None:
            missing.append(attachment.disk_id)
            continue
        if (tag_value(disk.tags, Tag.DRILL) or "").strip().lower() != state.drill_id:
            ctx.compute.merge_tags(disk.id, tags_of(state))
        found.append(
            DrillSnapshot(
                diskId=attachment.disk_id,
                snapshotId=disk.id,
                lun=attachment.lun,
                timeCreated=r.point_time,
            )
        )
    return found, missing


def restored_disk_of(source_name: str, disks: list[DrillResource]) -> DrillResource | None:
    """The newest disk named after `source_name` with a restore's date and time appended."""
    prefix = source_name.lower()[:60]
    matching = [
        d
        for d in disks
        if d.name.lower().startswith(prefix)
        and RESTORED_SUFFIX.match(d.name.lower()[len(source_name) :] or "")
    ]
    matching.sort(key=lambda d: (d.time_created is not None, d.time_created, d.name))
    return matching[-1] if matching else None


def _item(r: DrillRestore, state: DrillState) -> ProtectedItem | None:
    """The backup item the message names, if its id lies in the vault it names."""
    assert r.item_id is not None
    assert r.vault_id is not None
    head, sep, rest = r.item_id.partition("/backupFabrics/Azure/protectionContainers/")
    if not sep or not same_id(head, r.vault_id):
        return None
    container, sep, name = rest.partition("/protectedItems/")
    if not sep or not container or not name or "/" in name:
        return None
    return ProtectedItem(
        id=r.item_id,
        vault_id=r.vault_id,
        vm_id=state.vm_id or "",
        container_name=container,
        name=name,
        protection_state=None,
    )


def _vault(vault_id: str, location: str) -> Vault:
    parts = vault_id.strip("/").split("/")
    return Vault(vault_id, parts[7], parts[1].lower(), parts[3], location)


def _point_label(r: DrillRestore) -> str:
    name = (r.point_id or "").rsplit("/", 1)[-1]
    return f"{name} ({format_time(r.point_time)})" if r.point_time else name


def restore_details(state: DrillState) -> dict[str, Any]:
    """The outcome row's recovery-point fields: the point, the restore job, the two statuses."""
    r = state.restore or DrillRestore()
    job_seconds = None
    if r.job_started is not None and r.job_ended is not None:
        job_seconds = round((r.job_ended - r.job_started).total_seconds())
    rpo_target = r.rpo_target_seconds
    rpo = recovery_point_rpo(state)
    restore_status = r.job_status or ("not started" if r.operation_id is None else "triggered")
    if state.ready_at is not None or state.checks:
        validation = "passed" if state.checks and all(state.checks.values()) else "failed"
    else:
        validation = "not run"
    return {
        "pointId": r.point_id,
        "pointTime": format_time(r.point_time) if r.point_time else None,
        "pointType": r.point_type,
        "pointTier": _tier(r.point_tiers),
        "pointChoice": r.choose,
        "pointWhy": r.why,
        "vaultId": r.vault_id,
        "restoreJobId": r.job_id,
        "restoreStatus": restore_status,
        "restoreError": r.job_error,
        "restoreJobSeconds": job_seconds,
        "validationStatus": validation,
        "rpoTargetSeconds": rpo_target,
        "rpoWithinTarget": None if rpo is None or rpo_target is None else rpo <= rpo_target,
        "stagingAccountId": r.staging_account_id,
        # What the job left in the staging account, until the report step removes it.
        "stagingLeft": r.staging_blobs,
    }


def _tier(tiers: list[str]) -> str | None:
    """The tier a restore reads from: the snapshot tier (instant restore) when the point has it."""
    if "snapshot" in tiers:
        return "snapshot"
    return "vault" if "vault" in tiers else None


def recovery_point_rpo(state: DrillState) -> int | None:
    """RPO of a recovery-point drill: the drill's start minus the point's time (never below 0)."""
    r = state.restore
    if r is None or r.point_time is None:
        return None
    return max(0, round((state.started_at - r.point_time).total_seconds()))


__all__ = [
    "RecoveryPoints",
    "choose_point",
    "remove_staging",
    "restore_details",
    "restore_step",
    "restored_disk_of",
]
