"""In-memory drill cloud and a queue host on a fake clock, for the drill use-case tests.

`FakeDrillCloud` keeps drill resources with provisioning that takes time on the test clock, VMs
that boot (or never get a ready agent), and refusals for deletes out of dependency order.
`SimHost` delivers queue messages through the real `dispatch.deliver` as the Functions host
does: at their visible time, with dequeue counts, retries after a failure, poison after the
last, and optional lost completions.
"""

from __future__ import annotations

import dataclasses
import heapq
import itertools
import random
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from shared import dispatch
from shared.model import (
    BackupJob,
    DrillNetwork,
    DrillResource,
    PolicyAssignment,
    ProtectedItem,
    RecoveryPoint,
    SecurityRule,
    Vault,
    Vm,
    VmStatus,
)
from shared.names import Queue
from shared.ports import (
    DrillDiskRequest,
    DrillNetworkRequest,
    DrillVmRequest,
    ReceivedMessage,
    RefusedError,
    RestoreJob,
    RestoreRequest,
    Runtime,
)
from tests.builders import SUB
from tests.fakes import FakeCompute, FixedClock

DRILL_GROUP = "rg-lifeboat-drill-westeurope"

DEFAULT_RULES = (
    SecurityRule(
        "AllowVnetInBound", 65000, "Inbound", "Allow", "*", ("VirtualNetwork",), ("VirtualNetwork",)
    ),
    SecurityRule(
        "AllowAzureLoadBalancerInBound", 65001, "Inbound", "Allow", "*", ("AzureLoadBalancer",)
    ),
    SecurityRule("DenyAllInBound", 65500, "Inbound", "Deny"),
    SecurityRule(
        "AllowVnetOutBound",
        65000,
        "Outbound",
        "Allow",
        "*",
        ("VirtualNetwork",),
        ("VirtualNetwork",),
    ),
    SecurityRule("AllowInternetOutBound", 65001, "Outbound", "Allow", "*", ("*",), ("Internet",)),
    SecurityRule("DenyAllOutBound", 65500, "Outbound", "Deny"),
)
DENY_ALL = (
    SecurityRule("deny-all-in", 100, "Inbound", "Deny"),
    SecurityRule("deny-all-out", 100, "Outbound", "Deny"),
)


def operator_network(**changes: Any) -> DrillNetwork:
    """An operator's isolated drill subnet `snet` of `vnet-drill` in the drill group (deny-all
    NSG, no default outbound access); `changes` replace its fields."""
    base = DrillNetwork(
        vnet_id=f"/subscriptions/{SUB}/resourceGroups/{DRILL_GROUP}/providers/"
        "Microsoft.Network/virtualNetworks/vnet-drill",
        subnet_id=f"/subscriptions/{SUB}/resourceGroups/{DRILL_GROUP}/providers/"
        "Microsoft.Network/virtualNetworks/vnet-drill/subnets/snet",
        location="westeurope",
        subnet_names=("snet",),
        default_outbound_access=False,
        nsg_id="/subscriptions/x/resourceGroups/y/providers/Microsoft.Network/"
        "networkSecurityGroups/nsg",
        security_rules=(
            SecurityRule("deny-in", 100, "Inbound", "Deny"),
            SecurityRule("deny-out", 100, "Outbound", "Deny"),
            *DEFAULT_RULES,
        ),
        provisioning_state="Succeeded",
    )
    return dataclasses.replace(base, **changes)


class InjectedError(RuntimeError):
    """A transient failure the test injected (the host retries the message)."""


@dataclass
class Fake:
    id: str
    kind: str
    tags: dict[str, str]
    location: str
    ready_at: datetime
    deleting_at: datetime | None = None
    props: dict[str, object] = field(default_factory=dict)


class FakeDrillCloud:
    """Drill resources on the test clock. Work takes `work_seconds`; a VM boots in stages."""

    def __init__(self, clock: FixedClock, *, work_seconds: float = 20) -> None:
        self.clock = clock
        self.work = timedelta(seconds=work_seconds)
        self.resources: dict[str, Fake] = {}
        self.networks: dict[str, DrillNetwork] = {}  # operator-provided subnets by id (lower)
        self.groups: dict[str, list[str]] = {}  # subscription -> resource groups
        self.boot_fails: set[str] = set()  # snapshot ids whose restored VM never gets ready
        self.fail: Callable[[str], None] = lambda _op: None  # fault injection hook
        self.calls: list[tuple[str, str]] = []
        self.deleted: list[str] = []
        self.delete_seconds = 10.0  # how long a delete takes
        self.vm_requests: list[DrillVmRequest] = []
        self.disk_requests: list[DrillDiskRequest] = []

    # --- helpers

    def _op(self, name: str, target: str) -> None:
        self.calls.append((name, target))
        self.fail(name)

    def _settle(self) -> None:
        now = self.clock.now()
        for key, fake in list(self.resources.items()):
            if fake.deleting_at is not None and now >= fake.deleting_at:
                del self.resources[key]
                self.deleted.append(fake.id)

    def _get(self, resource_id: str) -> Fake | None:
        self._settle()
        return self.resources.get(resource_id.lower())

    def _state(self, fake: Fake) -> str:
        if fake.deleting_at is not None:
            return "Deleting"
        return "Succeeded" if self.clock.now() >= fake.ready_at else "Updating"

    def _resource(self, fake: Fake) -> DrillResource:
        in_use = fake.props.get("vm")
        return DrillResource(
            id=fake.id,
            kind=fake.kind,
            name=fake.id.rsplit("/", 1)[1],
            tags=dict(fake.tags),
            provisioning_state=self._state(fake),
            in_use_by=str(in_use) if in_use and str(in_use).lower() in self.resources else None,
            location=fake.location,
            source_id=str(fake.props["snapshot"]) if "snapshot" in fake.props else None,
            time_created=fake.ready_at - self.work,
        )

    def _add(
        self, resource_id: str, kind: str, location: str, tags: Mapping[str, str], **props: object
    ) -> None:
        if resource_id.lower() in self.resources:
            return
        group = resource_id.split("/")[4]
        sub = resource_id.split("/")[2]
        if group not in self.groups.get(sub, []):
            raise RefusedError("ResourceGroupNotFound", f"group {group} does not exist")
        self.resources[resource_id.lower()] = Fake(
            resource_id, kind, dict(tags), location, self.clock.now() + self.work, props=props
        )

    # --- the port

    def list_resource_groups(self, subscription_id: str) -> list[str]:
        self._op("list_resource_groups", subscription_id)
        return list(self.groups.get(subscription_id, []))

    def get_network(self, subnet_id: str) -> DrillNetwork | None:
        self._op("get_network", subnet_id)
        known = self.networks.get(subnet_id.lower())
        if known is not None:
            return known
        vnet_id = subnet_id.rsplit("/subnets/", 1)[0]
        vnet = self._get(vnet_id)
        if vnet is None:
            return None
        nsg_id = str(vnet.props["nsg"])
        nsg = self._get(nsg_id)
        return DrillNetwork(
            vnet_id=vnet.id,
            subnet_id=subnet_id,
            location=vnet.location,
            subnet_names=("drill",),
            default_outbound_access=False,
            nsg_id=nsg_id,
            security_rules=DENY_ALL + DEFAULT_RULES if nsg else (),
            provisioning_state=self._state(vnet),
        )

    def list_policy_assignments(
        self, subscription_id: str, resource_group: str
    ) -> list[PolicyAssignment]:
        self._op("list_policy_assignments", resource_group)
        return [
            PolicyAssignment(
                "allowed-locations",
                "Allowed locations",
                f"/subscriptions/{subscription_id}",
                "Default",
            )
        ]

    def get_resource(self, resource_id: str) -> DrillResource | None:
        self._op("get_resource", resource_id)
        fake = self._get(resource_id)
        return self._resource(fake) if fake else None

    def get_vm_status(self, vm_id: str) -> VmStatus | None:
        self._op("get_vm_status", vm_id)
        fake = self._get(vm_id)
        if fake is None:
            return None
        now = self.clock.now()
        provisioned = now >= fake.ready_at
        running = now >= fake.ready_at + timedelta(seconds=45)
        fails = bool(fake.props.get("boot_fails"))
        agent = running and now >= fake.ready_at + timedelta(seconds=75) and not fails
        if fake.deleting_at is not None:  # as Azure shows a VM being deleted
            return VmStatus("Deleting", "stopping", "Not Ready", "VM Agent is unresponsive.")
        return VmStatus(
            provisioning_state="Succeeded" if provisioned else "Creating",
            power_state="running" if running else "starting",
            agent_status="Ready" if agent else "Not Ready",
            agent_message=None if agent else "VM Agent is unresponsive.",
            data_disks=int(fake.props.get("data_disks", 0)),  # type: ignore[call-overload]
        )

    def list_drill_resources(
        self, subscription_id: str, resource_group: str
    ) -> list[DrillResource]:
        self._op("list_drill_resources", resource_group)
        self._settle()
        prefix = f"/subscriptions/{subscription_id}/resourcegroups/{resource_group}/".lower()
        return [self._resource(f) for k, f in self.resources.items() if k.startswith(prefix)]

    def begin_create_network(self, request: DrillNetworkRequest) -> None:
        self._op("begin_create_network", request.vnet_id)
        nsg = self._get(request.nsg_id)
        if nsg is None:
            self._add(request.nsg_id, "networkSecurityGroups", request.location, request.tags)
            return
        if self._state(nsg) == "Succeeded":
            self._add(
                request.vnet_id,
                "virtualNetworks",
                request.location,
                request.tags,
                nsg=request.nsg_id,
            )

    def begin_create_disk(self, request: DrillDiskRequest) -> None:
        self._op("begin_create_disk", request.id)
        self.disk_requests.append(request)
        self._add(
            request.id, "disks", request.location, request.tags, snapshot=request.source_snapshot_id
        )

    def begin_create_nic(
        self, nic_id: str, location: str, subnet_id: str, tags: dict[str, str]
    ) -> None:
        self._op("begin_create_nic", nic_id)
        self._add(nic_id, "networkInterfaces", location, tags, subnet=subnet_id)

    def begin_create_vm(self, request: DrillVmRequest) -> None:
        self._op("begin_create_vm", request.id)
        self.vm_requests.append(request)
        os_disk = self._get(request.os_disk_id)
        if os_disk is None or self._state(os_disk) != "Succeeded":
            raise RefusedError("InvalidParameter", f"disk {request.os_disk_id} is not ready")
        fails = str(os_disk.props.get("snapshot", "")).lower() in self.boot_fails
        self._add(
            request.id,
            "virtualMachines",
            request.location,
            request.tags,
            data_disks=len(request.data_disks),
            boot_fails=fails,
        )
        for attached in (request.nic_id, request.os_disk_id, *(d for _, d in request.data_disks)):
            fake = self._get(attached)
            if fake is not None:
                fake.props["vm"] = request.id

    def begin_delete(self, resource_id: str) -> None:
        self._op("begin_delete", resource_id)
        fake = self._get(resource_id)
        if fake is None or fake.deleting_at is not None:
            return
        user = fake.props.get("vm")
        if user and str(user).lower() in self.resources:
            raise RefusedError("OperationNotAllowed", f"{resource_id} is in use by {user}")
        if fake.kind == "virtualNetworks" or fake.kind == "networkSecurityGroups":
            for other in self.resources.values():
                if other.kind == "networkInterfaces" and str(
                    other.props.get("subnet", "")
                ).lower().startswith(resource_id.lower()):
                    raise RefusedError("InUseSubnetCannotBeDeleted", f"{resource_id} in use")
            if fake.kind == "networkSecurityGroups" and any(
                str(o.props.get("nsg", "")).lower() == resource_id.lower()
                for o in self.resources.values()
            ):
                raise RefusedError("InUseNetworkSecurityGroupCannotBeDeleted", resource_id)
        fake.deleting_at = self.clock.now() + timedelta(seconds=self.delete_seconds)

    def remaining(self) -> list[str]:
        self._settle()
        return sorted(f.id for f in self.resources.values())


# ----------------------------------------------------------------------------- the host


@dataclass(order=True)
class _Message:
    visible_at: datetime
    seq: int
    queue: str = field(compare=False)
    text: str = field(compare=False)
    dequeue_count: int = field(default=0, compare=False)


class SimQueues:
    """The Queues port over a heap ordered by visible time on the test clock."""

    def __init__(self, clock: FixedClock) -> None:
        self.clock = clock
        self.heap: list[_Message] = []
        self.poison: dict[str, list[str]] = {}
        self._seq = itertools.count()
        self.crash_before_send: Callable[[str], bool] = lambda _text: False

    def send(self, queue: str, text: str, *, visibility_timeout: int = 0) -> None:
        if queue.endswith("-poison"):
            self.poison.setdefault(queue, []).append(text)
            return
        if self.crash_before_send(text):
            raise InjectedError("the worker crashed before it handed the drill on")
        visible = self.clock.now() + timedelta(seconds=visibility_timeout)
        heapq.heappush(self.heap, _Message(visible, next(self._seq), queue, text))

    def list_queues(self, *, suffix: str = "") -> list[str]:
        return []

    def receive(self, queue: str, *, max_messages: int = 32) -> Iterator[ReceivedMessage]:
        return iter(())

    def delete(self, queue: str, message: ReceivedMessage) -> None:
        pass


class SimHost:
    """Deliver through the real dispatch until idle: failures are retried 1 s later, poisoned
    after `max_dequeue`; dispatch itself puts throttled work back and poisons refusals."""

    def __init__(
        self,
        rt: Runtime,
        queues: SimQueues,
        *,
        rng: random.Random | None = None,
        lose_completion: float = 0.0,
    ) -> None:
        self.rt = rt
        self.queues = queues
        self.rng = rng or random.Random(0)
        self.lose_completion = lose_completion
        self.delivered = 0
        self.failures = 0

    def drain(self, *, until: datetime | None = None, limit: int = 200_000) -> None:
        clock = self.queues.clock
        while self.queues.heap and limit > 0:
            message = self.queues.heap[0]
            if until is not None and message.visible_at > until:
                break
            heapq.heappop(self.queues.heap)
            limit -= 1
            if message.visible_at > clock.now():
                clock.set(message.visible_at)
            message = replace(message, dequeue_count=message.dequeue_count + 1)
            self.delivered += 1
            try:
                dispatch.deliver(
                    self.rt,
                    Queue(message.queue),
                    message.text.encode(),
                    message_id=f"m{message.seq}",
                    dequeue_count=message.dequeue_count,
                )
            except RuntimeError:  # InjectedError among them: the host delivers it again
                self.failures += 1
                if message.dequeue_count >= self.rt.settings.max_dequeue_count:
                    self.queues.poison.setdefault(message.queue + "-poison", []).append(
                        message.text
                    )
                else:
                    heapq.heappush(
                        self.queues.heap,
                        replace(message, visible_at=clock.now() + timedelta(seconds=1)),
                    )
                continue
            if self.rng.random() < self.lose_completion:
                # The host never heard the completion: the same message comes back.
                heapq.heappush(
                    self.queues.heap,
                    replace(message, visible_at=clock.now() + timedelta(seconds=30)),
                )
        if limit <= 0:
            raise AssertionError("the queues never went idle")


# ------------------------------------------------------------------ Azure Backup restores


VAULT_ID = (
    f"/subscriptions/{SUB}/resourceGroups/rg-backup/providers/Microsoft.RecoveryServices/"
    "vaults/rsv-weu"
)


@dataclass
class FakeRestore:
    """One restore: its operation names the job `operation_seconds` after the trigger; the job
    ends `job_seconds` after it (`outcome` complete | warn | fail | inprogress)."""

    job_id: str
    item: ProtectedItem
    request: RestoreRequest
    started: datetime
    outcome: str
    job_seconds: float
    disks_made: bool = False


class FakeRestoreBackup:
    """A vault whose items have recovery points and restore their disks into the drill group
    of a `FakeDrillCloud`, on the test clock; with faults per VM name."""

    def __init__(self, clock: FixedClock, cloud: FakeDrillCloud, compute: FakeCompute) -> None:
        self.clock = clock
        self.cloud = cloud
        self.compute = compute
        self.vault = Vault(VAULT_ID, "rsv-weu", SUB, "rg-backup", "westeurope")
        self.items: dict[str, ProtectedItem] = {}  # vm name -> item
        self.points: dict[str, list[RecoveryPoint]] = {}  # vm name -> points
        self.outcome: dict[str, str] = {}  # vm name -> how its restore jobs end
        self.refuse: dict[str, RefusedError] = {}  # vm name -> the trigger's refusal
        self.job_seconds = 600.0
        self.operation_seconds = 30.0
        self.restores: dict[str, FakeRestore] = {}  # operation id -> restore
        self.triggers: list[RestoreRequest] = []
        self.fail: Callable[[str], None] = lambda _op: None

    def protect(self, machine: Vm, *, points: int = 10, every_hours: float = 24) -> None:
        """`machine` protected in the vault, with a point every `every_hours` ending 2 h ago;
        every 7th (from the newest) app-consistent, the newest two in the snapshot tier too."""
        container = f"IaasVMContainer;iaasvmcontainerv2;{machine.resource_group};{machine.name}"
        name = f"VM;iaasvmcontainerv2;{machine.resource_group};{machine.name}"
        item_id = (
            f"{VAULT_ID}/backupFabrics/Azure/protectionContainers/{container}/protectedItems/{name}"
        )
        self.items[machine.name] = ProtectedItem(
            item_id, VAULT_ID, machine.id, container, name, "Protected"
        )
        newest = self.clock.now() - timedelta(hours=2)
        self.points[machine.name] = [
            RecoveryPoint(
                f"{item_id}/recoveryPoints/{1000 + i}",
                newest - timedelta(hours=every_hours * i),
                "AppConsistent" if i % 7 == 0 else "CrashConsistent",
                ("snapshot", "vault") if i < 2 else ("vault",),
            )
            for i in range(points)
        ]

    def _item_vm(self, item: ProtectedItem) -> str:
        return item.name.rsplit(";", 1)[-1]

    # --- the port

    def list_vaults(self, subscription_id: str) -> list[Vault]:
        self.fail("list_vaults")
        return [self.vault] if subscription_id.lower() == SUB else []

    def list_protected_items(self, vault: Vault) -> list[ProtectedItem]:
        self.fail("list_protected_items")
        return list(self.items.values())

    def list_points(
        self, item: ProtectedItem, since: datetime, until: datetime
    ) -> list[RecoveryPoint]:
        self.fail("list_points")
        return [p for p in self.points[self._item_vm(item)] if since <= p.time <= until]

    def get_point(self, item: ProtectedItem, point_id: str) -> RecoveryPoint | None:
        self.fail("get_point")
        name = point_id.rsplit("/", 1)[-1]
        return next(
            (p for p in self.points[self._item_vm(item)] if p.id.rsplit("/", 1)[-1] == name), None
        )

    def trigger_restore(self, item: ProtectedItem, request: RestoreRequest) -> str:
        self.fail("trigger_restore")
        vm_name = self._item_vm(item)
        if vm_name in self.refuse:
            raise self.refuse[vm_name]
        if self.get_point(item, request.point_id) is None:
            raise RefusedError("BMSUserErrorRecoveryPointNotFound", "the point does not exist")
        self.triggers.append(request)
        n = len(self.restores) + 1
        self.restores[f"op-{n}"] = FakeRestore(
            f"job-{n}",
            item,
            request,
            self.clock.now(),
            self.outcome.get(vm_name, "complete"),
            self.job_seconds,
        )
        return f"op-{n}"

    def get_restore_operation(self, item: ProtectedItem, operation_id: str) -> str | None:
        self.fail("get_restore_operation")
        restore = self.restores[operation_id]
        if self.clock.now() - restore.started < timedelta(seconds=self.operation_seconds):
            return None
        return restore.job_id

    def _job(self, job_id: str) -> FakeRestore | None:
        return next((r for r in self.restores.values() if r.job_id == job_id), None)

    def _status(self, restore: FakeRestore) -> str:
        ended = self.clock.now() >= restore.started + timedelta(seconds=restore.job_seconds)
        if not ended or restore.outcome == "inprogress":
            return "InProgress"
        return {"complete": "Completed", "warn": "CompletedWithWarnings", "fail": "Failed"}[
            restore.outcome
        ]

    def get_job(self, vault_id: str, job_id: str) -> RestoreJob | None:
        self.fail("get_job")
        restore = self._job(job_id)
        if restore is None:
            return None
        status = self._status(restore)
        end = restore.started + timedelta(seconds=restore.job_seconds)
        if status in ("Completed", "CompletedWithWarnings") and not restore.disks_made:
            self._make_disks(restore)
        return RestoreJob(
            id=job_id,
            operation="Restore",
            status=status,
            start_time=restore.started,
            end_time=None if status == "InProgress" else end,
            error_code="UserErrorDiskCreationFailed" if status == "Failed" else None,
            error_message="Disk creation failed" if status == "Failed" else None,
            properties={"Config Blob Uri": f"https://stage.blob.core.windows.net/vhd1/c{job_id}"},
        )

    def _make_disks(self, restore: FakeRestore) -> None:
        """The restored disks, untagged, in the target group (named as the stand-in names them)."""
        restore.disks_made = True
        machine = next(v for v in self.compute.vms if v.name == self._item_vm(restore.item))
        stamp = restore.started.strftime("-%Y%m%d-%H%M%S")
        group = restore.request.target_group_id.rstrip("/").rsplit("/", 1)[-1]
        for attachment in machine.attachments:
            assert attachment.disk_id is not None
            name = attachment.disk_id.rsplit("/", 1)[-1] + stamp
            disk_id = (
                f"/subscriptions/{SUB}/resourceGroups/{group}/providers/Microsoft.Compute/"
                f"disks/{name}"
            )
            self.cloud._add(disk_id, "disks", "westeurope", {}, restored=restore.job_id)
            self.cloud.resources[disk_id.lower()].ready_at = self.clock.now()  # made by the job

    def list_restore_jobs(self, vault: Vault, since: datetime, until: datetime) -> list[BackupJob]:
        self.fail("list_restore_jobs")
        return [
            BackupJob(
                r.job_id,
                VAULT_ID,
                self._item_vm(r.item),
                r.item.container_name,
                "Restore",
                self._status(r),
                r.started,
                None,
            )
            for r in self.restores.values()
            if since <= r.started <= until
        ]


class TaggingCompute(FakeCompute):
    """FakeCompute whose tag merges reach the drill cloud's resources too."""

    cloud: FakeDrillCloud

    def merge_tags(self, resource_id: str, tags: dict[str, str]) -> None:
        fake = self.cloud._get(resource_id)
        if fake is not None:
            self._write("tags", resource_id)
            fake.tags.update(tags)
            return
        super().merge_tags(resource_id, tags)
