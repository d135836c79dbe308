"""DR drills against the stand-in (part 4), with the pinned SDKs unchanged: azure-mgmt-network,
azure-mgmt-compute (disks from snapshots, VMs from attached disks) and azure-mgmt-resource-policy.

One stand-in of its own (its clock is advanced here), the demo estate.
"""

from __future__ import annotations

import json
import re
import ssl
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.identity import ManagedIdentityCredential
from azure.mgmt.compute import ComputeManagementClient
from azure.mgmt.network import NetworkManagementClient
from azure.mgmt.resource.policy import PolicyClient

from emulator.process import DEMO_ESTATE, Endpoints, running_emulator
from tests.emulator.conftest import (
    CLOCK_START,
    SNAP_RG,
    SUB,
    disk_id,
    make_compute,
    pointed_at,
    snapshot_body,
)
from tests.emulator.test_fidelity import DATA, Recorder, recorded, template

DRILL_RG = "rg-lifeboat-drill-westeurope"
NET = f"/subscriptions/{SUB}/resourceGroups/{DRILL_RG}/providers/Microsoft.Network"


@pytest.fixture(scope="module")
def drill_stand_in() -> Iterator[Endpoints]:
    args = ("--retry-after-scale", "0.05", "--operation-seconds", "0.3", "--page-size", "2")
    with running_emulator(DEMO_ESTATE, *args, "--clock-start", CLOCK_START, "--seed", "3") as ep:
        yield ep


@pytest.fixture
def env(drill_stand_in: Endpoints, monkeypatch: pytest.MonkeyPatch) -> Endpoints:
    return pointed_at(drill_stand_in, monkeypatch)


def _kwargs(ep: Endpoints) -> dict[str, Any]:
    return {
        "base_url": ep.arm,
        "credential_scopes": [ep.arm_audience + ".default"],
        "connection_verify": ep.ca_bundle,
        "polling_interval": 0.2,
    }


@pytest.fixture
def clients(env: Endpoints) -> tuple[ComputeManagementClient, NetworkManagementClient]:
    credential = ManagedIdentityCredential(client_id=env.client_id)
    return make_compute(env, credential), NetworkManagementClient(credential, SUB, **_kwargs(env))


@pytest.fixture
def admin(drill_stand_in: Endpoints) -> Iterator[httpx.Client]:
    verify = ssl.create_default_context(cafile=drill_stand_in.ca_bundle)
    with httpx.Client(base_url=drill_stand_in.admin, verify=verify, timeout=30) as client:
        yield client


def advance(admin: httpx.Client, seconds: float) -> None:
    admin.post("/clock", json={"advanceSeconds": seconds}).raise_for_status()


def log_since(admin: httpx.Client, since: int) -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = admin.get("/requests", params={"since": since}).json()[
        "entries"
    ]
    return entries


def nsg_body(location: str = "westeurope") -> dict[str, Any]:
    return {
        "location": location,
        "properties": {
            "securityRules": [
                {
                    "name": "deny-internet-out",
                    "properties": {
                        "priority": 100,
                        "direction": "Outbound",
                        "access": "Deny",
                        "protocol": "*",
                        "destinationAddressPrefix": "Internet",
                    },
                }
            ]
        },
    }


def network(
    net: NetworkManagementClient, name: str, prefix: str, location: str = "westeurope"
) -> tuple[str, str]:
    """NSG + VNet with one subnet + NIC; returns (nic id, subnet id)."""
    nsg = net.network_security_groups.begin_create_or_update(
        DRILL_RG, f"nsg-{name}", nsg_body(location)
    ).result()
    vnet = net.virtual_networks.begin_create_or_update(
        DRILL_RG,
        f"vnet-{name}",
        {
            "location": location,
            "properties": {
                "addressSpace": {"addressPrefixes": [prefix + "/24"]},
                "subnets": [
                    {
                        "name": "snet",
                        "properties": {
                            "addressPrefix": prefix + "/26",
                            "networkSecurityGroup": {"id": nsg.id},
                            "defaultOutboundAccess": False,
                        },
                    }
                ],
            },
        },
    ).result()
    subnet_id = vnet.subnets[0].id
    nic = net.network_interfaces.begin_create_or_update(
        DRILL_RG,
        f"nic-{name}",
        {
            "location": location,
            "properties": {
                "ipConfigurations": [
                    {"name": "ipconfig1", "properties": {"subnet": {"id": subnet_id}}}
                ]
            },
        },
    ).result()
    return nic.id, subnet_id


def restored_disk(
    compute: ComputeManagementClient, source_disk: str, name: str, **extra: Any
) -> str:
    snap = compute.snapshots.begin_create_or_update(
        SNAP_RG, f"snap-{name}", snapshot_body(source_disk)
    ).result()
    disk = compute.disks.begin_create_or_update(
        DRILL_RG,
        name,
        {
            "location": "westeurope",
            "sku": {"name": "Premium_LRS"},
            "properties": {
                "creationData": {"createOption": "Copy", "sourceResourceId": snap.id},
                "osType": "Linux",
                "hyperVGeneration": "V2",
            },
            "tags": {"lifeboat:drill": "t1"},
            **extra,
        },
    ).result()
    assert disk.creation_data.source_resource_id == snap.id
    assert disk.creation_data.source_unique_id == snap.unique_id
    assert disk.provisioning_state == "Succeeded"
    return str(disk.id)


def vm_body(os_disk: str, nic: str, location: str = "westeurope") -> dict[str, Any]:
    return {
        "location": location,
        "tags": {"lifeboat:drill": "t1"},
        "properties": {
            "hardwareProfile": {"vmSize": "Standard_D2s_v5"},
            "storageProfile": {
                "osDisk": {
                    "createOption": "Attach",
                    "osType": "Linux",
                    "managedDisk": {"id": os_disk},
                }
            },
            "networkProfile": {"networkInterfaces": [{"id": nic, "properties": {"primary": True}}]},
            "securityProfile": {"securityType": "TrustedLaunch"},
        },
    }


def agent_status(compute: ComputeManagementClient, name: str) -> tuple[list[str], Any]:
    view = compute.virtual_machines.instance_view(DRILL_RG, name)
    codes = [s.code for s in view.statuses]
    agent = view.vm_agent.statuses[0] if view.vm_agent else None
    return codes, agent


def test_estate_networks_as_the_network_sdk_reads_them(
    clients: tuple[ComputeManagementClient, NetworkManagementClient],
) -> None:
    _, net = clients
    names = sorted(v.name for v in net.virtual_networks.list(DRILL_RG))  # page size 2: 2 pages
    assert names[:3] == ["vnet-drill-isolated", "vnet-drill-open", "vnet-drill-peered"]
    isolated = net.virtual_networks.get(DRILL_RG, "vnet-drill-isolated")
    subnet = isolated.subnets[0]
    assert subnet.default_outbound_access is False
    assert subnet.network_security_group.id.endswith("/nsg-drill-isolated")
    assert isolated.virtual_network_peerings == []
    peered = net.virtual_networks.get(DRILL_RG, "vnet-drill-peered")
    peering = peered.virtual_network_peerings[0]
    assert peering.remote_virtual_network.id.endswith(
        "/rg-app/providers/Microsoft.Network/virtualNetworks/vnet-prod"
    )
    assert peering.peering_state == "Connected"  # vnet-prod peers back
    assert net.subnets.get(DRILL_RG, "vnet-drill-open", "snet-drill").network_security_group
    nsg = net.network_security_groups.get(DRILL_RG, "nsg-drill-isolated")
    defaults = [(r.name, r.priority, r.direction, r.access) for r in nsg.default_security_rules]
    assert defaults == [
        ("AllowVnetInBound", 65000, "Inbound", "Allow"),
        ("AllowAzureLoadBalancerInBound", 65001, "Inbound", "Allow"),
        ("DenyAllInBound", 65500, "Inbound", "Deny"),
        ("AllowVnetOutBound", 65000, "Outbound", "Allow"),
        ("AllowInternetOutBound", 65001, "Outbound", "Allow"),
        ("DenyAllOutBound", 65500, "Outbound", "Deny"),
    ]
    denied = {
        (r.direction, r.destination_address_prefix or r.source_address_prefix)
        for r in nsg.security_rules
        if r.access == "Deny"
    }
    assert {("Outbound", "Internet"), ("Outbound", "VirtualNetwork")} <= denied
    assert all(r.priority < 65000 for r in nsg.security_rules)
    assert len(nsg.subnets) == 2  # isolated and peered share it
    open_nsg = net.network_security_groups.get(DRILL_RG, "nsg-drill-open")
    assert any(
        r.access == "Allow"
        and r.direction == "Outbound"
        and r.destination_address_prefix == "Internet"
        for r in open_nsg.security_rules
    )


def test_policy_assignments_apply_at_the_group(env: Endpoints) -> None:
    policy = PolicyClient(ManagedIdentityCredential(client_id=env.client_id), SUB, **_kwargs(env))
    drill = list(policy.policy_assignments.list_for_resource_group(DRILL_RG))
    assert [a.name for a in drill] == ["allowed-locations-audit"]
    audit = drill[0]
    assert audit.scope == f"/subscriptions/{SUB}"
    assert audit.enforcement_mode == "DoNotEnforce"
    assert audit.policy_definition_id.endswith("/e56962a6-4747-49cd-b67b-bf8b01975c4c")
    assert audit.type == "Microsoft.Authorization/policyAssignments"
    snaps = {a.name for a in policy.policy_assignments.list_for_resource_group(SNAP_RG)}
    assert snaps == {
        "allowed-locations-audit",
        "snapshots-deny-public-network",
        "snapshots-add-cost-center",
    }
    exact = policy.policy_assignments.list_for_resource_group(DRILL_RG, filter="atExactScope()")
    assert list(exact) == []


def test_drill_create_boot_and_teardown_in_dependency_order(
    clients: tuple[ComputeManagementClient, NetworkManagementClient], admin: httpx.Client
) -> None:
    compute, net = clients
    since = admin.get("/requests").json()["total"]
    nic_id, _ = network(net, "t1", "10.210.0.0")
    nic = net.network_interfaces.get(DRILL_RG, "nic-t1")
    assert nic.ip_configurations[0].private_ip_address == "10.210.0.4"
    assert net.subnets.get(DRILL_RG, "vnet-t1", "snet").ip_configurations[0].id == (
        f"{nic_id}/ipConfigurations/ipconfig1"
    )
    os_disk = restored_disk(compute, disk_id("rg-app", "vm-web-01-osdisk"), "t1-osdisk")
    assert "t1-osdisk" in [d.name for d in compute.disks.list_by_resource_group(DRILL_RG)]

    poller = compute.virtual_machines.begin_create_or_update(
        DRILL_RG, "vm-t1", vm_body(os_disk, nic_id)
    )
    codes, agent = agent_status(compute, "vm-t1")
    assert codes == ["ProvisioningState/creating", "PowerState/starting"]
    assert agent is None
    advance(admin, 60)
    vm = poller.result()
    assert vm.provisioning_state == "Succeeded"
    assert vm.storage_profile.os_disk.create_option == "Attach"
    assert vm.os_profile is None
    assert "vm-t1" in [v.name for v in compute.virtual_machines.list(DRILL_RG)]
    assert compute.disks.get(DRILL_RG, "t1-osdisk").managed_by == vm.id
    assert net.network_interfaces.get(DRILL_RG, "nic-t1").virtual_machine.id == vm.id
    assert agent_status(compute, "vm-t1")[0] == [
        "ProvisioningState/succeeded",
        "PowerState/starting",
    ]
    advance(admin, 45)
    codes, agent = agent_status(compute, "vm-t1")
    assert codes[1] == "PowerState/running"
    assert agent.display_status == "Not Ready"
    advance(admin, 30)
    assert agent_status(compute, "vm-t1")[1].display_status == "Ready"

    # Out of order: everything in use is refused.
    with pytest.raises(HttpResponseError) as nic_in_use:
        net.network_interfaces.begin_delete(DRILL_RG, "nic-t1").result()
    assert (nic_in_use.value.status_code, nic_in_use.value.error.code) == (400, "NicInUse")
    with pytest.raises(HttpResponseError) as attached:
        compute.disks.begin_delete(DRILL_RG, "t1-osdisk").result()
    assert (attached.value.status_code, attached.value.error.code) == (409, "OperationNotAllowed")
    with pytest.raises(HttpResponseError) as subnet_in_use:
        net.virtual_networks.begin_delete(DRILL_RG, "vnet-t1").result()
    assert subnet_in_use.value.error.code == "InUseSubnetCannotBeDeleted"
    with pytest.raises(HttpResponseError) as nsg_in_use:
        net.network_security_groups.begin_delete(DRILL_RG, "nsg-t1").result()
    assert nsg_in_use.value.error.code == "InUseNetworkSecurityGroupCannotBeDeleted"

    # In order: VM, NIC, disk, VNet, NSG.
    deleting = compute.virtual_machines.begin_delete(DRILL_RG, "vm-t1")
    advance(admin, 30)
    deleting.result()
    with pytest.raises(ResourceNotFoundError):
        compute.virtual_machines.get(DRILL_RG, "vm-t1")
    assert compute.disks.get(DRILL_RG, "t1-osdisk").managed_by is None
    assert net.network_interfaces.get(DRILL_RG, "nic-t1").virtual_machine is None
    net.network_interfaces.begin_delete(DRILL_RG, "nic-t1").result()
    compute.disks.begin_delete(DRILL_RG, "t1-osdisk").result()
    net.virtual_networks.begin_delete(DRILL_RG, "vnet-t1").result()
    net.network_security_groups.begin_delete(DRILL_RG, "nsg-t1").result()
    with pytest.raises(ResourceNotFoundError):
        net.virtual_networks.get(DRILL_RG, "vnet-t1")
    assert "t1-osdisk" not in [d.name for d in compute.disks.list_by_resource_group(DRILL_RG)]

    entries = log_since(admin, since)
    by_op: dict[str, list[str]] = {}
    for entry in entries:
        if entry["status"] < 300:
            by_op.setdefault(f"{entry['method']} {entry['operation']}", []).extend(entry["actions"])
    assert (
        "Microsoft.Network/virtualNetworks/subnets/join/action"
        in by_op["PUT Microsoft.Network/networkInterfaces/write"]
    )
    assert (
        "Microsoft.Network/networkSecurityGroups/join/action"
        in by_op["PUT Microsoft.Network/virtualNetworks/write"]
    )
    assert by_op["PUT Microsoft.Compute/disks/write"] == [
        "Microsoft.Compute/disks/write",
        "Microsoft.Compute/snapshots/read",
    ]
    assert by_op["PUT Microsoft.Compute/virtualMachines/write"] == [
        "Microsoft.Compute/virtualMachines/write",
        "Microsoft.Network/networkInterfaces/join/action",
        "Microsoft.Compute/disks/write",
    ]
    for operation in (
        "GET Microsoft.Network/locations/operations/read",
        "GET Microsoft.Compute/locations/operations/read",
        "DELETE Microsoft.Compute/virtualMachines/delete",
        "DELETE Microsoft.Network/networkSecurityGroups/delete",
        "DELETE Microsoft.Compute/disks/delete",
    ):
        assert operation in by_op, operation
    assert not any("beginGetAccess" in a for a in by_op["PUT Microsoft.Compute/disks/write"])


def test_vm_from_a_boot_failing_source_never_gets_ready(
    clients: tuple[ComputeManagementClient, NetworkManagementClient], admin: httpx.Client
) -> None:
    compute, net = clients

    def boot(name: str, prefix: str, source: str, disk: str) -> None:
        """A VM on its own network from a disk restored from `source`, ten minutes on."""
        nic_id, _ = network(net, name, prefix)
        restored = restored_disk(compute, source, disk)
        poller = compute.virtual_machines.begin_create_or_update(
            DRILL_RG, f"vm-{name}", vm_body(restored, nic_id)
        )
        advance(admin, 600)
        poller.result()

    boot("t2", "10.211.0.0", disk_id("rg-data", "vm-report-01-osdisk"), "t2-osdisk")
    codes, agent = agent_status(compute, "vm-t2")
    assert codes == ["ProvisioningState/succeeded", "PowerState/running"]
    assert (agent.display_status, agent.message) == ("Not Ready", "VM Agent is unresponsive.")
    # Scripted by name as well.
    assert admin.post("/boot-failures", json={"vmNamePattern": "vm-t3*"}).status_code == 201
    boot("t3", "10.212.0.0", disk_id("rg-app", "vm-web-01-data-01"), "t3-disk")
    assert agent_status(compute, "vm-t3")[1].display_status == "Not Ready"
    assert admin.delete("/boot-failures").status_code == 204


def test_refusals_region_and_attached_disk(
    clients: tuple[ComputeManagementClient, NetworkManagementClient], admin: httpx.Client
) -> None:
    compute, net = clients
    snap = compute.snapshots.begin_create_or_update(
        SNAP_RG, "snap-t4", snapshot_body(disk_id("rg-app", "vm-api-01-osdisk"))
    ).result()
    with pytest.raises(HttpResponseError) as region:
        compute.disks.begin_create_or_update(
            DRILL_RG,
            "t4-north",
            {
                "location": "northeurope",
                "properties": {
                    "creationData": {"createOption": "Copy", "sourceResourceId": snap.id}
                },
            },
        ).result()
    assert (region.value.status_code, region.value.error.code) == (400, "InvalidParameter")
    nic_id, _ = network(net, "t4", "10.213.0.0")
    attached = disk_id("rg-app", "vm-web-01-osdisk")  # attached to vm-web-01
    with pytest.raises(HttpResponseError) as busy:
        compute.virtual_machines.begin_create_or_update(
            DRILL_RG, "vm-t4", vm_body(attached, nic_id)
        ).result()
    assert (busy.value.status_code, busy.value.error.code) == (409, "OperationNotAllowed")
    north_nic, _ = network(net, "t4n", "10.214.0.0", location="northeurope")
    own = restored_disk(compute, disk_id("rg-app", "vm-api-01-osdisk"), "t4-osdisk")
    with pytest.raises(HttpResponseError) as nic_region:
        compute.virtual_machines.begin_create_or_update(
            DRILL_RG, "vm-t4", vm_body(own, north_nic)
        ).result()
    assert (nic_region.value.status_code, nic_region.value.error.code) == (400, "InvalidParameter")


def test_throttling_applies_to_network_writes(env: Endpoints, admin: httpx.Client) -> None:
    credential = ManagedIdentityCredential(client_id=env.client_id)
    net = NetworkManagementClient(credential, SUB, retry_total=0, **_kwargs(env))
    admin.post("/throttle", json={"arm": {"writes": [1, 0.01]}}).raise_for_status()
    try:
        net.network_security_groups.begin_create_or_update(DRILL_RG, "nsg-t5", nsg_body()).result()
        with pytest.raises(HttpResponseError) as throttled:
            net.network_security_groups.begin_create_or_update(DRILL_RG, "nsg-t6", nsg_body())
        assert throttled.value.status_code == 429
        assert throttled.value.error.code == "SubscriptionRequestsThrottled"
    finally:
        admin.post("/throttle", json={"arm": {"writes": [200, 10]}}).raise_for_status()


# ---- fidelity: recordings for flow, REST-spec examples for shape (tests/data/ORIGIN.md) ----------
def keys(body: Any, prefix: str = "") -> set[str]:
    """Every key path of a JSON body; lists count by their first item."""
    out: set[str] = set()
    if isinstance(body, dict):
        for k, v in body.items():
            out.add(prefix + k)
            out |= keys(v, f"{prefix}{k}.")
    elif isinstance(body, list) and body:
        out |= keys(body[0], prefix)
    return out


def lro_headers(call: dict[str, Any]) -> tuple[int, set[str]]:
    wanted = {"azure-asyncoperation", "location", "retry-after"}
    return call["status"], {h for h in call["headers"] if h in wanted}


def test_network_and_vm_flow_and_shapes_match_recordings_and_spec(
    env: Endpoints, admin: httpx.Client
) -> None:
    theirs = {
        (c["method"], template(c["url"])): c for c in recorded("recording_vm_create_flow.json")
    }
    route_table = recorded("recording_network_route_table_flow.json")
    recorder = Recorder()
    credential = ManagedIdentityCredential(client_id=env.client_id)
    kwargs = {**_kwargs(env), "per_retry_policies": [recorder]}
    net = NetworkManagementClient(credential, SUB, **kwargs)
    compute = ComputeManagementClient(credential, SUB, **kwargs)
    nic_id, _ = network(net, "f1", "10.220.0.0")
    os_disk = restored_disk(compute, disk_id("rg-data", "vm-db-02-osdisk"), "f1-osdisk")
    poller = compute.virtual_machines.begin_create_or_update(
        DRILL_RG, "vm-f1", vm_body(os_disk, nic_id)
    )
    advance(admin, 60)
    poller.result()
    nic = net.network_interfaces.get(DRILL_RG, "nic-f1")
    assert nic.mac_address
    assert nic.primary
    deleting = compute.virtual_machines.begin_delete(DRILL_RG, "vm-f1")
    advance(admin, 30)
    deleting.result()
    net.network_security_groups.begin_create_or_update(DRILL_RG, "nsg-f2", nsg_body()).result()
    net.network_security_groups.begin_delete(DRILL_RG, "nsg-f2").result()
    ours = [c for c in recorder.calls if "/msi/" not in c["url"]]

    def first(method: str, marker: str, status: int | None = None) -> dict[str, Any]:
        return next(
            c
            for c in ours
            if c["method"] == method
            and marker in c["url"].split("?")[0]
            and (status is None or c["status"] == status)
        )

    vnet_put = theirs[
        (
            "PUT",
            "/subscriptions/{id}/resourceGroups/rgname/providers/Microsoft.Network/virtualNetworks/networknamexeb772750",
        )
    ]
    assert lro_headers(first("PUT", "/virtualNetworks/vnet-f1")) == lro_headers(vnet_put)
    nic_put = next(c for k, c in theirs.items() if k[0] == "PUT" and "networkInterfaces" in k[1])
    assert lro_headers(first("PUT", "/networkInterfaces/nic-f1")) == lro_headers(nic_put)
    vm_put = next(c for k, c in theirs.items() if k[0] == "PUT" and "virtualMachines" in k[1])
    assert lro_headers(first("PUT", "/virtualMachines/vm-f1")) == lro_headers(vm_put)
    vm_delete = next(c for k, c in theirs.items() if k[0] == "DELETE")
    assert lro_headers(first("DELETE", "/virtualMachines/vm-f1")) == lro_headers(vm_delete)
    assert lro_headers(first("DELETE", "/networkSecurityGroups/nsg-f2")) == lro_headers(
        route_table[3]
    )
    assert first("PUT", "/virtualMachines/vm-f1")["body"]["properties"]["provisioningState"] == (
        "Creating"
    )
    # Status bodies: the network RP says only its status; the compute RP adds times and name.
    network_status = first("GET", "/providers/Microsoft.Network/locations/")["body"]
    assert set(network_status) == {"status"}
    compute_status = [
        c["body"]
        for c in ours
        if re.search(r"/Microsoft\.Compute/locations/[^/]+/operations/", c["url"])
    ]
    recorded_status = [
        c["body"] for k, c in theirs.items() if "/Microsoft.Compute/locations/" in k[1]
    ]
    assert {frozenset(b) for b in compute_status} <= {frozenset(b) for b in recorded_status} | {
        frozenset({"startTime", "status", "name"})
    }
    # Resource bodies carry every recorded key (the VM less what an attached OS disk lacks).
    vnet_get = next(
        c for k, c in theirs.items() if k[0] == "GET" and k[1].endswith("networknamexeb772750")
    )
    assert keys(vnet_get["body"]) <= keys(first("GET", "/virtualNetworks/vnet-f1")["body"])
    nic_get = next(c for k, c in theirs.items() if k[0] == "GET" and "networkInterfaces" in k[1])
    assert keys(nic_get["body"]) <= keys(first("GET", "/networkInterfaces/nic-f1")["body"])
    vm_get = next(
        c
        for k, c in theirs.items()
        if k[0] == "GET" and k[1].endswith("xeb772750") and "virtualMachines" in k[1]
    )
    skip = (  # what a VM from one attached OS disk has not: image, OS profile, data disks
        "properties.osProfile",
        "properties.storageProfile.imageReference",
        "properties.storageProfile.dataDisks.",
        "tags.",  # the recording's subscription tagged its VMs itself
    )
    wanted = {k for k in keys(vm_get["body"]) if not k.startswith(skip)}
    assert wanted <= keys(first("GET", "/virtualMachines/vm-f1", 200)["body"])
    # REST-spec examples: the NSG's default rules exactly; the attached NIC's keys.
    spec_nsg = json.loads((DATA / "spec_nsg_get.json").read_text())
    nsg_body_ours = first("GET", "/networkSecurityGroups/nsg-f2")["body"]
    assert keys(spec_nsg) - {"source"} <= keys(nsg_body_ours)

    def strip(rules: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
        return [(r["name"], r["properties"]) for r in rules]

    assert strip(nsg_body_ours["properties"]["defaultSecurityRules"]) == strip(
        spec_nsg["properties"]["defaultSecurityRules"]
    )
    spec_nic = json.loads((DATA / "spec_nic_get.json").read_text())
    optional = (
        "properties.ipConfigurations.properties.publicIPAddress",
        "properties.networkSecurityGroup",
    )
    nic_keys = {k for k in keys(spec_nic) if k != "source" and not k.startswith(optional)}
    attached_nic = [
        c["body"]
        for c in ours
        if c["method"] == "GET" and c["url"].split("?")[0].endswith("/nic-f1")
    ][-1]
    assert nic_keys <= keys(attached_nic)
