"""Microsoft.Compute reads and snapshots: VMs and their instance views, disks, snapshots and the
status of Compute's long-running operations. Disk and VM writes for drills are `provisioning.py`.

Platform rules on snapshot creates (the incremental limit, the burst window, pending background
copies of Premium SSD v2 / Ultra disks) are enforced here; state is `model.Cloud`.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from emulator.arm_core import (
    Arm,
    body_tags,
    check_same_location,
    check_tags,
    copy_source,
    merge_tag,
    query_string,
)
from emulator.clock import format_instant
from emulator.errors import ArmError, resource_not_found
from emulator.ids import compute_id, key, new_uuid, stable_uuid
from emulator.model import Snapshot, VirtualMachine, copy_place, snapshot_quota_key
from emulator.routing import GROUP, SUBSCRIPTION, ArmRequest, Reply, Route, route
from emulator.untidy import untidy

_CP = r"/providers/microsoft\.compute"


def refuse_over(count: int, limit: int, code: str, message: str) -> None:
    """Compute's 409 once `count` has reached `limit`."""
    if count >= limit:
        raise ArmError(409, code, message)


class Compute:
    def __init__(self, arm: Arm) -> None:
        self.arm = arm
        self.cloud = arm.cloud
        self.clock = arm.clock
        self.behaviour = arm.behaviour
        self.throttler = arm.throttler
        self.events = arm.events
        self.creations: dict[str, list[datetime]] = {}  # incremental creates per disk (burst rule)

    def routes(self) -> list[Route]:
        return ROUTES

    def shaped(self, reply: Reply) -> Reply:
        """List and GET bodies in the untidy forms Azure writes, when the setting asks for them."""
        if self.behaviour.untidy_shapes:
            reply.body = untidy(reply.body)
        return reply

    # ---- virtual machines ----------------------------------------------------------------
    def list_vms(self, req: ArmRequest, args: tuple[str, ...]) -> Reply:
        with self.cloud.lock:
            now = self.clock.now()
            self.cloud.purge_deleted(now)
            vms = self.arm.members(self.cloud.vms, args)
            if req.query.get("statusOnly", "").lower() == "true":

                def with_status(vm: VirtualMachine) -> dict[str, Any]:
                    body = self.cloud.vm_json(vm, now)
                    body["properties"]["instanceView"] = self.cloud.instance_view_json(vm, now)
                    return body

                return self.shaped(self.arm.page(req, vms, with_status))
            return self.shaped(self.arm.page(req, vms, lambda vm: self.cloud.vm_json(vm, now)))

    def find_vm(self, args: tuple[str, ...]) -> VirtualMachine:
        self.arm.need_group(args[0], args[1])
        self.cloud.purge_deleted(self.clock.now())
        vm = self.cloud.vms.get(key(compute_id(args[0], args[1], "virtualMachines", args[2])))
        if vm is None:
            raise resource_not_found("Microsoft.Compute/virtualMachines", args[2], args[1])
        return vm

    def get_vm(self, req: ArmRequest, args: tuple[str, ...]) -> Reply:
        with self.cloud.lock:
            vm = self.find_vm(args)
            req.throttle_headers.update(
                self.throttler.compute_check(vm.subscription, vm.location, "vm-reads")
            )
            now = self.clock.now()
            body = self.cloud.vm_json(vm, now)
            if "instanceview" in req.query.get("$expand", "").lower():
                body["properties"]["instanceView"] = self.cloud.instance_view_json(vm, now)
            return self.shaped(Reply(200, body))

    def vm_instance_view(self, req: ArmRequest, args: tuple[str, ...]) -> Reply:
        with self.cloud.lock:
            vm = self.find_vm(args)
            req.throttle_headers.update(
                self.throttler.compute_check(vm.subscription, vm.location, "vm-reads")
            )
            return self.shaped(Reply(200, self.cloud.instance_view_json(vm, self.clock.now())))

    def patch_vm(self, req: ArmRequest, args: tuple[str, ...]) -> Reply:
        """VM update (tags only): synchronous 200 as recorded; Event Grid sees a VM write."""
        body = req.body if isinstance(req.body, dict) else {}
        unsupported = set(body) - {"tags"}
        if unsupported:
            raise ArmError(
                400,
                "InvalidParameter",
                f"The stand-in updates only tags on VMs, not {sorted(unsupported)}.",
            )
        with self.cloud.lock:
            vm = self.find_vm(args)
            self.arm.authorize(req, "Microsoft.Compute/virtualMachines/write", vm.id)
            self.arm.check_locks(vm.id, "write")
            tags = body.get("tags")
            if tags is not None:
                check_tags(tags)
                vm.tags = {}
                for k, v in tags.items():
                    merge_tag(vm.tags, str(k), str(v))
            req.throttle_headers.update(
                self.throttler.compute_check(vm.subscription, vm.location, "vm-writes")
            )
            self.events.resource_write(
                vm.id,
                "Microsoft.Compute/virtualMachines/write",
                req.caller.object_id,
                req.correlation_id,
                http_method="PATCH",
                url=f"{req.base_url}{req.path}",
            )
            return Reply(200, self.cloud.vm_json(vm, self.clock.now()))

    # ---- disks ---------------------------------------------------------------------------
    def list_stored(
        self, req: ArmRequest, args: tuple[str, ...], kind: str, purge: Callable[[datetime], None]
    ) -> Reply:
        """A list of disks or snapshots (`kind`) after `purge` has dropped what is gone."""
        with self.cloud.lock:
            now = self.clock.now()
            purge(now)
            items = self.arm.members(getattr(self.cloud, kind), args)
            return self.shaped(self.arm.page(req, items, lambda r: r.to_json(now)))

    def answer_read(
        self, req: ArmRequest, args: tuple[str, ...], kind: str, found: Any, now: datetime
    ) -> Reply:
        """A disk or snapshot GET: 404 when not `found`, else counted as a disk read."""
        if found is None:
            raise resource_not_found(f"Microsoft.Compute/{kind}", args[2], args[1])
        req.throttle_headers.update(
            self.throttler.compute_check(found.subscription, found.location, "disk-reads")
        )
        return self.shaped(Reply(200, found.to_json(now)))

    def list_disks(self, req: ArmRequest, args: tuple[str, ...]) -> Reply:
        return self.list_stored(req, args, "disks", self.cloud.purge_deleted)

    def get_disk(self, req: ArmRequest, args: tuple[str, ...]) -> Reply:
        self.arm.need_group(args[0], args[1])
        now = self.clock.now()
        with self.cloud.lock:
            self.cloud.purge_deleted(now)
            disk = self.cloud.disks.get(key(compute_id(args[0], args[1], "disks", args[2])))
            return self.answer_read(req, args, "disks", disk, now)

    # ---- snapshots -----------------------------------------------------------------------
    def list_snapshots(self, req: ArmRequest, args: tuple[str, ...]) -> Reply:
        return self.list_stored(req, args, "snapshots", self.cloud.purge)

    def get_snapshot(self, req: ArmRequest, args: tuple[str, ...]) -> Reply:
        now = self.clock.now()
        return self.answer_read(req, args, "snapshots", self.snapshot_at(args, now), now)

    def snapshot_at(self, args: tuple[str, ...], now: datetime) -> Snapshot | None:
        """The snapshot a path names, unless deleted (the group must exist)."""
        self.arm.need_group(args[0], args[1])
        return self.cloud.live_snapshot(
            key(compute_id(args[0], args[1], "snapshots", args[2])), now
        )

    def put_snapshot(self, req: ArmRequest, args: tuple[str, ...]) -> Reply:
        sub_id, _, name = args
        group, body, props, location = self.arm.put_basics(req, args, "snapshots")
        creation = props.get("creationData") or {}
        source = copy_source(creation, "snapshots", "use Copy.", uri_too=True)
        tags = body_tags(body)
        snap_id = compute_id(sub_id, group.name, "snapshots", name)
        now = self.clock.now()
        with self.cloud.lock:
            disk = self.cloud.disks.get(key(str(source)))
            if disk is None:
                raise ArmError(
                    404,
                    "NotFound",
                    f"Resource {source} is not found.",
                )
            self.arm.check_write(req, "Microsoft.Compute/snapshots", snap_id, location, body, tags)
            linked = "Microsoft.Compute/disks/beginGetAccess/action"
            self.arm.linked_check(
                req, linked, disk.id, "Microsoft.Compute/snapshots/write", snap_id
            )
            if disk.disk_encryption_set_id:
                req.actions.append("Microsoft.Compute/diskEncryptionSets/read")
            existing = self.cloud.live_snapshot(key(snap_id), now)
            incremental = bool(props.get("incremental", False))
            if existing is not None:
                if key(existing.source_id) != key(disk.id) or existing.incremental != incremental:
                    changed = (
                        "sourceResourceId"
                        if key(existing.source_id) != key(disk.id)
                        else "incremental"
                    )
                    raise ArmError(
                        409,
                        "PropertyChangeNotAllowed",
                        f"Changing property '{changed}' is not allowed.",
                        target=changed,
                    )
                # PUT replaces tags; Azure Policy modify rules add theirs again.
                self.arm.add_policy_tags("Microsoft.Compute/snapshots", snap_id, tags)
                existing.tags = dict(tags)
                # Still copying: the repeated PUT finishes when the first one does.
                return self.arm.copy_accepted(
                    req,
                    sub_id,
                    existing.location,
                    now,
                    snap_id,
                    existing.ready_at,
                    existing.to_json(now, in_flight=True),
                )
            check_same_location(
                location,
                disk.location,
                f"The snapshot location '{location}' must match the source disk's location "
                f"'{disk.location}'.",
                "location",
            )
            if disk.ephemeral:
                raise ArmError(
                    409,
                    "OperationNotAllowed",
                    f"Snapshots of ephemeral OS disk '{disk.name}' are not supported.",
                )
            if not disk.instant_access and not incremental:
                raise ArmError(
                    400,
                    "BadRequest",
                    f"Only incremental snapshots are supported for disks of SKU {disk.sku}.",
                )
            family = [
                s
                for s in self.cloud.snapshots_of(disk.id)
                if s.incremental and s.deleting_at is None
            ]
            rules = self.behaviour
            window = timedelta(seconds=rules.burst_window_seconds)
            recent = [t for t in self.creations.get(key(disk.id), []) if now - t < window]
            if incremental:
                # The code is REFERENCE.md's; no published message text was found (README).
                refuse_over(
                    len(family),
                    rules.incremental_limit,
                    "SnapshotsLimitReached",
                    f"Disk '{disk.id}' already has {len(family)} incremental snapshots: a total "
                    f"of {rules.incremental_limit} incremental snapshots can be created for a "
                    "single disk. Delete older snapshots and try again.",
                )
                # No code is published for this rule: OperationNotAllowed is our reading.
                refuse_over(
                    len(recent),
                    rules.burst_limit,
                    "OperationNotAllowed",
                    f"Up to {rules.burst_limit} incremental snapshots per disk can be created "
                    f"every {int(rules.burst_window_seconds / 60)} minutes; disk '{disk.id}' "
                    "reached that limit. Retry later.",
                )
            if not disk.instant_access:
                refuse_over(
                    len([s for s in family if s.completion_percent(now) < 100]),
                    rules.pending_limit,
                    "OperationNotAllowed",
                    f"At most {rules.pending_limit} snapshots of disk '{disk.id}' can be pending "
                    "background copy at a time.",
                )
            sku = str(
                (body.get("sku") or {}).get(
                    "name", "Standard_ZRS" if incremental else "Standard_LRS"
                )
            )
            self.check_region_limit(sub_id, disk.location, sku, now)
            req.throttle_headers.update(
                self.throttler.compute_check(
                    sub_id, disk.location, self.throttler.snapshot_family(incremental)
                )
            )
            stuck = req.stuck
            ready_at = None if stuck else now + timedelta(seconds=self.behaviour.operation_seconds)
            hydrated = (
                None
                if ready_at is None
                else ready_at
                + timedelta(seconds=0 if disk.instant_access else self.behaviour.hydration_seconds)
            )
            self.arm.add_policy_tags("Microsoft.Compute/snapshots", snap_id, tags)
            snap = Snapshot(
                **copy_place(sub_id, group.name, name, disk),
                sku=sku,
                size_gb=disk.size_gb,
                incremental=incremental,
                source_id=disk.id,
                source_unique_id=disk.unique_id,
                unique_id=new_uuid(),
                time_created=now,
                ready_at=ready_at,
                create_option="Copy",
                source_uri=creation.get("sourceUri"),
                family_id=stable_family(disk.id) if incremental else None,
                os_type=disk.os_type,
                hyper_v_generation=disk.hyper_v_generation,
                encryption_type=disk.encryption_type,
                network_access_policy=str(props.get("networkAccessPolicy", "AllowAll")),
                public_network_access=str(props.get("publicNetworkAccess", "Enabled")),
                tags=dict(tags),
                instant_access=disk.instant_access,
                hydrated_at=hydrated,
                security_type=disk.security_type,
                plan=disk.plan,
            )
            self.cloud.add_snapshot(key(snap_id), snap)
            self.creations.setdefault(key(disk.id), []).append(now)
            self.creations[key(disk.id)] = [
                t for t in self.creations[key(disk.id)] if now - t < window
            ]
            return self.arm.copy_accepted(
                req,
                sub_id,
                disk.location,
                now,
                snap_id,
                ready_at,
                snap.to_json(now, in_flight=True),
            )

    def check_region_limit(self, subscription: str, region: str, sku: str, now: datetime) -> None:
        """75,000 snapshots per subscription and region, ZRS and LRS counted apart."""
        limit = self.behaviour.region_snapshot_limit
        bucket = snapshot_quota_key(subscription, region, sku)
        if self.cloud.snapshot_counts[bucket] < limit:
            return
        self.cloud.purge(now)  # finished deletes free their place
        count = self.cloud.snapshot_counts[bucket]
        if count < limit:
            return
        # No code is published for this limit: OperationNotAllowed is what Compute answers for
        # its other regional quotas (README, "Limits").
        raise ArmError(
            409,
            "OperationNotAllowed",
            f"Operation could not be completed as it results in exceeding approved "
            f"{bucket[2]} snapshots quota. Additional details - Location: {region}, "
            f"Current Limit: {limit}, Current Usage: {count}, Additional Required: 1.",
        )

    def patch_snapshot(self, req: ArmRequest, args: tuple[str, ...]) -> Reply:
        sub_id, group_name, name = args
        now = self.clock.now()
        with self.cloud.lock:
            snap = self.snapshot_at(args, now)
            if snap is None:
                raise resource_not_found("Microsoft.Compute/snapshots", name, group_name)
            self.arm.authorize(req, "Microsoft.Compute/snapshots/write", snap.id)
            self.arm.check_locks(snap.id, "write")
            body = req.body if isinstance(req.body, dict) else {}
            if "tags" in body:
                check_tags(body["tags"] or {})
                snap.tags = dict(body["tags"] or {})
            props = body.get("properties") or {}
            if "networkAccessPolicy" in props:
                snap.network_access_policy = str(props["networkAccessPolicy"])
            if "publicNetworkAccess" in props:
                snap.public_network_access = str(props["publicNetworkAccess"])
            op = self.arm.new_operation(
                sub_id, snap.location, "DiskOperations", now, snap.id, "PATCH"
            )
            op.end = now
            return Reply(202, snap.to_json(now), self.arm.lro_headers(req, op, retry_after=True))

    def delete_snapshot(self, req: ArmRequest, args: tuple[str, ...]) -> Reply:
        sub_id = args[0]
        now = self.clock.now()
        with self.cloud.lock:
            snap = self.snapshot_at(args, now)
            if snap is None:
                return Reply(204)
            self.arm.check_delete(req, "Microsoft.Compute/snapshots", snap.id)
            req.throttle_headers.update(
                self.throttler.compute_check(sub_id, snap.location, "deletes")
            )
            stuck = req.stuck
            end = None if stuck else now + timedelta(seconds=self.behaviour.operation_seconds)
            if snap.deleting_at is None:
                snap.deleting_at = end or datetime.max.replace(tzinfo=now.tzinfo)
            op = self.arm.new_operation(
                sub_id, snap.location, "DiskOperations", now, snap.id, "DELETE"
            )
            op.end = end
            return Reply(202, None, self.arm.lro_headers(req, op, retry_after=False))

    def get_operation(self, req: ArmRequest, args: tuple[str, ...]) -> Reply:
        sub_id, location, kind, op_id = args
        op = self.cloud.operations.get(op_id.lower()) or self.cloud.operations.get(op_id)
        if op is None or op.subscription != sub_id.lower() or op.kind.lower() != kind.lower():
            raise ArmError(404, "NotFound", f"The operation '{op_id}' was not found.")
        policy = "disk-operations" if op.kind == "DiskOperations" else "vm-operations"
        req.throttle_headers.update(self.throttler.compute_check(op.subscription, location, policy))
        now = self.clock.now()
        monitor = req.query.get("monitor", "").lower() == "true"
        start = format_instant(op.start)
        # As recorded: polls of a create carry Retry-After; polls of a delete do not.
        wait: dict[str, str] = {}
        if op.method != "DELETE" or op.kind == "operations":
            wait["Retry-After"] = self.behaviour.scaled(self.behaviour.lro_poll_retry_after)
        if not op.finished(now):
            if monitor:
                location = f"{req.base_url}{req.path}?" + query_string(req.query)
                return Reply(202, None, {"Location": location, **wait})
            return Reply(200, {"startTime": start, "status": "InProgress", "name": op.id}, wait)
        assert op.end is not None
        output = None
        if op.method in ("PUT", "PATCH") and op.resource_key and op.kind == "DiskOperations":
            snap = self.cloud.snapshots.get(op.resource_key)
            disk = self.cloud.disks.get(op.resource_key)
            if snap is not None:
                output = snap.to_json(max(now, op.end))
            elif disk is not None:
                output = disk.to_json(max(now, op.end))
        if monitor:
            return Reply(200, output)  # as recorded: 200, and no body when there is no output
        body: dict[str, Any] = {
            "startTime": start,
            "endTime": format_instant(op.end),
            "status": "Succeeded",
        }
        if output is not None:
            body["properties"] = {"output": output}
        body["name"] = op.id
        return Reply(200, body)


def stable_family(disk_id: str) -> str:
    return stable_uuid("family", disk_id)


_SNAP = GROUP + _CP + r"/snapshots/([^/]+)"
_VM = GROUP + _CP + r"/virtualmachines/([^/]+)"
ROUTES: list[Route] = [
    route(
        "GET",
        SUBSCRIPTION + _CP + r"/virtualmachines",
        "Microsoft.Compute/virtualMachines/read",
        "list_vms",
    ),
    route(
        "GET",
        GROUP + _CP + r"/virtualmachines",
        "Microsoft.Compute/virtualMachines/read",
        "list_vms",
    ),
    route("GET", _VM, "Microsoft.Compute/virtualMachines/read", "get_vm"),
    route(
        "GET",
        _VM + r"/instanceview",
        "Microsoft.Compute/virtualMachines/instanceView/read",
        "vm_instance_view",
    ),
    route("PATCH", _VM, "Microsoft.Compute/virtualMachines/write", "patch_vm"),
    route("GET", SUBSCRIPTION + _CP + r"/disks", "Microsoft.Compute/disks/read", "list_disks"),
    route("GET", GROUP + _CP + r"/disks", "Microsoft.Compute/disks/read", "list_disks"),
    route("GET", GROUP + _CP + r"/disks/([^/]+)", "Microsoft.Compute/disks/read", "get_disk"),
    route(
        "GET",
        SUBSCRIPTION + _CP + r"/snapshots",
        "Microsoft.Compute/snapshots/read",
        "list_snapshots",
    ),
    route("GET", GROUP + _CP + r"/snapshots", "Microsoft.Compute/snapshots/read", "list_snapshots"),
    route("GET", _SNAP, "Microsoft.Compute/snapshots/read", "get_snapshot"),
    route("PUT", _SNAP, "Microsoft.Compute/snapshots/write", "put_snapshot"),
    route("PATCH", _SNAP, "Microsoft.Compute/snapshots/write", "patch_snapshot"),
    route("DELETE", _SNAP, "Microsoft.Compute/snapshots/delete", "delete_snapshot"),
    route(
        "GET",
        SUBSCRIPTION + _CP + r"/locations/([^/]+)/(diskoperations|operations)/([^/]+)",
        "Microsoft.Compute/locations/{kind}/read",
        "get_operation",
    ),
]
