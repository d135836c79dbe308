"""Microsoft.Network for what DR drills need: the stand-in, part 4.

Virtual networks (inline subnets, peerings), network security groups (with Azure's six default
rules), route tables, NAT gateways, public IPs and network interfaces, resource-group scoped,
with the network RP's long-running flow as the azure-mgmt-compute 29.1.0 and azure-mgmt-network
23.0.0 recordings show it: PUT answers 201 (create) or 200 (update) with `provisioningState:
Updating`, `Azure-AsyncOperation` to `.../providers/Microsoft.Network/locations/{loc}/operations/
{id}` and `Retry-After`; the status answers `{"status": "InProgress"}` then `{"status":
"Succeeded"}`; DELETE answers 202 with `Azure-AsyncOperation` and `Location`
(`.../operationResults/{id}`, 204 when done), 204 when the resource is absent. Network
interfaces are ready at once, as recorded. Refusals as Azure words them:
`InUseSubnetCannotBeDeleted`, `InUseNetworkSecurityGroupCannotBeDeleted`, `NicInUse`,
`InvalidResourceReference`.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from emulator.arm import ArmRequest, Reply, Route, check_name, check_tags
from emulator.errors import ArmError, resource_not_found
from emulator.model import Operation, group_id, key, new_uuid

if TYPE_CHECKING:
    from emulator.arm import Arm

NET = "Microsoft.Network"
_SUB = r"^/subscriptions/([^/]+)"
_RG = _SUB + r"/resourcegroups/([^/]+)"
_NP = r"/providers/microsoft\.network"

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


def network_id(subscription: str, group: str, kind: str, name: str) -> str:
    return f"{group_id(subscription, group)}/providers/{NET}/{kind}/{name}"


def _etag() -> str:
    return f'W/"{new_uuid()}"'


def _ref(value: Any) -> str | None:
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
    etag: str = field(default_factory=_etag)
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
        body: dict[str, Any] = {
            "name": self.name,
            "id": self.id,
            "etag": self.etag,
            "type": self.type,
            "location": self.location,
        }
        if self.tags:
            body["tags"] = dict(self.tags)
        return body


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


STORES = {
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


class NetworkRP:
    """The Microsoft.Network routes, served through the ARM front (see `emulator/app.py`)."""

    def __init__(self, arm: Arm) -> None:
        self.arm = arm
        self.cloud = arm.cloud
        self.clock = arm.clock
        self.behaviour = arm.behaviour
        self.routes = self._routes()

    @property
    def state(self) -> NetworkState:
        state: NetworkState = self.cloud.network
        return state

    def resolve(self, method: str, path: str) -> tuple[Route, tuple[str, ...]] | None:
        for route in self.routes:
            if route.method != method:
                continue
            match = route.pattern.match(path.rstrip("/"))
            if match:
                return route, match.groups()
        return None

    # ---- rendering ---------------------------------------------------------------------------
    def render(self, resource: NetResource, now: datetime) -> dict[str, Any]:
        render = {
            "virtualNetworks": self.vnet_json,
            "networkSecurityGroups": self.nsg_json,
            "routeTables": self.route_table_json,
            "natGateways": self.nat_json,
            "publicIPAddresses": self.public_ip_json,
            "networkInterfaces": self.nic_json,
        }[resource.kind]
        body: dict[str, Any] = render(resource, now)  # type: ignore[operator]
        return body

    def subnet_json(self, vnet: VirtualNetwork, subnet: Subnet, now: datetime) -> dict[str, Any]:
        sid = self.state.subnet_id(vnet, subnet)
        props: dict[str, Any] = {
            "provisioningState": vnet.state(now),
            "addressPrefix": subnet.address_prefix,
        }
        if subnet.nsg_id:
            props["networkSecurityGroup"] = {"id": subnet.nsg_id}
        if subnet.route_table_id:
            props["routeTable"] = {"id": subnet.route_table_id}
        if subnet.nat_gateway_id:
            props["natGateway"] = {"id": subnet.nat_gateway_id}
        ipcs = self.state.nics_in_subnet(sid)
        if ipcs:
            props["ipConfigurations"] = [
                {"id": f"{nic.id}/ipConfigurations/{ipc.name}"} for nic, ipc in ipcs
            ]
        if subnet.private_endpoints:
            props["privateEndpoints"] = [{"id": pe} for pe in subnet.private_endpoints]
        props["delegations"] = []
        props["privateEndpointNetworkPolicies"] = "Disabled"
        props["privateLinkServiceNetworkPolicies"] = "Enabled"
        if subnet.default_outbound_access is not None:
            props["defaultOutboundAccess"] = subnet.default_outbound_access
        return {
            "name": subnet.name,
            "id": sid,
            "etag": vnet.etag,
            "properties": props,
            "type": f"{NET}/virtualNetworks/subnets",
        }

    def peering_json(self, vnet: VirtualNetwork, peering: Peering, now: datetime) -> dict[str, Any]:
        remote = self.state.find(peering.remote_id)
        back = isinstance(remote, VirtualNetwork) and any(
            key(p.remote_id) == key(vnet.id) for p in remote.peerings
        )
        props: dict[str, Any] = {
            "provisioningState": vnet.state(now),
            "resourceGuid": vnet.resource_guid,
            "peeringState": "Connected" if back else ("Initiated" if remote else "Disconnected"),
            "peeringSyncLevel": "FullyInSync" if back else "RemoteNotInSync",
            "remoteVirtualNetwork": {"id": peering.remote_id},
            "allowVirtualNetworkAccess": peering.allow_virtual_network_access,
            "allowForwardedTraffic": peering.allow_forwarded_traffic,
            "allowGatewayTransit": peering.allow_gateway_transit,
            "useRemoteGateways": peering.use_remote_gateways,
            "doNotVerifyRemoteGateways": False,
            "peerCompleteVnets": True,
        }
        if isinstance(remote, VirtualNetwork):
            space = {"addressPrefixes": list(remote.address_prefixes)}
            props["remoteAddressSpace"] = space
            props["remoteVirtualNetworkAddressSpace"] = dict(space)
        return {
            "name": peering.name,
            "id": f"{vnet.id}/virtualNetworkPeerings/{peering.name}",
            "etag": vnet.etag,
            "properties": props,
            "type": f"{NET}/virtualNetworks/virtualNetworkPeerings",
        }

    def vnet_json(self, vnet: VirtualNetwork, now: datetime) -> dict[str, Any]:
        body = vnet.head(now)
        body["properties"] = {
            "provisioningState": vnet.state(now),
            "resourceGuid": vnet.resource_guid,
            "addressSpace": {"addressPrefixes": list(vnet.address_prefixes)},
            "subnets": [self.subnet_json(vnet, s, now) for s in vnet.subnets.values()],
            "virtualNetworkPeerings": [self.peering_json(vnet, p, now) for p in vnet.peerings],
            "enableDdosProtection": False,
        }
        return body

    def rule_json(
        self, owner: NetResource, kind: str, rule: dict[str, Any], now: datetime
    ) -> dict[str, Any]:
        return {
            "name": rule["name"],
            "id": f"{owner.id}/{kind}/{rule['name']}",
            "etag": owner.etag,
            "type": f"{owner.type}/{kind}",
            "properties": {"provisioningState": owner.state(now), **rule["properties"]},
        }

    def nsg_json(self, nsg: SecurityGroup, now: datetime) -> dict[str, Any]:
        body = nsg.head(now)
        defaults = [
            {
                "name": name,
                "properties": {
                    "description": description,
                    "protocol": "*",
                    "sourcePortRange": "*",
                    "destinationPortRange": "*",
                    "sourceAddressPrefix": source,
                    "destinationAddressPrefix": destination,
                    "access": access,
                    "priority": priority,
                    "direction": direction,
                },
            }
            for name, description, source, destination, access, priority, direction in DEFAULT_RULES
        ]
        props: dict[str, Any] = {
            "provisioningState": nsg.state(now),
            "resourceGuid": nsg.resource_guid,
            "securityRules": [self.rule_json(nsg, "securityRules", r, now) for r in nsg.rules],
            "defaultSecurityRules": [
                self.rule_json(nsg, "defaultSecurityRules", r, now) for r in defaults
            ],
        }
        subnets = self.state.subnets_using("nsg_id", nsg.id)
        if subnets:
            props["subnets"] = [{"id": s} for s in subnets]
        nics = [
            n.id
            for n in self.state.nics.values()
            if n.deleting_at is None and n.nsg_id and key(n.nsg_id) == key(nsg.id)
        ]
        if nics:
            props["networkInterfaces"] = [{"id": n} for n in nics]
        body["properties"] = props
        return body

    def route_table_json(self, table: RouteTable, now: datetime) -> dict[str, Any]:
        body = table.head(now)
        props: dict[str, Any] = {
            "provisioningState": table.state(now),
            "resourceGuid": table.resource_guid,
            "disableBgpRoutePropagation": table.disable_bgp_route_propagation,
            "routes": [self.rule_json(table, "routes", r, now) for r in table.routes],
        }
        subnets = self.state.subnets_using("route_table_id", table.id)
        if subnets:
            props["subnets"] = [{"id": s} for s in subnets]
        body["properties"] = props
        return body

    def nat_json(self, nat: NatGateway, now: datetime) -> dict[str, Any]:
        body = nat.head(now)
        body["sku"] = {"name": "Standard"}
        props: dict[str, Any] = {
            "provisioningState": nat.state(now),
            "resourceGuid": nat.resource_guid,
            "idleTimeoutInMinutes": 4,
            "publicIpAddresses": [{"id": p} for p in nat.public_ip_ids],
        }
        subnets = self.state.subnets_using("nat_gateway_id", nat.id)
        if subnets:
            props["subnets"] = [{"id": s} for s in subnets]
        body["properties"] = props
        return body

    def public_ip_json(self, pip: PublicIp, now: datetime) -> dict[str, Any]:
        body = pip.head(now)
        body["sku"] = {"name": "Standard", "tier": "Regional"}
        props: dict[str, Any] = {
            "provisioningState": pip.state(now),
            "resourceGuid": pip.resource_guid,
            "ipAddress": pip.ip_address,
            "publicIPAddressVersion": "IPv4",
            "publicIPAllocationMethod": "Static",
            "idleTimeoutInMinutes": 4,
            "ipTags": [],
        }
        for nic in self.state.nics.values():
            for ipc in nic.ip_configurations:
                if (
                    nic.deleting_at is None
                    and ipc.public_ip_id
                    and key(ipc.public_ip_id) == key(pip.id)
                ):
                    props["ipConfiguration"] = {"id": f"{nic.id}/ipConfigurations/{ipc.name}"}
        body["properties"] = props
        return body

    def nic_vm(self, nic: NetworkInterface) -> str | None:
        """The VM a NIC is attached to (any VM not yet gone names it)."""
        k = key(nic.id)
        for vm in self.cloud.vms.values():
            if vm.nic_ids and any(key(n) == k for n in vm.nic_ids):
                return vm.id
        return None

    def nic_json(self, nic: NetworkInterface, now: datetime) -> dict[str, Any]:
        body = nic.head(now)
        configs = []
        for ipc in nic.ip_configurations:
            props: dict[str, Any] = {
                "provisioningState": nic.state(now),
                "privateIPAddress": ipc.private_ip,
                "privateIPAllocationMethod": "Dynamic",
                "subnet": {"id": ipc.subnet_id},
                "primary": ipc.primary,
                "privateIPAddressVersion": "IPv4",
            }
            if ipc.public_ip_id:
                props["publicIPAddress"] = {"id": ipc.public_ip_id}
            configs.append(
                {
                    "name": ipc.name,
                    "id": f"{nic.id}/ipConfigurations/{ipc.name}",
                    "etag": nic.etag,
                    "type": f"{NET}/networkInterfaces/ipConfigurations",
                    "properties": props,
                }
            )
        props = {
            "provisioningState": nic.state(now),
            "resourceGuid": nic.resource_guid,
            "ipConfigurations": configs,
            "dnsSettings": {
                "dnsServers": [],
                "appliedDnsServers": [],
                "internalDomainNameSuffix": "lifeboat.bx.internal.cloudapp.net",
            },
            "enableAcceleratedNetworking": False,
            "vnetEncryptionSupported": False,
            "enableIPForwarding": False,
            "disableTcpStateTracking": False,
            "hostedWorkloads": [],
            "tapConfigurations": [],
            "nicType": "Standard",
            "allowPort25Out": True,
        }
        if nic.nsg_id:
            props["networkSecurityGroup"] = {"id": nic.nsg_id}
        vm = self.nic_vm(nic)
        if vm is not None:
            props["virtualMachine"] = {"id": vm}
            props["primary"] = True
            props["macAddress"] = "00-0D-3A-" + "-".join(
                nic.resource_guid.replace("-", "")[i : i + 2].upper() for i in (0, 2, 4)
            )
        body["properties"] = props
        body["kind"] = "Regular"
        return body

    # ---- shared plumbing ---------------------------------------------------------------------
    def begin(self, req: ArmRequest) -> datetime:
        now = self.clock.now()
        self.cloud.purge_deleted(now)
        self.state.purge(now)
        return now

    def lookup(self, args: tuple[str, ...], kind: str) -> Any:
        self.arm.need_group(args[0], args[1])
        found = self.state.store(kind).get(key(network_id(args[0], args[1], kind, args[2])))
        if found is None or found.deleting_at is not None:
            raise resource_not_found(f"{NET}/{kind}", args[2], args[1])
        return found

    def operation(
        self,
        req: ArmRequest,
        resource: NetResource,
        method: str,
        now: datetime,
        end: datetime | None,
    ) -> dict[str, str]:
        op = Operation(
            id=new_uuid(),
            subscription=resource.subscription.lower(),
            location=resource.location.lower().replace(" ", ""),
            kind="NetworkOperations",
            start=now,
            end=end,
            resource_key=key(resource.id),
            method=method,
        )
        self.cloud.operations[op.id] = op
        api = req.query.get("api-version", "")
        base = (
            f"{req.base_url}/subscriptions/{op.subscription}/providers/{NET}/locations/"
            f"{op.location}/"
        )
        headers = {
            "Azure-AsyncNotification": "Enabled",
            "Azure-AsyncOperation": f"{base}operations/{op.id}?api-version={api}",
        }
        if method == "DELETE":
            headers["Location"] = f"{base}operationResults/{op.id}?api-version={api}"
        if end is None or end > now or method == "DELETE":
            headers["Retry-After"] = self.behaviour.scaled(self.behaviour.lro_initial_retry_after)
        return headers

    def finish_at(self, req: ArmRequest, now: datetime) -> datetime | None:
        if req.stuck:
            return None
        return now + timedelta(seconds=self.behaviour.operation_seconds)

    def prepare_put(
        self, req: ArmRequest, args: tuple[str, ...], kind: str
    ) -> tuple[dict[str, Any], str, dict[str, str], Any]:
        sub_id, group_name, name = args
        check_name(name, kind)
        group = self.arm.need_group(sub_id, group_name)
        body = req.body if isinstance(req.body, dict) else {}
        existing = self.state.store(kind).get(key(network_id(sub_id, group.name, kind, name)))
        if existing is not None and existing.deleting_at is not None:
            raise ArmError(
                409,
                "AnotherOperationInProgress",
                f"Another operation on this or dependent resource is in progress. "
                f"Resource {existing.id} is being deleted.",
            )
        location = str(body.get("location") or (existing.location if existing else "")).lower()
        location = location.replace(" ", "")
        if not location:
            raise ArmError(
                400, "LocationRequired", "The location property is required for this definition."
            )
        if existing is not None and location != existing.location.lower():
            raise ArmError(
                400,
                "InvalidResourceLocation",
                f"The resource '{name}' already exists in location '{existing.location}' in "
                f"resource group '{group.name}'. A resource with the same name cannot be created "
                f"in location '{location}'.",
            )
        tags = body.get("tags") or {}
        check_tags(tags)
        resource_id = network_id(sub_id, group.name, kind, name)
        self.arm.authorize(req, f"{NET}/{kind}/write", resource_id)
        self.arm.check_locks(resource_id, "write")
        self.arm.check_policies(req, f"{NET}/{kind}", resource_id, location, body, tags)
        return body, location, {str(k): str(v) for k, v in tags.items()}, existing

    def linked(self, req: ArmRequest, action: str, linked_scope: str, target: str) -> None:
        """A linked access check (join actions): recorded, and refused by deny assignments."""
        self.arm.linked_check(req, action, linked_scope, req.actions[0], target)

    def must_exist(self, resource_id: str | None, referrer: str, kind: str) -> Any:
        found = self.state.find(resource_id)
        if found is None or (
            kind and not isinstance(found, tuple) and found.kind.lower() != kind.lower()
        ):
            raise ArmError(
                400,
                "InvalidResourceReference",
                f"Resource {resource_id} referenced by resource {referrer} was not found. Please "
                "make sure that the referenced resource exists, and that both resources are in "
                "the same region.",
            )
        return found

    def answer_put(
        self,
        req: ArmRequest,
        resource: NetResource,
        created: bool,
        now: datetime,
        *,
        instant: bool = False,
    ) -> Reply:
        end = now if instant and not req.stuck else self.finish_at(req, now)
        resource.ready_at = end if end is not None else datetime.max.replace(tzinfo=now.tzinfo)
        resource.etag = _etag()
        headers = self.operation(req, resource, "PUT", now, end)
        return Reply(201 if created else 200, self.render(resource, now), headers)

    def start_delete(self, req: ArmRequest, resource: NetResource, now: datetime) -> Reply:
        end = self.finish_at(req, now)
        resource.deleting_at = end if end is not None else datetime.max.replace(tzinfo=now.tzinfo)
        headers = self.operation(req, resource, "DELETE", now, end)
        return Reply(202, None, headers)

    def lookup_for_delete(self, req: ArmRequest, args: tuple[str, ...], kind: str) -> Any:
        self.arm.need_group(args[0], args[1])
        found = self.state.store(kind).get(key(network_id(args[0], args[1], kind, args[2])))
        if found is None:
            return None
        self.arm.authorize(req, f"{NET}/{kind}/delete", found.id)
        self.arm.check_locks(found.id, "delete")
        return found

    # ---- generic reads -----------------------------------------------------------------------
    def getter(self, kind: str) -> Any:
        def get(req: ArmRequest, args: tuple[str, ...]) -> Reply:
            with self.cloud.lock:
                now = self.begin(req)
                return Reply(200, self.render(self.lookup(args, kind), now))

        return get

    def lister(self, kind: str) -> Any:
        def list_(req: ArmRequest, args: tuple[str, ...]) -> Reply:
            with self.cloud.lock:
                now = self.begin(req)
                sub = args[0].lower()
                group = args[1].lower() if len(args) > 1 else None
                if group is not None:
                    self.arm.need_group(sub, group)
                items = [
                    r
                    for r in self.state.store(kind).values()
                    if r.deleting_at is None
                    and r.subscription.lower() == sub
                    and (group is None or r.group.lower() == group)
                ]
                return self.arm.page(req, items, lambda r: self.render(r, now))

        return list_

    # ---- virtual networks --------------------------------------------------------------------
    def parse_subnets(
        self, req: ArmRequest, vnet_id: str, location: str, raw: Any
    ) -> dict[str, Subnet]:
        subnets: dict[str, Subnet] = {}
        for item in raw or []:
            name = str(item.get("name", ""))
            props = item.get("properties") or {}
            prefix = props.get("addressPrefix") or (props.get("addressPrefixes") or [None])[0]
            if not name or not prefix:
                raise ArmError(
                    400,
                    "InvalidRequestFormat",
                    "Cannot parse the request: every subnet needs a name and an addressPrefix.",
                )
            subnet = Subnet(
                name=name,
                address_prefix=str(prefix),
                nsg_id=_ref(props.get("networkSecurityGroup")),
                route_table_id=_ref(props.get("routeTable")),
                nat_gateway_id=_ref(props.get("natGateway")),
                default_outbound_access=props.get("defaultOutboundAccess"),
            )
            subnet_id = f"{vnet_id}/subnets/{name}"
            for attr, kind in (
                ("nsg_id", "networkSecurityGroups"),
                ("route_table_id", "routeTables"),
                ("nat_gateway_id", "natGateways"),
            ):
                ref = getattr(subnet, attr)
                if ref:
                    found = self.must_exist(ref, subnet_id, kind)
                    if found.location.lower() != location:
                        raise ArmError(
                            400,
                            "InvalidResourceReference",
                            f"Resource {ref} referenced by resource {subnet_id} was not found. "
                            "Please make sure that the referenced resource exists, and that both "
                            "resources are in the same region.",
                        )
                    self.linked(req, f"{NET}/{kind}/join/action", found.id, subnet_id)
            subnets[name.lower()] = subnet
        return subnets

    def put_vnet(self, req: ArmRequest, args: tuple[str, ...]) -> Reply:
        with self.cloud.lock:
            now = self.begin(req)
            body, location, tags, existing = self.prepare_put(req, args, "virtualNetworks")
            props = body.get("properties") or {}
            prefixes = (props.get("addressSpace") or {}).get("addressPrefixes") or []
            vnet_id = network_id(
                args[0], self.arm.need_group(args[0], args[1]).name, "virtualNetworks", args[2]
            )
            subnets = self.parse_subnets(req, vnet_id, location, props.get("subnets"))
            if existing is not None:
                for name, subnet in existing.subnets.items():
                    sid = self.state.subnet_id(existing, subnet)
                    if name not in subnets:
                        self.refuse_subnet_in_use(sid, subnet)
                    else:  # private endpoints are not sent back by callers: keep them
                        subnets[name].private_endpoints = list(subnet.private_endpoints)
            peerings = existing.peerings if existing is not None else []
            vnet = VirtualNetwork(
                subscription=args[0].lower(),
                group=self.arm.need_group(args[0], args[1]).name,
                name=existing.name if existing else args[2],
                location=location,
                kind="virtualNetworks",
                tags=tags,
                resource_guid=existing.resource_guid if existing else new_uuid(),
                address_prefixes=[str(p) for p in prefixes],
                subnets=subnets,
                peerings=peerings,
            )
            self.state.add(vnet)
            return self.answer_put(req, vnet, existing is None, now)

    def refuse_subnet_in_use(self, subnet_id: str, subnet: Subnet) -> None:
        users = [
            f"{nic.id}/ipConfigurations/{ipc.name}"
            for nic, ipc in self.state.nics_in_subnet(subnet_id)
        ]
        users += list(subnet.private_endpoints)
        if users:
            raise ArmError(
                400,
                "InUseSubnetCannotBeDeleted",
                f"Subnet {subnet.name} is in use by {' and '.join(users)} and cannot be deleted. "
                "In order to delete the subnet, delete all the resources within the subnet. See "
                "aka.ms/deletesubnet.",
            )

    def delete_vnet(self, req: ArmRequest, args: tuple[str, ...]) -> Reply:
        with self.cloud.lock:
            now = self.begin(req)
            vnet = self.lookup_for_delete(req, args, "virtualNetworks")
            if vnet is None:
                return Reply(204)
            if vnet.deleting_at is None:
                for subnet in vnet.subnets.values():
                    self.refuse_subnet_in_use(self.state.subnet_id(vnet, subnet), subnet)
            return self.start_delete(req, vnet, now)

    def get_subnet(self, req: ArmRequest, args: tuple[str, ...]) -> Reply:
        with self.cloud.lock:
            now = self.begin(req)
            vnet = self.lookup(args[:3], "virtualNetworks")
            subnet = vnet.subnets.get(args[3].lower())
            if subnet is None:
                raise resource_not_found(
                    f"{NET}/virtualNetworks/subnets", f"{vnet.name}/{args[3]}", args[1]
                )
            return Reply(200, self.subnet_json(vnet, subnet, now))

    def list_subnets(self, req: ArmRequest, args: tuple[str, ...]) -> Reply:
        with self.cloud.lock:
            now = self.begin(req)
            vnet = self.lookup(args, "virtualNetworks")
            return self.arm.page(
                req, list(vnet.subnets.values()), lambda s: self.subnet_json(vnet, s, now)
            )

    # ---- security groups, route tables ---------------------------------------------------------
    def put_nsg(self, req: ArmRequest, args: tuple[str, ...]) -> Reply:
        with self.cloud.lock:
            now = self.begin(req)
            body, location, tags, existing = self.prepare_put(req, args, "networkSecurityGroups")
            rules = parse_rules((body.get("properties") or {}).get("securityRules"))
            nsg = SecurityGroup(
                subscription=args[0].lower(),
                group=self.arm.need_group(args[0], args[1]).name,
                name=existing.name if existing else args[2],
                location=location,
                kind="networkSecurityGroups",
                tags=tags,
                resource_guid=existing.resource_guid if existing else new_uuid(),
                rules=rules,
            )
            self.state.add(nsg)
            return self.answer_put(req, nsg, existing is None, now)

    def delete_nsg(self, req: ArmRequest, args: tuple[str, ...]) -> Reply:
        with self.cloud.lock:
            now = self.begin(req)
            nsg = self.lookup_for_delete(req, args, "networkSecurityGroups")
            if nsg is None:
                return Reply(204)
            users = self.state.subnets_using("nsg_id", nsg.id) + [
                n.id
                for n in self.state.nics.values()
                if n.deleting_at is None and n.nsg_id and key(n.nsg_id) == key(nsg.id)
            ]
            if users and nsg.deleting_at is None:
                raise ArmError(
                    400,
                    "InUseNetworkSecurityGroupCannotBeDeleted",
                    f"Network security group {nsg.id} cannot be deleted because it is in use by "
                    f"the following resources: {', '.join(users)}. In order to delete the Network "
                    "security group, remove the association with the resource(s).",
                )
            return self.start_delete(req, nsg, now)

    def put_route_table(self, req: ArmRequest, args: tuple[str, ...]) -> Reply:
        with self.cloud.lock:
            now = self.begin(req)
            body, location, tags, existing = self.prepare_put(req, args, "routeTables")
            props = body.get("properties") or {}
            table = RouteTable(
                subscription=args[0].lower(),
                group=self.arm.need_group(args[0], args[1]).name,
                name=existing.name if existing else args[2],
                location=location,
                kind="routeTables",
                tags=tags,
                resource_guid=existing.resource_guid if existing else new_uuid(),
                routes=parse_routes(props.get("routes")),
                disable_bgp_route_propagation=bool(props.get("disableBgpRoutePropagation", False)),
            )
            self.state.add(table)
            return self.answer_put(req, table, existing is None, now)

    def delete_route_table(self, req: ArmRequest, args: tuple[str, ...]) -> Reply:
        with self.cloud.lock:
            now = self.begin(req)
            table = self.lookup_for_delete(req, args, "routeTables")
            if table is None:
                return Reply(204)
            users = self.state.subnets_using("route_table_id", table.id)
            if users and table.deleting_at is None:
                raise ArmError(
                    400,
                    "InUseRouteTableCannotBeDeleted",
                    f"Route table {table.id} is in use and cannot be deleted. It is associated "
                    f"with: {', '.join(users)}.",
                )
            return self.start_delete(req, table, now)

    # ---- network interfaces --------------------------------------------------------------------
    def put_nic(self, req: ArmRequest, args: tuple[str, ...]) -> Reply:
        with self.cloud.lock:
            now = self.begin(req)
            body, location, tags, existing = self.prepare_put(req, args, "networkInterfaces")
            props = body.get("properties") or {}
            group = self.arm.need_group(args[0], args[1])
            nic_id = network_id(args[0], group.name, "networkInterfaces", args[2])
            raw_configs = props.get("ipConfigurations") or []
            if not raw_configs:
                raise ArmError(
                    400,
                    "NetworkInterfaceMustHaveAtLeastOneIpConfiguration",
                    f"Network interface {nic_id} must have at least one IP configuration.",
                )
            nsg_id = _ref(props.get("networkSecurityGroup"))
            if nsg_id:
                nsg = self.must_exist(nsg_id, nic_id, "networkSecurityGroups")
                self.linked(req, f"{NET}/networkSecurityGroups/join/action", nsg.id, nic_id)
            old = {c.name.lower(): c for c in existing.ip_configurations} if existing else {}
            configs: list[IpConfiguration] = []
            for i, raw in enumerate(raw_configs):
                name = str(raw.get("name") or f"ipconfig{i + 1}")
                cprops = raw.get("properties") or {}
                subnet_id = _ref(cprops.get("subnet"))
                found = self.must_exist(subnet_id, f"{nic_id}/ipConfigurations/{name}", "")
                if not isinstance(found, tuple):
                    raise ArmError(
                        400,
                        "InvalidResourceReference",
                        f"Resource {subnet_id} referenced by resource {nic_id} is not a subnet.",
                    )
                vnet, subnet = found
                if vnet.location.lower() != location:
                    raise ArmError(
                        400,
                        "InvalidResourceReference",
                        f"Resource {subnet_id} referenced by resource {nic_id} was not found. "
                        "Please make sure that the referenced resource exists, and that both "
                        "resources are in the same region.",
                    )
                canonical = self.state.subnet_id(vnet, subnet)
                self.linked(req, f"{NET}/virtualNetworks/subnets/join/action", canonical, nic_id)
                pip_id = _ref(cprops.get("publicIPAddress"))
                if pip_id:
                    pip = self.must_exist(pip_id, nic_id, "publicIPAddresses")
                    self.linked(req, f"{NET}/publicIPAddresses/join/action", pip.id, nic_id)
                    for other in self.state.nics.values():
                        if (
                            other.deleting_at is None
                            and key(other.id) != key(nic_id)
                            and any(
                                c.public_ip_id and key(c.public_ip_id) == key(pip.id)
                                for c in other.ip_configurations
                            )
                        ):
                            raise ArmError(
                                400,
                                "PublicIPAddressInUse",
                                f"Resource {pip.id} is in use by {other.id}.",
                            )
                    pip_id = pip.id
                previous = old.get(name.lower())
                if previous is not None and key(previous.subnet_id) == key(canonical):
                    private_ip = previous.private_ip
                else:
                    private_ip = self.state.next_private_ip(subnet, canonical)
                configs.append(
                    IpConfiguration(
                        name=name,
                        subnet_id=canonical,
                        private_ip=private_ip,
                        public_ip_id=pip_id,
                        primary=bool(cprops.get("primary", i == 0)),
                    )
                )
            nic = NetworkInterface(
                subscription=args[0].lower(),
                group=group.name,
                name=existing.name if existing else args[2],
                location=location,
                kind="networkInterfaces",
                tags=tags,
                resource_guid=existing.resource_guid if existing else new_uuid(),
                ip_configurations=configs,
                nsg_id=nsg_id,
            )
            self.state.add(nic)
            return self.answer_put(req, nic, existing is None, now, instant=True)

    def delete_nic(self, req: ArmRequest, args: tuple[str, ...]) -> Reply:
        with self.cloud.lock:
            now = self.begin(req)
            nic = self.lookup_for_delete(req, args, "networkInterfaces")
            if nic is None:
                return Reply(204)
            vm = self.nic_vm(nic)
            if vm is not None and nic.deleting_at is None:
                raise ArmError(
                    400,
                    "NicInUse",
                    f"Network Interface {nic.id} is used by existing resource {vm}. In order to "
                    "delete the network interface, it must be dissociated from the resource. To "
                    "learn more, see aka.ms/deletenic.",
                )
            return self.start_delete(req, nic, now)

    # ---- operations ----------------------------------------------------------------------------
    def find_operation(self, args: tuple[str, ...]) -> Operation:
        op = self.cloud.operations.get(args[2].lower()) or self.cloud.operations.get(args[2])
        if op is None or op.subscription != args[0].lower() or op.kind != "NetworkOperations":
            raise ArmError(404, "NotFound", f"The operation '{args[2]}' was not found.")
        return op

    def get_operation(self, req: ArmRequest, args: tuple[str, ...]) -> Reply:
        with self.cloud.lock:
            op = self.find_operation(args)
            if not op.finished(self.clock.now()):
                wait = self.behaviour.scaled(self.behaviour.lro_poll_retry_after)
                return Reply(200, {"status": "InProgress"}, {"Retry-After": wait})
            return Reply(200, {"status": "Succeeded"})

    def get_operation_result(self, req: ArmRequest, args: tuple[str, ...]) -> Reply:
        with self.cloud.lock:
            now = self.begin(req)
            op = self.find_operation(args)
            if not op.finished(now):
                location = (
                    f"{req.base_url}{req.path}?api-version={req.query.get('api-version', '')}"
                )
                wait = self.behaviour.scaled(self.behaviour.lro_poll_retry_after)
                return Reply(202, None, {"Location": location, "Retry-After": wait})
            if op.method == "DELETE" or op.resource_key is None:
                return Reply(204)
            kind = op.resource_key.split("/")[7]
            found = self.state.store(kind).get(op.resource_key)
            return Reply(200, self.render(found, now)) if found is not None else Reply(204)

    # ---- routes --------------------------------------------------------------------------------
    def _routes(self) -> list[Route]:
        def route(method: str, pattern: str, operation: str, handler: Any) -> Route:
            return Route(
                method,
                re.compile(pattern + "$", re.IGNORECASE),
                operation,
                lambda _arm, req, args: handler(req, args),
            )

        out: list[Route] = []
        writable = {
            "virtualNetworks": (self.put_vnet, self.delete_vnet),
            "networkSecurityGroups": (self.put_nsg, self.delete_nsg),
            "routeTables": (self.put_route_table, self.delete_route_table),
            "networkInterfaces": (self.put_nic, self.delete_nic),
        }
        for kind in (
            "virtualNetworks",
            "networkSecurityGroups",
            "routeTables",
            "natGateways",
            "publicIPAddresses",
            "networkInterfaces",
        ):
            one = _RG + _NP + f"/{kind.lower()}/([^/]+)"
            out.append(
                route(
                    "GET", _RG + _NP + f"/{kind.lower()}", f"{NET}/{kind}/read", self.lister(kind)
                )
            )
            out.append(
                route(
                    "GET", _SUB + _NP + f"/{kind.lower()}", f"{NET}/{kind}/read", self.lister(kind)
                )
            )
            out.append(route("GET", one, f"{NET}/{kind}/read", self.getter(kind)))
            if kind in writable:
                put, delete = writable[kind]
                out.append(route("PUT", one, f"{NET}/{kind}/write", put))
                out.append(route("DELETE", one, f"{NET}/{kind}/delete", delete))
        vnet = _RG + _NP + "/virtualnetworks/([^/]+)"
        out.append(
            route(
                "GET", vnet + "/subnets", f"{NET}/virtualNetworks/subnets/read", self.list_subnets
            )
        )
        out.append(
            route(
                "GET",
                vnet + "/subnets/([^/]+)",
                f"{NET}/virtualNetworks/subnets/read",
                self.get_subnet,
            )
        )
        ops = _SUB + _NP + "/locations/([^/]+)"
        out.append(
            route(
                "GET",
                ops + "/operations/([^/]+)",
                f"{NET}/locations/operations/read",
                self.get_operation,
            )
        )
        out.append(
            route(
                "GET",
                ops + "/operationresults/([^/]+)",
                f"{NET}/locations/operationResults/read",
                self.get_operation_result,
            )
        )
        return out


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
