"""Backup verification's handlers with fakes of the ports, through the real dispatch: the timer
fires through its TIMERS entry, every message goes through `dispatch.deliver`.

The pure assessment (findings, precedence, RPO arithmetic) is tested in test_assessment.py.
"""

from __future__ import annotations

import dataclasses
import json
from collections import Counter
from datetime import datetime, timedelta

from shared import dispatch, messages, verification
from shared.dispatch import Send
from shared.messages import FirstBackupCheckRequest, OnboardingRequest, VerificationVaultRequest
from shared.model import (
    BackupJob,
    BackupStatus,
    Outcome,
    ProtectedItem,
    RecoveryPoint,
    Vault,
    Vm,
)
from shared.names import Job, MessageType, Queue, Status, Timer
from shared.policies import parse_policies
from shared.ports import RefusedError, ThrottledError
from shared.verification import Finding
from tests.builders import (
    SUB,
    VAULT_ID,
    VERIFY_NOW,
    unattached_vm,
    vm_id,
)
from tests.builders import backup_job as job
from tests.builders import protected_item as item
from tests.builders import recovery_point as point
from tests.conftest import base_settings
from tests.fakes import (
    FakeWorld,
    FixedClock,
    MemoryQueues,
    deliver,
    drain,
    serve_runtime,
)

COMPLIANT = Finding.COMPLIANT
RPO_BREACHED = Finding.RPO_BREACHED
BACKUP_FAILING = Finding.BACKUP_FAILING
NEVER_BACKED_UP = Finding.NEVER_BACKED_UP
PROTECTION_STOPPED = Finding.PROTECTION_STOPPED
SOFT_DELETED = Finding.SOFT_DELETED
UNPROTECTED = Finding.UNPROTECTED
WRITER = "33333333-3333-4333-8333-333333333333"  # the separate identity that enables protection

NOW = VERIFY_NOW
DAY = 26 * 3600
POLICIES = parse_policies(
    {"version": 1, "policies": {"daily": {"retention": {"daily": 3}, "rpoHours": 26}}}
)


# ---------------------------------------------------------------------------- the workers


class FakeBackup:
    def __init__(self) -> None:
        self.vaults = [Vault(VAULT_ID, "rsv", SUB, "rg-backup", "westeurope")]
        self.items: list[ProtectedItem] = []
        self.jobs: list[BackupJob] = []
        self.points: dict[str, list[RecoveryPoint]] = {}
        self.elsewhere: dict[str, str] = {}  # vm id (lower) -> vault id protecting it
        self.calls: list[str] = []
        self.refuse_trigger: str | None = None
        self.throttle_items = 0
        self.throttle_points: set[str] = set()  # vm ids (lower) whose next points list is 429
        self.retry_after = 5.0

    def list_vaults(self, subscription_id: str) -> list[Vault]:
        self.calls.append("vaults")
        return list(self.vaults)

    def list_protected_items(self, vault: Vault) -> list[ProtectedItem]:
        self.calls.append("items")
        if self.throttle_items:
            self.throttle_items -= 1
            raise ThrottledError(self.retry_after, "ResourceRequestsThrottled")
        return [i for i in self.items if i.vault_id == vault.id]

    def list_jobs(self, vault: Vault, since: datetime, until: datetime) -> list[BackupJob]:
        self.calls.append("jobs")
        return list(self.jobs)

    def list_recovery_points(self, item: ProtectedItem) -> list[RecoveryPoint]:
        self.calls.append("points")
        if item.vm_id.lower() in self.throttle_points:
            self.throttle_points.discard(item.vm_id.lower())
            raise ThrottledError(self.retry_after, "ResourceRequestsThrottled")
        return list(self.points.get(item.vm_id.lower(), []))

    def get_backup_status(self, vm_id: str, location: str) -> BackupStatus:
        self.calls.append("status")
        for i in self.items:
            if i.vm_id.lower() == vm_id.lower():
                return BackupStatus(True, i.vault_id)
        other = self.elsewhere.get(vm_id.lower())
        return BackupStatus(other is not None, other)

    def trigger_backup(self, item: ProtectedItem, keep_until: datetime) -> str | None:
        self.calls.append("trigger")
        if self.refuse_trigger:
            raise RefusedError(self.refuse_trigger, "refused")
        return "job-1"

    def ensure_protection(self, vault: Vault, vm: Vm, policy_name: str) -> ProtectedItem | None:
        self.calls.append("protect")
        new = item(
            vm.name, protection_state="IRPending", last_backup_time=None, last_recovery_point=None
        )
        self.items.append(new)
        return new


def make_vm(name: str, **tags: str) -> Vm:
    return unattached_vm(name, created=NOW - timedelta(days=30), **tags)


class World(FakeWorld):
    def __init__(self, **settings: str) -> None:
        self.backup = FakeBackup()
        values = base_settings(TARGET_SUBSCRIPTIONS=SUB, **settings)
        super().__init__(FixedClock(NOW), MemoryQueues(), values, POLICIES, backup=self.backup)

    def run(self, *, twice: bool = False) -> None:
        """The verification timer fires (VERIFICATION_SCHEDULE is 06:00), then every message
        on the queue goes through the real dispatch until none is left."""
        dispatch.fire(self.rt, Timer.VERIFICATION)
        drain(self.rt, self.queues, [Queue.VERIFICATION], twice=twice)

    def findings(self) -> dict[str, str]:
        return {
            o.vm_name or "": o.finding or ""
            for o in self.reporter.outcomes
            if o.operation == "verify-vm" and o.finding
        }

    def rows(self, operation: str) -> list[Outcome]:
        return [o for o in self.reporter.outcomes if o.operation == operation]


def estate(**settings: str) -> World:
    w = World(**settings)
    names = ["ok", "late", "failing", "never", "stopped", "soft", "naked", "optout"]
    w.compute.vms = [make_vm(n) for n in names[:-1]] + [
        make_vm("optout", **{"lifeboat:policy": "none"})
    ]
    w.backup.items = [
        item("ok"),
        item("late", last_recovery_point=NOW - timedelta(hours=40)),
        item("failing"),
        item(
            "never", protection_state="IRPending", last_backup_time=None, last_recovery_point=None
        ),
        item("stopped", protection_state="ProtectionStopped"),
        item("soft", soft_deleted=True),
    ]
    w.backup.jobs = [
        job("failing", "Failed", 3, "CloudDosAbsoluteLimitReached"),
        job("ok", "Completed", 5),
    ]
    w.backup.points = {
        vm_id("late").lower(): [point(40), point(64)],
        vm_id("failing").lower(): [point(20)],
        vm_id("stopped").lower(): [point(100)],
        vm_id("soft").lower(): [point(200)],
    }
    return w


ALL_FINDINGS = {
    "ok": COMPLIANT,
    "late": RPO_BREACHED,
    "failing": BACKUP_FAILING,
    "never": NEVER_BACKED_UP,
    "stopped": PROTECTION_STOPPED,
    "soft": SOFT_DELETED,
    "naked": UNPROTECTED,
}


def test_a_run_reports_one_finding_per_in_scope_vm() -> None:
    w = estate()
    w.run()
    assert w.findings() == ALL_FINDINGS
    rows = {o.vm_name: o for o in w.rows("verify-vm")}
    assert rows["ok"].status == Status.SUCCEEDED
    assert rows["late"].status == Status.FAILED
    assert rows["late"].job == Job.VERIFICATION
    assert rows["late"].run_id == "verification-202611270600"
    assert rows["late"].rpo_seconds == 40 * 3600
    assert rows["late"].severity == "medium"
    assert rows["late"].details["consistency"] == "CrashConsistent"
    # The target the posture query and lifeboat status compare the RPO with.
    assert rows["late"].details["rpoTargetSeconds"] == rows["late"].details["targetSeconds"] > 0
    assert rows["naked"].rpo_seconds is None
    assert rows["naked"].severity == "high"
    # One items list and one job list for the vault; recovery points only for candidates.
    assert w.backup.calls.count("items") == 1
    assert w.backup.calls.count("jobs") == 1
    assert w.backup.calls.count("points") == 5  # late, failing, never, stopped, soft
    assert w.backup.calls.count("status") == 1  # only the unprotected candidate
    assert "trigger" not in w.backup.calls  # remediation is off by default
    (start,) = w.rows("run-start")
    assert start.count == 1
    assert start.details["slot"] == "202611270600"
    assert start.details["remediations"] == {
        "on-demand-backup": "off (ON_DEMAND_BACKUP)",
        "enable-protection": "off (ENABLE_BACKUP_PROTECTION)",
    }
    assert not [o for o in w.reporter.outcomes if o.status == Status.FEATURE_OFF]
    (vault_end,) = w.rows("run-end")
    assert vault_end.details["scope"] == "vault"
    assert vault_end.count == 7
    assert vault_end.details["totals"] == {f: 1 for f in ALL_FINDINGS.values()}


def test_a_message_delivered_twice_reports_the_same_rows() -> None:
    w = estate()
    w.run(twice=True)
    rows = w.rows("verify-vm")
    assert len(rows) == 4 * 7  # the plan twice sends the vault message twice; each runs twice
    assert len({o.id for o in rows}) == 7
    assert len({o.id for o in w.rows("run-end")}) == 1


def test_a_vm_protected_by_a_vault_elsewhere_is_not_unprotected() -> None:
    w = estate()
    w.backup.elsewhere[vm_id("naked").lower()] = (
        "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/x/providers/"
        "Microsoft.RecoveryServices/vaults/other"
    )
    w.run()
    assert "naked" not in w.findings()
    (skipped,) = [o for o in w.reporter.outcomes if o.status == Status.SKIPPED]
    assert skipped.vm_name == "naked"
    assert skipped.reason == (
        "not verified: vault in unserved subscription 00000000-0000-0000-0000-000000000001"
    )
    assert skipped.severity == "warning"
    assert skipped.details["skip"] == "vault-unserved"


def test_backup_is_verified_for_a_protected_vm_whatever_its_tags() -> None:
    """A tag mistake or an opt-out takes a VM out of Lifeboat's policies, not out of sight: Azure
    Backup protects it, so its backup is verified (the default RPO target), never remediated;
    an unprotected VM without a policy is not reported."""
    w = estate(
        ON_DEMAND_BACKUP="true", ENABLE_BACKUP_PROTECTION="true", BACKUP_WRITER_CLIENT_ID=WRITER
    )
    w.compute.vms += [
        dataclasses.replace(make_vm("typo"), tags={"lifebaot:policy": "daily"}),
        dataclasses.replace(make_vm("untagged-bare"), tags={}),
    ]
    w.backup.items += [
        item("typo", last_recovery_point=NOW - timedelta(hours=30)),
        item("optout"),
    ]
    w.backup.points[vm_id("typo").lower()] = [point(30)]
    w.run()
    rows = {o.vm_name: o for o in w.rows("verify-vm")}
    assert rows["typo"].finding == RPO_BREACHED  # 30 h against the 24 h fallback target
    assert rows["typo"].policy is None
    assert "outside Lifeboat's policies" in str(rows["typo"].details["scope"])
    assert rows["optout"].finding == COMPLIANT
    assert "untagged-bare" not in rows
    # Never remediated: the on-demand backup is only for the in-scope VM that is late.
    assert [o.vm_name for o in w.rows("on-demand-backup")] == ["late"]
    assert "typo" not in json.dumps([c for c in w.backup.calls])


def test_on_demand_backup_when_rpo_breached_is_off_by_default_and_capped() -> None:
    w = estate(ON_DEMAND_BACKUP="true")
    w.run()
    assert w.backup.calls.count("trigger") == 1
    ok = w.rows("on-demand-backup")
    assert [(o.vm_name, o.status) for o in ok] == [("late", Status.SUCCEEDED)]
    assert ok[0].details["jobId"] == "job-1"
    # Three on-demand jobs today: the next run is blocked, not triggered.
    w.backup.jobs += [job("late", "Completed", h, user_triggered=True) for h in (1, 2, 3)]
    w.reporter.outcomes.clear()
    w.run()
    assert w.backup.calls.count("trigger") == 1
    blocked = w.rows("on-demand-backup")
    assert blocked[0].status == Status.BLOCKED
    assert "at most 3" in (blocked[0].reason or "")


def test_on_demand_refusal_is_reported_failed_and_never_retried() -> None:
    w = estate(ON_DEMAND_BACKUP="true")
    w.backup.refuse_trigger = "CloudDosAbsoluteLimitReached"
    w.run()  # the message completes: the POST is not repeated
    failed = w.rows("on-demand-backup")
    assert failed[0].status == Status.FAILED
    assert "CloudDosAbsoluteLimitReached" in (failed[0].reason or "")
    assert w.backup.calls.count("trigger") == 1
    assert not w.queues.sent.get(Queue.VERIFICATION.poison)


def test_dry_run_plans_remediation_without_writing() -> None:
    w = estate(
        ON_DEMAND_BACKUP="true",
        ENABLE_BACKUP_PROTECTION="true",
        BACKUP_WRITER_CLIENT_ID=WRITER,
        DRY_RUN="true",
    )
    w.run()
    assert "trigger" not in w.backup.calls
    assert "protect" not in w.backup.calls
    planned = {o.operation for o in w.reporter.outcomes if o.status == Status.PLANNED}
    assert planned == {"on-demand-backup", "enable-protection"}
    assert all(o.dry_run for o in w.reporter.outcomes)


def _plan_then(w: World, change: object) -> None:
    """The timer and the plan message, then `change` (Azure changes), then the vault messages."""
    dispatch.fire(w.rt, Timer.VERIFICATION)
    (plan,) = w.queues.sent.pop(Queue.VERIFICATION)
    deliver(w.rt, plan)
    assert callable(change)
    change()
    drain(w.rt, w.queues, [Queue.VERIFICATION])


def test_remediation_re_reads_the_vm_a_message_names_and_skips_what_left_scope() -> None:
    w = estate(
        ENABLE_BACKUP_PROTECTION="true", BACKUP_WRITER_CLIENT_ID=WRITER, ON_DEMAND_BACKUP="true"
    )

    def change() -> None:  # after the plan: one VM opted out, the other deleted
        w.compute.vms = [v for v in w.compute.vms if v.name != "late"]
        naked = next(v for v in w.compute.vms if v.name == "naked")
        w.compute.vms[w.compute.vms.index(naked)] = make_vm("naked", **{"lifeboat:policy": "none"})

    _plan_then(w, change)
    assert "protect" not in w.backup.calls
    assert "trigger" not in w.backup.calls
    skipped = {(o.operation, o.vm_name): o for o in w.reporter.outcomes if o.status == "skipped"}
    assert "opted out" in (skipped["enable-protection", "naked"].reason or "")
    assert "no longer exists" in (skipped["on-demand-backup", "late"].reason or "")


def test_remediation_in_scope_now_goes_ahead_with_the_fresh_read() -> None:
    w = estate(
        ENABLE_BACKUP_PROTECTION="true", BACKUP_WRITER_CLIENT_ID=WRITER, ON_DEMAND_BACKUP="true"
    )
    _plan_then(w, lambda: None)
    assert w.backup.calls.count("protect") == 1
    assert w.backup.calls.count("trigger") == 2  # naked's first backup and late's on-demand one


def test_an_unprotected_vm_is_protected_and_its_first_backup_checked_later() -> None:
    w = estate(ENABLE_BACKUP_PROTECTION="true", BACKUP_WRITER_CLIENT_ID=WRITER)
    dispatch.fire(w.rt, Timer.VERIFICATION)
    drain(w.rt, w.queues, [Queue.VERIFICATION])  # the check too: delays are ignored here
    assert w.backup.calls.count("protect") == 1
    (enabled,) = w.rows("enable-protection")
    assert (enabled.vm_name, enabled.status) == ("naked", Status.SUCCEEDED)
    assert enabled.job == Job.VERIFICATION
    assert enabled.details == {"vaultId": VAULT_ID, "firstBackupJobId": "job-1"}
    # The check went on the queue 24 h (FIRST_BACKUP_CHECK_HOURS) out, then found no point yet.
    assert 24 * 3600 in w.queues.visibility[Queue.VERIFICATION]
    check = [o for o in w.rows("verify-vm") if o.vm_name == "naked"][-1]
    assert check.finding == NEVER_BACKED_UP
    assert "after protection was enabled" in (check.reason or "")


def test_enable_protection_without_its_identity_is_off_and_the_run_start_says_so() -> None:
    w = estate(ENABLE_BACKUP_PROTECTION="true")  # no BACKUP_WRITER_CLIENT_ID
    w.run()
    assert "protect" not in w.backup.calls
    assert w.findings()["naked"] == UNPROTECTED
    assert [o.status for o in w.rows("enable-protection")] == [Status.FEATURE_OFF]
    (off,) = [o for o in w.reporter.outcomes if o.status == Status.FEATURE_OFF]
    assert off.operation == "enable-protection"
    assert off.run_id == "verification-202611270600"
    assert off.details == {
        "feature": "enable-protection",
        "setting": "ENABLE_BACKUP_PROTECTION",
        "missingSetting": "BACKUP_WRITER_CLIENT_ID",
    }
    assert "BACKUP_WRITER_CLIENT_ID" in (off.reason or "")
    (start,) = w.rows("run-start")
    assert start.details["remediations"]["enable-protection"] == (
        "off (BACKUP_WRITER_CLIENT_ID missing)"
    )


def test_throttled_vault_goes_back_on_the_queue_after_retry_after() -> None:
    w = estate()
    w.backup.throttle_items = 1
    dispatch.fire(w.rt, Timer.VERIFICATION)
    (plan,) = w.queues.sent.pop(Queue.VERIFICATION)
    deliver(w.rt, plan)
    (vault_message,) = w.queues.sent.pop(Queue.VERIFICATION)
    deliver(w.rt, vault_message)  # throttled: Retry-After 5 s
    (again,) = w.queues.sent[Queue.VERIFICATION]
    assert json.loads(again)["putBacks"] == 1
    assert w.queues.visibility[Queue.VERIFICATION][-1] >= 5
    assert [o.status for o in w.rows(MessageType.VERIFICATION_VAULT)] == [Status.WAITING]
    drain(w.rt, w.queues, [Queue.VERIFICATION])
    assert w.backup.calls.count("items") == 2
    assert w.findings() == ALL_FINDINGS


def test_throttled_after_some_findings_the_vault_is_verified_again_with_the_same_rows() -> None:
    w = estate()
    w.backup.throttle_points = {vm_id("stopped").lower()}  # after ok, late, failing, never
    w.run()
    assert w.findings() == ALL_FINDINGS
    rows = w.rows("verify-vm")
    assert len(rows) > 7  # what was recorded before the throttle, then the whole vault again
    assert len({o.id for o in rows}) == 7
    assert [o.status for o in w.rows("run-end")] == [Status.SUCCEEDED]


def test_a_fractional_retry_after_is_never_cut_short() -> None:
    w = estate()
    w.backup.throttle_items = 1
    w.backup.retry_after = 0.5
    dispatch.fire(w.rt, Timer.VERIFICATION)
    deliver(w.rt, w.queues.sent.pop(Queue.VERIFICATION)[0])
    deliver(w.rt, w.queues.sent.pop(Queue.VERIFICATION)[0])
    # At least ceil(0.5) = 1 s, never int(0.5) = 0; the jitter adds at most a second.
    assert w.queues.visibility[Queue.VERIFICATION][-1] in (1, 2)


def test_a_new_vm_unprotected_is_reported_at_once_through_onboarding() -> None:
    from shared import messages

    w = World(ENABLE_BACKUP_PROTECTION="true", BACKUP_WRITER_CLIENT_ID=WRITER)
    new = dataclasses.replace(make_vm("fresh"), time_created=NOW - timedelta(minutes=3))
    w.compute.vms = [new]
    request = OnboardingRequest(
        resourceId=new.id, subscriptionId=SUB, resourceGroup="rg-app", vmName="fresh", eventId="e1"
    )
    text = messages.encode(
        messages.make_envelope(request, run_id="onboarding-e1", idempotency_key="k", created=NOW)
    )
    deliver(w.rt, text)
    assert w.findings() == {"fresh": UNPROTECTED}
    (finding,) = w.rows("verify-vm")
    assert (finding.job, finding.run_id) == (Job.VERIFICATION, "onboarding-e1")
    assert w.backup.calls.count("protect") == 1
    assert w.backup.calls.count("trigger") == 1
    # The same event again: protection holds now, nothing is repeated.
    deliver(w.rt, text)
    assert w.backup.calls.count("protect") == 1
    assert w.backup.calls.count("trigger") == 1


def test_check_new_vm_returns_the_first_backup_check_and_the_check_finds_the_point() -> None:
    w = World(ENABLE_BACKUP_PROTECTION="true", BACKUP_WRITER_CLIENT_ID=WRITER)
    new = dataclasses.replace(make_vm("fresh"), time_created=NOW - timedelta(minutes=3))
    checks: list[dispatch.Outgoing] = []

    def onboarding(ctx: dispatch.Context) -> Send:
        checks.extend(verification.check_new_vm(ctx, new))
        return Send(*checks)

    dispatch.start(w.rt, Job.ONBOARDING, "onboarding-e1", "onboarding:e1", onboarding)
    (check,) = checks
    assert isinstance(check.payload, FirstBackupCheckRequest)
    assert check.delay == 24 * 3600
    assert w.queues.visibility[Queue.VERIFICATION] == [24 * 3600]
    (text,) = w.queues.sent.pop(Queue.VERIFICATION)
    # Hours later, still no recovery point: never-backed-up; then the first point is there.
    w.reporter.outcomes.clear()
    w.clock.advance(hours=24)
    deliver(w.rt, text)
    assert w.findings() == {"fresh": NEVER_BACKED_UP}
    w.backup.points[new.id.lower()] = [point(-23)]
    deliver(w.rt, text)
    assert w.findings() == {"fresh": COMPLIANT}


def test_the_handler_and_timer_tables() -> None:
    from shared.messages import VerificationPlanRequest, VerificationVaultRequest

    assert {
        VerificationPlanRequest: verification.plan_subscription,
        VerificationVaultRequest: verification.verify_vault,
        FirstBackupCheckRequest: verification.check_first_backup,
    } == verification.HANDLERS
    assert {Timer.VERIFICATION: verification.start_verification} == verification.TIMERS


def test_the_triggers_run_the_use_cases() -> None:
    """The timer enqueues plan messages; the queue function handles them like the host would."""
    import azure.functions as func
    from azure.functions.timer import TimerRequest

    from triggers import verification as trigger

    w = estate()
    serve_runtime(w.rt)
    trigger.verification_timer(TimerRequest(past_due=False))
    while w.queues.sent.get(Queue.VERIFICATION):
        pending, w.queues.sent[Queue.VERIFICATION] = w.queues.sent[Queue.VERIFICATION], []
        for text in pending:
            trigger.verification_vault(func.QueueMessage(id="m1", body=text.encode()))
    assert w.findings() == ALL_FINDINGS


def test_vms_of_a_region_without_a_vault_are_confirmed_and_reported() -> None:
    w = estate()
    far = dataclasses.replace(make_vm("far"), location="eastus")
    w.compute.vms.append(far)
    w.run()
    assert w.findings()["far"] == UNPROTECTED
    ends = w.rows("run-end")
    assert {o.details["scope"] for o in ends} == {"vault", "regions-without-vault"}
    lonely = next(o for o in ends if o.details["scope"] == "regions-without-vault")
    assert lonely.details["totals"] == {UNPROTECTED: 1}
    assert lonely.count == 1


def test_a_region_too_large_for_one_message_is_verified_in_parts_that_each_fit() -> None:
    """The largest region shape: 6,000 VMs with 64-character names in 90-character groups and
    30 vaults. Each vault message fits a queue message (the fake queue encodes
    every send, as dispatch does), and every VM is verified exactly once per vault."""
    w = estate()
    groups = [f"rg-{g:02d}-" + "x" * 84 for g in range(12)]
    w.compute.vms = [
        dataclasses.replace(
            make_vm(name), id=vm_id(name, groups[i % 12]), resource_group=groups[i % 12]
        )
        for i, name in enumerate(f"vm-{i:05d}-" + "n" * 55 for i in range(6_000))
    ]
    peers = [
        Vault(f"{VAULT_ID}-peer{p:03d}", f"rsv-{p}", SUB, "rg-backup", "westeurope")
        for p in range(29)
    ]
    w.backup.vaults += peers
    w.backup.items = []
    dispatch.fire(w.rt, Timer.VERIFICATION)
    (plan,) = w.queues.sent.pop(Queue.VERIFICATION)
    deliver(w.rt, plan)
    sent = w.queues.sent[Queue.VERIFICATION]
    assert max(messages.encoded_size(text) for text in sent) <= messages.MAX_ENCODED_BYTES
    seen: Counter[tuple[str, str]] = Counter()
    for text in sent:
        _, payload = messages.decode(text)
        assert isinstance(payload, VerificationVaultRequest)
        seen.update((payload.vault_id, vm) for vm in verification.unpack_vms(payload.vms))
    assert len(sent) > len(w.backup.vaults)  # the region needed parts
    assert set(seen.values()) == {1}
    assert len(seen) == 6_000 * len(w.backup.vaults)


def test_a_small_region_is_one_vault_message_keyed_as_before() -> None:
    w = estate()
    dispatch.fire(w.rt, Timer.VERIFICATION)
    (plan,) = w.queues.sent.pop(Queue.VERIFICATION)
    deliver(w.rt, plan)
    (vault,) = w.queues.sent[Queue.VERIFICATION]
    envelope, _ = messages.decode(vault)
    assert envelope.idempotency_key == f"verification-vault:{VAULT_ID.lower()}:202611270600"
