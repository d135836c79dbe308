"""Backup verification: the pure finding logic with literals, and the workers with fakes."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest

from shared import messages, verification
from shared.model import (
    BackupJob,
    BackupStatus,
    DiskAttachment,
    ProtectedItem,
    RecoveryPoint,
    Vault,
    Vm,
)
from shared.policies import parse_policies
from shared.ports import RefusedError, Runtime, ThrottledError
from shared.settings import Settings
from shared.verification import (
    BACKUP_FAILING,
    COMPLIANT,
    NEVER_BACKED_UP,
    PROTECTION_STOPPED,
    RPO_BREACHED,
    SOFT_DELETED,
    UNPROTECTED,
    assess,
    on_demand_decision,
    rpo_target_seconds,
)
from tests.conftest import base_settings
from tests.fakes import FakeCompute, FixedClock, MemoryQueues, MemoryReporter

SUB = "6f1c3a52-7d2e-4b8a-9c41-3e5d2a7b9f10"
NOW = datetime(2026, 11, 27, 6, 0, tzinfo=UTC)
DAY = 26 * 3600
VAULT_ID = (
    f"/subscriptions/{SUB}/resourceGroups/rg-backup/providers/Microsoft.RecoveryServices/vaults/rsv"
)
POLICIES = parse_policies(
    {"version": 1, "policies": {"daily": {"retention": {"daily": 3}, "rpoHours": 26}}}
)


def vm_id(name: str, group: str = "rg-app") -> str:
    return (
        f"/subscriptions/{SUB}/resourceGroups/{group}/providers/Microsoft.Compute/"
        f"virtualMachines/{name}"
    )


def item(name: str = "web", **changes: object) -> ProtectedItem:
    base = ProtectedItem(
        id=f"/Subscriptions/{SUB}/resourceGroups/rg-backup/providers/Microsoft.RecoveryServices/"
        f"vaults/rsv/backupFabrics/Azure/protectionContainers/IaasVMContainer;iaasvmcontainerv2;"
        f"rg-app;{name}/protectedItems/VM;iaasvmcontainerv2;rg-app;{name}",
        vault_id=VAULT_ID,
        vm_id=vm_id(name),
        container_name=f"IaasVMContainer;iaasvmcontainerv2;rg-app;{name}",
        name=f"VM;iaasvmcontainerv2;rg-app;{name}",
        protection_state="Protected",
        last_backup_time=NOW - timedelta(hours=5),
        last_recovery_point=NOW - timedelta(hours=5),
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def job(
    name: str, status: str, hours_ago: float, code: str | None = None, **kw: object
) -> BackupJob:
    return BackupJob(
        id=f"{VAULT_ID}/backupJobs/{name}-{status}-{hours_ago}",
        vault_id=VAULT_ID,
        entity_name=name,
        container_name=None,
        operation="Backup",
        status=status,
        start_time=NOW - timedelta(hours=hours_ago),
        error_code=code,
        **kw,  # type: ignore[arg-type]
    )


def point(hours_ago: float, kind: str = "CrashConsistent") -> RecoveryPoint:
    return RecoveryPoint(
        id=f"rp-{hours_ago}", time=NOW - timedelta(hours=hours_ago), consistency=kind
    )


# ------------------------------------------------------------------------------- pure core


def test_each_finding_and_its_reason() -> None:
    assert assess(None, [], None, DAY, NOW).finding == UNPROTECTED
    assert assess(item(soft_deleted=True), [], None, DAY, NOW).finding == SOFT_DELETED
    stopped = item(protection_state="ProtectionStopped")
    assert assess(stopped, [], None, DAY, NOW).finding == PROTECTION_STOPPED
    never = item(protection_state="IRPending", last_backup_time=None, last_recovery_point=None)
    assert assess(never, [], [], DAY, NOW).finding == NEVER_BACKED_UP
    failing = assess(
        item(), [job("web", "Failed", 2, "CloudDosAbsoluteLimitReached")], None, DAY, NOW
    )
    assert failing.finding == BACKUP_FAILING
    assert "CloudDosAbsoluteLimitReached" in failing.reason
    late = assess(item(), [], [point(30, "AppConsistent")], DAY, NOW)
    assert late.finding == RPO_BREACHED
    assert late.rpo_seconds == 30 * 3600
    assert late.consistency == "AppConsistent"
    ok = assess(item(), [job("web", "Completed", 5)], None, DAY, NOW)
    assert ok.finding == COMPLIANT
    assert ok.rpo_seconds == 5 * 3600


def test_precedence_the_most_severe_finding_wins() -> None:
    failing = [job("web", "Failed", 1, "UserErrorVmNotFound")]
    soft = item(soft_deleted=True, protection_state="ProtectionStopped", last_recovery_point=None)
    assert assess(soft, failing, [], DAY, NOW).finding == SOFT_DELETED
    stopped = item(protection_state="ProtectionStopped", last_recovery_point=None)
    assert assess(stopped, failing, [], DAY, NOW).finding == PROTECTION_STOPPED
    assert assess(item(), failing, [], DAY, NOW).finding == NEVER_BACKED_UP
    assert assess(item(), failing, [point(40)], DAY, NOW).finding == BACKUP_FAILING
    # A later success clears an earlier failure.
    healed = [job("web", "Failed", 20, "X"), job("web", "Completed", 3)]
    assert assess(item(), healed, [point(40)], DAY, NOW).finding == RPO_BREACHED


def test_rpo_comes_from_the_latest_recovery_point_not_last_backup_time() -> None:
    stale_points = item(last_backup_time=NOW - timedelta(hours=1))
    result = assess(stale_points, [], [point(50), point(30)], DAY, NOW)
    assert result.finding == RPO_BREACHED
    assert result.rpo_seconds == 30 * 3600


def test_rpo_target_from_the_tag_or_the_policy() -> None:
    assert rpo_target_seconds({}, 26) == 26 * 3600
    assert rpo_target_seconds({"Lifeboat:RPO-Hours": "4"}, 26) == 4 * 3600
    assert rpo_target_seconds({"lifeboat:rpo-hours": "soon"}, 26) == 26 * 3600


def test_on_demand_cap_and_non_retryable_errors() -> None:
    assert on_demand_decision(item(), [], NOW)[0]
    three = [job("web", "Completed", h, user_triggered=True) for h in (1, 2, 3)]
    allowed, why = on_demand_decision(item(), three, NOW)
    assert not allowed
    assert "at most 3" in why
    yesterday = [job("web", "Completed", h, user_triggered=True) for h in (7, 8, 9)]
    assert on_demand_decision(item(), yesterday, NOW)[0]
    dos = [job("web", "Failed", 1, "CloudDosAbsoluteLimitReached")]
    allowed, why = on_demand_decision(item(), dos, NOW)
    assert not allowed
    assert "CloudDosAbsoluteLimitReached" in why
    assert not on_demand_decision(item(), [job("web", "InProgress", 0.5)], NOW)[0]


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

    def list_vaults(self, subscription_id: str) -> list[Vault]:
        self.calls.append("vaults")
        return list(self.vaults)

    def list_protected_items(self, vault: Vault) -> list[ProtectedItem]:
        self.calls.append("items")
        if self.throttle_items:
            self.throttle_items -= 1
            raise ThrottledError(5, "ResourceRequestsThrottled")
        return [i for i in self.items if i.vault_id == vault.id]

    def list_jobs(self, vault: Vault, since: datetime, until: datetime) -> list[BackupJob]:
        self.calls.append("jobs")
        return list(self.jobs)

    def list_recovery_points(self, item: ProtectedItem) -> list[RecoveryPoint]:
        self.calls.append("points")
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
    return Vm(
        id=vm_id(name),
        name=name,
        subscription_id=SUB,
        resource_group="rg-app",
        location="westeurope",
        tags={"lifeboat:policy": "daily", **tags},
        os_disk=DiskAttachment(lun=None, disk_id=None),
        time_created=NOW - timedelta(days=30),
    )


class World:
    def __init__(self, **settings: str) -> None:
        self.clock = FixedClock(NOW)
        self.queues = MemoryQueues()
        self.reporter = MemoryReporter()
        self.compute = FakeCompute(self.clock)  # type: ignore[arg-type]
        self.backup = FakeBackup()
        self.rt = Runtime(
            Settings.from_env(base_settings(TARGET_SUBSCRIPTIONS=SUB, **settings)),
            self.clock,
            self.reporter,
            self.queues,
            compute=self.compute,
            policies=POLICIES,
            backup=self.backup,
        )

    def run(self) -> None:
        verification.start_verification(self.rt, NOW)
        while self.queues.sent.get(verification.QUEUE):
            pending, self.queues.sent[verification.QUEUE] = self.queues.sent[verification.QUEUE], []
            for text in pending:
                envelope, payload = messages.decode(text)
                verification.HANDLERS[envelope.type](self.rt, envelope, payload)

    def findings(self) -> dict[str, str]:
        return {
            o.vm_name or "": o.finding or ""
            for o in self.reporter.outcomes
            if o.operation == "verify-vm" and o.finding
        }


def estate() -> World:
    w = World()
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


def test_a_run_reports_one_finding_per_in_scope_vm() -> None:
    w = estate()
    w.run()
    assert w.findings() == {
        "ok": COMPLIANT,
        "late": RPO_BREACHED,
        "failing": BACKUP_FAILING,
        "never": NEVER_BACKED_UP,
        "stopped": PROTECTION_STOPPED,
        "soft": SOFT_DELETED,
        "naked": UNPROTECTED,
    }
    rows = {o.vm_name: o for o in w.reporter.outcomes if o.operation == "verify-vm"}
    assert rows["ok"].status.value == "succeeded"
    assert rows["late"].status.value == "failed"
    assert rows["late"].rpo_seconds == 40 * 3600
    assert rows["late"].details["consistency"] == "CrashConsistent"
    assert rows["naked"].rpo_seconds is None
    # One items list and one job list for the vault; recovery points only for candidates.
    assert w.backup.calls.count("items") == 1
    assert w.backup.calls.count("jobs") == 1
    assert w.backup.calls.count("points") == 5  # late, failing, never, stopped, soft
    assert w.backup.calls.count("status") == 1  # only the unprotected candidate
    assert "trigger" not in w.backup.calls  # remediation is off by default
    assert [o.operation for o in w.reporter.outcomes].count("run-start") == 1
    vault_end = next(o for o in w.reporter.outcomes if o.operation == "run-end")
    assert vault_end.details["scope"] == "vault"
    assert vault_end.details["totals"] == {
        COMPLIANT: 1,
        RPO_BREACHED: 1,
        BACKUP_FAILING: 1,
        NEVER_BACKED_UP: 1,
        PROTECTION_STOPPED: 1,
        SOFT_DELETED: 1,
        UNPROTECTED: 1,
    }


def test_a_vm_protected_by_a_vault_elsewhere_is_not_unprotected() -> None:
    w = estate()
    w.backup.elsewhere[vm_id("naked").lower()] = (
        "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/x/providers/"
        "Microsoft.RecoveryServices/vaults/other"
    )
    w.run()
    assert "naked" not in w.findings()
    skipped = [o for o in w.reporter.outcomes if o.status.value == "skipped"]
    assert skipped
    assert "outside the target subscriptions" in (skipped[0].reason or "")


def test_on_demand_backup_when_rpo_breached_is_off_by_default_and_capped() -> None:
    w = estate()
    w.rt = dataclasses.replace(
        w.rt,
        settings=Settings.from_env(
            base_settings(TARGET_SUBSCRIPTIONS=SUB, ON_DEMAND_BACKUP="true")
        ),
    )
    w.run()
    assert w.backup.calls.count("trigger") == 1
    ok = [o for o in w.reporter.outcomes if o.operation == "on-demand-backup"]
    assert [(o.vm_name, o.status.value) for o in ok] == [("late", "succeeded")]
    # Three on-demand jobs today: the next run is blocked, not triggered.
    w.backup.jobs += [job("late", "Completed", h, user_triggered=True) for h in (1, 2, 3)]
    w.reporter.outcomes.clear()
    w.run()
    assert w.backup.calls.count("trigger") == 1
    blocked = [o for o in w.reporter.outcomes if o.operation == "on-demand-backup"]
    assert blocked[0].status.value == "blocked"
    assert "at most 3" in (blocked[0].reason or "")


def test_on_demand_refusal_is_reported_failed_and_never_retried() -> None:
    w = estate()
    w.rt = dataclasses.replace(
        w.rt,
        settings=Settings.from_env(
            base_settings(TARGET_SUBSCRIPTIONS=SUB, ON_DEMAND_BACKUP="true")
        ),
    )
    w.backup.refuse_trigger = "CloudDosAbsoluteLimitReached"
    w.run()  # no exception: the message completes, the POST is not repeated
    failed = [o for o in w.reporter.outcomes if o.operation == "on-demand-backup"]
    assert failed[0].status.value == "failed"
    assert "CloudDosAbsoluteLimitReached" in (failed[0].reason or "")
    assert w.backup.calls.count("trigger") == 1


def test_dry_run_plans_remediation_without_writing() -> None:
    w = estate()
    w.rt = dataclasses.replace(
        w.rt,
        settings=Settings.from_env(
            base_settings(
                TARGET_SUBSCRIPTIONS=SUB,
                ON_DEMAND_BACKUP="true",
                ENABLE_BACKUP_PROTECTION="true",
                DRY_RUN="true",
            )
        ),
    )
    w.run()
    assert "trigger" not in w.backup.calls
    assert "protect" not in w.backup.calls
    planned = {o.operation for o in w.reporter.outcomes if o.status.value == "planned"}
    assert planned == {"on-demand-backup", "enable-protection"}


def test_throttled_vault_goes_back_on_the_queue() -> None:
    w = estate()
    w.backup.throttle_items = 1
    w.run()
    assert w.backup.calls.count("items") == 2
    assert w.findings()["ok"] == COMPLIANT


def test_new_vm_unprotected_is_reported_at_once_and_protected_when_enabled() -> None:
    from shared.messages import OnboardingRequest
    from shared.onboarding import onboard_vm

    w = World(ENABLE_BACKUP_PROTECTION="true")
    new = dataclasses.replace(make_vm("fresh"), time_created=NOW - timedelta(minutes=3))
    w.compute.vms = [new]
    request = OnboardingRequest(
        resourceId=new.id,
        subscriptionId=SUB,
        resourceGroup="rg-app",
        vmName="fresh",
        eventId="e1",
    )
    envelope = messages.make_envelope(
        "onboarding", request, run_id="r", idempotency_key="k", created=NOW
    )
    onboard_vm(w.rt, envelope, request)
    assert w.findings() == {"fresh": UNPROTECTED}
    assert w.backup.calls.count("protect") == 1
    assert w.backup.calls.count("trigger") == 1
    checks = w.queues.sent[verification.QUEUE]
    assert len(checks) == 1
    assert "verification-first-backup" in checks[0]
    # The same event again: protection holds now, nothing is repeated.
    onboard_vm(w.rt, envelope, request)
    assert w.backup.calls.count("protect") == 1
    assert w.backup.calls.count("trigger") == 1
    # N hours later, still no recovery point: never-backed-up.
    w.reporter.outcomes.clear()
    env, payload = messages.decode(checks[0])
    verification.check_first_backup(w.rt, env, payload)
    assert w.findings() == {"fresh": NEVER_BACKED_UP}
    w.backup.points[new.id.lower()] = [point(1)]
    verification.check_first_backup(w.rt, env, payload)
    assert w.findings() == {"fresh": COMPLIANT}


@pytest.mark.parametrize("finding", verification.FINDINGS)
def test_every_finding_has_a_severity(finding: str) -> None:
    assert verification.SEVERITY[finding]


def test_a_region_of_4000_vms_fits_one_vault_message() -> None:
    entries = [
        verification.InScope(make_vm(f"vm-{i:05d}"), "daily", 26.0 if i % 7 else 4.0)
        for i in range(4000)
    ]
    request = messages.VerificationVaultRequest(
        subscriptionId=SUB,
        vaultId=VAULT_ID,
        vaultName="rsv",
        resourceGroup="rg-backup",
        location="westeurope",
        slot="202611270600",
        designated=True,
        vms=verification.pack_vms(entries),
    )
    envelope = messages.make_envelope(
        "verification-vault", request, run_id="r", idempotency_key="k", created=NOW
    )
    assert messages.encoded_size(messages.encode(envelope)) < messages.MAX_ENCODED_BYTES
    unpacked = verification.unpack_vms(request.vms)
    assert len(unpacked) == 4000
    assert unpacked["rg-app/vm-00007"] == ("daily", 4.0)


def test_the_triggers_run_the_use_cases() -> None:
    """The timer enqueues plan messages; the queue function handles them like the host would."""
    import azure.functions as func

    from shared.services import override_services
    from triggers import verification as trigger

    w = estate()
    override_services(
        settings=w.rt.settings,
        clock=w.clock,
        reporter=w.reporter,
        queues=w.queues,
        compute=w.compute,
        policies=POLICIES,
        backup=w.backup,
    )  # type: ignore[arg-type]
    from azure.functions.timer import TimerRequest

    trigger.verification_timer(TimerRequest(past_due=False))
    while w.queues.sent.get(verification.QUEUE):
        pending, w.queues.sent[verification.QUEUE] = w.queues.sent[verification.QUEUE], []
        for text in pending:
            trigger.verification_vault(func.QueueMessage(id="m1", body=text.encode()))
    assert w.findings()["late"] == RPO_BREACHED
    assert len(w.findings()) == 7


def test_vms_of_a_region_without_a_vault_are_confirmed_and_reported() -> None:
    w = estate()
    far = dataclasses.replace(make_vm("far"), location="eastus")
    w.compute.vms.append(far)
    w.run()
    assert w.findings()["far"] == UNPROTECTED
    ends = [o for o in w.reporter.outcomes if o.operation == "run-end"]
    assert {o.details["scope"] for o in ends} == {"vault", "regions-without-vault"}
    lonely = next(o for o in ends if o.details["scope"] == "regions-without-vault")
    assert lonely.details["totals"] == {UNPROTECTED: 1}
