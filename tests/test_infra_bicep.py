"""infra/: every Bicep file parses with the parser checkov uses, and the deployment's shape holds.

`Bicep` wraps pycep-parser's tree; `evaluate` computes the few expression forms the infra tests
need (references, property access, array loops, conditionals, union/flatten/concat, empty and
loadJsonContent), so the tests check what the Bicep computes, not how it is spelt.
"""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml
from pycep import BicepParser

ROOT = Path(__file__).resolve().parent.parent
INFRA = ROOT / "infra"
BICEP_FILES = sorted(INFRA.rglob("*.bicep"))


@cache
def _parser() -> BicepParser:
    return BicepParser()  # builds its grammar once (about 1.5 s)


@cache
def _tree(path: Path) -> dict[str, Any]:
    return dict(_parser().parse(text=path.read_text()))


class Bicep:
    def __init__(self, path: Path, **params: Any) -> None:
        self.path = path
        self.tree = _tree(path)
        self.params: dict[str, Any] = {
            name: spec.get("default") for name, spec in self.tree.get("parameters", {}).items()
        }
        self.params.update(params)

    def variable(self, name: str) -> Any:
        return self.evaluate(self.tree["variables"][name]["value"])

    def evaluate(self, node: Any, scope: dict[str, Any] | None = None) -> Any:
        scope = scope or {}
        if isinstance(node, str):
            if node in scope:
                return scope[node]
            if node in self.params:
                return self.params[node]
            if node in self.tree.get("variables", {}):
                return self.variable(node)
            return node
        if isinstance(node, list):
            return [self.evaluate(item, scope) for item in node]
        if not isinstance(node, dict):
            return node
        if "loop_type" in node:
            detail = node["loop_type"]["detail"]
            items = self.evaluate(detail["array_name"], scope)
            return [self.evaluate(node["config"], {**scope, detail["item_name"]: i}) for i in items]
        if "operator" in node:
            op = node["operator"]
            operands = op["operands"]
            if op["type"] == "property_accessor":
                value = self.evaluate(operands["operand_1"], scope)
                for name in _names(operands["operand_2"]):
                    value = value[name]
                return value
            if op["type"] == "conditional":
                branch = (
                    "true_value" if self.evaluate(operands["condition"], scope) else "false_value"
                )
                return self.evaluate(operands[branch], scope)
            raise NotImplementedError(op["type"])
        if "function" in node:
            fn = node["function"]
            args = [self.evaluate(v, scope) for v in (fn.get("parameters") or {}).values()]
            if fn["type"] == "load_json_content":
                data = json.loads((self.path.parent / fn["parameters"]["file_path"]).read_text())
                for key in (fn["parameters"]["json_path"] or "$").split(".")[1:]:
                    data = data[key]
                return data
            if fn["type"] == "empty":
                return not args[0]
            if fn["type"] == "flatten":
                return [x for part in args[0] for x in part]
            if fn["type"] in ("union", "concat"):
                merged = [x for part in args if part is not None for x in part]
                return list(dict.fromkeys(merged)) if fn["type"] == "union" else merged
            raise NotImplementedError(fn["type"])
        return {key: self.evaluate(value, scope) for key, value in node.items()}


def _names(node: Any) -> list[str]:
    if isinstance(node, str):
        return [node]
    operands = node["operator"]["operands"]
    return [operands["operand_1"], *_names(operands["operand_2"])]


def resource_body(config: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    """(condition or None, body) of a resource or module config."""
    if "condition" in config and "config" in config:
        return config["condition"], config["config"]
    return None, config


@pytest.mark.parametrize("path", BICEP_FILES, ids=lambda p: str(p.relative_to(INFRA)))
def test_every_bicep_file_parses_with_pycep(path: Path) -> None:
    tree = _tree(path)
    assert tree.get("resources") or tree.get("modules"), f"{path.name} declares nothing"


def test_only_local_modules_and_files() -> None:
    for path in BICEP_FILES:
        text = path.read_text()
        assert not re.search(r"'(br|ts)[:/]", text), f"{path.name} uses a registry module"
        for module in _tree(path).get("modules", {}).values():
            assert module["type"] == "local", module
            target = (path.parent / module["detail"]["path"]).resolve()
            assert target.is_file(), module["detail"]["path"]
            assert INFRA in target.parents, module["detail"]["path"]
        for loaded in re.findall(r"load(?:Json|Text)Content\('([^']+)'", text):
            assert (path.parent / loaded).is_file(), f"{path.name} loads a missing {loaded}"


def test_main_is_subscription_scoped_and_azure_yaml_deploys_one_function_from_the_root() -> None:
    assert "targetScope = 'subscription'" in (INFRA / "main.bicep").read_text()
    azure = yaml.safe_load((ROOT / "azure.yaml").read_text())
    assert azure["infra"]["path"] == "infra"
    [(name, service)] = azure["services"].items()
    assert service == {"project": ".", "language": "python", "host": "function"}
    app = _tree(INFRA / "app" / "function.bicep")["resources"]["app"]["config"]
    assert Bicep(INFRA / "app" / "function.bicep").params["serviceName"] == name
    assert "azd-service-name" in json.dumps(app["tags"])
    for hook in ("preprovision", "postdeploy"):
        script = ROOT / azure["hooks"][hook]["posix"]["run"]
        assert script.is_file(), script
    postdeploy = (ROOT / azure["hooks"]["postdeploy"]["posix"]["run"]).read_text()
    assert "infra/events.bicep" in postdeploy
    # Every parameter of the events template can be set from the azd environment.
    for name in Bicep(INFRA / "events.bicep").params:
        assert f"{name}=" in postdeploy, name


def test_every_required_parameter_is_in_the_parameters_file_and_the_readme() -> None:
    main = Bicep(INFRA / "main.bicep")
    required = {name for name, default in main.params.items() if default is None}
    assert {"environmentName", "location", "targetSubscriptionIds", "alertEmails"} <= required
    parameters = json.loads((INFRA / "main.parameters.json").read_text())["parameters"]
    assert set(parameters) <= set(main.params), "main.parameters.json names an unknown param"
    readme = (ROOT / "README.md").read_text()
    table = readme.split("### Parameters", 1)[1].split("\n#", 1)[0]
    for name in required:
        assert name in parameters, f"main.parameters.json lacks {name}"
        assert f"| `{name}` |" in table, f"the README's parameter table lacks {name}"


def test_flex_app_storage_and_telemetry_are_identity_based() -> None:
    function = _tree(INFRA / "app" / "function.bicep")
    app = function["resources"]["app"]["config"]
    flex = app["properties"]["functionAppConfig"]
    assert flex["runtime"] == {"name": "python", "version": "3.11"}
    assert flex["deployment"]["storage"]["authentication"]["type"] == "UserAssignedIdentity"
    assert function["resources"]["plan"]["config"]["sku"] == {
        "tier": "FlexConsumption",
        "name": "FC1",
    }
    storage = _tree(INFRA / "app" / "storage.bicep")["resources"]["storage"]["config"]["properties"]
    assert storage["allowSharedKeyAccess"] is False
    assert storage["allowBlobPublicAccess"] is False
    assert storage["minimumTlsVersion"] == "TLS1_2"
    monitoring = _tree(INFRA / "app" / "monitoring.bicep")["resources"]
    assert monitoring["appInsights"]["config"]["properties"]["DisableLocalAuth"] is True
    telemetry = Bicep(INFRA / "app" / "function.bicep").tree["variables"]["telemetry"]["value"]
    assert telemetry["APPLICATIONINSIGHTS_AUTHENTICATION_STRING"].endswith("Authorization=AAD")


def test_event_grid_subscription_filters_batches_retries_and_dead_letters() -> None:
    tree = _tree(INFRA / "app" / "events-subscription.bicep")
    props = tree["resources"]["vmEvents"]["config"]["properties"]
    assert props["destination"]["properties"]["maxEventsPerBatch"] == 1
    assert props["destination"]["properties"]["resourceId"] == "functionId"
    assert props["filter"]["includedEventTypes"] == ["Microsoft.Resources.ResourceWriteSuccess"]
    assert props["retryPolicy"] == {"maxDeliveryAttempts": 30, "eventTimeToLiveInMinutes": 1440}
    assert props["deadLetterWithResourceIdentity"]["deadLetterDestination"]["endpointType"] == (
        "StorageBlob"
    )
    sub = Bicep(INFRA / "app" / "events-subscription.bicep", subscriptionId="s")
    sub.params["excludedResourceGroups"] = ["rg-lifeboat-drill-westeurope"]
    [operation] = sub.variable("operationFilter")
    assert operation["key"] == "data.operationName"
    assert operation["values"] == ["Microsoft.Compute/virtualMachines/write"]
    [subject] = sub.variable("subjectFilter")
    assert subject["operatorType"] == "StringNotBeginsWith"
    assert subject["key"] == "subject"
    topic = _tree(INFRA / "app" / "events-topic.bicep")["resources"]["created"]["config"]
    assert resource_body(topic)[1]["location"] == "global"
    events = (INFRA / "events.bicep").read_text()
    assert "existingSystemTopics" in events
    assert "functions/vm_events" in events


def test_restrict_storage_network_is_off_by_default_and_switches_the_firewall() -> None:
    main = Bicep(INFRA / "main.bicep")
    assert main.params["restrictStorageNetwork"] is False
    modules = main.tree["modules"]
    params = resource_body(modules["storage"]["config"])[1]["params"]
    for restrict in (False, True):
        main.params["restrictStorageNetwork"] = restrict
        assert main.evaluate(params["restrictNetwork"]) is restrict
    main.params["restrictStorageNetwork"] = False
    assert main.evaluate(params["allowedIpRanges"]) == []
    # The virtual network, the private endpoints and the app's VNet integration come with it.
    for name in ("network", "storageEndpoints"):
        assert resource_body(modules[name]["config"])[0] == "restrictStorageNetwork", name
    function = resource_body(modules["function"]["config"])[1]
    assert main.evaluate(function["params"]["virtualNetworkSubnetId"]) == ""
    assert "storageEndpoints" in function["dependsOn"]

    storage = INFRA / "app" / "storage.bicep"
    for restrict, action in ((False, "Allow"), (True, "Deny")):
        bicep = Bicep(storage, restrictNetwork=restrict, allowedIpRanges=["203.0.113.7"])
        props = bicep.evaluate(bicep.tree["resources"]["storage"]["config"]["properties"])
        acls = props["networkAcls"]
        assert acls["defaultAction"] == action
        # Event Grid dead-letters with its identity as a trusted Azure service.
        assert acls["bypass"] == "AzureServices"
        assert acls["ipRules"] == [{"value": "203.0.113.7", "action": "Allow"}]
        assert props["publicNetworkAccess"] == "Enabled"
        assert props["allowSharedKeyAccess"] is False
    assert Bicep(storage).params["restrictNetwork"] is False


def test_restricted_storage_is_reached_through_private_endpoints_in_the_apps_network() -> None:
    endpoints = Bicep(INFRA / "app" / "storage-endpoints.bicep")
    assert endpoints.variable("services") == ["blob", "queue", "table"]
    resources = endpoints.tree["resources"]
    pe = resources["endpoints"]["config"]["config"]["properties"]
    [connection] = pe["privateLinkServiceConnections"]
    assert connection["properties"]["groupIds"] == ["service"]
    assert pe["subnet"]["id"] == "subnetId"
    zone = resources["zones"]["config"]["config"]["name"]
    assert zone.startswith("privatelink.${service}.")
    link = resources["links"]["config"]["config"]["properties"]
    assert link["virtualNetwork"]["id"] == "vnetId"
    network = _tree(INFRA / "app" / "network.bicep")["resources"]["vnet"]["config"]
    app, endpoint_subnet = network["properties"]["subnets"]
    [delegation] = app["properties"]["delegations"]
    assert delegation["properties"]["serviceName"] == "Microsoft.App/environments"
    assert endpoint_subnet["properties"]["privateEndpointNetworkPolicies"] == "Disabled"
    site = _tree(INFRA / "app" / "function.bicep")["resources"]["app"]["config"]["properties"]
    subnet = Bicep(INFRA / "app" / "function.bicep", virtualNetworkSubnetId="/subnets/app")
    assert subnet.evaluate(site["virtualNetworkSubnetId"]) == "/subnets/app"
    none = Bicep(INFRA / "app" / "function.bicep")
    assert none.evaluate(site["virtualNetworkSubnetId"]) is None


def test_poisoned_messages_go_to_a_private_container_kept_30_days_written_by_the_app_only() -> None:
    from shared.names import POISON_CONTAINER

    storage = Bicep(INFRA / "app" / "storage.bicep")
    resources = storage.tree["resources"]
    container = resources["poisonContainer"]["config"]
    assert storage.evaluate(container["name"]) == POISON_CONTAINER
    assert container["parent"] == "blobService"
    assert container["properties"]["publicAccess"] == "None"

    [rule] = resources["lifecycle"]["config"]["properties"]["policy"]["rules"]
    assert rule["enabled"] is True
    assert rule["definition"]["filters"]["prefixMatch"] == ["${poisonContainerName}/"]
    delete = rule["definition"]["actions"]["baseBlob"]["delete"]
    assert storage.evaluate(delete["daysAfterCreationGreaterThan"]) == 30

    # Storage Blob Data Contributor for Lifeboat's identity, on that container only.
    grant = resources["poisonBlobContributor"]["config"]
    assert grant["scope"] == "poisonContainer"
    assert grant["properties"]["principalId"] == "identityPrincipalId"
    role = grant["properties"]["roleDefinitionId"]["function"]["parameters"]["resource_name_1"]
    assert storage.evaluate(role) == "ba92f5b4-2d11-453d-a403-e96b0029c9fe"
