"""The isolation pre-flight: is a drill network cut off from production and the Internet?

A restored VM is a copy of production, secrets included. Before any disk is created the drill's
subnet must pass every check below; each failure is a reason, and any reason aborts the drill.
Pure: it reads a `DrillNetwork` the adapter assembled from a few GETs.

What it cannot see from the VNet: private DNS zone links are children of the zones, which may
live anywhere. The drill group's RBAC and the policy assignments listed in the outcome are how an
operator keeps those away from drill networks (README, "DR drills").
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from shared.model import DrillNetwork, SecurityRule

# Next hops that keep traffic inside the VNet (or drop it).
LOCAL_NEXT_HOPS = frozenset({"vnetlocal", "none"})
# Address prefixes that stand for all of each service tag a drill must deny, in both directions.
TAG_PREFIXES = {
    "Internet": frozenset({"*", "internet", "0.0.0.0/0"}),
    "VirtualNetwork": frozenset({"*", "virtualnetwork"}),
}
# What a rule's own side (source outbound, destination inbound) must be for a Deny to cover the
# drill subnet whole; and the port ranges that mean every port.
EVERYWHERE = frozenset({"*", "0.0.0.0/0", "virtualnetwork"})
ALL_PORTS = frozenset({"*", "0-65535"})
# Address space that is not the Internet: what a VNet, a peer or on-premises may use.
PRIVATE_NETWORKS = tuple(
    ipaddress.ip_network(n)
    for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "fc00::/7")
)
# Service tags that are neither the Internet nor a VNet (the platform's health probe).
PLATFORM_TAGS = frozenset({"azureloadbalancer"})


def _reaches(address: str, tag: str) -> bool:
    """Whether an Allow for `address` lets some of `tag`'s traffic through."""
    value = address.strip().lower()
    if value in PLATFORM_TAGS:
        return False
    if value in TAG_PREFIXES[tag]:
        return True
    if value == "virtualnetwork" or "/applicationsecuritygroups/" in value:
        return tag == "VirtualNetwork"  # an ASG's NICs share the drill VNet
    try:
        network = ipaddress.ip_network(value, strict=False)
    except ValueError:
        return tag == "Internet"  # another service tag: Azure's public endpoints
    private = [p for p in PRIVATE_NETWORKS if p.version == network.version]
    if tag == "VirtualNetwork":
        return any(network.overlaps(p) for p in private)
    return not any(network.subnet_of(p) for p in private)  # type: ignore[arg-type]


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
    denied once a Deny rule for all protocols and ports, from (outbound) or to (inbound) the whole
    subnet, matches all of the tag before any Allow lets some of it through (an address, a
    prefix, another service tag); a narrower Deny leaves the rest to later rules.
    """
    prefixes = TAG_PREFIXES[tag]
    for rule in sorted(rules, key=lambda r: r.priority):
        if rule.direction.lower() != direction.lower():
            continue
        outbound = direction.lower() == "outbound"
        remote = rule.destinations if outbound else rule.sources
        local = rule.sources if outbound else rule.destinations
        if rule.access.lower() == "allow":
            if any(_reaches(a, tag) for a in remote):
                return rule
            continue
        if (
            any(a.lower() in prefixes for a in remote)
            and any(a.lower() in EVERYWHERE for a in local)
            and rule.protocol == "*"
            and any(p in ALL_PORTS for p in rule.destination_ports)
            and any(p in ALL_PORTS for p in rule.source_ports)
        ):
            return None
    return None
