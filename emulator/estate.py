"""Estate files: the YAML world the stand-in starts from (format documented in README.md).

Version 1. Unknown top-level keys are kept in `Cloud.extra` so later formats (vaults, networks,
drill plans) can extend the file without breaking this loader. Every problem is reported at once.
"""

from __future__ import annotations

import json
import re
import uuid
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from emulator.clock import parse_instant
from emulator.model import (
    Cloud,
    DataDisk,
    DenyAssignment,
    Disk,
    Identity,
    Lock,
    PolicyRule,
    ResourceGroup,
    Snapshot,
    Subscription,
    VirtualMachine,
    compute_id,
    group_id,
    key,
)

SUPPORTED_VERSIONS = {1}
DEFAULT_TENANT = "72f988bf-0000-4000-8000-00000000cafe"
_AGE = re.compile(r"^(\d+(?:\.\d+)?)([smhd])$")
_AGE_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


class EstateError(ValueError):
    """The estate file is invalid; the message lists every problem."""


def stable_uuid(*parts: str) -> str:
    """Deterministic ids, so one estate gives the same uniqueIds (and snapshot names) each run."""
    return str(
        uuid.uuid5(uuid.NAMESPACE_URL, "lifeboat-stand-in:" + "|".join(p.lower() for p in parts))
    )


def load_estate_file(path: str | Path, now: datetime) -> Cloud:
    text = Path(path).read_text(encoding="utf-8")
    if text.lstrip().startswith("{"):
        # JSON is YAML too; generated estates are written as JSON because it loads 20x faster.
        data = json.loads(text)
    else:
        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
        data = yaml.load(text, Loader=loader)
    return build_cloud(data, now)


def _age(value: Any, now: datetime, default: datetime) -> datetime:
    if value is None:
        return default
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=now.tzinfo)
    text = str(value).strip()
    match = _AGE.match(text)
    if match:
        return now - timedelta(seconds=float(match.group(1)) * _AGE_UNITS[match.group(2)])
    return parse_instant(text)


class _Builder:
    def __init__(self, data: dict[str, Any], now: datetime) -> None:
        self.data = data
        self.now = now
        self.errors: list[str] = []
        self.long_ago = now - timedelta(days=90)

    def fail(self, where: str, message: str) -> None:
        self.errors.append(f"{where}: {message}")

    def build(self) -> Cloud:
        data = self.data
        version = data.get("version")
        if version not in SUPPORTED_VERSIONS:
            self.fail("version", f"must be one of {sorted(SUPPORTED_VERSIONS)}, got {version!r}")
        identities = []
        for i, raw in enumerate(data.get("identities") or []):
            try:
                identities.append(
                    Identity(
                        name=str(raw.get("name", f"identity-{i}")),
                        client_id=str(raw["clientId"]),
                        object_id=str(raw["objectId"]),
                    )
                )
            except (KeyError, AttributeError) as e:
                self.fail(f"identities[{i}]", f"missing {e}")
        if not identities:
            self.fail(
                "identities", "at least one managed identity (clientId, objectId) is required"
            )
        cloud = Cloud(tenant_id=str(data.get("tenantId", DEFAULT_TENANT)), identities=identities)
        known = {"version", "tenantId", "identities", "subscriptions", "description"}
        cloud.extra = {k: v for k, v in data.items() if k not in known}
        subs = data.get("subscriptions") or []
        if not subs:
            self.fail("subscriptions", "at least one subscription is required")
        for i, raw in enumerate(subs):
            self.subscription(cloud, raw, f"subscriptions[{i}]")
        if self.errors:
            raise EstateError("invalid estate:\n  " + "\n  ".join(self.errors))
        return cloud

    def subscription(self, cloud: Cloud, raw: dict[str, Any], where: str) -> None:
        sub_id = str(raw.get("id", "")).lower()
        if not re.fullmatch(r"[0-9a-f-]{36}", sub_id):
            self.fail(where, f"id must be a subscription GUID, got {sub_id!r}")
            return
        sub = Subscription(id=sub_id, name=str(raw.get("name", sub_id)))
        cloud.subscriptions[sub_id] = sub
        default_location = str(raw.get("location", "westeurope"))
        for j, g in enumerate(raw.get("resourceGroups") or []):
            name = str(g.get("name", ""))
            if not name:
                self.fail(f"{where}.resourceGroups[{j}]", "name is required")
                continue
            sub.groups[name.lower()] = ResourceGroup(
                subscription=sub_id,
                name=name,
                location=str(g.get("location", default_location)),
                tags={str(k): str(v) for k, v in (g.get("tags") or {}).items()},
                managed_by=g.get("managedBy"),
            )
        for j, d in enumerate(raw.get("disks") or []):
            self.disk(cloud, sub, d, f"{where}.disks[{j}]", os_type=d.get("osType"))
        for j, v in enumerate(raw.get("vms") or []):
            self.vm(cloud, sub, v, f"{where}.vms[{j}]")
        for j, s in enumerate(raw.get("snapshots") or []):
            self.snapshot(cloud, sub, s, f"{where}.snapshots[{j}]")
        for j, lk in enumerate(raw.get("locks") or []):
            level = str(lk.get("level", "CanNotDelete"))
            if level not in ("CanNotDelete", "ReadOnly"):
                self.fail(
                    f"{where}.locks[{j}]", f"level must be CanNotDelete or ReadOnly, got {level}"
                )
            cloud.locks.append(
                Lock(name=str(lk.get("name", f"lock-{j}")), scope=self.scope(sub, lk), level=level)
            )
        for j, p in enumerate(raw.get("policies") or []):
            effect = str(p.get("effect", "deny")).lower()
            if effect not in ("deny", "modify"):
                self.fail(f"{where}.policies[{j}]", f"effect must be deny or modify, got {effect}")
            cloud.policies.append(
                PolicyRule(
                    name=str(p.get("name", f"policy-{j}")),
                    scope=self.scope(sub, p),
                    effect=effect,
                    resource_type=p.get("resourceType"),
                    require_tags=[str(t) for t in p.get("requireTags") or []],
                    allowed_locations=[str(x).lower() for x in p.get("allowedLocations") or []],
                    property_equals=dict(p.get("propertyEquals") or {}),
                    add_tags={str(k): str(v) for k, v in (p.get("addTags") or {}).items()},
                )
            )
        for j, da in enumerate(raw.get("denyAssignments") or []):
            cloud.deny_assignments.append(
                DenyAssignment(
                    name=str(da.get("name", f"deny-{j}")),
                    scope=self.scope(sub, da),
                    actions=[str(a) for a in da.get("actions") or ["*"]],
                    exclude_principals=[str(x) for x in da.get("excludePrincipals") or []],
                )
            )

    def scope(self, sub: Subscription, raw: dict[str, Any]) -> str:
        scope = str(raw.get("scope", ""))
        if scope.startswith("/"):
            return scope
        if not scope:
            return f"/subscriptions/{sub.id}"
        return f"/subscriptions/{sub.id}/{scope}"

    def need_group(self, sub: Subscription, name: str | None, where: str) -> ResourceGroup | None:
        if not name:
            self.fail(where, "resourceGroup is required")
            return None
        group = sub.groups.get(name.lower())
        if group is None:
            self.fail(where, f"resource group {name!r} is not declared in resourceGroups")
        return group

    def disk(
        self,
        cloud: Cloud,
        sub: Subscription,
        raw: dict[str, Any],
        where: str,
        *,
        os_type: str | None = None,
        default_group: str | None = None,
        default_location: str | None = None,
        ephemeral: bool = False,
    ) -> Disk | None:
        name = raw.get("name")
        group = self.need_group(sub, raw.get("resourceGroup", default_group), where)
        if not name or group is None:
            if not name:
                self.fail(where, "name is required")
            return None
        disk_id = compute_id(sub.id, group.name, "disks", str(name))
        existing = cloud.disks.get(key(disk_id))
        if existing is not None:
            return existing
        encryption = raw.get("encryption") or {}
        sku = str(raw.get("sku", "Premium_LRS"))
        if os_type and sku.lower() in ("premiumv2_lrs", "ultrassd_lrs"):
            self.fail(where, f"{sku} cannot be an OS disk")
        disk = Disk(
            subscription=sub.id,
            group=group.name,
            name=str(name),
            location=str(raw.get("location", default_location or group.location)),
            sku=sku,
            size_gb=int(raw.get("sizeGB", 128 if os_type else 256)),
            unique_id=str(raw.get("uniqueId", stable_uuid(disk_id))),
            time_created=_age(raw.get("timeCreated"), self.now, self.long_ago),
            os_type=os_type,
            hyper_v_generation=raw.get("hyperVGeneration", "V2" if os_type else None),
            encryption_type=str(encryption.get("type", "EncryptionAtRestWithPlatformKey")),
            disk_encryption_set_id=encryption.get("diskEncryptionSetId"),
            ade_enabled=bool(raw.get("ade", False)),
            max_shares=raw.get("maxShares"),
            tags={str(k): str(v) for k, v in (raw.get("tags") or {}).items()},
            ephemeral=ephemeral,
            create_option="FromImage" if os_type else "Empty",
            zones=raw.get("zones"),
        )
        cloud.disks[key(disk_id)] = disk
        return disk

    def vm(self, cloud: Cloud, sub: Subscription, raw: dict[str, Any], where: str) -> None:
        name = raw.get("name")
        group = self.need_group(sub, raw.get("resourceGroup"), where)
        if not name or group is None:
            if not name:
                self.fail(where, "name is required")
            return
        vm_id = compute_id(sub.id, group.name, "virtualMachines", str(name))
        if key(vm_id) in cloud.vms:
            self.fail(where, f"duplicate VM {vm_id}")
            return
        location = str(raw.get("location", group.location))
        os_type = str(raw.get("osType", "Linux"))
        os_raw = dict(raw.get("osDisk") or {})
        os_raw.setdefault("name", f"{name}-osdisk")
        ephemeral = bool(os_raw.get("ephemeral", False))
        if ephemeral:
            os_raw.setdefault("sku", "Standard_LRS")
        os_disk = self.disk(
            cloud,
            sub,
            os_raw,
            f"{where}.osDisk",
            os_type=os_type,
            default_group=group.name,
            default_location=location,
            ephemeral=ephemeral,
        )
        if os_disk is None:
            return
        security_type = raw.get("securityType")
        plan = raw.get("plan")
        os_disk.security_type = security_type
        os_disk.plan = dict(plan) if plan else None
        vm = VirtualMachine(
            subscription=sub.id,
            group=group.name,
            name=str(name),
            location=location,
            size=str(raw.get("size", "Standard_D2s_v5")),
            vm_id=str(raw.get("vmId", stable_uuid(vm_id))),
            time_created=_age(raw.get("timeCreated"), self.now, self.long_ago),
            os_type=os_type,
            os_disk_key=key(os_disk.id),
            power_state=str(raw.get("powerState", "running")),
            agent_ready=bool(raw.get("agentReady", True)),
            ephemeral_os=ephemeral,
            security_type=security_type,
            plan=dict(plan) if plan else None,
            tags={str(k): str(v) for k, v in (raw.get("tags") or {}).items()},
            image=dict(raw.get("image") or {}),
            zones=raw.get("zones"),
        )
        os_disk.managed_by.append(vm.id)
        for k, dd in enumerate(raw.get("dataDisks") or []):
            disk = self.disk(
                cloud,
                sub,
                dd,
                f"{where}.dataDisks[{k}]",
                default_group=group.name,
                default_location=location,
            )
            if disk is None:
                continue
            if disk.managed_by and not (disk.max_shares and disk.max_shares > len(disk.managed_by)):
                self.fail(f"{where}.dataDisks[{k}]", f"disk {disk.name} is already attached")
                continue
            disk.managed_by.append(vm.id)
            vm.data_disks.append(
                DataDisk(
                    lun=int(dd.get("lun", k)),
                    disk_key=key(disk.id),
                    caching=dd.get("caching", "ReadOnly"),
                )
            )
        cloud.vms[key(vm_id)] = vm

    def snapshot(self, cloud: Cloud, sub: Subscription, raw: dict[str, Any], where: str) -> None:
        name = raw.get("name")
        group = self.need_group(sub, raw.get("resourceGroup"), where)
        source = str(raw.get("source", ""))
        if not name or group is None:
            if not name:
                self.fail(where, "name is required")
            return
        if source.startswith("/"):
            source_key = key(source)
        else:
            parts = source.split("/")
            if len(parts) != 2:
                self.fail(where, "source must be 'group/disk' or a disk id")
                return
            source_key = key(compute_id(sub.id, parts[0], "disks", parts[1]))
        disk = cloud.disks.get(source_key)
        if disk is None:
            self.fail(where, f"source disk {source} is not declared")
            return
        created = _age(
            raw.get("timeCreated", raw.get("age")), self.now, self.now - timedelta(days=1)
        )
        snap_id = compute_id(sub.id, group.name, "snapshots", str(name))
        incremental = bool(raw.get("incremental", True))
        cloud.add_snapshot(
            key(snap_id),
            Snapshot(
                subscription=sub.id,
                group=group.name,
                name=str(name),
                location=disk.location,
                sku=str(raw.get("sku", "Standard_ZRS" if incremental else "Standard_LRS")),
                size_gb=disk.size_gb,
                incremental=incremental,
                source_id=disk.id,
                source_unique_id=disk.unique_id,
                unique_id=stable_uuid(snap_id),
                time_created=created,
                ready_at=created,
                family_id=stable_uuid("family", disk.id) if incremental else None,
                os_type=disk.os_type,
                hyper_v_generation=disk.hyper_v_generation,
                encryption_type=disk.encryption_type,
                network_access_policy=str(raw.get("networkAccessPolicy", "DenyAll")),
                public_network_access=str(raw.get("publicNetworkAccess", "Disabled")),
                tags={str(k): str(v) for k, v in (raw.get("tags") or {}).items()},
                instant_access=disk.instant_access,
                hydrated_at=created,
            ),
        )


def add_vm(cloud: Cloud, subscription: str, raw: dict[str, Any], now: datetime) -> VirtualMachine:
    """Add one estate-format VM (and its disks) to a running cloud; raise EstateError if invalid."""
    builder = _Builder({}, now)
    sub = cloud.subscriptions.get(subscription.lower())
    if sub is None:
        raise EstateError(f"unknown subscription {subscription}")
    raw = dict(raw)
    raw.setdefault("timeCreated", now.isoformat())
    before = set(cloud.vms)
    builder.vm(cloud, sub, raw, "vm")
    if builder.errors:
        raise EstateError("invalid VM:\n  " + "\n  ".join(builder.errors))
    (added,) = set(cloud.vms) - before
    return cloud.vms[added]


def build_cloud(data: Any, now: datetime) -> Cloud:
    if not isinstance(data, dict):
        raise EstateError("invalid estate: the file must hold a mapping")
    return _Builder(data, now).build()


def group_key(subscription: str, group: str) -> str:
    return key(group_id(subscription, group))
