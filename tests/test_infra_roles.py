"""Least privilege, measured: infra/roles/actions.json against the stand-in and the Bicep.

- every ARM operation and linked action the stand-in logs in a demo run (two nights, defaults)
  is granted by a row of a default feature, and every operation the stand-in can serve has a row;
- each custom role in roles.bicep is, for every combination of features, exactly the union of
  its scope's rows (evaluated from the Bicep, not read from its text);
- vault rows are covered by the built-in Backup Reader / Backup Operator, and Backup Operator is
  assigned only when on-demand backup is on;
- nothing grants beginGetAccess on snapshots, and VM write never reaches Lifeboat's identity;
- Site Recovery: verification's reads are default subscription rows (Site Recovery Reader's
  equivalent); the test-failover role (off by default) holds test failover, its cleanup and reads
  alone, and no row anywhere grants another failover action;
- the outcomes workspace: one role runs a query and reads no table, the other holds only table
  query read and is assigned on LifeboatOutcomes_CL alone; no built-in Log Analytics role.
"""

from __future__ import annotations

import fnmatch
import itertools
import json
import re
from pathlib import Path
from typing import Any
from unittest.mock import MagicMock

import pytest

from emulator.arm import ROUTES
from emulator.recoveryservices import RecoveryServices
from emulator.siterecovery import ROUTES as SITE_RECOVERY_ROUTES
from tests.conftest import DemoRun
from tests.test_infra_bicep import INFRA, ROOT, Bicep, resource_body

TABLE = json.loads((INFRA / "roles" / "actions.json").read_text())
SCOPES: dict[str, dict[str, list[dict[str, Any]]]] = TABLE["scopes"]
ROLE_VARIABLES = {
    "subscription": ("subscriptionRole", "subscriptionActions"),
    "snapshotGroup": ("snapshotRole", "snapshotGroupActions"),
    "drillSubscription": ("drillSubscriptionRole", "drillSubscriptionActions"),
    "drillGroup": ("drillGroupRole", "drillGroupActions"),
    "workspace": ("workspaceQueryRole", "workspaceActions"),
    "outcomesTable": ("outcomesReaderRole", "outcomesTableActions"),
}
NOT_ARM = re.compile(r"^(identity/|monitor/|fault/)")


def _rows(scope: str | None = None, features: set[str] | None = None) -> list[dict[str, Any]]:
    return [
        row
        for name, by_feature in SCOPES.items()
        if scope in (None, name)
        for feature, rows in by_feature.items()
        if features is None or feature in features
        for row in rows
    ]


def _actions(rows: list[dict[str, Any]]) -> set[str]:
    return {a.lower() for row in rows for a in row["actions"]}


def _granted_by(action: str, patterns: list[str]) -> bool:
    return any(fnmatch.fnmatch(action.lower(), p.lower()) for p in patterns)


@pytest.fixture(scope="session")
def demo_requests(demo_run: DemoRun) -> dict[str, dict[str, int]]:
    """The stand-in's request counters after `lifeboat demo --nights 2` (shared with test_e2e)."""
    assert demo_run.returncode == 0, demo_run.stderr[-3000:]
    return demo_run.requests


def _seen(counters: dict[str, dict[str, int]]) -> set[str]:
    names = set(counters["byOperation"]) | set(counters["byAction"])
    return {n for n in names if not NOT_ARM.match(n)}


def _served() -> set[str]:
    """Every operation the stand-in can log, and the linked actions it checks."""
    operations = {route.operation for route in ROUTES}
    operations |= {route.operation for route in RecoveryServices._routes(MagicMock())}
    operations |= {route.operation for route in SITE_RECOVERY_ROUTES}
    expanded = set()
    for op in operations:
        kinds = ("diskOperations", "operations") if "{kind}" in op else ("",)
        expanded |= {op.replace("{kind}", kind) for kind in kinds}
    for path in (ROOT / "emulator").glob("*.py"):
        text = path.read_text()
        expanded |= set(re.findall(r"actions\.append\(\s*\"([^\"]+)\"", text))
        expanded |= set(re.findall(r"linked = \"([^\"]+)\"", text))
    return expanded


def test_the_demo_exercised_arm_and_linked_checks(demo_requests: dict[str, Any]) -> None:
    seen = _seen(demo_requests)
    assert "Microsoft.Compute/snapshots/write" in seen
    assert "Microsoft.Compute/disks/beginGetAccess/action" in seen, "linked checks are counted"
    assert any(op.startswith("Microsoft.RecoveryServices/") for op in seen)


def test_everything_the_demo_did_is_granted_by_default_rows(demo_requests: dict[str, Any]) -> None:
    vault = TABLE["builtInRoles"]["backupReader"]["actions"]
    # The demo drills three VMs a night: drills are on wherever drill regions are deployed.
    granted = sorted(_actions(_rows(features={"core", "drills"})))
    missing = [
        op
        for op in sorted(_seen(demo_requests))
        if not _granted_by(op, granted) and not _granted_by(op, vault)
    ]
    assert missing == [], f"no default row grants {missing}"


def test_every_operation_the_stand_in_serves_has_a_row() -> None:
    served = _served()
    assert len(served) > 20
    rows = _actions(_rows())
    assert sorted(op for op in served if op.lower() not in rows) == []


def test_rows_are_complete_and_linked_to_docs() -> None:
    for scope, by_feature in SCOPES.items():
        assert scope in ROLE_VARIABLES or scope in ("vault", "separateIdentity", "siteRecovery")
        for feature, rows in by_feature.items():
            assert feature in {
                "core",
                "tagDefaultPolicy",
                "countAllSnapshots",
                "drills",
                "onDemandBackup",
                "backupProtection",
                "recoveryPointDrills",
                "testFailover",
            }
            for row in rows:
                assert row["operation"], row
                assert row["actions"], row
                assert row["why"], row
                assert row["doc"].startswith("https://learn.microsoft.com/"), row
                for action in row["actions"]:
                    assert re.fullmatch(r"Microsoft\.\w+(/[\w{}]+)+", action), action


@pytest.mark.parametrize(
    ("tag_default_policy", "drills", "count_all"), list(itertools.product([False, True], repeat=3))
)
def test_each_custom_role_is_the_union_of_its_rows(
    tag_default_policy: bool, drills: bool, count_all: bool
) -> None:
    bicep = Bicep(
        INFRA / "app" / "roles.bicep",
        tagDefaultPolicy=tag_default_policy,
        drills=drills,
        countAllSnapshots=count_all,
    )
    features = {"core"} | ({"tagDefaultPolicy"} if tag_default_policy else set())
    features |= {"drills"} if drills else set()
    features |= {"countAllSnapshots"} if count_all else set()
    for scope, (resource, variable) in ROLE_VARIABLES.items():
        condition, body = resource_body(bicep.tree["resources"][resource]["config"])
        [permissions] = body["properties"]["permissions"]
        assert permissions["actions"] == variable
        assert permissions["notActions"] == []
        if scope.startswith("drill"):
            assert condition == "drills"
        else:
            assert condition is None
        if condition is not None and not bicep.evaluate(condition):
            assert _actions(_rows(scope, features)) == set(), f"{scope} has rows but no role"
            continue
        computed = bicep.variable(variable)
        assert len(computed) == len(set(computed)), "union removes duplicates"
        assert {a.lower() for a in computed} == _actions(_rows(scope, features)), scope


def test_no_role_can_read_snapshot_data_or_write_production_vms() -> None:
    for path in INFRA.rglob("*"):
        if path.is_file():
            assert "snapshots/begingetaccess" not in path.read_text().lower(), path.name
    everything = {"core", "tagDefaultPolicy", "drills", "countAllSnapshots"}
    bicep = Bicep(
        INFRA / "app" / "roles.bicep", tagDefaultPolicy=True, drills=True, countAllSnapshots=True
    )
    for scope, (_, variable) in ROLE_VARIABLES.items():
        actions = {a.lower() for a in bicep.variable(variable)}
        assert not any("snapshots/begingetaccess" in a for a in actions)
        assert not any("*" in a for a in actions), "no wildcards in custom roles"
        if scope != "drillGroup":
            assert "microsoft.compute/virtualmachines/write" not in actions, scope
    separate = _actions(_rows("separateIdentity"))
    custom = _actions(_rows(None, everything)) - _actions(_rows("separateIdentity"))
    assert "microsoft.compute/virtualmachines/write" in separate
    assert not (separate - {"microsoft.compute/virtualmachines/write"}) & custom


def test_vault_rows_come_from_built_in_backup_roles_assigned_by_feature() -> None:
    builtin = TABLE["builtInRoles"]
    for row in SCOPES["vault"]["core"]:
        for action in row["actions"]:
            assert _granted_by(action, builtin["backupReader"]["actions"]), action
    for row in SCOPES["vault"]["onDemandBackup"]:
        for action in row["actions"]:
            assert _granted_by(action, builtin["backupOperator"]["actions"]), action
    target = Bicep(INFRA / "app" / "target.bicep")
    resources = target.tree["resources"]
    reader_condition, reader = resource_body(resources["backupReader"]["config"])
    operator_condition, operator = resource_body(resources["backupOperator"]["config"])
    assert reader_condition is None
    assert operator_condition == "onDemandBackup"
    assert "backupReader" in json.dumps(reader["properties"]["roleDefinitionId"])
    assert "backupOperator" in json.dumps(operator["properties"]["roleDefinitionId"])
    assert builtin["backupReader"]["id"] == "a795c7a0-d4a2-40c1-ae25-d81f01202912"
    assert builtin["backupOperator"]["id"] == "00c29273-979b-4161-815c-10b084fb9324"


def test_the_test_failover_role_is_assigned_in_each_target_only_with_site_recovery_drills() -> None:
    target = Bicep(INFRA / "app" / "target.bicep")
    condition, body = resource_body(target.tree["resources"]["testFailover"]["config"])
    assert "testFailoverRoleName" in json.dumps(condition)
    assert "not" in json.dumps(condition)
    assert "testFailoverRoleName" in json.dumps(body["properties"]["roleDefinitionId"])
    main = (INFRA / "main.bicep").read_text()
    assert "siteRecoveryTestFailover: siteRecoveryDrills" in main
    assert "testFailoverRoleName: roles.outputs.testFailoverRoleName" in main


def test_snapshot_role_is_assigned_on_the_snapshot_group_only() -> None:
    target = Bicep(INFRA / "app" / "target.bicep").tree
    module = target["modules"]["snapshots"]["config"]
    assert module["scope"] == "snapshotGroup"
    assert module["params"]["roleDefinitionName"] == "snapshotRoleName"
    reader = resource_body(target["resources"]["reader"]["config"])[1]
    assert "subscriptionRoleName" in json.dumps(reader["properties"]["roleDefinitionId"])
    text = Path(INFRA / "app" / "target.bicep").read_text()
    assert text.count("snapshotRoleName") == 2, "declared once, used once (the group module)"


OPERATIONAL_INSIGHTS = "Microsoft.OperationalInsights/"
TABLE_QUERY_READ = "Microsoft.OperationalInsights/workspaces/tables/query/read"
# Built-in roles that read every table of a workspace: Log Analytics Reader and Contributor,
# Monitoring Reader and Contributor, Reader.
WHOLE_WORKSPACE_ROLES = (
    "73c42c96-874c-492b-b04d-ab87d138a893",
    "92aaf0da-9dab-42b6-94a3-d43ce8d16293",
    "43d0d8ad-25c7-4714-9337-8ba259a9fe05",
    "749f88d5-cbae-40b8-bcfc-e573ddc772fa",
    "acdd72a7-3385-48ef-bd42-f606fba81ae7",
)


def test_the_outcomes_query_roles_read_one_table_and_nothing_else() -> None:
    bicep = Bicep(INFRA / "app" / "roles.bicep", tagDefaultPolicy=True, drills=True)
    table_role = bicep.variable("outcomesTableActions")
    workspace_role = bicep.variable("workspaceActions")

    assert table_role == [TABLE_QUERY_READ], "the table role holds only table query read"
    assert sorted(workspace_role) == [
        "Microsoft.OperationalInsights/workspaces/query/read",
        "Microsoft.OperationalInsights/workspaces/read",
    ]
    assert not any("/query/" in a and a.count("/") > 3 for a in workspace_role), (
        "no per-table (legacy) query action on the workspace role"
    )
    for scope, (_, variable) in ROLE_VARIABLES.items():
        if scope not in ("workspace", "outcomesTable"):
            actions = bicep.variable(variable)
            assert not [a for a in actions if a.startswith(OPERATIONAL_INSIGHTS)], scope
    for name in ("workspaceQueryRole", "outcomesReaderRole"):
        body = resource_body(bicep.tree["resources"][name]["config"])[1]
        assert body["properties"]["assignableScopes"] == ["workspaceGroupId"]


def test_the_table_role_is_assigned_on_the_outcomes_table_only() -> None:
    access = Bicep(INFRA / "app" / "outcomes-reader.bicep").tree
    resources = access["resources"]
    assert access["variables"]["tableName"]["value"] == "LifeboatOutcomes_CL"
    table = resources["outcomesTable"]["config"]
    assert (table["parent"], table["name"]) == ("workspace", "tableName")
    reader = resource_body(resources["tableReader"]["config"])[1]
    runner = resource_body(resources["queryRunner"]["config"])[1]
    assert reader["scope"] == "outcomesTable"
    assert runner["scope"] == "workspace"
    assert "outcomesReaderRoleName" in json.dumps(reader["properties"]["roleDefinitionId"])
    assert "workspaceQueryRoleName" in json.dumps(runner["properties"]["roleDefinitionId"])
    main = Bicep(INFRA / "main.bicep").tree["modules"]["outcomesReader"]["config"]
    assert main["scope"] == "group"
    assert "outcomesReaderRoleName" in json.dumps(main["params"]["outcomesReaderRoleName"])
    for path in INFRA.rglob("*.bicep"):
        text = path.read_text()
        for role in WHOLE_WORKSPACE_ROLES:
            assert role not in text, f"{path.name} grants a role that reads every table"


@pytest.mark.parametrize("on", [False, True])
def test_the_restore_trigger_role_holds_the_restore_its_operation_and_job_reads_alone(
    on: bool,
) -> None:
    bicep = Bicep(INFRA / "app" / "roles.bicep", recoveryPointDrills=on)
    condition, body = resource_body(bicep.tree["resources"]["restoreTriggerRole"]["config"])
    assert condition == "recoveryPointDrills"
    [permissions] = body["properties"]["permissions"]
    assert permissions["actions"] == "restoreTriggerActions"
    assert permissions["notActions"] == []
    actions = {a.lower() for a in bicep.variable("restoreTriggerActions")}
    items = "microsoft.recoveryservices/vaults/backupfabrics/protectioncontainers/protecteditems"
    assert actions == {
        f"{items}/recoverypoints/restore/action",
        f"{items}/operationsstatus/read",
        "microsoft.recoveryservices/vaults/backupjobs/read",
    }
    assert "microsoft.compute/virtualmachines/write" not in actions


# Every Site Recovery action that changes replication or fails over for real: none may be granted.
FAILOVER_ACTIONS = re.compile(
    r"(plannedfailover|unplannedfailover|failovercommit|commit|reprotect|switchprotection|"
    r"applyrecoverypoint|repairreplication|cancel|remove|delete|write|updatemobilityservice|"
    r"resync|failover/action)",
)
TEST_FAILOVER_ONLY = re.compile(r"/testfailover(cleanup)?/action$")


def test_site_recovery_reads_of_verification_are_default_subscription_rows() -> None:
    core = _actions(_rows("subscription", {"core"}))
    vaults = "microsoft.recoveryservices/vaults/"
    assert {
        f"{vaults}replicationprotecteditems/read",
        f"{vaults}replicationrecoveryplans/read",
    } <= (core)
    assert not [a for a in core if "replication" in a and not a.endswith("/read")]


@pytest.mark.parametrize("on", [False, True])
def test_the_test_failover_role_holds_test_failover_its_cleanup_and_reads_alone(on: bool) -> None:
    bicep = Bicep(INFRA / "app" / "roles.bicep", siteRecoveryTestFailover=on)
    assert Bicep(INFRA / "app" / "roles.bicep").evaluate("siteRecoveryTestFailover") is False
    condition, body = resource_body(bicep.tree["resources"]["testFailoverRole"]["config"])
    assert condition == "siteRecoveryTestFailover"
    assert bicep.evaluate(condition) is on
    [permissions] = body["properties"]["permissions"]
    assert permissions["actions"] == "siteRecoveryActions"
    assert permissions["notActions"] == []
    actions = {a.lower() for a in bicep.variable("siteRecoveryActions")}
    assert actions == _actions(_rows("siteRecovery", {"testFailover"}))
    granting = {a for a in actions if a.endswith("/action")}
    vaults = "microsoft.recoveryservices/vaults/"
    items = f"{vaults}replicationfabrics/replicationprotectioncontainers/replicationprotecteditems"
    assert granting == {
        f"{vaults}replicationrecoveryplans/testfailover/action",
        f"{vaults}replicationrecoveryplans/testfailovercleanup/action",
        f"{items}/testfailover/action",
        f"{items}/testfailovercleanup/action",
    }
    # Besides reads, only the tag that marks a test VM as the drill's (Site Recovery puts it in
    # the recovery group a real failover uses): never a resource write or delete.
    assert {a for a in actions - granting if not a.endswith("/read")} == {
        "microsoft.resources/tags/write"
    }
    assert not any("*" in a for a in actions)


def test_no_row_grants_any_other_failover_action() -> None:
    """Not Site Recovery Operator: planned or unplanned failover, commit, reprotect, switch
    protection, and any write or delete of replication, are granted by no row and no role."""
    for action in _actions(_rows()):
        if "/replication" not in action:
            continue
        if TEST_FAILOVER_ONLY.search(action):
            continue
        assert not FAILOVER_ACTIONS.search(action), action
        assert action.endswith("/read"), action
    assert "siteRecoveryOperator" not in TABLE["builtInRoles"]
