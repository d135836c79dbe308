"""The drill adapter (networks, NICs, disks and VMs for drills) against Azure's answers.

Real azure-mgmt-network and azure-mgmt-compute clients, built the way production builds them,
answered by the replaying transport with the recorded network and VM create/delete flows and
documented error shapes. Writes never poll, 429 is never retried, refusals are refused once.
"""

from __future__ import annotations

import copy
import time
from typing import Any

import pytest
from azure.core.exceptions import HttpResponseError

from shared.adapters.drills import DENY_ALL, AzureDrills
from shared.ports import DrillNetworkRequest, DrillVmRequest, RefusedError, ThrottledError
from tests.replay import (
    ARM,
    SUB,
    Answer,
    Replay,
    arm_error,
    assert_put_back_at_once,
    compute_throttled,
    recorded_id,
    recording,
    replayed_compute,
    spec_body,
)

VM_FLOW = recording("recording_vm_create_flow")
VNET_PUT, NIC_PUT, VM_PUT, VM_DELETE = VM_FLOW[0], VM_FLOW[4], VM_FLOW[7], VM_FLOW[11]
ROUTE_TABLE_DELETE = recording("recording_network_route_table_flow")[3]
GROUP = f"/subscriptions/{SUB}/resourceGroups/rgname/providers"
NSG_ID = f"{GROUP}/Microsoft.Network/networkSecurityGroups/lifeboat-drill-nsg"
VNET_ID = recorded_id(VNET_PUT)
NIC_ID = recorded_id(NIC_PUT)
VM_ID = recorded_id(VM_PUT)
ROUTE_TABLE_ID = recorded_id(ROUTE_TABLE_DELETE)


def drills(*answers: Answer) -> tuple[AzureDrills, Replay]:
    compute, transport = replayed_compute(*answers)
    return AzureDrills(compute), transport


def network_request() -> DrillNetworkRequest:
    return DrillNetworkRequest(
        vnet_id=VNET_ID,
        nsg_id=NSG_ID,
        location="eastus",
        address_prefix="10.240.0.0/24",
        subnet_name="drill",
        tags={"lifeboat:drill": "d1"},
    )


def vm_request() -> DrillVmRequest:
    return DrillVmRequest(
        id=VM_ID,
        location="eastus",
        size="Standard_D2_v2",
        os_disk_id=f"{GROUP}/Microsoft.Compute/disks/os",
        os_type="Linux",
        data_disks=((0, f"{GROUP}/Microsoft.Compute/disks/data0"),),
        nic_id=NIC_ID,
        security_profile=None,
        plan=None,
        tags={"lifeboat:drill": "d1"},
    )


def nsg(state: str) -> dict[str, Any]:
    body = copy.deepcopy(spec_body("spec_nsg_get"))
    body["id"] = NSG_ID
    body["properties"]["provisioningState"] = state
    return body


# ------------------------------------------------------------------------------ success


def test_recorded_nic_reads_as_a_drill_resource() -> None:
    adapter, transport = drills(Answer(200, spec_body("spec_nic_get")))
    nic = adapter.get_resource(NIC_ID)
    assert nic is not None
    assert (nic.kind, nic.name, nic.provisioning_state) == (
        "networkInterfaces",
        "test-nic",
        "Succeeded",
    )
    assert [r.method for r in transport.settled()] == ["GET"]


def test_vm_status_reads_the_instance_view() -> None:
    vm = spec_body("spec_vm_get")
    vm["properties"]["instanceView"] = spec_body("spec_vm_instance_view")
    adapter, transport = drills(Answer(200, vm))
    status = adapter.get_vm_status(VM_ID)
    assert status is not None
    assert (status.power_state, status.agent_status) == ("running", "Ready")
    assert "expand=instanceView" in transport.requests[0].url


def test_a_new_network_starts_with_its_deny_all_nsg_and_does_not_poll() -> None:
    lro = [("Azure-AsyncOperation", f"{ARM}/op"), ("Retry-After", "10")]
    created = Answer(201, nsg("Updating"), lro)
    adapter, transport = drills(arm_error(404, "ResourceNotFound"), created)
    adapter.begin_create_network(network_request())
    assert [r.method for r in transport.settled()] == ["GET", "PUT"]
    put = transport.requests[1]
    assert put.path.endswith("/networkSecurityGroups/lifeboat-drill-nsg")
    assert [r["name"] for r in put.json()["properties"]["securityRules"]] == [
        r["name"] for r in DENY_ALL
    ]
    assert transport.sleeps == []


def test_the_vnet_follows_a_succeeded_nsg_with_the_recorded_201() -> None:
    adapter, transport = drills(
        Answer(200, nsg("Succeeded")),
        arm_error(404, "ResourceNotFound"),
        Answer.recorded(VNET_PUT),  # 201 + Azure-AsyncOperation + Retry-After: 3, not followed
    )
    adapter.begin_create_network(network_request())
    assert [r.method for r in transport.settled()] == ["GET", "GET", "PUT"]
    subnet = transport.requests[2].json()["properties"]["subnets"][0]
    assert subnet["properties"]["networkSecurityGroup"] == {"id": NSG_ID}
    assert subnet["properties"]["defaultOutboundAccess"] is False
    assert transport.sleeps == []
    assert 1176 <= (adapter._compute.write_headroom(SUB) or 0) < 1186


def test_nic_and_vm_creates_send_one_put_each_on_the_recorded_201s() -> None:
    adapter, transport = drills(Answer.recorded(NIC_PUT), Answer.recorded(VM_PUT))
    adapter.begin_create_nic(NIC_ID, "eastus", f"{VNET_ID}/subnets/drill", {"a": "b"})
    adapter.begin_create_vm(vm_request())
    assert [r.method for r in transport.settled()] == ["PUT", "PUT"]
    vm = transport.requests[1].json()["properties"]
    assert vm["storageProfile"]["osDisk"]["createOption"] == "Attach"
    assert vm["networkProfile"]["networkInterfaces"][0]["id"] == NIC_ID


def test_recorded_deletes_are_not_polled_and_a_404_is_already_gone() -> None:
    adapter, transport = drills(
        Answer.recorded(ROUTE_TABLE_DELETE),
        Answer.recorded(VM_DELETE),
        arm_error(404, "ResourceNotFound"),
    )
    adapter.begin_delete(ROUTE_TABLE_ID)
    adapter.begin_delete(VM_ID)
    adapter.begin_delete(NIC_ID)
    assert [r.method for r in transport.settled()] == ["DELETE"] * 3
    assert transport.sleeps == []
    assert 14987 <= (adapter._compute.delete_headroom(SUB) or 0) < 14997


# ------------------------------------------------------------------------------ 404


def test_404_lists_are_empty() -> None:
    adapter, transport = drills(
        arm_error(404, "ResourceGroupNotFound"),
        arm_error(404, "ResourceGroupNotFound"),
    )
    assert adapter.list_drill_resources(SUB, "lifeboat-drill-d1") == []
    assert adapter.list_policy_assignments(SUB, "lifeboat-drill-d1") == []
    assert len(transport.requests) == 2


# ------------------------------------------------------------------------------ 429


@pytest.mark.parametrize(
    "answer",
    [
        compute_throttled("1200"),
        arm_error(429, "ResourceRequestsThrottled", "", ("Retry-After", "1200")),
    ],
    ids=["compute-shape", "arm-shape"],
)
@pytest.mark.parametrize("call", ["vm-put", "nic-put", "vnet-get", "groups-list", "delete"])
def test_429_with_retry_after_1200_is_put_back_at_once(answer: Answer, call: str) -> None:
    adapter, transport = drills(answer)
    action = {
        "vm-put": lambda: adapter.begin_create_vm(vm_request()),
        "nic-put": lambda: adapter.begin_create_nic(NIC_ID, "eastus", "s", {}),
        "vnet-get": lambda: adapter.get_network(f"{VNET_ID}/subnets/drill"),
        "groups-list": lambda: adapter.list_resource_groups(SUB),
        "delete": lambda: adapter.begin_delete(NIC_ID),
    }[call]
    assert_put_back_at_once(action, transport)


# ------------------------------------------------------------------------------ refusals


@pytest.mark.parametrize(
    ("call", "status", "code"),
    [
        ("nic-put", 403, "RequestDisallowedByPolicy"),
        ("nic-put", 403, "LinkedAuthorizationFailed"),  # subnets/join/action
        ("vm-put", 409, "OperationNotAllowed"),  # "... exceeding approved ... Cores quota"
        ("vm-put", 403, "LinkedAuthorizationFailed"),
        ("delete", 409, "ScopeLocked"),
        ("vnet-put", 403, "RequestDisallowedByPolicy"),
    ],
)
def test_unhealable_refusals_are_refused_once(call: str, status: int, code: str) -> None:
    answers = [arm_error(status, code, f"{code}: recorded message")]
    if call == "vnet-put":
        answers = [Answer(200, nsg("Succeeded")), arm_error(404, "ResourceNotFound"), *answers]
    adapter, transport = drills(*answers)
    action = {
        "nic-put": lambda: adapter.begin_create_nic(NIC_ID, "eastus", "s", {}),
        "vm-put": lambda: adapter.begin_create_vm(vm_request()),
        "delete": lambda: adapter.begin_delete(ROUTE_TABLE_ID),
        "vnet-put": lambda: adapter.begin_create_network(network_request()),
    }[call]
    with pytest.raises(RefusedError) as caught:
        action()
    assert caught.value.code == code
    assert len(transport.requests) == len(answers)


# ------------------------------------------------------------------------------ 5xx


def test_group_list_pages_and_retries_a_short_5xx() -> None:
    page1 = Answer(
        200,
        {
            "value": [{"name": "rg-a"}],
            "nextLink": f"{ARM}/subscriptions/{SUB}/resourcegroups"
            "?api-version=2021-04-01&%24skiptoken=2",
        },
    )
    adapter, transport = drills(
        page1,
        arm_error(503, "ServiceUnavailable", "", ("Retry-After", "1")),
        Answer(200, {"value": [{"name": "rg-b"}]}),
    )
    assert adapter.list_resource_groups(SUB) == ["rg-a", "rg-b"]
    assert len(transport.requests) == 3
    assert transport.sleeps == [1.0]


def test_a_put_is_retried_on_a_short_5xx_and_a_long_one_is_left_to_the_host() -> None:
    adapter, transport = drills(
        arm_error(500, "InternalServerError", "", ("Retry-After", "1")),
        Answer.recorded(NIC_PUT),
    )
    adapter.begin_create_nic(NIC_ID, "eastus", "s", {})
    assert len(transport.requests) == 2
    adapter, transport = drills(arm_error(503, "ServiceUnavailable", "", ("Retry-After", "300")))
    started = time.monotonic()
    with pytest.raises(HttpResponseError) as caught:
        adapter.begin_create_vm(vm_request())
    assert not isinstance(caught.value, (ThrottledError, RefusedError))
    assert time.monotonic() - started < 1.0
    assert (len(transport.requests), transport.sleeps) == (1, [])


# ------------------------------------------------------------------ Virtual Network Manager

MANAGER = f"{GROUP}/Microsoft.Network/networkManagers/nm"


def bare_vnet() -> Answer:
    """A VNet whose one subnet has no NSG, route table or NICs: the network read is one GET."""
    subnet = {"name": "drill", "id": f"{VNET_ID}/subnets/drill", "properties": {}}
    body = {
        "id": VNET_ID,
        "name": "vnet",
        "location": "eastus",
        "properties": {"subnets": [subnet]},
    }
    return Answer(200, body, method="GET")


def mesh(name: str) -> dict[str, Any]:
    return {
        "id": f"{MANAGER}/connectivityConfigurations/{name}",
        "properties": {"connectivityTopology": "Mesh", "appliesToGroups": []},
    }


def test_the_network_read_pages_both_network_manager_lists_by_skip_token() -> None:
    always = {
        "id": f"{MANAGER}/securityAdminConfigurations/sec/ruleCollections/rc/rules/egress",
        "kind": "Custom",
        "properties": {
            "access": "AlwaysAllow",
            "direction": "Outbound",
            "priority": 10,
            "protocol": "Any",
            "sources": [{"addressPrefix": "*", "addressPrefixType": "IPPrefix"}],
            "destinations": [{"addressPrefix": "Internet", "addressPrefixType": "ServiceTag"}],
        },
    }
    adapter, transport = drills(
        bare_vnet(),
        Answer(200, {"value": [mesh("a")], "skipToken": "page2"}, method="POST"),
        Answer(200, {"value": [mesh("b")]}, method="POST"),
        Answer(200, {"value": [always]}, method="POST"),
    )
    network = adapter.get_network(f"{VNET_ID}/subnets/drill")
    assert network is not None
    assert [c.id.rsplit("/", 1)[1] for c in network.connectivity_configurations] == ["a", "b"]
    (rule,) = network.admin_rules
    assert (rule.name, rule.access, rule.protocol, rule.destinations) == (
        "sec/ruleCollections/rc/rules/egress",
        "AlwaysAllow",
        "*",
        ("Internet",),
    )
    assert network.network_manager_unknown is None
    posts = transport.settled()[1:]
    assert [p.path.rsplit("/", 1)[1] for p in posts] == [
        "listNetworkManagerEffectiveConnectivityConfigurations",
        "listNetworkManagerEffectiveConnectivityConfigurations",
        "listNetworkManagerEffectiveSecurityAdminRules",
    ]
    assert [p.json() for p in posts] == [{}, {"skipToken": "page2"}, {}]
    assert all("api-version=2026-03-01" in p.url for p in posts)


def test_a_404_list_is_none_and_a_403_one_cannot_prove_isolation() -> None:
    adapter, _ = drills(
        bare_vnet(),
        arm_error(404, "NotFound"),
        arm_error(403, "AuthorizationFailed", "may not list admin rules"),
    )
    network = adapter.get_network(f"{VNET_ID}/subnets/drill")
    assert network is not None
    assert network.connectivity_configurations == ()
    assert network.admin_rules == ()
    assert network.network_manager_unknown == (
        "security admin rules: AuthorizationFailed: may not list admin rules"
    )


def test_a_throttled_network_manager_list_puts_the_read_back() -> None:
    adapter, transport = drills(
        bare_vnet(), arm_error(429, "ResourceRequestsThrottled", "", ("Retry-After", "1200"))
    )
    with pytest.raises(ThrottledError) as caught:
        adapter.get_network(f"{VNET_ID}/subnets/drill")
    assert caught.value.retry_after == 1200
    assert (len(transport.requests), transport.sleeps) == (2, [])
