"""The `RecoveryCloud` port (shared/recovery/ports.py) on ARM's REST API.

Reads and the few writes a recovery adds to a drill's (deallocate, start, the VM PUT with
If-Match, tag deletes, usages) are plain REST calls through the Compute adapter's ARM pipeline,
so the VM's ETag and the bodies are exactly what Azure sent; disk, NIC and VM creates are the
drill adapter's. Writes start Azure's work and return.
"""

from __future__ import annotations

from typing import Any

from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.core.rest import HttpRequest

from shared.adapters.compute import AzureCompute, call_arm
from shared.adapters.drills import AzureDrills
from shared.model import DrillResource, Snapshot, VmStatus
from shared.ports import DrillDiskRequest, DrillVmRequest
from shared.recovery.model import AttachedDisk, Nic, RecoveryVm, SourceDisk, Usage
from shared.recovery.ports import PreconditionFailedError
from shared.recovery.report import caller_of

COMPUTE_API = "2024-07-01"
DISKS_API = "2024-03-02"
NETWORK_API = "2024-05-01"
TAGS_API = "2021-04-01"


class AzureRecovery:
    def __init__(self, compute: AzureCompute, drills: AzureDrills | None = None) -> None:
        self._compute = compute
        self._drills = drills or AzureDrills(compute)
        self._endpoint = compute._endpoint

    # --- plumbing

    def _send(
        self,
        method: str,
        path: str,
        api: str,
        body: Any = None,
        headers: dict[str, str] | None = None,
    ) -> Any:
        request = HttpRequest(
            method,
            f"{self._endpoint}{path}",
            params={"api-version": api},
            json=body,
            headers=headers,
        )

        def send() -> Any:
            response = self._compute._arm.send_request(request)
            if response.status_code == 412:
                raise PreconditionFailedError(response.text()[:300])
            if response.status_code == 404:
                raise ResourceNotFoundError(response=response)
            if response.status_code >= 400:
                raise HttpResponseError(response=response)
            return response

        return call_arm(send)

    def _get(self, path: str, api: str) -> dict[str, Any] | None:
        try:
            response = self._send("GET", path, api)
        except ResourceNotFoundError:
            return None
        body: dict[str, Any] = response.json()
        etag = response.headers.get("ETag")
        if etag and not body.get("etag"):
            body["etag"] = etag
        return body

    # --- reads

    def caller(self) -> str:
        token = self._compute._credential.get_token(*self._compute._scopes)
        return caller_of(token.token)

    def get_vm(self, vm_id: str) -> RecoveryVm | None:
        body = self._get(vm_id, COMPUTE_API)
        if body is None:
            return None
        view = self._get(f"{vm_id}/instanceView", COMPUTE_API) or {}
        return vm_from_rest(body, view)

    def get_disk(self, disk_id: str) -> SourceDisk | None:
        body = self._get(disk_id, DISKS_API)
        if body is None:
            return None
        props = body.get("properties") or {}
        encryption = props.get("encryption") or {}
        return SourceDisk(
            id=str(body.get("id") or disk_id),
            name=str(body.get("name") or disk_id.rsplit("/", 1)[-1]),
            location=str(body.get("location", "")),
            sku=(body.get("sku") or {}).get("name"),
            size_gb=props.get("diskSizeGB"),
            os_type=props.get("osType"),
            hyper_v_generation=props.get("hyperVGeneration"),
            disk_encryption_set_id=encryption.get("diskEncryptionSetId"),
            azure_disk_encryption=bool(
                (props.get("encryptionSettingsCollection") or {}).get("enabled")
            ),
            tags=dict(body.get("tags") or {}),
        )

    def list_snapshots(self, subscription_id: str, resource_group: str) -> list[Snapshot]:
        return self._compute.list_snapshots(subscription_id, resource_group)

    def get_nic(self, nic_id: str) -> Nic | None:
        body = self._get(nic_id, NETWORK_API)
        if body is None:
            return None
        props = body.get("properties") or {}
        configs = props.get("ipConfigurations") or [{}]
        primary = next(
            (c for c in configs if (c.get("properties") or {}).get("primary")), configs[0]
        )
        cprops = primary.get("properties") or {}
        return Nic(
            id=str(body.get("id") or nic_id),
            subnet_id=(cprops.get("subnet") or {}).get("id"),
            private_ip=cprops.get("privateIPAddress"),
            vm_id=(props.get("virtualMachine") or {}).get("id"),
        )

    def get_subnet_location(self, subnet_id: str) -> str | None:
        vnet_id, _, subnet = subnet_id.rstrip("/").rpartition("/subnets/")
        body = self._get(vnet_id, NETWORK_API)
        if body is None:
            return None
        subnets = (body.get("properties") or {}).get("subnets") or []
        if not any(str(s.get("name", "")).lower() == subnet.lower() for s in subnets):
            return None
        return str(body.get("location", ""))

    def list_usages(self, subscription_id: str, location: str) -> list[Usage]:
        path = (
            f"/subscriptions/{subscription_id}/providers/Microsoft.Compute/locations/"
            f"{location}/usages"
        )
        usages: list[Usage] = []
        body = self._get(path, COMPUTE_API) or {}
        for item in body.get("value") or []:
            name = (item.get("name") or {}).get("value")
            if name is None:
                continue
            usages.append(Usage(str(name), int(item.get("currentValue", 0)), int(item["limit"])))
        return usages

    def get_resource(self, resource_id: str) -> DrillResource | None:
        return self._drills.get_resource(resource_id)

    def get_vm_status(self, vm_id: str) -> VmStatus | None:
        return self._drills.get_vm_status(vm_id)

    def list_disks(self, subscription_id: str, resource_group: str) -> list[DrillResource]:
        found = self._drills.list_drill_resources(subscription_id, resource_group)
        return [r for r in found if r.kind.lower() == "disks"]

    # --- writes

    def begin_create_disk(self, request: DrillDiskRequest) -> None:
        self._drills.begin_create_disk(request)

    def begin_create_nic(
        self,
        nic_id: str,
        location: str,
        subnet_id: str,
        tags: dict[str, str],
        private_ip: str | None = None,
    ) -> None:
        self._drills.begin_create_nic(nic_id, location, subnet_id, tags, private_ip)

    def begin_create_vm(self, request: DrillVmRequest) -> None:
        self._drills.begin_create_vm(request)

    def begin_deallocate(self, vm_id: str) -> None:
        self._send("POST", f"{vm_id}/deallocate", COMPUTE_API)

    def begin_start(self, vm_id: str) -> None:
        self._send("POST", f"{vm_id}/start", COMPUTE_API)

    def update_vm_disks(
        self, vm: RecoveryVm, os_disk_id: str, data_disks: tuple[tuple[int, str], ...]
    ) -> None:
        body = self._get(vm.id, COMPUTE_API)
        if body is None:
            raise PreconditionFailedError(f"{vm.name} no longer exists")
        props = body.setdefault("properties", {})
        storage = props.setdefault("storageProfile", {})
        storage["osDisk"] = {
            **{k: v for k, v in (storage.get("osDisk") or {}).items() if k not in ("name", "vhd")},
            "createOption": "Attach",
            "managedDisk": {"id": os_disk_id},
        }
        caching = {int(d["lun"]): d.get("caching") for d in storage.get("dataDisks") or []}
        storage["dataDisks"] = [
            {
                "lun": lun,
                "createOption": "Attach",
                "managedDisk": {"id": disk_id},
                **({"caching": caching[lun]} if caching.get(lun) else {}),
            }
            for lun, disk_id in data_disks
        ]
        for read_only in ("provisioningState", "instanceView", "vmId", "timeCreated"):
            props.pop(read_only, None)
        body.pop("etag", None)
        headers = {"If-Match": vm.etag} if vm.etag else {}
        self._send("PUT", vm.id, COMPUTE_API, body, headers)

    def merge_tags(self, resource_id: str, tags: dict[str, str]) -> None:
        self._tags(resource_id, "Merge", tags)

    def delete_tags(self, resource_id: str, keys: list[str]) -> None:
        self._tags(resource_id, "Delete", {k: "" for k in keys})

    def _tags(self, resource_id: str, operation: str, tags: dict[str, str]) -> None:
        path = f"{resource_id}/providers/Microsoft.Resources/tags/default"
        self._send("PATCH", path, TAGS_API, {"operation": operation, "properties": {"tags": tags}})


def vm_from_rest(body: dict[str, Any], view: dict[str, Any]) -> RecoveryVm:
    props = body.get("properties") or {}
    storage = props.get("storageProfile") or {}

    def attached(disk: dict[str, Any], lun: int | None) -> AttachedDisk:
        ephemeral = ((disk.get("diffDiskSettings") or {}).get("option") or "").lower() == "local"
        return AttachedDisk(
            lun=lun,
            disk_id=None if ephemeral else (disk.get("managedDisk") or {}).get("id"),
            caching=disk.get("caching"),
            ephemeral=ephemeral,
            vhd_uri=(disk.get("vhd") or {}).get("uri"),
        )

    os_disk = storage.get("osDisk") or {}
    parts = str(body["id"]).strip("/").split("/")
    statuses = [str(s.get("code", "")) for s in view.get("statuses") or []]
    power = next((c.split("/", 1)[1] for c in statuses if c.startswith("PowerState/")), None)
    return RecoveryVm(
        id=str(body["id"]),
        name=str(body.get("name") or parts[-1]),
        subscription_id=parts[1],
        resource_group=parts[3],
        location=str(body.get("location", "")).lower().replace(" ", ""),
        size=(props.get("hardwareProfile") or {}).get("vmSize"),
        os_type=os_disk.get("osType"),
        os_disk=attached(os_disk, None),
        data_disks=tuple(
            attached(d, int(d["lun"]))
            for d in sorted(storage.get("dataDisks") or [], key=lambda d: int(d.get("lun", 0)))
            if "lun" in d
        ),
        zones=tuple(str(z) for z in body.get("zones") or ()),
        tags=dict(body.get("tags") or {}),
        nic_ids=tuple(
            str(n["id"])
            for n in sorted(
                (props.get("networkProfile") or {}).get("networkInterfaces") or [],
                key=lambda n: not (n.get("properties") or {}).get("primary", False),
            )
            if n.get("id")
        ),
        security_profile=props.get("securityProfile") or None,
        plan=dict(body["plan"]) if body.get("plan") else None,
        boot_diagnostics=(props.get("diagnosticsProfile") or {}).get("bootDiagnostics"),
        etag=body.get("etag"),
        power_state=power,
    )


__all__ = ["AzureRecovery", "vm_from_rest"]
