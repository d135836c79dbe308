"""The isolation pre-flight: is a drill network cut off from production and the Internet?

A restored VM is a copy of production, secrets included. Before any disk is created the drill's
subnet must pass every check below; each failure is a reason, and any reason aborts the drill.
Pure: it reads a `DrillNetwork` the adapter assembled from a few GETs.

What it cannot see from the VNet: private DNS zone links are children of the zones, which may
live anywhere. The drill group's RBAC and the policy assignments listed in the outcome are how an
operator keeps those away from drill networks (README, "DR drills").

Azure Virtual Network Manager (AVNM) joins and opens networks without touching the VNet's own
resources, so it is read from the VNet's two effective lists (POST
`.../virtualNetworks/{vnet}/listNetworkManagerEffectiveConnectivityConfigurations` and
`.../listNetworkManagerEffectiveSecurityAdminRules`, body `{"skipToken": ...}`, answer
`{"value": [...], "skipToken": ...}`; api-version 2026-03-01 in azure-mgmt-network 33.1.0).
Facts used, and where they come from:

- A connectivity configuration has `properties.connectivityTopology` `Mesh` or `HubAndSpoke`
  (and `hubs[].resourceId`): either connects the VNet to the other members of its network
  groups (or to the hub), with no peering resource on the VNet. Any effective one is a problem.
  (azure-rest-api-specs `specification/network/resource-manager/Microsoft.Network/stable/
  2022-01-01/examples/NetworkManagerEffectiveConnectivityConfigurationsList.json`; the SDK's
  `ConnectivityConfigurationProperties`.)
- A security admin rule (`kind` `Custom` or `Default`, its fields under `properties`) has
  `access` `Allow`, `Deny` or `AlwaysAllow`, `direction`, `priority` 1-4096, `protocol` (`Any`
  for all), `sources`/`destinations` as `{addressPrefix, addressPrefixType}` (`IPPrefix`,
  `ServiceTag` or `NetworkGroup`) and port range lists. (`...NetworkManagerEffectiveSecurity
  AdminRulesList.json` in the same folder; the SDK's `AdminPropertiesFormat`.)
- Admin rules are evaluated before NSG rules. `Deny` drops the traffic whatever the NSG says;
  `Allow` hands it on to the NSG, which still decides; `AlwaysAllow` lets it through and ends
  the evaluation, so no NSG deny applies (learn.microsoft.com, virtual-network-manager,
  "Security admin rules", order of evaluation). So an `AlwaysAllow` that reaches Internet or
  VirtualNetwork traffic in either direction is a problem, unless an admin `Deny` of all of it
  comes first; a plain `Allow` is not (the NSG checks above still apply), and an admin `Deny`
  is never counted against an NSG problem (the NSG must hold on its own).
- Unreadable state decides conservatively. 404 on the POST (no such list for this VNet: the
  feature is not there) reads as no AVNM configuration; the VNet itself was just read, so the
  404 cannot mean the VNet is gone. 403 (the identity may not list them) is a problem: AVNM
  could be joining or opening this VNet and isolation cannot be proven. More pages than Lifeboat
  reads is a problem for the same reason.
"""

from __future__ import annotations

import dataclasses
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
    if "/networkgroups/" in value:
        return tag == "VirtualNetwork"  # an AVNM network group: other VNets
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
    return problems + network_manager_problems(network)


def network_manager_problems(network: DrillNetwork) -> list[str]:
    """What Azure Virtual Network Manager does to the VNet that breaks isolation."""
    problems: list[str] = []
    if network.network_manager_unknown:
        problems.append(
            f"the VNet's Virtual Network Manager configurations cannot be read "
            f"({network.network_manager_unknown}): isolation cannot be proven"
        )
    for config in network.connectivity_configurations:
        joined = f" to hub {config.hubs[0]}" if config.hubs else " to its network groups"
        problems.append(
            f"Virtual Network Manager connectivity configuration {config.id} "
            f"({config.topology or 'unknown topology'}) connects the VNet{joined}"
        )
    for direction in ("Inbound", "Outbound"):
        for tag in ("Internet", "VirtualNetwork"):
            rule = first_always_allow(network.admin_rules, direction, tag)
            if rule is not None:
                problems.append(
                    f"security admin rule {rule.name!r} (priority {rule.priority}) always "
                    f"allows {direction.lower()} {tag} traffic, whatever the NSG denies"
                )
    return problems


def first_always_allow(
    rules: Iterable[SecurityRule], direction: str, tag: str
) -> SecurityRule | None:
    """The security admin rule that lets `tag` traffic past every NSG, or None.

    Only `AlwaysAllow` does (an admin `Allow` leaves the NSG to decide); an admin `Deny` of all
    the tag's traffic at a higher priority shadows it, as an NSG Deny shadows an NSG Allow.
    """
    deciding = [r for r in rules if r.access.lower() in ("alwaysallow", "deny")]
    as_nsg = [
        dataclasses.replace(r, access="Allow" if r.access.lower() == "alwaysallow" else "Deny")
        for r in deciding
    ]
    found = first_allow(as_nsg, direction, tag)
    return None if found is None else deciding[as_nsg.index(found)]


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
