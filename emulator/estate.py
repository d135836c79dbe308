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
    EstateChange,
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
        # Disks made by a change get uniqueIds of their own moment: a disk recreated under the
        # name of a deleted one is, for Azure, another disk (a new uniqueId).
        self.unique_salt = ""

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
        known = {"version", "tenantId", "identities", "subscriptions", "description", "changes"}
        cloud.extra = {k: v for k, v in data.items() if k not in known}
        subs = data.get("subscriptions") or []
        if not subs:
            self.fail("subscriptions", "at least one subscription is required")
        for i, raw in enumerate(subs):
            self.subscription(cloud, raw, f"subscriptions[{i}]")
        if not self.errors:
            self.changes(cloud, data.get("changes"))
        if self.errors:
            raise EstateError("invalid estate:\n  " + "\n  ".join(self.errors))
        return cloud

    # ---- changes between nights ------------------------------------------------------------
    def changes(self, cloud: Cloud, raw: Any) -> None:
        """The estate's `changes:`, checked in the order they will apply: each target must
        exist at that point (in the estate or made by an earlier change)."""
        if raw is None:
            return
        if not isinstance(raw, list):
            self.fail("changes", "must be a list of {at: ..., <action>: ...}")
            return
        default_sub = next(iter(cloud.subscriptions), "")
        parsed: list[EstateChange] = []
        for i, entry in enumerate(raw):
            where = f"changes[{i}]"
            if not isinstance(entry, dict):
                self.fail(where, "must be a mapping {at: ..., <action>: ...}")
                continue
            actions = [k for k in entry if k in CHANGE_ACTIONS]
            unknown = sorted(set(entry) - CHANGE_OPTIONS - set(CHANGE_ACTIONS))
            if unknown:
                self.fail(
                    where,
                    f"unknown keys {unknown}; an entry has at, one of {list(CHANGE_ACTIONS)} "
                    "and optionally subscription, note, withDisks",
                )
            if len(actions) != 1:
                self.fail(where, f"needs exactly one of {list(CHANGE_ACTIONS)}, got {actions}")
                continue
            if "at" not in entry:
                self.fail(
                    f"{where}.at", "is required: an instant, a time after the start or 'night N'"
                )
                continue
            try:
                at = change_instant(entry["at"], self.now)
            except ValueError:
                self.fail(
                    f"{where}.at",
                    "must be an RFC 3339 instant, a time after the start (26h, +90m) or "
                    f"'night N', got {entry['at']!r}",
                )
                continue
            sub = str(entry.get("subscription", default_sub)).lower()
            if sub not in cloud.subscriptions:
                self.fail(f"{where}.subscription", f"{sub} is not a subscription of the estate")
                continue
            options = {k: entry[k] for k in ("note", "withDisks") if k in entry}
            if "withDisks" in options and actions[0] != "deleteVm":
                self.fail(f"{where}.withDisks", "goes with deleteVm only")
            parsed.append(EstateChange(i, at, actions[0], sub, entry[actions[0]], options))
        parsed.sort(key=lambda c: (c.at, c.index))
        _Rehearsal(self, cloud).run(parsed)
        cloud.changes = parsed

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
        salt = [self.unique_salt] if self.unique_salt else []
        derived = stable_uuid(disk_id, *salt)
        if os_type and sku.lower() in ("premiumv2_lrs", "ultrassd_lrs"):
            self.fail(where, f"{sku} cannot be an OS disk")
        disk = Disk(
            subscription=sub.id,
            group=group.name,
            name=str(name),
            location=str(raw.get("location", default_location or group.location)),
            sku=sku,
            size_gb=int(raw.get("sizeGB", 128 if os_type else 256)),
            unique_id=str(raw.get("uniqueId", derived)),
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
        family = stable_uuid("family", disk.id) if incremental else None
        # uniqueIds: one derived base per disk and group, plus the index (cheap, and stable).
        base = int(stable_uuid("seeded", disk.id, group.name, naming).replace("-", ""), 16)
        prefix = key(compute_id(sub.id, group.name, "snapshots", "_"))[:-1]
        made: dict[str, Snapshot] = {}
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
            snap_key = prefix + name.lower()
            if snap_key in cloud.snapshots or snap_key in made:
                self.fail(where, f"snapshot {name} already exists in {group.name}")
                return
            made[snap_key] = snapshot_of(
                disk,
                sub.id,
                group.name,
                name,
                created,
                incremental,
                {**own, **tags},
                unique_id=_uuid_text((base + i) % (1 << 128)),
                family_id=family,
            )
        cloud.add_new_snapshots(disk.id, made)


def _uuid_text(value: int) -> str:
    text = f"{value:032x}"
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


SEED_KEYS = {"count", "every", "newest", "group", "naming", "incremental", "tags", "policy", "held"}


def snapshot_of(
    disk: Disk,
    subscription: str,
    group: str,
    name: str,
    created: datetime,
    incremental: bool,
    tags: dict[str, str],
    *,
    unique_id: str | None = None,
    family_id: str | None = None,
) -> Snapshot:
    """A finished snapshot of `disk` (estate and seeded snapshots are there from the start)."""
    if unique_id is None:
        unique_id = stable_uuid(compute_id(subscription, group, "snapshots", name))
    if family_id is None and incremental:
        family_id = stable_uuid("family", disk.id)
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
        unique_id=unique_id,
        time_created=created,
        ready_at=created,
        family_id=family_id if incremental else None,
        os_type=disk.os_type,
        hyper_v_generation=disk.hyper_v_generation,
        encryption_type=disk.encryption_type,
        network_access_policy="DenyAll",
        public_network_access="Disabled",
        tags=tags,
        instant_access=disk.instant_access,
        hydrated_at=created,
    )


CHANGE_ACTIONS = (
    "addVm",
    "addDisk",
    "deleteVm",
    "deleteDisk",
    "retag",
    "hold",
    "release",
    "lock",
    "unlock",
)
CHANGE_OPTIONS = {"at", "subscription", "note", "withDisks"}
RETAG_KINDS = {"vm": "virtualMachines", "disk": "disks", "snapshot": "snapshots", "group": ""}
NIGHT_HOUR = 2  # `lifeboat demo` runs its nights at 02:00 UTC (cli/demo.py)
_NIGHT = re.compile(r"^night\s+(\d+)$", re.IGNORECASE)


def change_instant(value: Any, start: datetime) -> datetime:
    """When a change applies: an RFC 3339 instant; a time after the stand-in's start (`26h`,
    `+90m`); or `night N`, an hour before the Nth 02:00 UTC after the start (the night
    `lifeboat demo` runs as its Nth), so the change is in place when that night lists."""
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=start.tzinfo)
    text = str(value).strip()
    night = _NIGHT.match(text)
    if night:
        n = int(night.group(1))
        if n < 1:
            raise ValueError("nights count from 1")
        first = start.replace(hour=NIGHT_HOUR, minute=0, second=0, microsecond=0)
        if first <= start:
            first += timedelta(days=1)
        return first + timedelta(days=n - 1, hours=-1)
    seconds = duration(text.removeprefix("+"))
    if seconds is not None:
        return start + timedelta(seconds=seconds)
    return parse_instant(text)


def resource_ref(subscription: str, value: Any, kind: str) -> str | None:
    """`group/name` (in the change's subscription) or a full id; None when it is neither."""
    text = str(value or "").strip()
    if text.startswith("/"):
        return text
    parts = text.split("/")
    if len(parts) != 2 or not all(parts):
        return None
    return compute_id(subscription, parts[0], kind, parts[1])


def change_target(change: EstateChange) -> tuple[str, str | None]:
    """The kind (`vm`, `disk`, `snapshot`, `group`) and id a retag, hold or release names."""
    spec = change.spec
    if change.action in ("hold", "release"):
        ref = spec.get("snapshot") if isinstance(spec, dict) else spec
        return "snapshot", resource_ref(change.subscription, ref, "snapshots")
    if not isinstance(spec, dict):
        return "", None
    kinds = [k for k in RETAG_KINDS if k in spec]
    if len(kinds) != 1:
        return "", None
    kind = kinds[0]
    if kind == "group":
        name = str(spec["group"])
        return kind, None if "/" in name or not name else group_id(change.subscription, name)
    return kind, resource_ref(change.subscription, spec[kind], RETAG_KINDS[kind])


def lock_spec(change: EstateChange) -> dict[str, Any]:
    spec = change.spec
    return {"name": spec} if isinstance(spec, str) else dict(spec or {})


class _Rehearsal:
    """Walk the changes in order against what will exist then, at load time: every problem is
    found before the stand-in starts, named by its path (`changes[3].deleteVm`)."""

    def __init__(self, builder: _Builder, cloud: Cloud) -> None:
        self.builder = builder
        self.cloud = cloud
        self.vms = {k: vm.managed_disk_keys() for k, vm in cloud.vms.items()}
        self.os_disk = {k: vm.os_disk_key for k, vm in cloud.vms.items()}
        self.disks = set(cloud.disks)
        self.snapshots = set(cloud.snapshots)
        self.locks = {(lk.name.lower(), key(lk.scope)) for lk in cloud.locks}

    def fail(self, change: EstateChange, message: str, field: str = "") -> None:
        self.builder.fail(f"{change.where}.{change.action}{field}", message)

    def staged(self, change: EstateChange) -> Cloud | None:
        """Build an added VM or disk on a scratch copy, to find its problems now."""
        if not isinstance(change.spec, dict):
            self.fail(change, "must be a mapping in the estate's VM or disk format")
            return None
        scratch = Cloud(
            tenant_id=self.cloud.tenant_id,
            identities=self.cloud.identities,
            subscriptions=self.cloud.subscriptions,
        )
        before = len(self.builder.errors)
        sub = self.cloud.subscriptions[change.subscription]
        where = f"{change.where}.{change.action}"
        if change.action == "addVm":
            self.builder.vm(scratch, sub, change.spec, where)
        else:
            self.builder.disk(scratch, sub, change.spec, where, os_type=change.spec.get("osType"))
        return scratch if len(self.builder.errors) == before else None

    def run(self, changes: list[EstateChange]) -> None:
        handlers = {
            "addVm": self.add_vm,
            "addDisk": self.add_disk,
            "deleteVm": self.delete_vm,
            "deleteDisk": self.delete_disk,
            "retag": self.retag,
            "hold": self.hold,
            "release": self.hold,
            "lock": self.lock,
            "unlock": self.unlock,
        }
        for change in changes:
            handlers[change.action](change)

    def add_vm(self, change: EstateChange) -> None:
        scratch = self.staged(change)
        if scratch is None:
            return
        for vm_key, vm in scratch.vms.items():
            if vm_key in self.vms:
                self.fail(change, f"VM {vm.id} exists by then")
                continue
            self.vms[vm_key] = vm.managed_disk_keys()
            self.os_disk[vm_key] = vm.os_disk_key
        self.disks |= set(scratch.disks)
        self.snapshots |= set(scratch.snapshots)

    def add_disk(self, change: EstateChange) -> None:
        scratch = self.staged(change)
        if scratch is None:
            return
        for disk_key, disk in scratch.disks.items():
            if disk_key in self.disks:
                self.fail(change, f"disk {disk.id} exists by then")
            self.disks.add(disk_key)
        self.snapshots |= set(scratch.snapshots)

    def delete_vm(self, change: EstateChange) -> None:
        ref = resource_ref(change.subscription, change.spec, "virtualMachines")
        if ref is None:
            self.fail(change, f"must be 'group/name' or a VM id, got {change.spec!r}")
        elif key(ref) not in self.vms:
            self.fail(change, f"no VM {change.spec} by then (in the estate or added earlier)")
        else:
            disks = self.vms.pop(key(ref))
            self.os_disk.pop(key(ref), None)
            if change.options.get("withDisks"):
                self.disks -= set(disks)

    def delete_disk(self, change: EstateChange) -> None:
        ref = resource_ref(change.subscription, change.spec, "disks")
        if ref is None:
            self.fail(change, f"must be 'group/name' or a disk id, got {change.spec!r}")
        elif key(ref) not in self.disks:
            self.fail(change, f"no disk {change.spec} by then (in the estate or added earlier)")
        elif key(ref) in self.os_disk.values():
            self.fail(change, f"{change.spec} is a VM's OS disk: delete the VM (withDisks: true)")
        else:
            self.disks.discard(key(ref))

    def retag(self, change: EstateChange) -> None:
        kind, ref = change_target(change)
        spec = change.spec if isinstance(change.spec, dict) else {}
        if ref is None:
            self.fail(
                change,
                "names one of vm, disk, snapshot ('group/name' or an id) or group (a name), "
                f"got {change.spec!r}",
            )
            return
        tags = spec.get("tags")
        if not isinstance(tags, dict) or not all(
            isinstance(v, (str, int, float, bool)) or v is None for v in tags.values()
        ):
            self.fail(change, "a mapping of tag names to values (null removes a tag)", ".tags")
        unknown = sorted(set(spec) - set(RETAG_KINDS) - {"tags", "replace"})
        if unknown:
            self.fail(change, f"unknown keys {unknown}")
        exists = {
            "vm": lambda: key(ref) in self.vms,
            "disk": lambda: key(ref) in self.disks,
            "snapshot": lambda: key(ref) in self.snapshots,
            "group": lambda: self.cloud.group(change.subscription, ref.split("/")[-1]) is not None,
        }[kind]
        if not exists():
            self.fail(change, f"no {kind} {spec[kind]} by then")

    def hold(self, change: EstateChange) -> None:
        _, ref = change_target(change)
        if ref is None:
            self.fail(change, f"names a snapshot ('group/name' or an id), got {change.spec!r}")
        elif key(ref) not in self.snapshots:
            self.fail(change, f"no snapshot {ref} by then")
        elif isinstance(change.spec, dict) and set(change.spec) - {"snapshot", "value"}:
            self.fail(change, f"unknown keys {sorted(set(change.spec) - {'snapshot', 'value'})}")

    def lock(self, change: EstateChange) -> None:
        spec = lock_spec(change)
        sub = self.cloud.subscriptions[change.subscription]
        level = str(spec.get("level", "CanNotDelete"))
        if not spec.get("name"):
            self.fail(change, "name is required", ".name")
        if level not in ("CanNotDelete", "ReadOnly"):
            self.fail(change, f"must be CanNotDelete or ReadOnly, got {level}", ".level")
        found = (str(spec.get("name", "")).lower(), key(self.builder.scope(sub, spec)))
        if found in self.locks:
            self.fail(change, f"lock {spec.get('name')} exists at that scope by then")
        self.locks.add(found)

    def unlock(self, change: EstateChange) -> None:
        spec = lock_spec(change)
        sub = self.cloud.subscriptions[change.subscription]
        name = str(spec.get("name", "")).lower()
        scope = key(self.builder.scope(sub, spec)) if spec.get("scope") else None
        matches = {lk for lk in self.locks if lk[0] == name and scope in (None, lk[1])}
        if not matches:
            self.fail(change, f"no lock {spec.get('name')!r} by then")
        self.locks -= matches


def apply_changes(cloud: Cloud, now: datetime) -> list[EstateChange]:
    """Apply, in order, every change whose instant `now` has passed; each records what it did
    (status 200), or why not (404: its target is gone by then; 409: refused)."""
    with cloud.lock:
        due = cloud.due_changes(now)
        for change in due:
            _apply(cloud, change, now)
            change.applied_at = now
            cloud.next_change += 1
    return due


def _apply(cloud: Cloud, change: EstateChange, now: datetime) -> None:
    builder = _Builder({}, change.at)  # ages inside an added VM or disk count from `at`
    builder.unique_salt = f"change-{change.index}"
    sub = cloud.subscriptions[change.subscription]
    spec = change.spec
    change.status, change.result = 200, change.action
    if change.action == "addVm":
        before = set(cloud.vms)
        builder.vm(cloud, sub, {"timeCreated": change.at.isoformat(), **spec}, change.where)
        added = [cloud.vms[k] for k in set(cloud.vms) - before]
        change.target = added[0].id if added else ""
        if not added:
            change.status = 409
        change.result = "; ".join(builder.errors) or "VM added"
    elif change.action == "addDisk":
        ref = compute_id(sub.id, str(spec.get("resourceGroup")), "disks", str(spec.get("name")))
        change.target = ref
        if key(ref) in cloud.disks:
            change.status, change.result = 409, f"disk {ref} already exists"
            return
        builder.disk(cloud, sub, spec, change.where, os_type=spec.get("osType"))
        change.result = "; ".join(builder.errors) or "disk added (unattached)"
    elif change.action == "deleteVm":
        _delete_vm(cloud, change)
    elif change.action == "deleteDisk":
        _delete_disk(cloud, change)
    elif change.action in ("retag", "hold", "release"):
        _retag(cloud, change, now)
    elif change.action == "lock":
        spec = lock_spec(change)
        scope = builder.scope(sub, spec)
        cloud.locks.append(Lock(str(spec["name"]), scope, str(spec.get("level", "CanNotDelete"))))
        change.target, change.result = (
            scope,
            f"lock {spec['name']} ({spec.get('level', 'CanNotDelete')})",
        )
    elif change.action == "unlock":
        spec = lock_spec(change)
        at_scope = key(builder.scope(sub, spec)) if spec.get("scope") else None
        gone = [
            lk
            for lk in cloud.locks
            if lk.name.lower() == str(spec["name"]).lower() and at_scope in (None, key(lk.scope))
        ]
        cloud.locks = [lk for lk in cloud.locks if lk not in gone]
        change.target = gone[0].scope if gone else ""
        if not gone:
            change.status, change.result = 404, f"no lock {spec['name']}"
        else:
            change.result = f"lock {spec['name']} removed"


def _delete_vm(cloud: Cloud, change: EstateChange) -> None:
    ref = str(resource_ref(change.subscription, change.spec, "virtualMachines"))
    change.target = ref
    vm = cloud.vms.pop(key(ref), None)
    if vm is None:
        change.status, change.result = 404, f"no VM {ref}"
        return
    cloud.pending_deletes.pop(key(ref), None)
    cloud.detach_all(vm)
    change.result = "VM deleted; its disks are detached"
    if change.options.get("withDisks"):
        for disk_key in vm.managed_disk_keys():
            disk = cloud.disks.get(disk_key)
            if disk is not None and not disk.managed_by:
                del cloud.disks[disk_key]
        change.result = "VM and its disks deleted"


def _delete_disk(cloud: Cloud, change: EstateChange) -> None:
    ref = str(resource_ref(change.subscription, change.spec, "disks"))
    change.target = ref
    disk = cloud.disks.get(key(ref))
    if disk is None:
        change.status, change.result = 404, f"no disk {ref}"
        return
    users = [cloud.vms[key(v)] for v in disk.managed_by if key(v) in cloud.vms]
    if any(vm.os_disk_key == key(ref) for vm in users):
        change.status, change.result = 409, f"disk {ref} is a VM's OS disk"
        return
    for vm in users:  # detached first, as a user must before deleting it
        vm.data_disks = [d for d in vm.data_disks if d.disk_key != key(ref)]
    del cloud.disks[key(ref)]
    change.result = "disk detached and deleted" if users else "disk deleted"


def _retag(cloud: Cloud, change: EstateChange, now: datetime) -> None:
    kind, ref = change_target(change)
    assert ref is not None
    change.target = ref
    resource: Any
    if kind == "group":
        resource = cloud.group(change.subscription, ref.split("/")[-1])
    elif kind == "snapshot":
        resource = cloud.live_snapshot(key(ref), now)
    else:
        resource = (cloud.vms if kind == "vm" else cloud.disks).get(key(ref))
    if resource is None:
        change.status, change.result = 404, f"no {kind} {ref} by then"
        return
    spec = change.spec if isinstance(change.spec, dict) else {}
    if change.action == "hold":
        updates: dict[str, Any] = {HOLD_TAG: str(spec.get("value", "estate-change"))}
    elif change.action == "release":
        updates = {HOLD_TAG: None}
    else:
        updates = dict(spec.get("tags") or {})
        if spec.get("replace"):
            resource.tags = {}
    for name, value in updates.items():
        same = [k for k in resource.tags if k.lower() == str(name).lower()]
        if value is None:
            for k in same:
                del resource.tags[k]
        else:  # tag keys are case-insensitive: the casing first written stays
            resource.tags[same[0] if same else str(name)] = str(value)
    change.result = f"tags now {dict(sorted(resource.tags.items()))}"


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
