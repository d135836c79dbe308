"""The isolation pre-flight: is a drill network cut off from production and the Internet?

A restored VM is a copy of production, secrets included. Before any disk is created the drill's
subnet must pass every check below; each failure is a reason, and any reason aborts the drill.
Pure: it reads a `DrillNetwork` the adapter assembled from a few GETs.

What it cannot see from the VNet: private DNS zone links are children of the zones, which may
live anywhere. The drill group's RBAC and the policy assignments listed in the outcome are how an
operator keeps those away from drill networks (README, "DR drills").
"""

from __future__ import annotations

from collections.abc import Iterable

from shared.model import DrillNetwork, SecurityRule

# Next hops that keep traffic inside the VNet (or drop it).
LOCAL_NEXT_HOPS = frozenset({"vnetlocal", "none"})
# Address prefixes that match each service tag a drill must deny, in both directions.
TAG_PREFIXES = {
    "Internet": frozenset({"*", "internet", "0.0.0.0/0"}),
    "VirtualNetwork": frozenset({"*", "virtualnetwork"}),
}


def isolation_problems(network: DrillNetwork) -> list[str]:
    """Every reason this network is not isolated; empty when the drill may go on."""
    problems: list[str] = []
    if network.peerings:
        problems.append(
            f"the VNet is peered ({len(network.peerings)} peering(s), e.g. to "
            f"{network.peerings[0]}): a hub, vWAN or production VNet is reachable"
        )
    if network.gateway_configurations or any(
        name.lower() == "gatewaysubnet" for name in network.subnet_names
    ):
        problems.append("the VNet has a gateway (or a GatewaySubnet): on-premises is reachable")
    leaving = [r for r in network.routes if r.next_hop_type.lower() not in LOCAL_NEXT_HOPS]
    if leaving:
        route = leaving[0]
        problems.append(
            f"route table {network.route_table_id} sends {route.address_prefix} to "
            f"{route.next_hop_type} (route {route.name!r}): traffic can leave the VNet"
        )
    if network.nat_gateway_id:
        problems.append(f"the subnet uses NAT gateway {network.nat_gateway_id}")
    if network.public_ips:
        problems.append(f"a NIC in the subnet has public IP {network.public_ips[0]}")
    if network.private_endpoints:
        problems.append(
            f"the subnet holds private endpoint(s) ({network.private_endpoints[0]}): they reach "
            "the services they front"
        )
    if network.default_outbound_access is not False:
        problems.append("the subnet has default outbound access (set defaultOutboundAccess false)")
    if network.nsg_id is None:
        problems.append("the subnet has no network security group")
    else:
        for direction in ("Inbound", "Outbound"):
            for tag in ("Internet", "VirtualNetwork"):
                allowing = first_allow(network.security_rules, direction, tag)
                if allowing is not None:
                    problems.append(
                        f"NSG {network.nsg_id} allows {direction.lower()} {tag} traffic "
                        f"(rule {allowing.name!r}, priority {allowing.priority})"
                    )
    return problems


def first_allow(rules: Iterable[SecurityRule], direction: str, tag: str) -> SecurityRule | None:
    """The rule that lets some `tag` traffic through in `direction`, or None if all is denied.

    Rules apply in priority order. Traffic to (outbound) or from (inbound) the tag is fully
    denied once a Deny rule for all protocols and ports matches it before any Allow does; a
    narrower Deny leaves the rest to later rules.
    """
    prefixes = TAG_PREFIXES[tag]
    for rule in sorted(rules, key=lambda r: r.priority):
        if rule.direction.lower() != direction.lower():
            continue
        addresses = rule.destinations if direction == "Outbound" else rule.sources
        if not any(a.lower() in prefixes for a in addresses):
            continue
        if rule.access.lower() == "allow":
            return rule
        if rule.protocol == "*" and "*" in rule.destination_ports:
            return None
    return None
