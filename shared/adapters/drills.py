"""The `DrillCloud` port on azure-mgmt-compute, azure-mgmt-network and the Azure Policy client.

Writes start Azure's work and return (`polling=False`): the drill step looks again later. The
network and policy SDKs are imported on first use, so a cold start of the other functions does
not pay for them. Bodies are REST JSON, read back through `as_dict()` as the compute adapter does.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterable
from typing import Any

from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.core.rest import HttpRequest

from shared.adapters.backup import parse_time
from shared.adapters.compute import AzureCompute, call_arm
from shared.adapters.retry import LifeboatRetryPolicy
from shared.model import (
    ConnectivityConfiguration,
    DrillNetwork,
    DrillResource,
    NetworkRoute,
    PolicyAssignment,
    SecurityRule,
    VmStatus,
)
from shared.ports import DrillDiskRequest, DrillNetworkRequest, DrillVmRequest, RefusedError

GROUPS_API_VERSION = "2021-04-01"
MAX_NIC_READS = 20  # public IPs are looked for on at most this many NICs of the drill subnet
# Pages of each Virtual Network Manager effective list read; more is "cannot be proven".
MAX_NETWORK_MANAGER_PAGES = 10
COMPUTE_KINDS = ("virtualMachines", "disks")
NETWORK_KINDS = ("networkInterfaces", "virtualNetworks", "networkSecurityGroups")
# A Lifeboat-made drill network denies everything both ways, before Azure's defaults.
DENY_ALL = [
    {
        "name": f"lifeboat-deny-all-{direction.lower()}",
        "properties": {
            "priority": 100,
            "direction": direction,
            "access": "Deny",
            "protocol": "*",
            "sourceAddressPrefix": "*",
            "sourcePortRange": "*",
            "destinationAddressPrefix": "*",
            "destinationPortRange": "*",
            "description": "Lifeboat drill network: isolated from production and the Internet",
        },
    }
    for direction in ("Inbound", "Outbound")
]


class AzureDrills:
    def __init__(self, compute: AzureCompute) -> None:
        self._compute = compute
        self._network_clients: dict[str, Any] = {}
        self._policy_clients: dict[str, Any] = {}
        self._lock = threading.Lock()

    # --- clients

    def _options(self) -> dict[str, Any]:
        compute = self._compute
        options: dict[str, Any] = {
            "base_url": compute._endpoint,
            "credential_scopes": compute._scopes,
            "retry_policy": LifeboatRetryPolicy(),
            "raw_response_hook": compute.headroom,
        }
        options.update(compute._transport_options())
        return options

    def network(self, subscription_id: str) -> Any:
        key = subscription_id.lower()
        with self._lock:
            if key not in self._network_clients:
                from azure.mgmt.network import NetworkManagementClient

                self._network_clients[key] = NetworkManagementClient(
                    self._compute._credential, key, **self._options()
                )
            return self._network_clients[key]

    def policy(self, subscription_id: str) -> Any:
        key = subscription_id.lower()
        with self._lock:
            if key not in self._policy_clients:
                from azure.mgmt.resource.policy import PolicyClient

                self._policy_clients[key] = PolicyClient(
                    self._compute._credential, key, **self._options()
                )
            return self._policy_clients[key]

    # --- reads

    def list_resource_groups(self, subscription_id: str) -> list[str]:
        url: str | None = (
            f"{self._compute._endpoint}/subscriptions/{subscription_id}/resourcegroups"
            f"?api-version={GROUPS_API_VERSION}"
        )
        names: list[str] = []
        while url:
            body = call_arm(lambda u=url: self._get_json(u))  # type: ignore[misc]
            names.extend(str(g["name"]) for g in body.get("value", []))
            url = body.get("nextLink")
        return names

    def _get_json(self, url: str) -> dict[str, Any]:
        response = self._compute._arm.send_request(HttpRequest("GET", url))
        if response.status_code >= 400:
            raise HttpResponseError(response=response)
        result: dict[str, Any] = response.json()
        return result

    def get_network(self, subnet_id: str) -> DrillNetwork | None:
        parts = subnet_id.strip("/").split("/")
        if len(parts) != 10 or parts[8].lower() != "subnets":
            raise ValueError(f"not a subnet id: {subnet_id!r}")
        sub, group, vnet_name, subnet_name = parts[1], parts[3], parts[7], parts[9]
        client = self.network(sub)
        vnet = self._get(lambda: client.virtual_networks.get(group, vnet_name))
        if vnet is None:
            return None
        props = vnet.get("properties") or {}
        subnets = props.get("subnets") or []
        subnet = next(
            (s for s in subnets if str(s.get("name", "")).lower() == subnet_name.lower()), None
        )
        if subnet is None:
            return None
        sprops = subnet.get("properties") or {}
        nsg_id = (sprops.get("networkSecurityGroup") or {}).get("id")
        route_table_id = (sprops.get("routeTable") or {}).get("id")
        rules: tuple[SecurityRule, ...] = ()
        if nsg_id:
            nsg = self._get_by_id(nsg_id)
            nsg_props = (nsg or {}).get("properties") or {}
            rules = tuple(
                _rule(r)
                for r in (nsg_props.get("securityRules") or [])
                + (nsg_props.get("defaultSecurityRules") or [])
            )
        routes: tuple[NetworkRoute, ...] = ()
        if route_table_id:
            table = self._get_by_id(route_table_id) or {}
            routes = tuple(
                NetworkRoute(
                    name=str(r.get("name", "")),
                    address_prefix=str((r.get("properties") or {}).get("addressPrefix", "")),
                    next_hop_type=str((r.get("properties") or {}).get("nextHopType", "")),
                )
                for r in (table.get("properties") or {}).get("routes") or []
            )
        configurations = [str(c.get("id", "")) for c in sprops.get("ipConfigurations") or []]
        gateways = tuple(
            str(c.get("id", ""))
            for s in subnets
            for c in (s.get("properties") or {}).get("ipConfigurations") or []
            if "/virtualnetworkgateways/" in str(c.get("id", "")).lower()
        )
        configs, unread_configs = self._effective(
            lambda body: client.list_network_manager_effective_connectivity_configurations(
                group, vnet_name, body
            )
        )
        admin_rules, unread_rules = self._effective(
            lambda body: client.list_network_manager_effective_security_admin_rules(
                group, vnet_name, body
            )
        )
        unread = [
            f"{what}: {why}"
            for what, why in (
                ("connectivity configurations", unread_configs),
                ("security admin rules", unread_rules),
            )
            if why
        ]
        return DrillNetwork(
            vnet_id=str(vnet["id"]),
            subnet_id=str(subnet.get("id") or subnet_id),
            location=str(vnet.get("location", "")),
            peerings=tuple(
                str(
                    ((p.get("properties") or {}).get("remoteVirtualNetwork") or {}).get("id")
                    or p.get("id")
                )
                for p in props.get("virtualNetworkPeerings") or []
            ),
            subnet_names=tuple(str(s.get("name", "")) for s in subnets),
            gateway_configurations=gateways,
            default_outbound_access=sprops.get("defaultOutboundAccess"),
            nat_gateway_id=(sprops.get("natGateway") or {}).get("id"),
            route_table_id=route_table_id,
            routes=routes,
            private_endpoints=tuple(
                str(p.get("id", "")) for p in sprops.get("privateEndpoints") or []
            ),
            nsg_id=nsg_id,
            security_rules=rules,
            public_ips=self._public_ips(configurations),
            provisioning_state=props.get("provisioningState"),
            tags=dict(vnet.get("tags") or {}),
            connectivity_configurations=tuple(_connectivity(c) for c in configs),
            admin_rules=tuple(_admin_rule(r) for r in admin_rules),
            network_manager_unknown="; ".join(unread) or None,
        )

    def _effective(
        self, post: Callable[[dict[str, Any]], Any]
    ) -> tuple[list[dict[str, Any]], str | None]:
        """Every item of one Virtual Network Manager effective list (a POST paged by
        `skipToken`), or why it could not be read. 404 is no list: none (shared/isolation.py)."""
        items: list[dict[str, Any]] = []
        token: str | None = None
        for _ in range(MAX_NETWORK_MANAGER_PAGES):
            body = {"skipToken": token} if token else {}
            try:
                page: dict[str, Any] = call_arm(lambda b=body: post(b)).as_dict()  # type: ignore[misc]
            except ResourceNotFoundError:
                return [], None
            except RefusedError as e:
                return [], f"{e.code}: {e.message}"[:300]
            items.extend(page.get("value") or [])
            token = page.get("skipToken")
            if not token:
                return items, None
        return items, f"more than {MAX_NETWORK_MANAGER_PAGES} pages"

    def _public_ips(self, configurations: Iterable[str]) -> tuple[str, ...]:
        nics = sorted(
            {
                c.lower().split("/ipconfigurations/")[0]
                for c in configurations
                if "/networkinterfaces/" in c.lower()
            }
        )
        found = []
        for nic_id in nics[:MAX_NIC_READS]:
            nic = self._get_by_id(nic_id) or {}
            for config in (nic.get("properties") or {}).get("ipConfigurations") or []:
                public = ((config.get("properties") or {}).get("publicIPAddress") or {}).get("id")
                if public:
                    found.append(str(public))
        return tuple(found)

    def list_policy_assignments(
        self, subscription_id: str, resource_group: str
    ) -> list[PolicyAssignment]:
        pages = self.policy(subscription_id).policy_assignments.list_for_resource_group(
            resource_group
        )
        try:
            items = call_arm(lambda: [p.as_dict() for p in pages])
        except ResourceNotFoundError:
            return []
        return [
            PolicyAssignment(
                name=str(item.get("name", "")),
                display_name=(item.get("properties") or {}).get("displayName"),
                scope=str((item.get("properties") or {}).get("scope", "")),
                enforcement_mode=(item.get("properties") or {}).get("enforcementMode"),
            )
            for item in items
        ]

    def get_resource(self, resource_id: str) -> DrillResource | None:
        body = self._get_by_id(resource_id)
        return _resource(body) if body is not None else None

    def get_vm_status(self, vm_id: str) -> VmStatus | None:
        sub, group, _kind, name = _parse(vm_id)
        client = self._compute.client(sub)
        body = self._get(lambda: client.virtual_machines.get(group, name, expand="instanceView"))
        if body is None:
            return None
        props = body.get("properties") or {}
        view = props.get("instanceView") or {}
        statuses = [str(s.get("code", "")) for s in view.get("statuses") or []]
        agent = ((view.get("vmAgent") or {}).get("statuses") or [{}])[0]
        return VmStatus(
            provisioning_state=props.get("provisioningState"),
            power_state=next(
                (c.split("/", 1)[1] for c in statuses if c.startswith("PowerState/")), None
            ),
            agent_status=agent.get("displayStatus"),
            agent_message=agent.get("message"),
            data_disks=len((props.get("storageProfile") or {}).get("dataDisks") or []),
        )

    def get_primary_subnet(self, vm_id: str) -> str | None:
        vm = self._get_by_id(vm_id)
        nics = ((vm or {}).get("properties") or {}).get("networkProfile") or {}
        refs = nics.get("networkInterfaces") or []
        ref = _primary(refs)
        if ref is None or not ref.get("id"):
            return None
        nic = self._get_by_id(str(ref["id"]))
        configs = ((nic or {}).get("properties") or {}).get("ipConfigurations") or []
        config = _primary(configs) or {}
        subnet = ((config.get("properties") or {}).get("subnet") or {}).get("id")
        return str(subnet) if subnet else None

    def list_drill_resources(
        self, subscription_id: str, resource_group: str
    ) -> list[DrillResource]:
        compute = self._compute.client(subscription_id)
        network = self.network(subscription_id)
        lists: list[Callable[[], Iterable[Any]]] = [
            lambda: compute.virtual_machines.list(resource_group),
            lambda: network.network_interfaces.list(resource_group),
            lambda: compute.disks.list_by_resource_group(resource_group),
            lambda: network.virtual_networks.list(resource_group),
            lambda: network.network_security_groups.list(resource_group),
        ]
        found: list[DrillResource] = []
        for pages in lists:
            try:
                found.extend(call_arm(lambda p=pages: [_resource(x.as_dict()) for x in p()]))  # type: ignore[misc]
            except ResourceNotFoundError:
                return []
        return found

    # --- writes

    def begin_create_network(self, request: DrillNetworkRequest) -> None:
        sub, group, _, nsg_name = _parse(request.nsg_id)
        client = self.network(sub)
        nsg = self._get_by_id(request.nsg_id)
        if nsg is None:
            body = {
                "location": request.location,
                "tags": request.tags,
                "properties": {"securityRules": DENY_ALL},
            }
            call_arm(
                lambda: client.network_security_groups.begin_create_or_update(
                    group, nsg_name, body, polling=False
                )
            )
            return
        if ((nsg.get("properties") or {}).get("provisioningState") or "").lower() != "succeeded":
            return
        _, vnet_group, _, vnet_name = _parse(request.vnet_id)
        if self._get_by_id(request.vnet_id) is not None:
            return
        body = {
            "location": request.location,
            "tags": request.tags,
            "properties": {
                "addressSpace": {"addressPrefixes": [request.address_prefix]},
                "subnets": [
                    {
                        "name": request.subnet_name,
                        "properties": {
                            "addressPrefix": request.address_prefix,
                            "networkSecurityGroup": {"id": request.nsg_id},
                            "defaultOutboundAccess": False,
                        },
                    }
                ],
            },
        }
        call_arm(
            lambda: client.virtual_networks.begin_create_or_update(
                vnet_group, vnet_name, body, polling=False
            )
        )

    def begin_create_disk(self, request: DrillDiskRequest) -> None:
        sub, group, _, name = _parse(request.id)
        properties: dict[str, Any] = {
            "creationData": {
                "createOption": "Copy",
                "sourceResourceId": request.source_snapshot_id,
            },
            "networkAccessPolicy": "DenyAll",
            "publicNetworkAccess": "Disabled",
        }
        if request.os_type:
            properties["osType"] = request.os_type
        if request.hyper_v_generation:
            properties["hyperVGeneration"] = request.hyper_v_generation
        if request.security_type == "TrustedLaunch":
            properties["securityProfile"] = {"securityType": "TrustedLaunch"}
        if request.disk_encryption_set_id:
            properties["encryption"] = {
                "type": "EncryptionAtRestWithCustomerKey",
                "diskEncryptionSetId": request.disk_encryption_set_id,
            }
        body: dict[str, Any] = {
            "location": request.location,
            "tags": request.tags,
            "properties": properties,
        }
        if request.sku:
            body["sku"] = {"name": request.sku}
        if request.zones:
            body["zones"] = list(request.zones)
        client: Any = self._compute.client(sub)  # REST JSON bodies, as the compute adapter sends
        call_arm(lambda: client.disks.begin_create_or_update(group, name, body, polling=False))

    def begin_create_nic(
        self,
        nic_id: str,
        location: str,
        subnet_id: str,
        tags: dict[str, str],
        private_ip: str | None = None,
    ) -> None:
        sub, group, _, name = _parse(nic_id)
        address: dict[str, Any] = {"privateIPAllocationMethod": "Dynamic"}
        if private_ip:  # a recovery keeping the original's address
            address = {"privateIPAllocationMethod": "Static", "privateIPAddress": private_ip}
        body = {
            "location": location,
            "tags": tags,
            "properties": {
                "ipConfigurations": [
                    {
                        "name": "ipconfig1",
                        "properties": {"subnet": {"id": subnet_id}, **address},
                    }
                ]
            },
        }
        client = self.network(sub)
        call_arm(
            lambda: client.network_interfaces.begin_create_or_update(
                group, name, body, polling=False
            )
        )

    def begin_create_vm(self, request: DrillVmRequest) -> None:
        sub, group, _, name = _parse(request.id)
        properties: dict[str, Any] = {
            "hardwareProfile": {"vmSize": request.size},
            "storageProfile": {
                "osDisk": {
                    "createOption": "Attach",
                    "osType": request.os_type,
                    "managedDisk": {"id": request.os_disk_id},
                },
                "dataDisks": [
                    {
                        "lun": lun,
                        "createOption": "Attach",
                        "managedDisk": {"id": disk_id},
                        **_caching(request.caching, lun),
                    }
                    for lun, disk_id in request.data_disks
                ],
            },
            "networkProfile": {
                "networkInterfaces": [{"id": request.nic_id, "properties": {"primary": True}}]
            },
            "diagnosticsProfile": {
                "bootDiagnostics": dict(request.boot_diagnostics or {"enabled": True})
            },
        }
        if request.security_profile:
            properties["securityProfile"] = request.security_profile
        body: dict[str, Any] = {
            "location": request.location,
            "tags": request.tags,
            "properties": properties,
        }
        if request.plan:
            body["plan"] = request.plan
        if request.zones:
            body["zones"] = list(request.zones)
        client: Any = self._compute.client(sub)
        call_arm(
            lambda: client.virtual_machines.begin_create_or_update(group, name, body, polling=False)
        )

    def begin_delete(self, resource_id: str) -> None:
        sub, group, kind, name = _parse(resource_id)
        if kind in COMPUTE_KINDS:
            client: Any = self._compute.client(sub)
            operations = client.virtual_machines if kind == "virtualMachines" else client.disks
        else:
            network = self.network(sub)
            operations = getattr(network, _NETWORK_OPERATIONS[kind])
        with contextlib.suppress(ResourceNotFoundError):
            call_arm(lambda: operations.begin_delete(group, name, polling=False))

    # --- plumbing

    def _get(self, read: Callable[[], Any]) -> dict[str, Any] | None:
        try:
            result: dict[str, Any] = call_arm(read).as_dict()
        except ResourceNotFoundError:
            return None
        return result

    def _get_by_id(self, resource_id: str) -> dict[str, Any] | None:
        sub, group, kind, name = _parse(resource_id)
        if kind == "virtualMachines":
            vms = self._compute.client(sub).virtual_machines
            return self._get(lambda: vms.get(group, name))
        if kind == "disks":
            disks = self._compute.client(sub).disks
            return self._get(lambda: disks.get(group, name))
        operations = getattr(self.network(sub), _NETWORK_OPERATIONS[kind])
        return self._get(lambda: operations.get(group, name))


def _primary(entries: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The entry marked primary (a VM's NIC, a NIC's IP configuration), else the only or first."""
    for entry in entries:
        if (entry.get("properties") or {}).get("primary") is True:
            return entry
    return entries[0] if entries else None


_NETWORK_OPERATIONS = {
    "networkInterfaces": "network_interfaces",
    "virtualNetworks": "virtual_networks",
    "networkSecurityGroups": "network_security_groups",
    "routeTables": "route_tables",
    "natGateways": "nat_gateways",
    "publicIPAddresses": "public_ip_addresses",
}
_KINDS = {k.lower(): k for k in (*COMPUTE_KINDS, *_NETWORK_OPERATIONS)}


def _parse(resource_id: str) -> tuple[str, str, str, str]:
    """(subscription, group, kind, name) of a Compute or Network resource id Lifeboat handles."""
    parts = resource_id.strip("/").split("/")
    if len(parts) != 8 or parts[6].lower() not in _KINDS:
        raise ValueError(f"not a drill resource id: {resource_id!r}")
    return parts[1].lower(), parts[3], _KINDS[parts[6].lower()], parts[7]


def _resource(body: dict[str, Any]) -> DrillResource:
    props = body.get("properties") or {}
    kind = str(body.get("type", "")).split("/")[-1]
    in_use = body.get("managedBy") or (props.get("virtualMachine") or {}).get("id")
    return DrillResource(
        id=str(body["id"]),
        kind=_KINDS.get(kind.lower(), kind),
        name=str(body.get("name", "")),
        tags=dict(body.get("tags") or {}),
        provisioning_state=props.get("provisioningState"),
        in_use_by=in_use,
        location=str(body.get("location", "")),
        source_id=(props.get("creationData") or {}).get("sourceResourceId"),
        time_created=parse_time(props.get("timeCreated")),
    )


def _caching(caching: dict[int, str] | None, lun: int) -> dict[str, str]:
    """A data disk's `caching` when the request names one for its LUN."""
    value = (caching or {}).get(lun)
    return {"caching": value} if value else {}


def _connectivity(body: dict[str, Any]) -> ConnectivityConfiguration:
    props = body.get("properties") or {}
    return ConnectivityConfiguration(
        id=str(body.get("id", "")),
        topology=str(props.get("connectivityTopology", "")),
        hubs=tuple(str(h.get("resourceId", "")) for h in props.get("hubs") or []),
    )


def _admin_rule(body: dict[str, Any]) -> SecurityRule:
    """An effective security admin rule in the NSG rule's shape; its name is the path below
    the network manager (configuration/ruleCollections/collection/rules/rule)."""
    props = body.get("properties") or {}
    rule_id = str(body.get("id", ""))
    name = rule_id.split("/securityAdminConfigurations/", 1)[-1] or rule_id

    def prefixes(field: str) -> tuple[str, ...]:
        values = [str(p.get("addressPrefix", "")) for p in props.get(field) or []]
        return tuple(v for v in values if v) or ("*",)

    def ports(field: str) -> tuple[str, ...]:
        return tuple(str(p) for p in props.get(field) or []) or ("*",)

    protocol = str(props.get("protocol", "Any"))
    return SecurityRule(
        name=name,
        priority=int(props.get("priority", 4096)),
        direction=str(props.get("direction", "")),
        access=str(props.get("access", "")),
        protocol="*" if protocol.lower() == "any" else protocol,
        sources=prefixes("sources"),
        destinations=prefixes("destinations"),
        destination_ports=ports("destinationPortRanges"),
        source_ports=ports("sourcePortRanges"),
    )


def _rule(body: dict[str, Any]) -> SecurityRule:
    props = body.get("properties") or {}

    def many(single: str, plural: str, groups: str = "") -> tuple[str, ...]:
        values = list(props.get(plural) or [])
        if props.get(single):
            values.append(props[single])
        # A rule that names application security groups has no address prefix: not "*".
        values.extend(g.get("id", "") for g in props.get(groups) or [] if isinstance(g, dict))
        return tuple(str(v) for v in values) or ("*",)

    return SecurityRule(
        name=str(body.get("name", "")),
        priority=int(props.get("priority", 65535)),
        direction=str(props.get("direction", "")),
        access=str(props.get("access", "")),
        protocol=str(props.get("protocol", "*")),
        sources=many(
            "sourceAddressPrefix", "sourceAddressPrefixes", "sourceApplicationSecurityGroups"
        ),
        destinations=many(
            "destinationAddressPrefix",
            "destinationAddressPrefixes",
            "destinationApplicationSecurityGroups",
        ),
        destination_ports=many("destinationPortRange", "destinationPortRanges"),
        source_ports=many("sourcePortRange", "sourcePortRanges"),
    )
