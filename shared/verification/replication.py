"""Azure Site Recovery in verification: is each in-scope VM replicated, and could it fail over?

Read-only, in the backup-verification pattern: per vault, one paged list of replicated items and,
for vaults that replicate anything, one of recovery plans (never one call per VM); one
`verify-replication` row per replicated in-scope VM with its finding by precedence, its own
`RpoSeconds` (the item's `rpoInSeconds`) and target (`Details.rpoTargetSeconds`), so a
replication row never hides a backup finding of the same VM (those are `verify-vm` rows).

The verification plan of a subscription runs it (`verify_replication`), with the vaults and the
in-scope VMs it has already read, before any remediation: throttling propagates and the plan
message is put back; findings recorded again get the same row ids. A subscription whose vaults
replicate nothing records nothing (no row noise); a vault Lifeboat may not read is one `blocked`
row naming the role it lacks.

`assess_replication` is the pure core: one item (and its plan) in, a finding out.
"""

from __future__ import annotations

import enum
import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from shared.dispatch import Context
from shared.model import Vault, format_time, resource_key
from shared.names import Status
from shared.outcomes import Outcomes
from shared.policies import SiteRecoveryOptions
from shared.ports import RecoveryPlan, RefusedError, ReplicatedItem
from shared.verification.assessment import InScope, age_seconds

log = logging.getLogger(__name__)

OPERATION = "verify-replication"
DAY = 86_400
HEALTH_ERRORS_KEPT = 5


class ReplicationFinding(enum.StrEnum):
    """What verification finds about one replicated VM. Declared most severe first: a VM gets
    the first that holds (its precedence); the others that hold are in `Details.findings`."""

    NOT_PROTECTED = "replication-not-protected"
    UNHEALTHY = "replication-unhealthy"
    RPO_BREACHED = "replication-rpo-breached"
    TEST_FAILOVER_NOT_CLEANED = "test-failover-not-cleaned"
    TEST_FAILOVER_OVERDUE = "test-failover-overdue"
    AGENT_EXPIRING = "agent-expiring"
    COMPLIANT = "compliant"


REPLICATION_FINDINGS: tuple[ReplicationFinding, ...] = tuple(ReplicationFinding)
REPLICATION_SEVERITY: dict[ReplicationFinding, str] = {
    ReplicationFinding.NOT_PROTECTED: "high",
    ReplicationFinding.UNHEALTHY: "high",  # medium when the health is only Warning
    ReplicationFinding.RPO_BREACHED: "medium",
    ReplicationFinding.TEST_FAILOVER_NOT_CLEANED: "medium",
    ReplicationFinding.TEST_FAILOVER_OVERDUE: "medium",
    ReplicationFinding.AGENT_EXPIRING: "medium",
    ReplicationFinding.COMPLIANT: "info",
}
# A vault Lifeboat may not read (403): one row for the vault, not one per VM.
UNREADABLE = "site-recovery-unreadable"
NOT_REPLICATED = "not-replicated"  # counted in the run-end row's totals only

PROTECTED_STATES = frozenset({"protected", "protectedstatesbegin"})
UNHEALTHY_STATES = frozenset({"critical", "warning"})
NO_TEST_FAILOVER = frozenset({"", "none"})
# An open test failover whose age is unknown is reported only once it waits for cleanup.
RUNNING_STATES = frozenset({"inprogress", "cleanupinprogress"})
WAITING_FOR_CLEANUP = "waitingforstoptestfailover"


@dataclass(frozen=True, slots=True)
class ReplicationAssessment:
    finding: ReplicationFinding
    reason: str
    severity: str
    rpo_seconds: int | None
    target_seconds: int
    findings: tuple[ReplicationFinding, ...]  # every finding that holds, by precedence
    details: dict[str, object] = field(default_factory=dict)


def assess_replication(
    item: ReplicatedItem,
    plan: RecoveryPlan | None,
    *,
    target_seconds: int,
    test_failover_days: int,
    options: SiteRecoveryOptions,
    now: datetime,
) -> ReplicationAssessment:
    """One replicated VM's finding by precedence, with why, and every finding that holds."""
    held: dict[ReplicationFinding, str] = {}
    state = item.protection_state or "unknown"
    if state.lower() not in PROTECTED_STATES:
        held[ReplicationFinding.NOT_PROTECTED] = f"protection state is {state}"
    health = item.replication_health or ""
    if health.lower() in UNHEALTHY_STATES:
        errors = "; ".join(item.health_errors[:HEALTH_ERRORS_KEPT]) or "no health error listed"
        held[ReplicationFinding.UNHEALTHY] = f"replication health is {health}: {errors}"
    rpo = item.rpo_seconds
    if rpo is not None and rpo > target_seconds:
        held[ReplicationFinding.RPO_BREACHED] = (
            f"replication RPO is {_span(rpo)}; target {_span(target_seconds)}"
        )
    running, running_age, running_since = _open_test_failover(item, plan, now)
    max_seconds = int(options.test_failover_max_hours * 3600)
    if running is not None and (
        (running_age is not None and running_age > max_seconds)
        or (running_age is None and running.lower() not in RUNNING_STATES)
    ):
        age = "of unknown age" if running_age is None else f"open for {_span(running_age)}"
        where = f" (plan {plan.name})" if plan is not None else ""
        held[ReplicationFinding.TEST_FAILOVER_NOT_CLEANED] = (
            f"a test failover{where} is {running} and {age}; cleanup is due within "
            f"{_span(max_seconds)}"
        )
    last = item.last_successful_test_failover
    since_test = None if last is None else age_seconds(last, now)
    due = test_failover_days * DAY
    if since_test is None:
        held[ReplicationFinding.TEST_FAILOVER_OVERDUE] = (
            f"never test-failed-over successfully; the policy asks every {test_failover_days} days"
        )
    elif since_test > due:
        held[ReplicationFinding.TEST_FAILOVER_OVERDUE] = (
            f"last successful test failover {since_test // DAY} days ago; the policy asks every "
            f"{test_failover_days} days"
        )
    expires_in = None
    if item.agent_expiry is not None:
        expires_in = int((item.agent_expiry - now).total_seconds())
        if expires_in <= options.agent_expiry_days * DAY:
            when = "expired" if expires_in <= 0 else f"expires in {expires_in // DAY} days"
            held[ReplicationFinding.AGENT_EXPIRING] = (
                f"the mobility agent {item.agent_version or ''} {when}".replace("  ", " ")
            )
    findings = tuple(f for f in REPLICATION_FINDINGS if f in held)
    details: dict[str, object] = {
        "itemId": item.id,
        "vaultId": item.vault_id,
        "protectionState": item.protection_state,
        "replicationHealth": item.replication_health,
        "healthErrors": list(item.health_errors[:HEALTH_ERRORS_KEPT]),
        "rpoTargetSeconds": target_seconds,
        "testFailoverState": item.test_failover_state,
        "testFailoverDueSeconds": due,
        "testFailoverAgeSeconds": since_test,
        "testFailoverOpenSeconds": running_age,
        "testFailoverMaxSeconds": max_seconds,
        "agentVersion": item.agent_version,
        "agentExpiresInSeconds": expires_in,
        "findings": [f.value for f in findings],
    }
    if item.rpo_calculated_at is not None:
        details["rpoCalculatedAt"] = format_time(item.rpo_calculated_at)
    if last is not None:
        details["lastSuccessfulTestFailover"] = format_time(last)
    if running_since is not None:
        details["testFailoverStarted"] = format_time(running_since)
    if plan is not None:
        details["recoveryPlan"] = plan.name
    if not findings:
        details["findings"] = [ReplicationFinding.COMPLIANT.value]
        rpo_text = "unknown" if rpo is None else _span(rpo)
        return ReplicationAssessment(
            ReplicationFinding.COMPLIANT,
            f"replicated and healthy; RPO {rpo_text}, last test failover "
            f"{(since_test or 0) // DAY} days ago",
            REPLICATION_SEVERITY[ReplicationFinding.COMPLIANT],
            rpo,
            target_seconds,
            (ReplicationFinding.COMPLIANT,),
            details,
        )
    first = findings[0]
    severity = REPLICATION_SEVERITY[first]
    if first == ReplicationFinding.UNHEALTHY and health.lower() == "warning":
        severity = "medium"
    return ReplicationAssessment(
        first, held[first], severity, rpo, target_seconds, findings, details
    )


def _open_test_failover(
    item: ReplicatedItem, plan: RecoveryPlan | None, now: datetime
) -> tuple[str | None, int | None, datetime | None]:
    """(state, age in seconds, since) of a test failover not cleaned up yet, or Nones.

    The item's own state says whether one is open; its plan, waiting in
    `WaitingForStopTestFailover`, says so too (and when it started) for every item in it."""
    state = item.test_failover_state or ""
    plan_waiting = plan is not None and (
        (plan.scenario_status_description or "").lower() == WAITING_FOR_CLEANUP
        or (
            (plan.scenario or "").lower() == "testfailover"
            and (plan.scenario_status or "").lower() in ("suspended", "failed", "inprogress")
        )
    )
    if state.lower() in NO_TEST_FAILOVER and not plan_waiting:
        return None, None, None
    since = None
    if (item.scenario or "").lower().startswith("testfailover"):
        since = item.scenario_started
    if since is None and plan is not None:
        if (plan.scenario or "").lower().startswith("testfailover"):
            since = plan.scenario_started
        since = since or plan.last_test_failover
    shown = state if state.lower() not in NO_TEST_FAILOVER else "WaitingForCompletion"
    return shown, (None if since is None else age_seconds(since, now)), since


def _span(seconds: int) -> str:
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    if seconds < 2 * DAY:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / DAY:.0f} days"


# ---------------------------------------------------------------------------- the handler part


def verify_replication(
    ctx: Context, subscription: str, vaults: Sequence[Vault], scoped: Sequence[InScope]
) -> Counter[str]:
    """Site Recovery findings of one subscription's in-scope VMs; returns the totals by finding
    (empty, and nothing recorded, when its vaults replicate nothing)."""
    out = ctx.out.bind(subscription_id=subscription)
    items: list[ReplicatedItem] = []
    plans: list[RecoveryPlan] = []
    unreadable: list[tuple[Vault, RefusedError]] = []
    for vault in vaults:
        try:
            found = ctx.site_recovery.list_replicated_items(vault)
            items += found
            if found:
                plans += ctx.site_recovery.list_recovery_plans(vault)
        except RefusedError as e:
            unreadable.append((vault, e))
    totals: Counter[str] = Counter()
    if not items and not unreadable:
        return totals
    for vault, error in unreadable:
        totals[UNREADABLE] += 1
        out.blocked(
            OPERATION,
            error.message,
            finding=UNREADABLE,
            severity="high",
            resource_id=vault.id,
            region=vault.location,
            details={"vaultId": vault.id, "errorCode": error.code},
        )
    plan_of: dict[str, RecoveryPlan] = {}
    for plan in plans:
        for item_id in plan.item_ids:
            plan_of.setdefault(resource_key(item_id) or "", plan)
    in_scope = {resource_key(e.vm.id): e for e in scoped}
    now = ctx.now()
    replicated: set[str] = set()
    out_of_scope = 0
    for item in sorted(items, key=lambda i: i.id.lower()):
        key = resource_key(item.vm_id)
        entry = in_scope.get(key) if key else None
        if entry is None or key is None:
            out_of_scope += 1
            continue
        replicated.add(key)
        policy = ctx.policies.policies.get(entry.policy)
        result = assess_replication(
            item,
            plan_of.get(resource_key(item.id) or ""),
            target_seconds=int(entry.rpo_hours * 3600),
            test_failover_days=policy.test_failover_days if policy else 180,
            options=ctx.policies.site_recovery,
            now=now,
        )
        totals[result.finding.value] += 1
        _record(out, entry, result, item)
    totals[NOT_REPLICATED] += sum(1 for k in in_scope if k not in replicated)
    out.succeeded(
        "run-end",
        count=sum(n for k, n in totals.items() if k != NOT_REPLICATED),
        details={
            "scope": "replication",
            "totals": dict(sorted((k, n) for k, n in totals.items() if n)),
            "replicatedItems": len(items),
            "outOfScope": out_of_scope,
            "vaults": len(vaults),
            "recoveryPlans": len(plans),
        },
        distinct="replication",
    )
    log.info("verification replication %s: %s", subscription, dict(totals))
    return totals


def _record(
    out: Outcomes, entry: InScope, result: ReplicationAssessment, item: ReplicatedItem
) -> None:
    compliant = result.finding == ReplicationFinding.COMPLIANT
    out.bind(vm=entry.vm, policy=entry.policy).row(
        OPERATION,
        Status.SUCCEEDED if compliant else Status.FAILED,
        result.reason,
        finding=result.finding.value,
        severity=result.severity,
        details=result.details,
        rpo_seconds=result.rpo_seconds,
        distinct=item.id.lower(),
    )
