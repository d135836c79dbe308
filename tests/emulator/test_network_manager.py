"""Azure Virtual Network Manager as a VNet sees it, through the real azure-mgmt-network client
and Lifeboat's drill adapter: the stand-in's two effective-list POSTs (empty by default, seeded
by the estate's `networkManager`, paged by `skipToken`, 403 under a deny assignment).

One stand-in of its own: the demo estate plus a VNet with a mesh and an AlwaysAllow rule, and a
deny assignment on the security admin list of another.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from azure.identity import ManagedIdentityCredential

from emulator.process import DEMO_ESTATE, Endpoints, running_emulator
from shared.adapters.compute import AzureCompute
from shared.adapters.drills import AzureDrills
from shared.isolation import isolation_problems
from tests.emulator.conftest import CLOCK_START, SUB, pointed_at

DRILL_RG = "rg-lifeboat-drill-westeurope"
NET = f"/subscriptions/{SUB}/resourceGroups/{DRILL_RG}/providers/Microsoft.Network"
MANAGER = (
    f"/subscriptions/{SUB}/resourceGroups/rg-app/providers/Microsoft.Network/networkManagers/nm"
)
ALWAYS_ALLOW = {
    "id": f"{MANAGER}/securityAdminConfigurations/sec/ruleCollections/rc/rules/egress",
    "kind": "Custom",
    "properties": {
        "access": "AlwaysAllow",
        "direction": "Outbound",
        "priority": 10,
        "protocol": "Any",
        "sources": [{"addressPrefix": "*", "addressPrefixType": "IPPrefix"}],
        "destinations": [{"addressPrefix": "Internet", "addressPrefixType": "ServiceTag"}],
        "sourcePortRanges": ["0-65535"],
        "destinationPortRanges": ["0-65535"],
    },
}


def _mesh(name: str) -> dict[str, object]:
    return {
        "id": f"{MANAGER}/connectivityConfigurations/{name}",
        "properties": {"connectivityTopology": "Mesh", "appliesToGroups": []},
    }


def _estate(path: Path) -> Path:
    estate = yaml.safe_load(Path(DEMO_ESTATE).read_text())
    (sub,) = [s for s in estate["subscriptions"] if s["id"] == SUB]
    subnet = {"networkSecurityGroup": "nsg-drill-isolated", "defaultOutboundAccess": False}
    seen = {
        "connectivityConfigurations": [_mesh(c) for c in "abc"],
        "securityAdminRules": [ALWAYS_ALLOW],
    }
    hidden = {"securityAdminRules": [ALWAYS_ALLOW]}
    for name, prefix, manager in (
        ("vnet-avnm", "10.210.0.0/24", seen),
        ("vnet-avnm-hidden", "10.211.0.0/24", hidden),
    ):
        sub["virtualNetworks"].append(
            {
                "name": name,
                "resourceGroup": DRILL_RG,
                "addressPrefixes": [prefix],
                "subnets": [{**subnet, "name": "snet-drill", "addressPrefix": prefix}],
                "networkManager": manager,
            }
        )
    sub.setdefault("denyAssignments", []).append(
        {
            "name": "no-admin-rules",
            "scope": f"resourceGroups/{DRILL_RG}/providers/Microsoft.Network/virtualNetworks/"
            "vnet-avnm-hidden",
            "actions": [
                "Microsoft.Network/virtualNetworks/listNetworkManagerEffectiveSecurityAdminRules/action"
            ],
        }
    )
    written = path / "estate.yaml"
    written.write_text(yaml.safe_dump(estate))
    return written


@pytest.fixture(scope="module")
def manager_stand_in(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Endpoints]:
    estate = _estate(tmp_path_factory.mktemp("avnm"))
    with running_emulator(estate, "--page-size", "2", "--clock-start", CLOCK_START) as ep:
        yield ep


@pytest.fixture
def adapter(manager_stand_in: Endpoints, monkeypatch: pytest.MonkeyPatch) -> AzureDrills:
    env = pointed_at(manager_stand_in, monkeypatch)
    compute = AzureCompute(
        ManagedIdentityCredential(client_id=env.client_id),
        arm_endpoint=env.arm,
        arm_audience=env.arm_audience + ".default",
        connection_verify=env.ca_bundle,
    )
    return AzureDrills(compute)


def test_a_vnet_without_network_manager_reads_empty_lists(adapter: AzureDrills) -> None:
    network = adapter.get_network(f"{NET}/virtualNetworks/vnet-drill-isolated/subnets/snet-drill")
    assert network is not None
    assert (network.connectivity_configurations, network.admin_rules) == ((), ())
    assert network.network_manager_unknown is None
    assert isolation_problems(network) == []


def test_seeded_configurations_page_through_skip_tokens_and_fail_the_checks(
    adapter: AzureDrills,
) -> None:
    network = adapter.get_network(f"{NET}/virtualNetworks/vnet-avnm/subnets/snet-drill")
    assert network is not None
    assert [c.id.rsplit("/", 1)[1] for c in network.connectivity_configurations] == [
        "a",
        "b",
        "c",
    ]  # three on two pages of two
    assert [r.access for r in network.admin_rules] == ["AlwaysAllow"]
    problems = isolation_problems(network)
    assert sum("connectivity configuration" in p for p in problems) == 3
    assert any("'sec/ruleCollections/rc/rules/egress'" in p for p in problems)


def test_a_list_the_identity_may_not_read_cannot_prove_isolation(adapter: AzureDrills) -> None:
    network = adapter.get_network(f"{NET}/virtualNetworks/vnet-avnm-hidden/subnets/snet-drill")
    assert network is not None
    assert network.admin_rules == ()
    assert (network.network_manager_unknown or "").startswith(
        "security admin rules: AuthorizationFailed: "
    )
    (problem,) = isolation_problems(network)
    assert problem.endswith("isolation cannot be proven")
