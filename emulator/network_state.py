"""Microsoft.Network state: the resources drills meet, as plain objects (`NetworkState`).

`model.Cloud.network` holds one; the estate loader and tests fill and read it directly. The
HTTP side is `network.py`.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from emulator.errors import ArmError
from emulator.ids import key, network_id, new_uuid

NET = "Microsoft.Network"

DEFAULT_RULES: list[tuple[str, str, str, str, str, int, str]] = [
    # name, description, source, destination, access, priority, direction (REST spec example)
    (
        "AllowVnetInBound",
        "Allow inbound traffic from all VMs in VNET",
        "VirtualNetwork",
        "VirtualNetwork",
        "Allow",
        65000,
        "Inbound",
    ),
    (
        "AllowAzureLoadBalancerInBound",
        "Allow inbound traffic from azure load balancer",
        "AzureLoadBalancer",
        "*",
        "Allow",
        65001,
        "Inbound",
    ),
    ("DenyAllInBound", "Deny all inbound traffic", "*", "*", "Deny", 65500, "Inbound"),
    (
        "AllowVnetOutBound",
        "Allow outbound traffic from all VMs to all VMs in VNET",
        "VirtualNetwork",
        "VirtualNetwork",
        "Allow",
        65000,
        "Outbound",
    ),
    (
        "AllowInternetOutBound",
        "Allow outbound traffic from all VMs to Internet",
        "*",
        "Internet",
        "Allow",
        65001,
        "Outbound",
    ),
    ("DenyAllOutBound", "Deny all outbound traffic", "*", "*", "Deny", 65500, "Outbound"),
]


def new_etag() -> str:
    return f'W/"{new_uuid()}"'


def ref_id(value: Any) -> str | None:
    """`{"id": ...}` (or a bare id) -> the id, else None."""
    if isinstance(value, dict):
        value = value.get("id")
    return str(value) if value else None


@dataclass
class NetResource:
    """What every network resource has; `ready_at`/`deleting_at` run on the stand-in clock."""

    subscription: str
    group: str
    name: str
    location: str
    kind: str  # virtualNetworks, networkSecurityGroups, routeTables, ...
    tags: dict[str, str] = field(default_factory=dict)
    resource_guid: str = field(default_factory=new_uuid)
    etag: str = field(default_factory=new_etag)
    ready_at: datetime | None = None  # None: ready
    deleting_at: datetime | None = None

    @property
    def id(self) -> str:
        return network_id(self.subscription, self.group, self.kind, self.name)

    @property
    def type(self) -> str:
        return f"{NET}/{self.kind}"

    def state(self, now: datetime) -> str:
        if self.deleting_at is not None:
            return "Deleting"
        if self.ready_at is not None and now < self.ready_at:
            return "Updating"
        return "Succeeded"

    def head(self, now: datetime) -> dict[str, Any]:
        """The fields every network body begins with (`tags` only when there are some)."""
        tags = {"tags": dict(self.tags)} if self.tags else {}
        return {
            "name": self.name,
            "id": self.id,
            "etag": self.etag,
            "type": self.type,
            "location": self.location,
            **tags,
        }


@dataclass
class Subnet:
    name: str
    address_prefix: str
    nsg_id: str | None = None
    route_table_id: str | None = None
    nat_gateway_id: str | None = None
    private_endpoints: list[str] = field(default_factory=list)
    default_outbound_access: bool | None = None


@dataclass
class Peering:
    name: str
    remote_id: str
    allow_virtual_network_access: bool = True
    allow_forwarded_traffic: bool = False
    allow_gateway_transit: bool = False
    use_remote_gateways: bool = False


@dataclass
class VirtualNetwork(NetResource):
    address_prefixes: list[str] = field(default_factory=list)
    subnets: dict[str, Subnet] = field(default_factory=dict)  # lower name -> subnet
    peerings: list[Peering] = field(default_factory=list)
    # Azure Virtual Network Manager in effect on the VNet, as the two effective lists answer
    # them (REST JSON items; empty unless a test or the estate seeds them).
    connectivity_configurations: list[dict[str, Any]] = field(default_factory=list)
    security_admin_rules: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class SecurityGroup(NetResource):
    rules: list[dict[str, Any]] = field(default_factory=list)  # {name, properties}


@dataclass
class RouteTable(NetResource):
    routes: list[dict[str, Any]] = field(default_factory=list)  # {name, properties}
    disable_bgp_route_propagation: bool = False


@dataclass
class NatGateway(NetResource):
    public_ip_ids: list[str] = field(default_factory=list)


@dataclass
class PublicIp(NetResource):
    ip_address: str = "20.0.0.4"


@dataclass
class IpConfiguration:
    name: str
    subnet_id: str
    private_ip: str
    public_ip_id: str | None = None
    primary: bool = True


@dataclass
class NetworkInterface(NetResource):
    ip_configurations: list[IpConfiguration] = field(default_factory=list)
    nsg_id: str | None = None


STORES = {  # the type as a path names it -> its store in NetworkState
    "virtualnetworks": "vnets",
    "networksecuritygroups": "nsgs",
    "routetables": "route_tables",
    "natgateways": "nat_gateways",
    "publicipaddresses": "public_ips",
    "networkinterfaces": "nics",
}


@dataclass
class NetworkState:
    vnets: dict[str, VirtualNetwork] = field(default_factory=dict)
    nsgs: dict[str, SecurityGroup] = field(default_factory=dict)
    route_tables: dict[str, RouteTable] = field(default_factory=dict)
    nat_gateways: dict[str, NatGateway] = field(default_factory=dict)
    public_ips: dict[str, PublicIp] = field(default_factory=dict)
    nics: dict[str, NetworkInterface] = field(default_factory=dict)

    def store(self, kind: str) -> dict[str, Any]:
        found: dict[str, Any] = getattr(self, STORES[kind.lower()])
        return found

    def add(self, resource: NetResource) -> None:
        self.store(resource.kind)[key(resource.id)] = resource

    def purge(self, now: datetime) -> None:
        for kind in STORES:
            store = self.store(kind)
            for k in [k for k, r in store.items() if r.deleting_at and now >= r.deleting_at]:
                del store[k]

    def find(self, resource_id: str | None) -> Any:
        """The live resource an id names (a subnet id gives (vnet, subnet)), else None."""
        if not resource_id:
            return None
        parts = key(resource_id).split("/")
        # /subscriptions/s/resourcegroups/g/providers/microsoft.network/{kind}/{name}[/subnets/x]
        if len(parts) < 9 or parts[6] != "microsoft.network" or parts[7] not in STORES:
            return None
        base = "/".join(parts[:9])
        found = self.store(parts[7]).get(base)
        if found is None or found.deleting_at is not None:
            return None
        if len(parts) == 11 and parts[9] == "subnets" and isinstance(found, VirtualNetwork):
            subnet = found.subnets.get(parts[10])
            return (found, subnet) if subnet is not None else None
        return found if len(parts) == 9 else None

    def subnet_id(self, vnet: VirtualNetwork, subnet: Subnet) -> str:
        return f"{vnet.id}/subnets/{subnet.name}"

    def nics_in_subnet(self, subnet_id: str) -> list[tuple[NetworkInterface, IpConfiguration]]:
        k = key(subnet_id)
        return [
            (nic, ipc)
            for nic in self.nics.values()
            if nic.deleting_at is None
            for ipc in nic.ip_configurations
            if key(ipc.subnet_id) == k
        ]

    def subnets_using(self, attr: str, resource_id: str) -> list[str]:
        k = key(resource_id)
        return [
            self.subnet_id(vnet, subnet)
            for vnet in self.vnets.values()
            if vnet.deleting_at is None
            for subnet in vnet.subnets.values()
            if getattr(subnet, attr) and key(getattr(subnet, attr)) == k
        ]

    def next_private_ip(self, subnet: Subnet, subnet_id: str) -> str:
        used = {ipc.private_ip for _, ipc in self.nics_in_subnet(subnet_id)}
        net = ipaddress.ip_network(subnet.address_prefix, strict=False)
        for offset, host in enumerate(net.hosts()):
            if offset >= 3 and str(host) not in used:  # Azure keeps .1-.3 for itself
                return str(host)
        raise ArmError(
            400,
            "SubnetIsFull",
            f"Subnet {subnet.name} with address prefix {subnet.address_prefix} does not have "
            "enough capacity for 1 IP addresses.",
        )


def parse_rules(raw: Any) -> list[dict[str, Any]]:
    """Security rules as sent (ARM shape); priorities 100-4096 as Azure requires."""
    rules = []
    for item in raw or []:
        name = str(item.get("name", ""))
        props = dict(item.get("properties") or {})
        priority = props.get("priority")
        if not name or not isinstance(priority, int) or not 100 <= priority <= 4096:
            raise ArmError(
                400,
                "SecurityRuleInvalidPriority",
                f"Security rule {name} has invalid Priority {priority}. Value provided: "
                f"{priority} Allowed range 100-4096.",
            )
        for field_name in ("protocol", "sourcePortRange", "destinationPortRange"):
            props.setdefault(field_name, "*")
        if "sourceAddressPrefixes" not in props:
            props.setdefault("sourceAddressPrefix", "*")
        if "destinationAddressPrefixes" not in props:
            props.setdefault("destinationAddressPrefix", "*")
        rules.append({"name": name, "properties": props})
    return rules


def parse_routes(raw: Any) -> list[dict[str, Any]]:
    return [
        {"name": str(item.get("name", "")), "properties": dict(item.get("properties") or {})}
        for item in raw or []
    ]


STORE_KINDS = (
    "virtualNetworks",
    "networkSecurityGroups",
    "routeTables",
    "natGateways",
    "publicIPAddresses",
    "networkInterfaces",
)
