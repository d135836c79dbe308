"""ARM for the slice Lifeboat uses: groups, VMs, disks, snapshots, operations and the Tags API.

Handlers take an `ArmRequest` and return a `Reply`; refusals raise `ArmError`. Paths match
case-insensitively, as ARM's do, and answers keep the casing resources were created with.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote

from emulator.clock import Clock, format_instant
from emulator.config import Behaviour
from emulator.errors import ArmError, group_not_found, resource_not_found, subscription_not_found
from emulator.eventgrid import EventGrid
from emulator.identity import Caller
from emulator.model import (
    Cloud,
    Operation,
    PolicyRule,
    ResourceGroup,
    Snapshot,
    VirtualMachine,
    compute_id,
    key,
    new_uuid,
)
from emulator.throttling import Throttler

NAME_RULE = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9_.-]{0,78}[A-Za-z0-9_])?$")
RESERVED_TAG_PREFIXES = ("microsoft", "azure", "windows")
MAX_TAGS, MAX_TAG_KEY, MAX_TAG_VALUE = 50, 512, 256


@dataclass
class ArmRequest:
    method: str
    path: str
    query: dict[str, str]
    body: Any
    caller: Caller
    base_url: str
    correlation_id: str
    actions: list[str] = field(default_factory=list)
    throttle_headers: dict[str, str] = field(default_factory=dict)
    stuck: bool = False  # a fault rule: the operation this request starts never finishes


@dataclass
class Reply:
    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


Handler = Callable[["Arm", ArmRequest, tuple[str, ...]], Reply]

_SUB = r"^/subscriptions/([^/]+)"
_RG = _SUB + r"/resourcegroups/([^/]+)"
_CP = r"/providers/microsoft\.compute"


@dataclass(frozen=True)
class Route:
    method: str
    pattern: re.Pattern[str]
    operation: str
    handler: Handler


def _route(method: str, pattern: str, operation: str, handler: Handler) -> Route:
    return Route(method, re.compile(pattern + "$", re.IGNORECASE), operation, handler)


def family_of(method: str) -> str:
    if method in ("GET", "HEAD"):
        return "reads"
    if method == "DELETE":
        return "deletes"
    return "writes"


class Arm:
    def __init__(
        self,
        cloud: Cloud,
        clock: Clock,
        behaviour: Behaviour,
        throttler: Throttler,
        events: EventGrid,
    ) -> None:
        self.cloud = cloud
        self.clock = clock
        self.behaviour = behaviour
        self.throttler = throttler
        self.events = events
        self.creations: dict[str, list[datetime]] = {}

    # ---- routing -------------------------------------------------------------------------
    def resolve(self, method: str, path: str) -> tuple[Route, tuple[str, ...]] | None:
        for route in ROUTES:
            if route.method != method:
                continue
            match = route.pattern.match(path.rstrip("/"))
            if match:
                return route, match.groups()
        return None

    def subscription_of(self, path: str) -> str | None:
        match = re.match(r"^/subscriptions/([^/]+)", path, re.IGNORECASE)
        return match.group(1).lower() if match else None

    def check_subscription(self, subscription: str) -> None:
        if subscription.lower() not in self.cloud.subscriptions:
            raise subscription_not_found(subscription)

    def need_group(self, subscription: str, group: str) -> ResourceGroup:
        rg = self.cloud.group(subscription, group)
        if rg is None:
            raise group_not_found(group)
        return rg

    # ---- lists ---------------------------------------------------------------------------
    def page(
        self, req: ArmRequest, items: list[Any], render: Callable[[Any], dict[str, Any]]
    ) -> Reply:
        """One page of a list, rendering only that page; `nextLink` carries a $skiptoken."""
        size = self.behaviour.page_size
        try:
            start = int(req.query.get("$skiptoken", "0"))
        except ValueError:
            raise ArmError(400, "InvalidSkipToken", "The skip token is invalid.") from None
        body: dict[str, Any] = {"value": [render(item) for item in items[start : start + size]]}
        if start + size < len(items):
            # The link carries the query it continues (statusOnly, $filter, ...), as ARM's do.
            kept = {k: v for k, v in req.query.items() if k != "$skiptoken"}
            kept["$skiptoken"] = str(start + size)
            body["nextLink"] = f"{req.base_url}{req.path}?{_qs(kept)}"
        return Reply(200, body)

    # ---- resource groups -----------------------------------------------------------------
    def list_groups(self, req: ArmRequest, args: tuple[str, ...]) -> Reply:
        sub = self.cloud.subscriptions[args[0].lower()]
        return self.page(req, list(sub.groups.values()), lambda g: g.to_json())

    def get_group(self, req: ArmRequest, args: tuple[str, ...]) -> Reply:
        return Reply(200, self.need_group(args[0], args[1]).to_json())

    def get_subscription(self, req: ArmRequest, args: tuple[str, ...]) -> Reply:
        return Reply(200, self.cloud.subscriptions[args[0].lower()].to_json())

    # ---- virtual machines ----------------------------------------------------------------
    def list_vms(self, req: ArmRequest, args: tuple[str, ...]) -> Reply:
        sub = args[0].lower()
        group = args[1].lower() if len(args) > 1 else None
        if group is not None:
            self.need_group(sub, group)
        with self.cloud.lock:
            now = self.clock.now()
            self.cloud.purge_deleted(now)
            vms = [
                vm
                for vm in self.cloud.vms.values()
                if vm.subscription == sub and (group is None or vm.group.lower() == group)
            ]
            if req.query.get("statusOnly", "").lower() == "true":

                def with_status(vm: VirtualMachine) -> dict[str, Any]:
                    body = self.cloud.vm_json(vm, now)
                    body["properties"]["instanceView"] = self.cloud.instance_view_json(vm, now)
                    return body

                return self.page(req, vms, with_status)
            return self.page(req, vms, lambda vm: self.cloud.vm_json(vm, now))

    def find_vm(self, args: tuple[str, ...]) -> VirtualMachine:
        self.need_group(args[0], args[1])
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
            return Reply(200, body)

    def vm_instance_view(self, req: ArmRequest, args: tuple[str, ...]) -> Reply:
        with self.cloud.lock:
            vm = self.find_vm(args)
            req.throttle_headers.update(
                self.throttler.compute_check(vm.subscription, vm.location, "vm-reads")
            )
            return Reply(200, self.cloud.instance_view_json(vm, self.clock.now()))

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
            self.authorize(req, "Microsoft.Compute/virtualMachines/write", vm.id)
            self.check_locks(vm.id, "write")
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
    def list_disks(self, req: ArmRequest, args: tuple[str, ...]) -> Reply:
        sub = args[0].lower()
        group = args[1].lower() if len(args) > 1 else None
        if group is not None:
            self.need_group(sub, group)
        with self.cloud.lock:
            now = self.clock.now()
            self.cloud.purge_deleted(now)
            disks = [
                d
                for d in self.cloud.disks.values()
                if d.subscription == sub and (group is None or d.group.lower() == group)
            ]
            return self.page(req, disks, lambda d: d.to_json(now))

    def get_disk(self, req: ArmRequest, args: tuple[str, ...]) -> Reply:
        self.need_group(args[0], args[1])
        now = self.clock.now()
        with self.cloud.lock:
            self.cloud.purge_deleted(now)
            disk = self.cloud.disks.get(key(compute_id(args[0], args[1], "disks", args[2])))
            if disk is None:
                raise resource_not_found("Microsoft.Compute/disks", args[2], args[1])
            req.throttle_headers.update(
                self.throttler.compute_check(disk.subscription, disk.location, "disk-reads")
            )
            return Reply(200, disk.to_json(now))

    # ---- snapshots -----------------------------------------------------------------------
    def list_snapshots(self, req: ArmRequest, args: tuple[str, ...]) -> Reply:
        sub = args[0].lower()
        group = args[1].lower() if len(args) > 1 else None
        if group is not None:
            self.need_group(sub, group)
        now = self.clock.now()
        with self.cloud.lock:
            self.cloud.purge(now)
            snaps = [
                s
                for s in self.cloud.snapshots.values()
                if s.subscription == sub and (group is None or s.group.lower() == group)
            ]
            return self.page(req, snaps, lambda s: s.to_json(now))

    def get_snapshot(self, req: ArmRequest, args: tuple[str, ...]) -> Reply:
        self.need_group(args[0], args[1])
        now = self.clock.now()
        snap = self.cloud.live_snapshot(
            key(compute_id(args[0], args[1], "snapshots", args[2])), now
        )
        if snap is None:
            raise resource_not_found("Microsoft.Compute/snapshots", args[2], args[1])
        req.throttle_headers.update(
            self.throttler.compute_check(snap.subscription, snap.location, "disk-reads")
        )
        return Reply(200, snap.to_json(now))

    def lro_headers(
        self, req: ArmRequest, op: Operation, *, retry_after: bool, location: bool = True
    ) -> dict[str, str]:
        api = req.query.get("api-version", "")
        url = (
            f"{req.base_url}/subscriptions/{op.subscription}/providers/Microsoft.Compute/"
            f"locations/{op.location}/{op.kind}/{op.id}?p={_PARTITION}&api-version={api}"
        )
        headers = {"Azure-AsyncOperation": url}
        if location:
            headers["Location"] = url.replace("&api-version=", "&monitor=true&api-version=")
        if retry_after:
            headers["Retry-After"] = self.behaviour.scaled(self.behaviour.lro_initial_retry_after)
        return headers

    def put_snapshot(self, req: ArmRequest, args: tuple[str, ...]) -> Reply:
        sub_id, group_name, name = args
        check_name(name, "snapshots")
        group = self.need_group(sub_id, group_name)
        body = req.body if isinstance(req.body, dict) else {}
        props = body.get("properties") or {}
        creation = props.get("creationData") or {}
        location = str(body.get("location", "")).lower().replace(" ", "")
        if not location:
            raise ArmError(
                400, "LocationRequired", "The location property is required for this definition."
            )
        option = str(creation.get("createOption", ""))
        if option.lower() != "copy":
            raise ArmError(
                400,
                "InvalidParameter",
                f"Create option '{option}' is not supported by the stand-in for snapshots; "
                "use Copy.",
                target="creationData.createOption",
            )
        source = creation.get("sourceResourceId") or creation.get("sourceUri")
        if not source:
            raise ArmError(
                400,
                "InvalidParameter",
                "Required parameter 'sourceResourceId' is missing (null).",
                target="sourceResourceId",
            )
        tags = body.get("tags") or {}
        check_tags(tags)
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
            self.authorize(req, "Microsoft.Compute/snapshots/write", snap_id)
            self.check_locks(snap_id, "write")
            self.check_policies(req, "Microsoft.Compute/snapshots", snap_id, location, body, tags)
            linked = "Microsoft.Compute/disks/beginGetAccess/action"
            req.actions.append(linked)
            for deny in self.cloud.deny_assignments:
                if in_scope(disk.id, deny.scope) and deny.denies(linked, req.caller.object_id):
                    raise ArmError(
                        403,
                        "LinkedAuthorizationFailed",
                        f"The client '{req.caller.object_id}' with object id "
                        f"'{req.caller.object_id}' has permission to perform action "
                        f"'Microsoft.Compute/snapshots/write' on scope "
                        f"'{snap_id}'; however, it does not have permission to perform action(s) "
                        f"'{linked}' on the linked scope(s) '{disk.id}' (respectively) or the "
                        "linked scope(s) are invalid.",
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
                for rule in self.matching_policies(
                    "Microsoft.Compute/snapshots", snap_id, "modify"
                ):
                    for k, v in rule.add_tags.items():
                        merge_tag(tags, k, v)
                existing.tags = dict(tags)
                op = self.new_operation(
                    sub_id, existing.location, "DiskOperations", now, snap_id, "PUT"
                )
                # Still copying: the repeated PUT finishes when the first one does.
                op.end = (
                    existing.ready_at if existing.ready_at is None else max(now, existing.ready_at)
                )
                reply_body = existing.to_json(now, in_flight=True)
                return Reply(202, reply_body, self.lro_headers(req, op, retry_after=True))
            if location != disk.location.lower().replace(" ", ""):
                raise ArmError(
                    400,
                    "InvalidParameter",
                    f"The snapshot location '{location}' must match the source disk's location "
                    f"'{disk.location}'.",
                    target="location",
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
            if incremental and len(family) >= self.behaviour.incremental_limit:
                raise ArmError(
                    409,
                    "SnapshotsLimitReached",
                    "The maximum number of incremental snapshots "
                    f"({self.behaviour.incremental_limit}) for disk '{disk.id}' has been reached. "
                    "Delete older snapshots and try again.",
                )
            window = timedelta(seconds=self.behaviour.burst_window_seconds)
            recent = [t for t in self.creations.get(key(disk.id), []) if now - t < window]
            if incremental and len(recent) >= self.behaviour.burst_limit:
                raise ArmError(
                    409,
                    "OperationNotAllowed",
                    f"At most {self.behaviour.burst_limit} incremental snapshots of a disk can be "
                    f"created every {int(self.behaviour.burst_window_seconds / 60)} minutes; "
                    f"disk '{disk.id}' reached that limit. Retry later.",
                )
            if not disk.instant_access:
                pending = [s for s in family if s.completion_percent(now) < 100]
                if len(pending) >= self.behaviour.pending_limit:
                    raise ArmError(
                        409,
                        "OperationNotAllowed",
                        f"At most {self.behaviour.pending_limit} snapshots of disk '{disk.id}' "
                        "can be pending background copy at a time.",
                    )
            req.throttle_headers.update(
                self.throttler.compute_check(sub_id, disk.location, "writes")
            )
            stuck = req.stuck
            ready_at = None if stuck else now + timedelta(seconds=self.behaviour.operation_seconds)
            hydrated = (
                None
                if ready_at is None
                else ready_at
                + timedelta(seconds=0 if disk.instant_access else self.behaviour.hydration_seconds)
            )
            for rule in self.matching_policies("Microsoft.Compute/snapshots", snap_id, "modify"):
                for k, v in rule.add_tags.items():
                    merge_tag(tags, k, v)
            snap = Snapshot(
                subscription=sub_id.lower(),
                group=group.name,
                name=name,
                location=disk.location,
                sku=str(
                    (body.get("sku") or {}).get(
                        "name", "Standard_ZRS" if incremental else "Standard_LRS"
                    )
                ),
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
            op = self.new_operation(sub_id, disk.location, "DiskOperations", now, snap_id, "PUT")
            op.end = ready_at
            return Reply(
                202, snap.to_json(now, in_flight=True), self.lro_headers(req, op, retry_after=True)
            )

    def patch_snapshot(self, req: ArmRequest, args: tuple[str, ...]) -> Reply:
        sub_id, group_name, name = args
        self.need_group(sub_id, group_name)
        snap_id = compute_id(sub_id, group_name, "snapshots", name)
        now = self.clock.now()
        with self.cloud.lock:
            snap = self.cloud.live_snapshot(key(snap_id), now)
            if snap is None:
                raise resource_not_found("Microsoft.Compute/snapshots", name, group_name)
            self.authorize(req, "Microsoft.Compute/snapshots/write", snap.id)
            self.check_locks(snap.id, "write")
            body = req.body if isinstance(req.body, dict) else {}
            if "tags" in body:
                check_tags(body["tags"] or {})
                snap.tags = dict(body["tags"] or {})
            props = body.get("properties") or {}
            if "networkAccessPolicy" in props:
                snap.network_access_policy = str(props["networkAccessPolicy"])
            if "publicNetworkAccess" in props:
                snap.public_network_access = str(props["publicNetworkAccess"])
            op = self.new_operation(sub_id, snap.location, "DiskOperations", now, snap.id, "PATCH")
            op.end = now
            return Reply(202, snap.to_json(now), self.lro_headers(req, op, retry_after=True))

    def delete_snapshot(self, req: ArmRequest, args: tuple[str, ...]) -> Reply:
        sub_id, group_name, name = args
        self.need_group(sub_id, group_name)
        snap_id = compute_id(sub_id, group_name, "snapshots", name)
        now = self.clock.now()
        with self.cloud.lock:
            snap = self.cloud.live_snapshot(key(snap_id), now)
            if snap is None:
                return Reply(204)
            self.authorize(req, "Microsoft.Compute/snapshots/delete", snap.id)
            self.check_locks(snap.id, "delete")
            req.throttle_headers.update(
                self.throttler.compute_check(sub_id, snap.location, "deletes")
            )
            stuck = req.stuck
            end = None if stuck else now + timedelta(seconds=self.behaviour.operation_seconds)
            if snap.deleting_at is None:
                snap.deleting_at = end or datetime.max.replace(tzinfo=now.tzinfo)
            op = self.new_operation(sub_id, snap.location, "DiskOperations", now, snap.id, "DELETE")
            op.end = end
            return Reply(202, None, self.lro_headers(req, op, retry_after=False))

    # ---- operations ----------------------------------------------------------------------
    def new_operation(
        self, sub: str, location: str, kind: str, now: datetime, resource_id: str, method: str
    ) -> Operation:
        op = Operation(
            id=new_uuid(),
            subscription=sub.lower(),
            location=location.lower().replace(" ", ""),
            kind=kind,
            start=now,
            end=now,
            resource_key=key(resource_id),
            method=method,
        )
        self.cloud.operations[op.id] = op
        return op

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
                location = f"{req.base_url}{req.path}?" + _qs(req.query)
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

    # ---- tags API ------------------------------------------------------------------------
    def tag_target(self, scope: str) -> tuple[Any, str]:
        """The object whose tags live at `scope`, and its canonical id."""
        k = key(scope)
        for store in (self.cloud.vms, self.cloud.disks):
            found = store.get(k)
            if found is not None:
                return found, found.id
        snap = self.cloud.live_snapshot(k, self.clock.now())
        if snap is not None:
            return snap, snap.id
        match = re.match(r"^/subscriptions/([^/]+)/resourcegroups/([^/]+)$", k)
        if match:
            rg = self.cloud.group(match.group(1), match.group(2))
            if rg is not None:
                return rg, rg.id
            raise group_not_found(match.group(2))
        raise ArmError(404, "ResourceNotFound", f"The Resource '{scope}' was not found.")

    def tags_body(self, target_id: str, tags: dict[str, str]) -> dict[str, Any]:
        return {
            "id": f"{target_id}/providers/Microsoft.Resources/tags/default",
            "name": "default",
            "type": "Microsoft.Resources/tags",
            "properties": {"tags": dict(tags)},
        }

    def get_tags(self, req: ArmRequest, args: tuple[str, ...]) -> Reply:
        with self.cloud.lock:
            target, target_id = self.tag_target(args[0])
            return Reply(200, self.tags_body(target_id, target.tags))

    def write_tags(self, req: ArmRequest, args: tuple[str, ...]) -> Reply:
        body = req.body if isinstance(req.body, dict) else {}
        incoming = (body.get("properties") or {}).get("tags")
        if not isinstance(incoming, dict):
            raise ArmError(
                400, "InvalidRequestContent", "The request content must contain properties.tags."
            )
        operation = "Replace" if req.method == "PUT" else str(body.get("operation", ""))
        if operation.lower() not in ("merge", "replace", "delete"):
            raise ArmError(
                400,
                "InvalidTagOperation",
                f"The tag operation '{operation}' is invalid. Allowed: Merge, Replace, Delete.",
            )
        with self.cloud.lock:
            target, target_id = self.tag_target(args[0])
            self.authorize(req, "Microsoft.Resources/tags/write", target_id)
            self.check_locks(target_id, "write")
            tags: dict[str, str] = dict(target.tags)
            op = operation.lower()
            if op == "replace":
                tags = {}
                for k, v in incoming.items():
                    merge_tag(tags, str(k), str(v))
            elif op == "merge":
                for k, v in incoming.items():
                    merge_tag(tags, str(k), str(v))
            else:
                for k, v in incoming.items():
                    for existing in list(tags):
                        if existing.lower() == str(k).lower() and (
                            v in (None, "") or tags[existing] == v
                        ):
                            del tags[existing]
            check_tags(tags)
            target.tags = tags
            if key(target_id) in self.cloud.vms:
                self.events.resource_write(
                    target_id,
                    "Microsoft.Resources/tags/write",
                    req.caller.object_id,
                    req.correlation_id,
                    http_method=req.method,
                    url=f"{req.base_url}{req.path}",
                )
            return Reply(200, self.tags_body(target_id, tags))

    # ---- rules ---------------------------------------------------------------------------
    def authorize(self, req: ArmRequest, action: str, scope: str) -> None:
        if action not in req.actions:
            req.actions.append(action)
        for deny in self.cloud.deny_assignments:
            if in_scope(scope, deny.scope) and deny.denies(action, req.caller.object_id):
                raise ArmError(
                    403,
                    "AuthorizationFailed",
                    f"The client '{req.caller.object_id}' with object id "
                    f"'{req.caller.object_id}' does not have authorization to perform action "
                    f"'{action}' over scope '{scope}' or the scope is invalid. "
                    f"(deny assignment '{deny.name}')",
                )

    def linked_check(
        self, req: ArmRequest, action: str, linked_scope: str, target_action: str, target: str
    ) -> None:
        """A linked access check: recorded in the request log, refused by deny assignments."""
        if action not in req.actions:
            req.actions.append(action)
        for deny in self.cloud.deny_assignments:
            if in_scope(linked_scope, deny.scope) and deny.denies(action, req.caller.object_id):
                raise ArmError(
                    403,
                    "LinkedAuthorizationFailed",
                    f"The client '{req.caller.object_id}' with object id "
                    f"'{req.caller.object_id}' has permission to perform action "
                    f"'{target_action}' on scope '{target}'; however, it does not have "
                    f"permission to perform action(s) '{action}' on the linked scope(s) "
                    f"'{linked_scope}' (respectively) or the linked scope(s) are invalid.",
                )

    def check_locks(self, resource_id: str, verb: str) -> None:
        locked = [
            lock
            for lock in self.cloud.locks
            if in_scope(resource_id, lock.scope) and (verb == "delete" or lock.level == "ReadOnly")
        ]
        if locked:
            scopes = ",".join(f"'{lock.scope}'" for lock in locked)
            raise ArmError(
                409,
                "ScopeLocked",
                f"The scope '{resource_id}' cannot perform {verb} operation because following "
                f"scope(s) are locked: {scopes}. Please remove the lock and try again.",
            )

    def matching_policies(
        self, resource_type: str, resource_id: str, effect: str
    ) -> list[PolicyRule]:
        return [
            rule
            for rule in self.cloud.policies
            if rule.effect == effect
            and in_scope(resource_id, rule.scope)
            and (rule.resource_type is None or rule.resource_type.lower() == resource_type.lower())
        ]

    def check_policies(
        self,
        req: ArmRequest,
        resource_type: str,
        resource_id: str,
        location: str,
        body: dict[str, Any],
        tags: dict[str, Any],
    ) -> None:
        for rule in self.matching_policies(resource_type, resource_id, "deny"):
            reasons = []
            lower_tags = {str(k).lower() for k in tags}
            for tag in rule.require_tags:
                if tag.lower() not in lower_tags:
                    reasons.append(f"tag '{tag}' is required")
            if rule.allowed_locations and location.lower() not in rule.allowed_locations:
                reasons.append(f"location '{location}' is not allowed")
            for path, expected in rule.property_equals.items():
                if dig(body, path) != expected:
                    reasons.append(f"'{path}' must be '{expected}'")
            if reasons:
                ident = json.dumps(
                    [
                        {
                            "policyAssignment": {"name": rule.name, "id": rule.assignment_id},
                            "policyDefinition": {
                                "name": rule.name,
                                "id": "/providers/Microsoft.Authorization/"
                                f"policyDefinitions/{rule.name}",
                            },
                        }
                    ],
                    separators=(",", ":"),
                )
                name = resource_id.rsplit("/", 1)[-1]
                raise ArmError(
                    403,
                    "RequestDisallowedByPolicy",
                    f"Resource '{name}' was disallowed by policy. Reasons: {'; '.join(reasons)}. "
                    f"Policy identifiers: '{ident}'.",
                    target=name,
                    additional_info=[
                        {
                            "type": "PolicyViolation",
                            "info": {
                                "policyAssignmentName": rule.name,
                                "policyAssignmentId": rule.assignment_id,
                                "policyAssignmentScope": rule.scope,
                                "policyDefinitionEffect": "deny",
                            },
                        }
                    ],
                )


_PARTITION = "c4c8ae5b-9b5e-4e30-a2b0-2f8d0e6a4f11"


def _qs(query: dict[str, str]) -> str:
    return "&".join(f"{k}={quote(v, safe='')}" for k, v in query.items())


def stable_family(disk_id: str) -> str:
    from emulator.estate import stable_uuid

    return stable_uuid("family", disk_id)


def in_scope(resource_id: str, scope: str) -> bool:
    r, s = key(resource_id), key(scope)
    return r == s or r.startswith(s + "/")


def dig(body: dict[str, Any], path: str) -> Any:
    value: Any = body
    for part in path.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def check_name(name: str, kind: str) -> None:
    if not NAME_RULE.match(name):
        raise ArmError(
            400,
            "InvalidResourceName",
            f"Resource name {name} is invalid. The name can be up to 80 characters long. It must "
            "begin with a word character, and it must end with a word character or with '_'. The "
            "name may contain word characters or '.', '-', '_'.",
            target=kind,
        )


def merge_tag(tags: dict[str, Any], name: str, value: Any) -> None:
    """ARM tag keys are case-insensitive: a write keeps the casing first written."""
    for existing in tags:
        if existing.lower() == name.lower():
            tags[existing] = value
            return
    tags[name] = value


def check_tags(tags: dict[str, Any]) -> None:
    if not isinstance(tags, dict):
        raise ArmError(400, "InvalidRequestContent", "Tags must be an object of string values.")
    if len(tags) > MAX_TAGS:
        raise ArmError(
            400,
            "InvalidTagCount",
            f"The number of tags on a resource ({len(tags)}) exceeds the limit of {MAX_TAGS}.",
        )
    for name, value in tags.items():
        if len(str(name)) > MAX_TAG_KEY:
            raise ArmError(
                400,
                "InvalidTagNameLength",
                f"The tag name '{str(name)[:40]}...' exceeds the maximum length of "
                f"{MAX_TAG_KEY} characters.",
            )
        if len(str(value)) > MAX_TAG_VALUE:
            raise ArmError(
                400,
                "InvalidTagValueLength",
                f"The value of tag '{name}' exceeds the maximum length of {MAX_TAG_VALUE} "
                "characters.",
            )
        if str(name).lower().startswith(RESERVED_TAG_PREFIXES):
            raise ArmError(
                400,
                "InvalidTagName",
                f"The tag name '{name}' uses a reserved prefix (microsoft, azure, windows).",
            )
        if any(c in str(name) for c in "<>%&\\?/"):
            raise ArmError(
                400, "InvalidTagNameCharacters", f"The tag name '{name}' has invalid characters."
            )


_SNAP = _RG + _CP + r"/snapshots/([^/]+)"
ROUTES: list[Route] = [
    _route("GET", _SUB, "Microsoft.Resources/subscriptions/read", Arm.get_subscription),
    _route(
        "GET",
        _SUB + r"/resourcegroups",
        "Microsoft.Resources/subscriptions/resourceGroups/read",
        Arm.list_groups,
    ),
    _route("GET", _RG, "Microsoft.Resources/subscriptions/resourceGroups/read", Arm.get_group),
    _route(
        "GET",
        _SUB + _CP + r"/virtualmachines",
        "Microsoft.Compute/virtualMachines/read",
        Arm.list_vms,
    ),
    _route(
        "GET",
        _RG + _CP + r"/virtualmachines",
        "Microsoft.Compute/virtualMachines/read",
        Arm.list_vms,
    ),
    _route(
        "GET",
        _RG + _CP + r"/virtualmachines/([^/]+)",
        "Microsoft.Compute/virtualMachines/read",
        Arm.get_vm,
    ),
    _route(
        "GET",
        _RG + _CP + r"/virtualmachines/([^/]+)/instanceview",
        "Microsoft.Compute/virtualMachines/instanceView/read",
        Arm.vm_instance_view,
    ),
    _route(
        "PATCH",
        _RG + _CP + r"/virtualmachines/([^/]+)",
        "Microsoft.Compute/virtualMachines/write",
        Arm.patch_vm,
    ),
    _route("GET", _SUB + _CP + r"/disks", "Microsoft.Compute/disks/read", Arm.list_disks),
    _route("GET", _RG + _CP + r"/disks", "Microsoft.Compute/disks/read", Arm.list_disks),
    _route("GET", _RG + _CP + r"/disks/([^/]+)", "Microsoft.Compute/disks/read", Arm.get_disk),
    _route(
        "GET", _SUB + _CP + r"/snapshots", "Microsoft.Compute/snapshots/read", Arm.list_snapshots
    ),
    _route(
        "GET", _RG + _CP + r"/snapshots", "Microsoft.Compute/snapshots/read", Arm.list_snapshots
    ),
    _route("GET", _SNAP, "Microsoft.Compute/snapshots/read", Arm.get_snapshot),
    _route("PUT", _SNAP, "Microsoft.Compute/snapshots/write", Arm.put_snapshot),
    _route("PATCH", _SNAP, "Microsoft.Compute/snapshots/write", Arm.patch_snapshot),
    _route("DELETE", _SNAP, "Microsoft.Compute/snapshots/delete", Arm.delete_snapshot),
    _route(
        "GET",
        _SUB + _CP + r"/locations/([^/]+)/(diskoperations|operations)/([^/]+)",
        "Microsoft.Compute/locations/{kind}/read",
        Arm.get_operation,
    ),
    _route(
        "GET",
        r"^(/subscriptions/.+)/providers/microsoft\.resources/tags/default",
        "Microsoft.Resources/tags/read",
        Arm.get_tags,
    ),
    _route(
        "PATCH",
        r"^(/subscriptions/.+)/providers/microsoft\.resources/tags/default",
        "Microsoft.Resources/tags/write",
        Arm.write_tags,
    ),
    _route(
        "PUT",
        r"^(/subscriptions/.+)/providers/microsoft\.resources/tags/default",
        "Microsoft.Resources/tags/write",
        Arm.write_tags,
    ),
]
