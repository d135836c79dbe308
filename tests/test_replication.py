"""Azure Site Recovery in verification, on port fakes and literals (the stand-in: the e2e file).

- `assess_replication`: every finding, its precedence, its thresholds (the policy's test-failover
  period, the test failover left open, the agent's expiry) and the row's details;
- the verification plan of a subscription through the real dispatch: one `verify-replication`
  row per replicated in-scope VM, beside (never instead of) its `verify-vm` row; nothing at all
  when no vault replicates; a vault Lifeboat may not read is one blocked row; throttling puts the
  plan back and the repeat reports the same rows; reads are per vault, never per VM;
- the adapter on the REST-spec examples and on scripted answers: paging, A2A details in any casing,
  Site Recovery's placeholder times, 404, 403 and 429.
"""

from __future__ import annotations

import dataclasses
import json
from datetime import datetime, timedelta
from typing import Any

import pytest

from shared.adapters.siterecovery import AzureSiteRecovery, asr_time, item_from_rest
from shared.model import Vault
from shared.names import Queue, Status
from shared.policies import SiteRecoveryOptions, parse_policies
from shared.ports import RecoveryPlan, RefusedError, ReplicatedItem, ThrottledError
from shared.verification.replication import (
    REPLICATION_FINDINGS,
    ReplicationFinding,
    assess_replication,
)
from tests.builders import SUB, VAULT_ID, VERIFY_NOW, vm_id
from tests.fakes import FakeSiteRecovery
from tests.replay import Answer, Credential, Replay, arm_error
from tests.test_verification import World, make_vm

NOW = VERIFY_NOW
F = ReplicationFinding
ASR_VAULT = (
    f"/subscriptions/{SUB}/resourceGroups/rg-asr-neu/providers/Microsoft.RecoveryServices/"
    "vaults/rsv-asr-neu"
)
OPTIONS = SiteRecoveryOptions()


def replicated(name: str, **changes: Any) -> ReplicatedItem:
    """A healthy A2A item of `name` (in rg-app), its VM id in Azure's other casing."""
    values: dict[str, Any] = {
        "id": f"/Subscriptions/{SUB}/resourceGroups/rg-asr-neu/providers/"
        "Microsoft.RecoveryServices/vaults/rsv-asr-neu/replicationFabrics/asr-a2a-default-westeurope/"
        f"replicationProtectionContainers/c/replicationProtectedItems/item-{name}",
        "vault_id": ASR_VAULT,
        "name": name,
        "vm_id": vm_id(name).upper().replace("/SUBSCRIPTIONS/", "/Subscriptions/"),
        "provider": "A2A",
        "protection_state": "Protected",
        "replication_health": "Normal",
        "test_failover_state": "None",
        "last_successful_test_failover": NOW - timedelta(days=30),
        "rpo_seconds": 60,
        "rpo_calculated_at": NOW - timedelta(seconds=30),
        "agent_version": "9.62.7172.1",
        "agent_expiry": NOW + timedelta(days=180),
    }
    values.update(changes)
    return ReplicatedItem(**values)


def plan(*items: ReplicatedItem, **changes: Any) -> RecoveryPlan:
    values: dict[str, Any] = {
        "id": f"{ASR_VAULT}/replicationRecoveryPlans/rp-app",
        "vault_id": ASR_VAULT,
        "name": "rp-app",
        "item_ids": tuple(i.id.lower() for i in items),
    }
    values.update(changes)
    return RecoveryPlan(**values)


def assess(item: ReplicatedItem, rp: RecoveryPlan | None = None, **kw: Any) -> Any:
    args: dict[str, Any] = {
        "target_seconds": 3600,
        "test_failover_days": 180,
        "options": OPTIONS,
        "now": NOW,
    }
    args.update(kw)
    return assess_replication(item, rp, **args)


# ------------------------------------------------------------------------------ assessment

WAITING = {
    "scenario": "TestFailover",
    "scenario_status": "Suspended",
    "scenario_status_description": "WaitingForStopTestFailover",
}


@pytest.mark.parametrize(
    ("changes", "plan_changes", "finding", "reason"),
    [
        ({}, None, F.COMPLIANT, "replicated and healthy; RPO 1 min, last test failover 30 days"),
        (
            {"protection_state": "InitialReplicationInProgress"},
            None,
            F.NOT_PROTECTED,
            "protection state is InitialReplicationInProgress",
        ),
        (
            {"replication_health": "Critical", "health_errors": ("153039: Replication is stuck.",)},
            None,
            F.UNHEALTHY,
            "replication health is Critical: 153039: Replication is stuck.",
        ),
        ({"rpo_seconds": 7200}, None, F.RPO_BREACHED, "replication RPO is 2.0 h; target 1.0 h"),
        (
            {"test_failover_state": "WaitingForCompletion"},
            WAITING | {"scenario_started": NOW - timedelta(hours=30)},
            F.TEST_FAILOVER_NOT_CLEANED,
            "a test failover (plan rp-app) is WaitingForCompletion and open for 30.0 h",
        ),
        (
            {"last_successful_test_failover": NOW - timedelta(days=200)},
            None,
            F.TEST_FAILOVER_OVERDUE,
            "last successful test failover 200 days ago; the policy asks every 180 days",
        ),
        (
            {"last_successful_test_failover": None},
            None,
            F.TEST_FAILOVER_OVERDUE,
            "never test-failed-over successfully",
        ),
        (
            {"agent_expiry": NOW + timedelta(days=10)},
            None,
            F.AGENT_EXPIRING,
            "the mobility agent 9.62.7172.1 expires in 10 days",
        ),
        (
            {"agent_expiry": NOW - timedelta(days=1)},
            None,
            F.AGENT_EXPIRING,
            "agent 9.62.7172.1 expired",
        ),
    ],
)
def test_each_finding_with_its_reason(
    changes: dict[str, Any], plan_changes: dict[str, Any] | None, finding: F, reason: str
) -> None:
    item = replicated("web", **changes)
    rp = plan(item, **plan_changes) if plan_changes is not None else None
    result = assess(item, rp)
    assert result.finding == finding
    assert reason in result.reason
    assert result.findings == (finding,)
    assert result.details["findings"] == [finding.value]


def test_precedence_is_the_declared_order_and_every_finding_is_kept() -> None:
    item = replicated(
        "web",
        protection_state="ResynchronizationPending",
        replication_health="Warning",
        rpo_seconds=9000,
        test_failover_state="WaitingForCompletion",
        scenario="TestFailover",
        scenario_started=NOW - timedelta(hours=9),
        last_successful_test_failover=None,
        agent_expiry=NOW + timedelta(days=5),
    )
    result = assess(item)
    assert result.findings == REPLICATION_FINDINGS[:-1]  # all but compliant, most severe first
    assert result.finding == F.NOT_PROTECTED
    assert result.severity == "high"
    assert result.rpo_seconds == 9000
    assert result.target_seconds == 3600
    # Warning health alone is unhealthy at medium severity; Critical is high.
    warned = assess(replicated("web", replication_health="Warning"))
    assert (warned.finding, warned.severity) == (F.UNHEALTHY, "medium")
    assert assess(replicated("web", replication_health="Critical")).severity == "high"
    assert "no health error listed" in warned.reason


@pytest.mark.parametrize(
    ("state", "hours", "plan_changes", "open_"),
    [
        ("WaitingForCompletion", 7.9, None, False),  # within TEST_FAILOVER max (8 h)
        ("WaitingForCompletion", 8.1, None, True),
        ("WaitingForCompletion", None, None, True),  # waiting, age unknown: reported
        ("InProgress", None, None, False),  # running, age unknown: not yet
        ("InProgress", 9, None, True),
        ("None", None, WAITING | {"scenario_started": NOW - timedelta(hours=12)}, True),
        ("None", None, {"scenario": "TestFailoverCleanup", "scenario_status": "Succeeded"}, False),
        ("Failed", None, {"last_test_failover": NOW - timedelta(hours=20)}, True),
    ],
)
def test_a_test_failover_left_open_past_the_limit(
    state: str, hours: float | None, plan_changes: dict[str, Any] | None, open_: bool
) -> None:
    started = None if hours is None else NOW - timedelta(hours=hours)
    item = replicated(
        "web",
        test_failover_state=state,
        scenario="TestFailover" if started else None,
        scenario_started=started,
    )
    rp = plan(item, **plan_changes) if plan_changes is not None else None
    result = assess(item, rp)
    assert (F.TEST_FAILOVER_NOT_CLEANED in result.findings) is open_
    if open_ and (hours or plan_changes):
        assert isinstance(result.details["testFailoverOpenSeconds"], int)
    assert result.details["testFailoverMaxSeconds"] == 8 * 3600


def test_thresholds_come_from_the_policy_and_the_site_recovery_options() -> None:
    item = replicated(
        "web",
        last_successful_test_failover=NOW - timedelta(days=40),
        agent_expiry=NOW + timedelta(days=40),
        test_failover_state="WaitingForCompletion",
        scenario="TestFailover",
        scenario_started=NOW - timedelta(hours=3),
    )
    assert assess(item).finding == F.COMPLIANT
    strict = SiteRecoveryOptions(agent_expiry_days=60, test_failover_max_hours=2)
    result = assess(item, test_failover_days=30, options=strict)
    assert result.findings == (
        F.TEST_FAILOVER_NOT_CLEANED,
        F.TEST_FAILOVER_OVERDUE,
        F.AGENT_EXPIRING,
    )
    assert result.details["testFailoverDueSeconds"] == 30 * 86400
    assert result.details["testFailoverAgeSeconds"] == 40 * 86400
    assert result.details["agentExpiresInSeconds"] == 40 * 86400


def test_policies_read_the_test_failover_period_and_the_options() -> None:
    parsed = parse_policies(
        {
            "version": 1,
            "policies": {
                "daily": {"retention": {"daily": 3}, "testFailoverDays": 90},
                "other": {"retention": {"daily": 3}},
            },
            "siteRecovery": {"agentExpiryDays": 14, "testFailoverMaxHours": 4},
        }
    )
    assert parsed.policies["daily"].test_failover_days == 90
    assert parsed.policies["other"].test_failover_days == 180
    assert parsed.site_recovery == SiteRecoveryOptions(14, 4)
    defaults = parse_policies({"version": 1, "policies": {"d": {"retention": {"daily": 1}}}})
    assert defaults.site_recovery == SiteRecoveryOptions(30, 8)


# --------------------------------------------------------------------- the verification run


class AsrWorld(World):
    def __init__(self, asr: FakeSiteRecovery) -> None:
        self.asr = asr
        super().__init__()
        self.rt = dataclasses.replace(self.rt, site_recovery=asr)
        self.backup.vaults.append(Vault(ASR_VAULT, "rsv-asr-neu", SUB, "rg-asr-neu", "northeurope"))
        self.compute.vms = [make_vm(n) for n in ("web", "db", "late", "plain")] + [
            make_vm("optout", **{"lifeboat:policy": "none"})
        ]


def asr_estate() -> AsrWorld:
    web = replicated("web")
    db = replicated("db", replication_health="Critical", health_errors=("153039: stuck",))
    late = replicated("late", rpo_seconds=40 * 3600)
    optout = replicated("optout")  # replicated, but not in scope: no row
    items = {ASR_VAULT: [web, db, late, optout]}
    return AsrWorld(FakeSiteRecovery(items, {ASR_VAULT: [plan(web, db)]}))


def test_a_run_reports_one_replication_row_per_replicated_in_scope_vm() -> None:
    w = asr_estate()
    w.run()
    rows = {o.vm_name: o for o in w.rows("verify-replication")}
    assert {k: o.finding for k, o in rows.items()} == {
        "web": "compliant",
        "db": "replication-unhealthy",
        "late": "replication-rpo-breached",
    }
    assert rows["web"].status == Status.SUCCEEDED
    assert rows["db"].status == Status.FAILED
    assert rows["late"].rpo_seconds == 40 * 3600
    assert rows["late"].details["rpoTargetSeconds"] == 26 * 3600
    assert rows["db"].details["recoveryPlan"] == "rp-app"
    assert rows["db"].resource_id == vm_id("db")
    assert rows["db"].region == "westeurope"
    assert rows["db"].policy == "daily"
    assert rows["db"].job == "verification"
    # Backup verification still judges each VM on its own rows: nothing hides it.
    assert w.findings()["late"] == "unprotected"
    (end,) = [o for o in w.rows("run-end") if o.details["scope"] == "replication"]
    assert end.details["totals"] == {
        "compliant": 1,
        "replication-rpo-breached": 1,
        "replication-unhealthy": 1,
        "not-replicated": 1,
    }
    assert end.count == 3
    assert end.details["outOfScope"] == 1
    # Per vault: one items list each, one plans list for the vault that replicates.
    assert sorted(w.asr.calls) == sorted(
        [("items", VAULT_ID), ("items", ASR_VAULT), ("plans", ASR_VAULT)]
    )


def test_no_vault_replicates_nothing_is_recorded() -> None:
    w = AsrWorld(FakeSiteRecovery())
    w.run()
    assert w.rows("verify-replication") == []
    assert all(o.details.get("scope") != "replication" for o in w.rows("run-end"))
    assert [c for c, _ in w.asr.calls] == ["items", "items"]


def test_a_vault_lifeboat_may_not_read_is_one_blocked_row_naming_the_role() -> None:
    w = asr_estate()
    w.asr.refused = {ASR_VAULT.lower()}
    w.run()
    (row,) = w.rows("verify-replication")
    assert row.status == Status.BLOCKED
    assert row.finding == "site-recovery-unreadable"
    assert row.reason == "cannot read Site Recovery in rsv-asr-neu: needs Site Recovery Reader"
    assert row.resource_id == ASR_VAULT
    assert len(w.findings()) == 4  # backup verification went on


class ThrottledOnce(FakeSiteRecovery):
    """Answers the first items list with Azure's 429 (Retry-After 7 s), then as the fake."""

    def list_replicated_items(self, vault: Vault) -> list[ReplicatedItem]:
        if not self.calls:
            self.calls.append(("throttled", vault.id))
            raise ThrottledError(7, "ResourceRequestsThrottled")
        return super().list_replicated_items(vault)  # type: ignore[no-any-return]


def test_throttling_puts_the_plan_back_and_the_repeat_reports_the_same_rows() -> None:
    w = asr_estate()
    throttled = ThrottledOnce(w.asr.items, w.asr.plans)
    w.rt = dataclasses.replace(w.rt, site_recovery=throttled)
    w.run(twice=True)
    assert max(w.queues.visibility[Queue.VERIFICATION]) >= 7  # put back, never slept
    assert throttled.calls[0][0] == "throttled"
    rows = w.rows("verify-replication")
    assert len(rows) >= 6  # the plan was delivered twice after its put-back
    assert len({o.id for o in rows}) == 3


# ------------------------------------------------------------------------------- the adapter

ASR_TIME = "2026-11-27T05:59:30.1234567Z"


def a2a_body(name: str, **props: Any) -> dict[str, Any]:
    """The REST-spec item example with A2A details as the stand-in and the SDK models write them."""
    body = json.loads(json.dumps(spec("ReplicationProtectedItems_Get.json")))
    body["name"] = name
    body["id"] = body["id"].rsplit("/", 1)[0] + f"/{name}"
    body["properties"].update(
        {
            "friendlyName": name,
            "replicationHealth": "Critical",
            "healthErrors": [
                {"errorCode": "153039", "errorMessage": "stuck", "summaryMessage": "Stuck"}
            ],
            "lastSuccessfulTestFailoverTime": ASR_TIME,
            "testFailoverState": "WaitingForCompletion",
            "providerSpecificDetails": {
                "instanceType": "A2A",
                "fabricObjectId": vm_id(name).upper(),
                "rpoInSeconds": 7200,
                "lastRpoCalculatedTime": ASR_TIME,
                "agentVersion": "9.62.7172.1",
                "agentExpiryDate": "2027-02-01T00:00:00.0000000+00:00",
            },
            **props,
        }
    )
    return body


def spec(name: str) -> dict[str, Any]:
    from pathlib import Path

    path = Path(__file__).parent / "data" / "siterecovery" / name
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def adapter(*answers: Answer) -> tuple[AzureSiteRecovery, Replay]:
    transport = Replay(answers)
    return (
        AzureSiteRecovery(
            Credential(),
            arm_endpoint="https://management.azure.com",
            arm_audience="https://management.azure.com/.default",
            transport=transport,
        ),
        transport,
    )


VAULT = Vault(ASR_VAULT, "rsv-asr-neu", SUB, "rg-asr-neu", "northeurope")


def test_items_are_read_from_their_rest_json_across_pages() -> None:
    page_two = "https://management.azure.com/next?$skiptoken=1"
    asr, transport = adapter(
        Answer(200, {"value": [a2a_body("web")], "nextLink": page_two}),
        Answer(200, {"value": [spec("ReplicationProtectedItems_Get.json")]}),
    )
    web, hyper_v = asr.list_replicated_items(VAULT)
    assert next(r.path.lower() for r in transport.requests).endswith(
        "/resourcegroups/rg-asr-neu/providers/microsoft.recoveryservices/vaults/rsv-asr-neu/"
        "replicationprotecteditems"
    )
    assert len(transport.requests) == 2
    assert web.vm_id == vm_id("web").upper()  # as Azure wrote it; compared by resource_key
    assert (web.rpo_seconds, web.replication_health) == (7200, "Critical")
    assert web.health_errors == ("153039: Stuck",)
    assert web.last_successful_test_failover == datetime(
        2026, 11, 27, 5, 59, 30, 123456, NOW.tzinfo
    )
    assert web.agent_expiry == datetime(2027, 2, 1, tzinfo=NOW.tzinfo)
    assert web.scenario is None
    assert web.scenario_started is None
    assert (hyper_v.provider, hyper_v.vm_id) == ("HyperVReplicaAzure", None)
    assert hyper_v.allowed_operations == (
        "PlannedFailover",
        "UnplannedFailover",
        "DisableProtection",
        "TestFailover",
    )


def test_plans_name_their_items_and_their_scenario() -> None:
    body = spec("ReplicationRecoveryPlans_TestFailover.json")
    asr, _ = adapter(Answer(200, {"value": [body]}))
    (rp,) = asr.list_recovery_plans(VAULT)
    props = body["properties"]
    assert rp.name == body["name"]
    assert rp.scenario_status == props.get("currentScenarioStatus")
    assert rp.scenario_status_description == props.get("currentScenarioStatusDescription")
    assert len(rp.item_ids) == sum(
        len(g.get("replicationProtectedItems") or []) for g in props["groups"]
    )


@pytest.mark.parametrize(
    ("answer", "raised", "text"),
    [
        (
            arm_error(403, "AuthorizationFailed", "no access"),
            RefusedError,
            "cannot read Site Recovery in rsv-asr-neu: needs Site Recovery Reader (no access)",
        ),
        (arm_error(429, "TooManyRequests", "", ("Retry-After", "17")), ThrottledError, "17"),
    ],
)
def test_refusals_and_throttling_are_lifeboat_errors_never_retried(
    answer: Answer, raised: type[Exception], text: str
) -> None:
    asr, transport = adapter(answer)
    with pytest.raises(raised) as caught:
        asr.list_replicated_items(VAULT)
    assert text in str(caught.value) or str(getattr(caught.value, "retry_after", "")).startswith(
        text
    )
    assert len(transport.requests) == 1


def test_a_vault_without_site_recovery_has_no_items() -> None:
    asr, _ = adapter(arm_error(404, "ResourceNotFound"))
    assert asr.list_replicated_items(VAULT) == []


def test_site_recovery_placeholder_times_read_as_absent() -> None:
    assert asr_time("1753-01-01T01:01:01Z") is None
    assert asr_time("0001-01-01T00:00:00") is None
    assert asr_time("") is None
    assert asr_time("garbage") is None
    item = item_from_rest(
        ASR_VAULT,
        a2a_body(
            "web",
            currentScenario={"scenarioName": "TestFailover", "startTime": ASR_TIME, "jobId": "x"},
        ),
    )
    assert item.scenario == "TestFailover"
    assert item.scenario_started is not None
