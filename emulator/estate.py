"""Estate files: the YAML world the stand-in starts from (format documented in README.md).

Version 1. Unknown top-level keys are kept in `Cloud.extra` so later formats (vaults, networks,
drill plans) can extend the file without breaking this loader. Every problem is reported at once.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from emulator.clock import parse_instant
from emulator.errors import ArmError
from emulator.ids import compute_id, group_id, key, network_id, stable_uuid
from emulator.model import (
    Cloud,
    DataDisk,
    DenyAssignment,
    Disk,
    Identity,
    Lock,
    PolicyAssignment,
    PolicyRule,
    ResourceGroup,
    Snapshot,
    Subscription,
    VhdDisk,
    VirtualMachine,
)

SUPPORTED_VERSIONS = {1}
DEFAULT_TENANT = "72f988bf-0000-4000-8000-00000000cafe"
_AGE = re.compile(r"^(\d+(?:\.\d+)?)([smhd])$")
_AGE_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_VHD_URI = re.compile(r"^https?://[a-z0-9]{3,24}\.blob\.[^/]+/[^/]+/.+\.vhd$", re.IGNORECASE)
SNAPSHOT_GROUP = "rg-lifeboat-snapshots"
NAMINGS = ("lifeboat", "lookalike", "other")
HOLD_TAG = "lifeboat:hold"


def disk_hash(disk_id: str, unique_id: str) -> str:
    """Lifeboat's `h` in `lb-{h}-{slot}`: the first 16 characters of base32(sha256(lower(disk
    id) + "|" + uniqueId)), lower-case, as DESIGN.md ("Idempotent by construction") documents
    it. Written out here because the stand-in imports nothing of the app; test_estate_shapes
    checks the two agree."""
    digest = hashlib.sha256(f"{disk_id.lower()}|{unique_id}".encode()).digest()
    return base64.b32encode(digest).decode("ascii")[:16].lower()


def duration(value: Any) -> float | None:
    """Seconds of `30s`, `5m`, `2h`, `1.5d`; None when `value` is not one."""
    match = _AGE.match(str(value).strip())
    return float(match.group(1)) * _AGE_UNITS[match.group(2)] if match else None


class EstateError(ValueError):
    """The estate file is invalid; the message lists every problem."""


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
        for j, pa in enumerate(raw.get("policyAssignments") or []):
            name = str(pa.get("name", ""))
            definition = pa.get("policyDefinitionId")
            if not name or not definition:
                self.fail(
                    f"{where}.policyAssignments[{j}]", "name and policyDefinitionId are required"
                )
                continue
            mode = str(pa.get("enforcementMode", "Default"))
            if mode not in ("Default", "DoNotEnforce"):
                self.fail(
                    f"{where}.policyAssignments[{j}]",
                    f"enforcementMode must be Default or DoNotEnforce, got {mode}",
                )
            cloud.policy_assignments.append(
                PolicyAssignment(
                    name=name,
                    scope=self.scope(sub, pa),
                    display_name=str(pa.get("displayName", name)),
                    policy_definition_id=str(definition),
                    enforcement_mode=mode,
                    not_scopes=[
                        self.scope(sub, {"scope": str(x)}) for x in pa.get("notScopes") or []
                    ],
                    parameters=dict(pa.get("parameters") or {}),
                    description=pa.get("description"),
                )
            )
        build_networks(self, cloud, sub, raw, where)
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
        if raw.get("vhd") is not None:
            self.fail(
                f"{where}.vhd",
                "a VHD is a blob, not a disk resource: give it on the VM (osDisk or dataDisks)",
            )
            return None
        disk_id = compute_id(sub.id, group.name, "disks", str(name))
        existing = cloud.disks.get(key(disk_id))
        if existing is not None:
            if raw.get("snapshots") is not None:
                self.seed(cloud, sub, existing, raw["snapshots"], f"{where}.snapshots")
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
        if raw.get("snapshots") is not None:
            self.seed(cloud, sub, disk, raw["snapshots"], f"{where}.snapshots")
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
        security_type = raw.get("securityType")
        plan = raw.get("plan")
        os_vhd = None
        os_disk = None
        if os_raw.get("vhd") is not None:
            os_vhd = self.vhd(os_raw, f"{where}.osDisk", None, 128, "ReadWrite")
            if os_vhd is None:
                return
            if ephemeral:
                self.fail(f"{where}.osDisk", "an ephemeral OS disk cannot be a VHD")
        else:
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
            os_disk_key=key(os_disk.id) if os_disk else None,
            os_vhd=os_vhd,
            power_state=str(raw.get("powerState", "running")),
            agent_ready=bool(raw.get("agentReady", True)),
            boot_fails=bool(raw.get("bootFails", False)),
            ephemeral_os=ephemeral,
            security_type=security_type,
            plan=dict(plan) if plan else None,
            tags={str(k): str(v) for k, v in (raw.get("tags") or {}).items()},
            image=dict(raw.get("image") or {}),
            zones=raw.get("zones"),
        )
        if os_disk is not None:
            os_disk.managed_by.append(vm.id)
        for k, dd in enumerate(raw.get("dataDisks") or []):
            if dd.get("vhd") is not None:
                lun = int(dd.get("lun", k))
                vhd = self.vhd(dd, f"{where}.dataDisks[{k}]", lun, 1023, "None")
                if vhd is not None:
                    vhd.name = str(dd.get("name", f"{name}-data-{lun:02d}"))
                    vm.vhd_data_disks.append(vhd)
                continue
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
        if raw.get("snapshots") is not None:
            for disk_key in vm.managed_disk_keys():
                disk = cloud.disks[disk_key]
                if not disk.ephemeral:  # an ephemeral OS disk has no snapshots
                    self.seed(cloud, sub, disk, raw["snapshots"], f"{where}.snapshots")

    def vhd(
        self, raw: dict[str, Any], where: str, lun: int | None, size: int, caching: str
    ) -> VhdDisk | None:
        """An unmanaged disk of a VM: `vhd` is its page blob's URI."""
        uri = str(raw.get("vhd"))
        if not _VHD_URI.match(uri):
            self.fail(
                f"{where}.vhd",
                "must be a page blob URI such as "
                f"https://account.blob.core.windows.net/vhds/disk.vhd, got {uri!r}",
            )
            return None
        if raw.get("snapshots") is not None:
            self.fail(f"{where}.snapshots", "a VHD has no disk resource, so no snapshots")
            return None
        return VhdDisk(
            name=str(raw.get("name", "")),
            uri=uri,
            size_gb=int(raw.get("sizeGB", size)),
            lun=lun,
            caching=str(raw.get("caching", caching)),
        )

    def snapshot(self, cloud: Cloud, sub: Subscription, raw: dict[str, Any], where: str) -> None:
        name = raw.get("name")
        group = self.need_group(sub, raw.get("resourceGroup"), where)
        source = str(raw.get("sourceId") or raw.get("source") or "")
        if not name or group is None:
            if not name:
                self.fail(where, "name is required")
            return
        if source.startswith("/"):
            source_id = source
        else:
            parts = source.split("/")
            if len(parts) != 2:
                self.fail(where, "source must be 'group/disk' or a disk id (or sourceId: an id)")
                return
            source_id = compute_id(sub.id, parts[0], "disks", parts[1])
        disk = cloud.disks.get(key(source_id))
        orphan = bool(raw.get("orphan", False)) or bool(raw.get("sourceId"))
        if disk is None and not orphan:
            self.fail(
                where,
                f"source disk {source} is not declared (a snapshot whose disk was deleted says "
                "orphan: true, or names it with sourceId)",
            )
            return
        if disk is not None and raw.get("orphan"):
            self.fail(where, f"orphan: true, but source disk {source} is declared")
            return
        created = _age(
            raw.get("timeCreated", raw.get("age")), self.now, self.now - timedelta(days=1)
        )
        incremental = bool(raw.get("incremental", True))
        snap_id = compute_id(sub.id, group.name, "snapshots", str(name))
        tags = {str(k): str(v) for k, v in (raw.get("tags") or {}).items()}
        if disk is not None:
            snap = snapshot_of(disk, sub.id, group.name, str(name), created, incremental, tags)
        else:
            # The disk is gone: what its snapshot still says about it.
            size = int(raw.get("sizeGB", 128))
            gone = Disk(
                subscription=source_id.split("/")[2].lower(),
                group=source_id.split("/")[4] if len(source_id.split("/")) > 4 else group.name,
                name=source_id.rstrip("/").split("/")[-1],
                location=str(raw.get("location", group.location)),
                sku="Premium_LRS",
                size_gb=size,
                unique_id=str(raw.get("sourceUniqueId", stable_uuid(source_id))),
                time_created=created,
                os_type=raw.get("osType"),
            )
            snap = snapshot_of(gone, sub.id, group.name, str(name), created, incremental, tags)
            snap.source_id = source_id
        if "sku" in raw:
            snap.sku = str(raw["sku"])
        snap.network_access_policy = str(raw.get("networkAccessPolicy", "DenyAll"))
        snap.public_network_access = str(raw.get("publicNetworkAccess", "Disabled"))
        cloud.add_snapshot(key(snap_id), snap)

    def seed(self, cloud: Cloud, sub: Subscription, disk: Disk, spec: Any, where: str) -> None:
        """`snapshots: {count, every, newest, group, naming, ...}` on a disk: `count` snapshots
        of it, the newest `newest` ago and one every `every` before that, made without a call."""
        if not isinstance(spec, dict):
            self.fail(where, "must be a mapping such as {count: 460, every: 1d, newest: 2h}")
            return
        before = len(self.errors)
        unknown = sorted(set(spec) - SEED_KEYS)
        if unknown:
            self.fail(where, f"unknown keys {unknown}; known: {sorted(SEED_KEYS)}")
        count = spec.get("count")
        if not isinstance(count, int) or isinstance(count, bool) or count < 0:
            self.fail(f"{where}.count", f"must be a whole number >= 0, got {count!r}")
        every = duration(spec.get("every", "1d"))
        if every is None or every < 1:
            self.fail(
                f"{where}.every", f"must be a duration such as 1d or 12h, got {spec.get('every')!r}"
            )
        newest = duration(spec.get("newest", "1d"))
        if newest is None:
            self.fail(f"{where}.newest", f"must be an age such as 2h, got {spec.get('newest')!r}")
        naming = str(spec.get("naming", "lifeboat")).lower()
        if naming not in NAMINGS:
            self.fail(f"{where}.naming", f"must be one of {list(NAMINGS)}, got {naming!r}")
        elif naming != "other" and every is not None and every < 60:
            self.fail(f"{where}.every", "must be at least 1m: Lifeboat's names carry the minute")
        group = self.need_group(sub, str(spec.get("group", SNAPSHOT_GROUP)), f"{where}.group")
        incremental = spec.get("incremental", True)
        if not isinstance(incremental, bool):
            self.fail(f"{where}.incremental", f"must be true or false, got {incremental!r}")
        elif not incremental and not disk.instant_access:
            self.fail(f"{where}.incremental", f"{disk.sku} disks have incremental snapshots only")
        if disk.ephemeral:
            self.fail(where, f"{disk.name} is an ephemeral OS disk: it has no snapshots")
        held = spec.get("held", 0)
        if not isinstance(held, int) or isinstance(held, bool) or held < 0:
            self.fail(f"{where}.held", f"must be a whole number >= 0, got {held!r}")
        extra = spec.get("tags") or {}
        if not isinstance(extra, dict):
            self.fail(f"{where}.tags", "must be a mapping of tag names to values")
        if len(self.errors) > before or group is None:
            return
        assert isinstance(count, int)
        assert every is not None
        assert newest is not None
        if naming == "lifeboat":
            h = disk_hash(disk.id, disk.unique_id)
        else:  # the hash of another uniqueId: a disk of the same name, recreated
            h = disk_hash(disk.id, stable_uuid("lookalike", disk.id))
        policy = str(spec.get("policy", "daily"))
        tags = {str(k): str(v) for k, v in extra.items()}
        newest_at = self.now - timedelta(seconds=newest)
        for i in range(count):
            created = newest_at - timedelta(seconds=i * every)
            if naming == "other":
                name = f"{disk.name[:60]}-{created:%Y%m%d%H%M%S}"
                own: dict[str, str] = {}
            else:
                created = created.replace(second=0, microsecond=0)
                slot = f"{created:%Y%m%d%H%M}"
                name = f"lb-{h}-{slot}"
                own = {"lifeboat:managed": "true", "lifeboat:policy": policy, "lifeboat:slot": slot}
            if i >= count - held:
                own[HOLD_TAG] = "seeded"
            snap_key = key(compute_id(sub.id, group.name, "snapshots", name))
            if snap_key in cloud.snapshots:
                self.fail(where, f"snapshot {name} already exists in {group.name}")
                return
            snap = snapshot_of(
                disk, sub.id, group.name, name, created, incremental, {**own, **tags}
            )
            cloud.add_snapshot(snap_key, snap)


SEED_KEYS = {"count", "every", "newest", "group", "naming", "incremental", "tags", "policy", "held"}


def snapshot_of(
    disk: Disk,
    subscription: str,
    group: str,
    name: str,
    created: datetime,
    incremental: bool,
    tags: dict[str, str],
) -> Snapshot:
    """A finished snapshot of `disk` (estate and seeded snapshots are there from the start)."""
    snap_id = compute_id(subscription, group, "snapshots", name)
    return Snapshot(
        subscription=subscription,
        group=group,
        name=name,
        location=disk.location,
        sku="Standard_ZRS" if incremental else "Standard_LRS",
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
        network_access_policy="DenyAll",
        public_network_access="Disabled",
        tags=tags,
        instant_access=disk.instant_access,
        hydrated_at=created,
    )


def build_networks(
    builder: _Builder, cloud: Cloud, sub: Subscription, raw: dict[str, Any], where: str
) -> None:
    """Existing networks of a subscription: public IPs, NAT gateways, NSGs, route tables, then
    virtual networks (subnets reference the others by name, `group/name` or id) and peerings."""
    from emulator import network_state as ns

    state = cloud.network

    def common(item: dict[str, Any], at: str) -> dict[str, Any] | None:
        group = builder.need_group(sub, item.get("resourceGroup"), at)
        if not item.get("name") or group is None:
            if not item.get("name"):
                builder.fail(at, "name is required")
            return None
        return {
            "subscription": sub.id,
            "group": group.name,
            "name": str(item["name"]),
            "location": str(item.get("location", group.location)),
            "tags": {str(k): str(v) for k, v in (item.get("tags") or {}).items()},
            "resource_guid": stable_uuid(group.id, str(item["name"])),
        }

    def ref(value: Any, group: str, kind: str, at: str) -> str | None:
        if not value:
            return None
        text = str(value)
        if text.startswith("/"):
            target = text
        else:
            parts = text.split("/")
            rg, name = (parts[0], parts[1]) if len(parts) == 2 else (group, parts[0])
            target = network_id(sub.id, rg, kind, name)
        found = state.find(target)
        if found is None:
            builder.fail(at, f"{kind} {text} is not declared")
            return None
        return str(found.id)

    for j, item in enumerate(raw.get("publicIPAddresses") or []):
        base = common(item, f"{where}.publicIPAddresses[{j}]")
        if base:
            ip = str(item.get("ipAddress", f"20.50.{j // 250}.{j % 250 + 4}"))
            state.add(ns.PublicIp(kind="publicIPAddresses", ip_address=ip, **base))
    for j, item in enumerate(raw.get("natGateways") or []):
        at = f"{where}.natGateways[{j}]"
        base = common(item, at)
        if base:
            ips = [
                ref(x, base["group"], "publicIPAddresses", at)
                for x in item.get("publicIpAddresses") or []
            ]
            nat = ns.NatGateway(kind="natGateways", public_ip_ids=[i for i in ips if i], **base)
            state.add(nat)
    for j, item in enumerate(raw.get("networkSecurityGroups") or []):
        at = f"{where}.networkSecurityGroups[{j}]"
        base = common(item, at)
        if base:
            rules = []
            for r in item.get("rules") or []:
                props = {k: v for k, v in r.items() if k != "name"}
                rules.append({"name": r.get("name", ""), "properties": props})
            try:
                parsed = ns.parse_rules(rules)
            except ArmError as e:
                builder.fail(at, e.message)
                continue
            state.add(ns.SecurityGroup(kind="networkSecurityGroups", rules=parsed, **base))
    for j, item in enumerate(raw.get("routeTables") or []):
        base = common(item, f"{where}.routeTables[{j}]")
        if base:
            routes = [
                {
                    "name": r.get("name", ""),
                    "properties": {k: v for k, v in r.items() if k != "name"},
                }
                for r in item.get("routes") or []
            ]
            state.add(ns.RouteTable(kind="routeTables", routes=ns.parse_routes(routes), **base))
    vnets: list[tuple[ns.VirtualNetwork, dict[str, Any], str]] = []
    for j, item in enumerate(raw.get("virtualNetworks") or []):
        at = f"{where}.virtualNetworks[{j}]"
        base = common(item, at)
        if not base:
            continue
        subnets = {}
        for k, sn in enumerate(item.get("subnets") or []):
            sat = f"{at}.subnets[{k}]"
            if not sn.get("name") or not sn.get("addressPrefix"):
                builder.fail(sat, "name and addressPrefix are required")
                continue
            g = base["group"]
            subnets[str(sn["name"]).lower()] = ns.Subnet(
                name=str(sn["name"]),
                address_prefix=str(sn["addressPrefix"]),
                nsg_id=ref(sn.get("networkSecurityGroup"), g, "networkSecurityGroups", sat),
                route_table_id=ref(sn.get("routeTable"), g, "routeTables", sat),
                nat_gateway_id=ref(sn.get("natGateway"), g, "natGateways", sat),
                private_endpoints=[
                    str(pe)
                    if str(pe).startswith("/")
                    else network_id(sub.id, g, "privateEndpoints", str(pe))
                    for pe in sn.get("privateEndpoints") or []
                ],
                default_outbound_access=sn.get("defaultOutboundAccess"),
            )
        prefixes = [str(x) for x in item.get("addressPrefixes") or []]
        manager = item.get("networkManager") or {}
        vnet = ns.VirtualNetwork(
            kind="virtualNetworks",
            address_prefixes=prefixes,
            subnets=subnets,
            connectivity_configurations=list(manager.get("connectivityConfigurations") or []),
            security_admin_rules=list(manager.get("securityAdminRules") or []),
            **base,
        )
        state.add(vnet)
        vnets.append((vnet, item, at))
    for vnet, item, at in vnets:
        for k, pr in enumerate(item.get("peerings") or []):
            remote = ref(pr.get("remote"), vnet.group, "virtualNetworks", f"{at}.peerings[{k}]")
            if remote:
                vnet.peerings.append(
                    ns.Peering(
                        name=str(pr.get("name", f"peering-{k}")),
                        remote_id=remote,
                        allow_forwarded_traffic=bool(pr.get("allowForwardedTraffic", False)),
                        allow_gateway_transit=bool(pr.get("allowGatewayTransit", False)),
                        use_remote_gateways=bool(pr.get("useRemoteGateways", False)),
                    )
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
