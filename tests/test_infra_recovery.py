"""Recovery operators in the infra: an Entra group that runs `lifeboat recover` with its own
credential gets snapshots/read on each snapshot group and the right to send outcome rows, no
more; nothing of it is deployed when `recoveryOperatorsGroupId` is empty."""

from __future__ import annotations

import json

from tests.test_infra_bicep import INFRA, Bicep, resource_body

OPERATORS = INFRA / "app" / "recovery-operators.bicep"
METRICS_PUBLISHER = "3913510d-42f4-4e42-8a64-420c390055eb"


def _main_modules() -> dict[str, tuple[object, dict[str, object]]]:
    modules = Bicep(INFRA / "main.bicep").tree["modules"]
    return {
        name: resource_body(modules[name]["config"])
        for name in ("recoveryOperatorsOutcomes", "recoveryOperatorsSnapshots")
    }


def test_the_parameter_is_empty_by_default_and_gates_both_modules() -> None:
    main = Bicep(INFRA / "main.bicep")
    assert main.params["recoveryOperatorsGroupId"] == ""
    gate = json.dumps(main.tree["variables"]["recoveryOperators"]["value"])
    assert '"empty"' in gate
    assert "recoveryOperatorsGroupId" in gate
    outcomes_condition, _ = _main_modules()["recoveryOperatorsOutcomes"]
    assert outcomes_condition == "recoveryOperators"
    loop = Bicep(INFRA / "main.bicep").tree["modules"]["recoveryOperatorsSnapshots"]["config"]
    assert "recoveryOperators" in json.dumps(loop["loop_type"]["detail"]["array_name"])


def test_the_snapshot_role_holds_snapshots_read_alone_on_its_group() -> None:
    bicep = Bicep(OPERATORS)
    assert bicep.variable("snapshotReadActions") == ["Microsoft.Compute/snapshots/read"]
    condition, role = resource_body(bicep.tree["resources"]["snapshotReader"]["config"])
    assert condition == "snapshotRead"
    permissions = role["properties"]["permissions"]
    assert len(permissions) == 1
    assert permissions[0]["actions"] == "snapshotReadActions"
    [scope] = role["properties"]["assignableScopes"]
    assert (scope["function"]["type"], scope["function"]["property_name"]) == (
        "resource_group",
        "id",
    )


def test_the_snapshot_role_goes_to_the_group_on_the_snapshot_group_of_each_target() -> None:
    _, assignment = resource_body(Bicep(OPERATORS).tree["resources"]["snapshotReaders"]["config"])
    assert assignment["properties"]["principalType"] == "Group"
    assert assignment["properties"]["principalId"] == "groupId"
    assert "snapshotReader" in json.dumps(assignment["properties"]["roleDefinitionId"])
    config = Bicep(INFRA / "main.bicep").tree["modules"]["recoveryOperatorsSnapshots"]["config"]
    body = config["config"]
    assert "snapshotResourceGroupName" in json.dumps(body["scope"])
    assert body["params"]["snapshotRead"] is True


def test_outcome_rows_through_the_dcr_with_metrics_publisher_only() -> None:
    bicep = Bicep(OPERATORS)
    condition, assignment = resource_body(bicep.tree["resources"]["publishers"]["config"])
    assert "dataCollectionRuleName" in json.dumps(condition)
    assert assignment["scope"] == "rule"
    assert bicep.variable("monitoringMetricsPublisher") == METRICS_PUBLISHER
    assert "monitoringMetricsPublisher" in json.dumps(assignment["properties"]["roleDefinitionId"])
    assert assignment["properties"]["principalType"] == "Group"
    _, module = _main_modules()["recoveryOperatorsOutcomes"]
    assert module["scope"] == "group"
    assert "outcomes-dcr" in json.dumps(module["params"])


def test_recovery_operators_get_no_write_and_no_snapshot_data() -> None:
    text = OPERATORS.read_text().lower()
    assert "begingetaccess" not in text.replace("no begingetaccess", "")
    assert "/write'" not in text
    assert "virtualmachines" not in text
    assert "'*'" not in text
