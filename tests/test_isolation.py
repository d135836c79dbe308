"""The isolation rules for Azure Virtual Network Manager, pure: connectivity configurations
join a VNet to others, AlwaysAllow security admin rules pass traffic whatever the NSG denies."""

from __future__ import annotations

import pytest

from shared.adapters.drills import _admin_rule, _connectivity
from shared.isolation import first_always_allow, isolation_problems
from shared.model import ConnectivityConfiguration, SecurityRule
from tests.drill_fakes import DEFAULT_RULES, operator_network

MANAGER = "/subscriptions/s/resourceGroups/rg-net/providers/Microsoft.Network/networkManagers/nm"


def admin(
    name: str,
    priority: int,
    direction: str,
    access: str,
    sources: tuple[str, ...] = ("*",),
    destinations: tuple[str, ...] = ("*",),
    ports: tuple[str, ...] = ("*",),
) -> SecurityRule:
    return SecurityRule(name, priority, direction, access, "*", sources, destinations, ports)


def test_an_isolated_network_without_network_manager_has_no_problem() -> None:
    assert isolation_problems(operator_network()) == []


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        (
            ConnectivityConfiguration(f"{MANAGER}/connectivityConfigurations/mesh", "Mesh"),
            f"connectivity configuration {MANAGER}/connectivityConfigurations/mesh (Mesh) "
            "connects the VNet to its network groups",
        ),
        (
            ConnectivityConfiguration(
                f"{MANAGER}/connectivityConfigurations/hub", "HubAndSpoke", ("/vnets/hub",)
            ),
            "(HubAndSpoke) connects the VNet to hub /vnets/hub",
        ),
    ],
)
def test_any_effective_connectivity_configuration_is_a_problem_naming_it(
    config: ConnectivityConfiguration, expected: str
) -> None:
    (problem,) = isolation_problems(operator_network(connectivity_configurations=(config,)))
    assert expected in problem


@pytest.mark.parametrize(
    ("rule", "expected"),
    [
        (
            admin("c/rules/dns", 5, "Outbound", "AlwaysAllow", ("*",), ("192.0.2.10",), ("53",)),
            "rule 'c/rules/dns' (priority 5) always allows outbound Internet traffic",
        ),
        (
            admin("web", 10, "Outbound", "AlwaysAllow", ("*",), ("Internet",), ("443",)),
            "rule 'web' (priority 10) always allows outbound Internet traffic",
        ),
        (
            admin("rdp", 20, "Inbound", "AlwaysAllow", ("203.0.113.0/24",)),
            "always allows inbound Internet traffic",
        ),
        (
            admin("peers", 30, "Inbound", "AlwaysAllow", (f"{MANAGER}/networkGroups/prod",)),
            "always allows inbound VirtualNetwork traffic",
        ),
        (
            admin("prod", 40, "Outbound", "AlwaysAllow", ("*",), ("10.1.0.0/16",)),
            "always allows outbound VirtualNetwork traffic",
        ),
    ],
)
def test_always_allow_admin_rules_reaching_internet_or_other_networks_are_problems(
    rule: SecurityRule, expected: str
) -> None:
    problems = isolation_problems(operator_network(admin_rules=(rule,)))
    assert problems
    assert all("always allows" in p for p in problems), problems
    assert any(expected in p for p in problems), problems


def test_plain_allow_and_deny_admin_rules_leave_the_decision_to_the_nsg() -> None:
    rules = (
        admin("allow-out", 10, "Outbound", "Allow", ("*",), ("Internet",)),
        admin("allow-in", 10, "Inbound", "Allow", ("Internet",)),
        admin("deny-in", 20, "Inbound", "Deny"),
    )
    assert isolation_problems(operator_network(admin_rules=rules)) == []
    # ...and an admin Deny never makes up for an NSG that lets traffic out
    open_nsg = operator_network(admin_rules=rules[2:], security_rules=DEFAULT_RULES)
    assert any("allows inbound VirtualNetwork" in p for p in isolation_problems(open_nsg))


def test_an_admin_deny_of_all_at_a_higher_priority_shadows_an_always_allow() -> None:
    late = admin("late", 200, "Outbound", "AlwaysAllow", ("*",), ("Internet",))
    deny = admin("deny-all-out", 100, "Outbound", "Deny")
    assert first_always_allow([late, deny], "Outbound", "Internet") is None
    narrow = admin("deny-some", 100, "Outbound", "Deny", ("*",), ("*",), ("22",))
    assert first_always_allow([late, narrow], "Outbound", "Internet") == late
    early = admin("early", 50, "Outbound", "AlwaysAllow", ("*",), ("Internet",))
    assert first_always_allow([late, deny, early], "Outbound", "Internet") == early


def test_unreadable_network_manager_state_cannot_prove_isolation() -> None:
    network = operator_network(network_manager_unknown="security admin rules: HTTP403: denied")
    (problem,) = isolation_problems(network)
    assert problem == (
        "the VNet's Virtual Network Manager configurations cannot be read (security admin "
        "rules: HTTP403: denied): isolation cannot be proven"
    )


def test_the_spec_examples_read_as_a_hub_and_spoke_and_a_default_deny_rule() -> None:
    # specification/network/resource-manager/Microsoft.Network/stable/2022-01-01/examples/
    # NetworkManagerEffectiveConnectivityConfigurationsList.json and ...SecurityAdminRulesList.json
    config = _connectivity(
        {
            "id": f"{MANAGER}/connectivityConfigurations/myTestConnectivityConfig",
            "properties": {
                "connectivityTopology": "HubAndSpoke",
                "hubs": [
                    {
                        "resourceId": "/subscriptionB/resourceGroups/myResourceGroup/providers/"
                        "Microsoft.Network/virtualNetworks/myHubVnet",
                        "resourceType": "Microsoft.Network/virtualNetworks",
                    }
                ],
            },
        }
    )
    assert config.topology == "HubAndSpoke"
    assert config.hubs[0].endswith("/myHubVnet")
    rule = _admin_rule(
        {
            "id": f"{MANAGER}/securityAdminConfigurations/myTestSecurityConfig/ruleCollections/"
            "testRuleCollection/rules/SampleAdminRule",
            "kind": "Default",
            "properties": {
                "flag": "AllowVnetInbound",
                "protocol": "Tcp",
                "sources": [{"addressPrefixType": "IPPrefix", "addressPrefix": "*"}],
                "destinations": [{"addressPrefixType": "IPPrefix", "addressPrefix": "*"}],
                "sourcePortRanges": ["0-65535"],
                "destinationPortRanges": ["22"],
                "direction": "Inbound",
                "access": "Deny",
                "priority": 1,
            },
        }
    )
    assert rule == SecurityRule(
        "myTestSecurityConfig/ruleCollections/testRuleCollection/rules/SampleAdminRule",
        1,
        "Inbound",
        "Deny",
        "Tcp",
        ("*",),
        ("*",),
        ("22",),
        ("0-65535",),
    )
    always = _admin_rule({"id": "r", "properties": {"access": "AlwaysAllow", "protocol": "Any"}})
    assert (always.protocol, always.sources, always.priority) == ("*", ("*",), 4096)
