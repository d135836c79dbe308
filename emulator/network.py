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

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from emulator.arm_core import Arm, body_tags, check_name
from emulator.errors import ArmError, resource_not_found
from emulator.ids import key, network_id, new_uuid
from emulator.model import Operation
from emulator.network_state import (
    DEFAULT_RULES,
    NET,
    STORE_KINDS,
    IpConfiguration,
    NatGateway,
    NetResource,
    NetworkInterface,
    NetworkState,
    Peering,
    PublicIp,
    RouteTable,
    SecurityGroup,
    Subnet,
    VirtualNetwork,
    new_etag,
    parse_routes,
    parse_rules,
    ref_id,
)
from emulator.routing import GROUP, SUBSCRIPTION, ArmRequest, Reply, Route, route

_NP = r"/providers/microsoft\.network"


class NetworkRP:
    """The Microsoft.Network routes, served through the ARM front (see `emulator/app.py`)."""

    def __init__(self, arm: Arm) -> None:
        self.arm = arm
        self.cloud = arm.cloud
        self.clock = arm.clock
        self.behaviour = arm.behaviour

    @property
    def state(self) -> NetworkState:
        state: NetworkState = self.cloud.network
        return state

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
        props = {
            "addressSpace": {"addressPrefixes": list(vnet.address_prefixes)},
            "subnets": [self.subnet_json(vnet, s, now) for s in vnet.subnets.values()],
            "virtualNetworkPeerings": [self.peering_json(vnet, p, now) for p in vnet.peerings],
            "enableDdosProtection": False,
        }
        return self.described(vnet, now, props)

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
        props = {
            "securityRules": [self.rule_json(nsg, "securityRules", r, now) for r in nsg.rules],
            "defaultSecurityRules": [
                self.rule_json(nsg, "defaultSecurityRules", r, now) for r in defaults
            ],
        }
        body = self.described(nsg, now, props, subnets_by="nsg_id")
        nics = self.nics_using_nsg(nsg)
        if nics:
            body["properties"]["networkInterfaces"] = [{"id": n} for n in nics]
        return body

    def nics_using_nsg(self, nsg: SecurityGroup) -> list[str]:
        return [
            n.id
            for n in self.state.nics.values()
            if n.deleting_at is None and n.nsg_id and key(n.nsg_id) == key(nsg.id)
        ]

    def described(
        self,
        resource: NetResource,
        now: datetime,
        props: dict[str, Any],
        *,
        subnets_by: str = "",
        top: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """A resource's body: its head, `top` fields, then properties led by the two every
        network resource has and closed by the subnets that use it (by `subnets_by`)."""
        body = resource.head(now)
        body.update(top or {})
        full: dict[str, Any] = {
            "provisioningState": resource.state(now),
            "resourceGuid": resource.resource_guid,
            **props,
        }
        subnets = self.state.subnets_using(subnets_by, resource.id) if subnets_by else []
        if subnets:
            full["subnets"] = [{"id": s} for s in subnets]
        body["properties"] = full
        return body

    def route_table_json(self, table: RouteTable, now: datetime) -> dict[str, Any]:
        props = {
            "disableBgpRoutePropagation": table.disable_bgp_route_propagation,
            "routes": [self.rule_json(table, "routes", r, now) for r in table.routes],
        }
        return self.described(table, now, props, subnets_by="route_table_id")

    def nat_json(self, nat: NatGateway, now: datetime) -> dict[str, Any]:
        props = {
            "idleTimeoutInMinutes": 4,
            "publicIpAddresses": [{"id": p} for p in nat.public_ip_ids],
        }
        top = {"sku": {"name": "Standard"}}
        return self.described(nat, now, props, subnets_by="nat_gateway_id", top=top)

    def public_ip_json(self, pip: PublicIp, now: datetime) -> dict[str, Any]:
        props: dict[str, Any] = {
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
        top = {"sku": {"name": "Standard", "tier": "Regional"}}
        return self.described(pip, now, props, top=top)

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
        tags = body_tags(body)
        resource_id = network_id(sub_id, group.name, kind, name)
        self.arm.check_write(req, f"{NET}/{kind}", resource_id, location, body, tags)
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
        resource.etag = new_etag()
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
        self.arm.check_delete(req, f"{NET}/{kind}", found.id)
        return found

    def fields(
        self, args: tuple[str, ...], kind: str, location: str, tags: dict[str, str], existing: Any
    ) -> dict[str, Any]:
        """The fields every network resource a PUT writes shares (name and guid kept)."""
        return {
            "subscription": args[0].lower(),
            "group": self.arm.need_group(args[0], args[1]).name,
            "name": existing.name if existing else args[2],
            "location": location,
            "kind": kind,
            "tags": tags,
            "resource_guid": existing.resource_guid if existing else new_uuid(),
        }

    def save_put(
        self,
        req: ArmRequest,
        resource: NetResource,
        existing: Any,
        now: datetime,
        *,
        instant: bool = False,
    ) -> Reply:
        self.state.add(resource)
        return self.answer_put(req, resource, existing is None, now, instant=instant)

    def delete_checked(
        self, req: ArmRequest, args: tuple[str, ...], kind: str, refuse: Callable[[Any], None]
    ) -> Reply:
        """DELETE of one resource: 204 when absent; `refuse` raises while it is still in use."""
        with self.cloud.lock:
            now = self.begin(req)
            resource = self.lookup_for_delete(req, args, kind)
            if resource is None:
                return Reply(204)
            if resource.deleting_at is None:
                refuse(resource)
            return self.start_delete(req, resource, now)

    # ---- generic reads -----------------------------------------------------------------------
    def get_resource(self, req: ArmRequest, args: tuple[str, ...], kind: str) -> Reply:
        with self.cloud.lock:
            now = self.begin(req)
            return Reply(200, self.render(self.lookup(args, kind), now))

    def list_resources(self, req: ArmRequest, args: tuple[str, ...], kind: str) -> Reply:
        with self.cloud.lock:
            now = self.begin(req)
            items = [
                r for r in self.arm.members(self.state.store(kind), args) if r.deleting_at is None
            ]
            return self.arm.page(req, items, lambda r: self.render(r, now))

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
                nsg_id=ref_id(props.get("networkSecurityGroup")),
                route_table_id=ref_id(props.get("routeTable")),
                nat_gateway_id=ref_id(props.get("natGateway")),
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
                **self.fields(args, "virtualNetworks", location, tags, existing),
                address_prefixes=[str(p) for p in prefixes],
                subnets=subnets,
                peerings=peerings,
            )
            if existing is not None:  # a network manager's doing, not the PUT's
                vnet.connectivity_configurations = existing.connectivity_configurations
                vnet.security_admin_rules = existing.security_admin_rules
            return self.save_put(req, vnet, existing, now)

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
        def refuse(vnet: VirtualNetwork) -> None:
            for subnet in vnet.subnets.values():
                self.refuse_subnet_in_use(self.state.subnet_id(vnet, subnet), subnet)

        return self.delete_checked(req, args, "virtualNetworks", refuse)

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

    # ---- Azure Virtual Network Manager, as one VNet sees it ----------------------------------
    def effective_configurations(self, req: ArmRequest, args: tuple[str, ...]) -> Reply:
        return self.effective(req, args, "connectivity_configurations")

    def effective_admin_rules(self, req: ArmRequest, args: tuple[str, ...]) -> Reply:
        return self.effective(req, args, "security_admin_rules")

    def effective(self, req: ArmRequest, args: tuple[str, ...], attr: str) -> Reply:
        """A POST list: `{"skipToken"}` in, one page of `value` and the next `skipToken` out."""
        with self.cloud.lock:
            self.begin(req)
            vnet = self.lookup(args, "virtualNetworks")
            self.arm.authorize(req, req.actions[0], vnet.id)
            token = req.json_body().get("skipToken") or "0"
            try:
                start = int(token)
            except ValueError:
                raise ArmError(400, "InvalidSkipToken", "The skip token is invalid.") from None
            items: list[dict[str, Any]] = getattr(vnet, attr)
            size = self.behaviour.page_size
            body: dict[str, Any] = {"value": items[start : start + size]}
            if start + size < len(items):
                body["skipToken"] = str(start + size)
            return Reply(200, body)

    # ---- security groups, route tables ---------------------------------------------------------
    def put_nsg(self, req: ArmRequest, args: tuple[str, ...]) -> Reply:
        with self.cloud.lock:
            now = self.begin(req)
            body, location, tags, existing = self.prepare_put(req, args, "networkSecurityGroups")
            rules = parse_rules((body.get("properties") or {}).get("securityRules"))
            nsg = SecurityGroup(
                **self.fields(args, "networkSecurityGroups", location, tags, existing), rules=rules
            )
            return self.save_put(req, nsg, existing, now)

    def delete_nsg(self, req: ArmRequest, args: tuple[str, ...]) -> Reply:
        def refuse(nsg: SecurityGroup) -> None:
            users = self.state.subnets_using("nsg_id", nsg.id) + self.nics_using_nsg(nsg)
            if users:
                raise ArmError(
                    400,
                    "InUseNetworkSecurityGroupCannotBeDeleted",
                    f"Network security group {nsg.id} cannot be deleted because it is in use by "
                    f"the following resources: {', '.join(users)}. In order to delete the Network "
                    "security group, remove the association with the resource(s).",
                )

        return self.delete_checked(req, args, "networkSecurityGroups", refuse)

    def put_route_table(self, req: ArmRequest, args: tuple[str, ...]) -> Reply:
        with self.cloud.lock:
            now = self.begin(req)
            body, location, tags, existing = self.prepare_put(req, args, "routeTables")
            props = body.get("properties") or {}
            table = RouteTable(
                **self.fields(args, "routeTables", location, tags, existing),
                routes=parse_routes(props.get("routes")),
                disable_bgp_route_propagation=bool(props.get("disableBgpRoutePropagation", False)),
            )
            return self.save_put(req, table, existing, now)

    def delete_route_table(self, req: ArmRequest, args: tuple[str, ...]) -> Reply:
        def refuse(table: RouteTable) -> None:
            users = self.state.subnets_using("route_table_id", table.id)
            if users:
                raise ArmError(
                    400,
                    "InUseRouteTableCannotBeDeleted",
                    f"Route table {table.id} is in use and cannot be deleted. It is associated "
                    f"with: {', '.join(users)}.",
                )

        return self.delete_checked(req, args, "routeTables", refuse)

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
            nsg_id = ref_id(props.get("networkSecurityGroup"))
            if nsg_id:
                nsg = self.must_exist(nsg_id, nic_id, "networkSecurityGroups")
                self.linked(req, f"{NET}/networkSecurityGroups/join/action", nsg.id, nic_id)
            old = {c.name.lower(): c for c in existing.ip_configurations} if existing else {}
            configs: list[IpConfiguration] = []
            for i, raw in enumerate(raw_configs):
                name = str(raw.get("name") or f"ipconfig{i + 1}")
                cprops = raw.get("properties") or {}
                subnet_id = ref_id(cprops.get("subnet"))
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
                pip_id = ref_id(cprops.get("publicIPAddress"))
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
                **self.fields(args, "networkInterfaces", location, tags, existing),
                ip_configurations=configs,
                nsg_id=nsg_id,
            )
            return self.save_put(req, nic, existing, now, instant=True)

    def delete_nic(self, req: ArmRequest, args: tuple[str, ...]) -> Reply:
        def refuse(nic: NetworkInterface) -> None:
            vm = self.nic_vm(nic)
            if vm is not None:
                raise ArmError(
                    400,
                    "NicInUse",
                    f"Network Interface {nic.id} is used by existing resource {vm}. In order to "
                    "delete the network interface, it must be dissociated from the resource. To "
                    "learn more, see aka.ms/deletenic.",
                )

        return self.delete_checked(req, args, "networkInterfaces", refuse)

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
    def routes(self) -> list[Route]:
        return ROUTES


def _routes() -> list[Route]:
    out: list[Route] = []
    writable = {
        "virtualNetworks": ("put_vnet", "delete_vnet"),
        "networkSecurityGroups": ("put_nsg", "delete_nsg"),
        "routeTables": ("put_route_table", "delete_route_table"),
        "networkInterfaces": ("put_nic", "delete_nic"),
    }
    for kind in STORE_KINDS:
        one = GROUP + _NP + f"/{kind.lower()}/([^/]+)"
        read = f"{NET}/{kind}/read"
        out.append(route("GET", GROUP + _NP + f"/{kind.lower()}", read, "list_resources", kind))
        out.append(
            route("GET", SUBSCRIPTION + _NP + f"/{kind.lower()}", read, "list_resources", kind)
        )
        out.append(route("GET", one, read, "get_resource", kind))
        if kind in writable:
            put, delete = writable[kind]
            out.append(route("PUT", one, f"{NET}/{kind}/write", put))
            out.append(route("DELETE", one, f"{NET}/{kind}/delete", delete))
    vnet = GROUP + _NP + "/virtualnetworks/([^/]+)"
    subnets = f"{NET}/virtualNetworks/subnets/read"
    ops = SUBSCRIPTION + _NP + "/locations/([^/]+)"
    manager = f"{NET}/virtualNetworks/listNetworkManagerEffective"
    return [
        *out,
        route(
            "POST",
            vnet + "/listnetworkmanagereffectiveconnectivityconfigurations",
            manager + "ConnectivityConfigurations/action",
            "effective_configurations",
        ),
        route(
            "POST",
            vnet + "/listnetworkmanagereffectivesecurityadminrules",
            manager + "SecurityAdminRules/action",
            "effective_admin_rules",
        ),
        route("GET", vnet + "/subnets", subnets, "list_subnets"),
        route("GET", vnet + "/subnets/([^/]+)", subnets, "get_subnet"),
        route(
            "GET", ops + "/operations/([^/]+)", f"{NET}/locations/operations/read", "get_operation"
        ),
        route(
            "GET",
            ops + "/operationresults/([^/]+)",
            f"{NET}/locations/operationResults/read",
            "get_operation_result",
        ),
    ]


ROUTES = _routes()
