"""The verification assessment, pure: findings and their precedence, RPO arithmetic, jobs,
the on-demand rules and the packing of a region's VMs. Literals and properties, no ports."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared import messages
from shared.model import BackupJob, ProtectedItem, RecoveryPoint
from shared.verification import assessment
from shared.verification.assessment import (
    FINDINGS,
    SEVERITY,
    Finding,
    InScope,
    assess,
    latest_failed_job,
    on_demand_decision,
    precedence,
    rpo_target_seconds,
)
from tests.builders import (
    VAULT,
    VERIFY_NOW,
    unattached_vm,
    vault_request,
)
from tests.builders import backup_job as job
from tests.builders import protected_item as item
from tests.builders import recovery_point as point

NOW = VERIFY_NOW
DAY = 26 * 3600


# ---------------------------------------------------------------------------------- findings


def test_each_finding_and_its_reason() -> None:
    assert assess(None, [], None, DAY, NOW).finding == Finding.UNPROTECTED
    assert assess(item(soft_deleted=True), [], None, DAY, NOW).finding == Finding.SOFT_DELETED
    stopped = item(protection_state="ProtectionStopped")
    assert assess(stopped, [], None, DAY, NOW).finding == Finding.PROTECTION_STOPPED
    never = item(protection_state="IRPending", last_backup_time=None, last_recovery_point=None)
    assert assess(never, [], [], DAY, NOW).finding == Finding.NEVER_BACKED_UP
    failing = assess(
        item(), [job("web", "Failed", 2, "CloudDosAbsoluteLimitReached")], None, DAY, NOW
    )
    assert failing.finding == Finding.BACKUP_FAILING
    assert "CloudDosAbsoluteLimitReached" in failing.reason
    late = assess(item(), [], [point(30, "AppConsistent")], DAY, NOW)
    assert late.finding == Finding.RPO_BREACHED
    assert late.rpo_seconds == 30 * 3600
    assert late.consistency == "AppConsistent"
    assert "30.0 h old; target 26.0 h" in late.reason
    ok = assess(item(), [job("web", "Completed", 5)], None, DAY, NOW)
    assert ok.finding == Finding.COMPLIANT
    assert ok.rpo_seconds == 5 * 3600


def test_precedence_the_most_severe_finding_wins() -> None:
    failing = [job("web", "Failed", 1, "UserErrorVmNotFound")]
    soft = item(soft_deleted=True, protection_state="ProtectionStopped", last_recovery_point=None)
    assert assess(soft, failing, [], DAY, NOW).finding == Finding.SOFT_DELETED
    stopped = item(protection_state="ProtectionStopped", last_recovery_point=None)
    assert assess(stopped, failing, [], DAY, NOW).finding == Finding.PROTECTION_STOPPED
    assert assess(item(), failing, [], DAY, NOW).finding == Finding.NEVER_BACKED_UP
    assert assess(item(), failing, [point(40)], DAY, NOW).finding == Finding.BACKUP_FAILING
    # A later success clears an earlier failure.
    healed = [job("web", "Failed", 20, "X"), job("web", "Completed", 3)]
    assert assess(item(), healed, [point(40)], DAY, NOW).finding == Finding.RPO_BREACHED
    # The state Azure spells `SoftDeleted` is soft-deleted even without the flag.
    assert assess(item(protection_state="SoftDeleted"), [], None, DAY, NOW).finding == (
        Finding.SOFT_DELETED
    )
    assert assess(item(protection_state="ProtectionPaused"), [], None, DAY, NOW).finding == (
        Finding.PROTECTION_STOPPED
    )


def test_findings_are_declared_in_precedence_order_and_severity_follows_it() -> None:
    assert [f.value for f in FINDINGS] == [
        "unprotected",
        "soft-deleted",
        "protection-stopped",
        "never-backed-up",
        "backup-failing",
        "rpo-breached",
        "compliant",
    ]
    rank = {"high": 0, "medium": 1, "info": 2}
    ranks = [rank[SEVERITY[f]] for f in FINDINGS]
    assert ranks == sorted(ranks)
    assert [precedence(f) for f in FINDINGS] == list(range(len(FINDINGS)))


@pytest.mark.parametrize("finding", FINDINGS)
def test_every_finding_has_a_severity(finding: Finding) -> None:
    assert SEVERITY[finding]


# ---------------------------------------------------------------------------- RPO arithmetic


def test_rpo_comes_from_the_latest_recovery_point_not_last_backup_time() -> None:
    stale_points = item(last_backup_time=NOW - timedelta(hours=1))
    result = assess(stale_points, [], [point(50), point(30)], DAY, NOW)
    assert result.finding == Finding.RPO_BREACHED
    assert result.rpo_seconds == 30 * 3600
    assert result.latest_recovery_point == NOW - timedelta(hours=30)


def test_the_item_is_only_a_candidate_the_recovery_point_list_decides() -> None:
    fresh_item = item(last_recovery_point=NOW - timedelta(hours=1))
    assert assess(fresh_item, [], None, DAY, NOW).finding == Finding.COMPLIANT
    assert assess(fresh_item, [], [point(27)], DAY, NOW).finding == Finding.RPO_BREACHED
    assert assess(fresh_item, [], [], DAY, NOW).finding == Finding.NEVER_BACKED_UP


def test_a_point_exactly_as_old_as_the_target_is_within_it() -> None:
    at_target = assess(item(), [], [point(26)], DAY, NOW)
    assert (at_target.finding, at_target.rpo_seconds) == (Finding.COMPLIANT, DAY)
    one_second_late = RecoveryPoint("rp", NOW - timedelta(seconds=DAY + 1), "CrashConsistent")
    late = assess(item(), [], [one_second_late], DAY, NOW)
    assert (late.finding, late.rpo_seconds) == (Finding.RPO_BREACHED, DAY + 1)


def test_rpo_is_whole_seconds_and_never_negative() -> None:
    ahead = RecoveryPoint("rp", NOW + timedelta(minutes=5), "CrashConsistent")  # clock skew
    assert assess(item(), [], [ahead], DAY, NOW).rpo_seconds == 0
    almost = RecoveryPoint("rp", NOW - timedelta(seconds=59.9), "CrashConsistent")
    assert assess(item(), [], [almost], DAY, NOW).rpo_seconds == 59


def test_rpo_target_from_the_tag_or_the_policy() -> None:
    assert rpo_target_seconds({}, 26) == 26 * 3600
    assert rpo_target_seconds({}, 0.5) == 1800
    assert rpo_target_seconds({"Lifeboat:RPO-Hours": "4"}, 26) == 4 * 3600
    assert rpo_target_seconds({"lifeboat:rpo-hours": "1.5"}, 26) == 5400
    # Only a finite positive number overrides the policy.
    for raw in ("soon", "", "0", "-3", "nan", "inf", "-inf"):
        assert rpo_target_seconds({"lifeboat:rpo-hours": raw}, 26) == 26 * 3600, raw


# ------------------------------------------------------------------------------------- jobs


def test_jobs_are_matched_by_container_else_by_vm_name() -> None:
    by_container = dataclasses.replace(
        job("renamed", "Failed", 1, "X"), container_name="iaasvmcontainerv2;rg-app;web"
    )
    other_container = dataclasses.replace(
        job("web", "Failed", 1, "X"), container_name="iaasvmcontainerv2;rg-other;web"
    )
    by_name = job("WEB", "Completed", 2)
    restore = dataclasses.replace(job("web", "Failed", 1, "X"), operation="Restore")
    other_vm = job("api", "Failed", 1, "X")
    mine = assessment.jobs_of(item(), [by_container, other_container, by_name, restore, other_vm])
    assert mine == [by_container, by_name]


def test_the_latest_finished_job_decides_failing() -> None:
    assert latest_failed_job(item(), []) is None
    failed = job("web", "Failed", 3, "UserErrorX")
    running = job("web", "InProgress", 0.5)
    assert latest_failed_job(item(), [failed, running]) == failed
    assert latest_failed_job(item(), [failed, job("web", "CompletedWithWarnings", 1)]) is None
    unstarted = dataclasses.replace(job("web", "Failed", 1, "X"), start_time=None)
    assert latest_failed_job(item(), [unstarted]) is None


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
    assert on_demand_decision(item(), [job("web", "Failed", 1, "ServiceErrorX")], NOW)[0]
    assert not on_demand_decision(item(), [job("web", "InProgress", 0.5)], NOW)[0]


# ------------------------------------------------------------------------------- properties

STATES = st.sampled_from(
    ["Protected", "IRPending", "ProtectionStopped", "ProtectionPaused", "SoftDeleted", None]
)
STATUSES = st.sampled_from(["Completed", "CompletedWithWarnings", "Failed", "InProgress"])
HOURS = st.floats(min_value=0, max_value=200, allow_nan=False)


@st.composite
def situations(
    draw: st.DrawFn,
) -> tuple[ProtectedItem, list[BackupJob], list[RecoveryPoint] | None]:
    last = draw(st.none() | HOURS)
    protected = item(
        protection_state=draw(STATES),
        soft_deleted=draw(st.booleans()),
        last_recovery_point=None if last is None else NOW - timedelta(hours=last),
    )
    jobs = [job("web", draw(STATUSES), h, "E") for h in draw(st.lists(HOURS, max_size=5))]
    points = draw(st.none() | st.lists(HOURS.map(point), max_size=4))
    return protected, jobs, points


PROPERTY = settings(max_examples=300, deadline=None)


@PROPERTY
@given(situations(), HOURS, st.integers(min_value=1, max_value=200 * 3600))
def test_a_failed_job_never_makes_a_finding_less_severe(
    situation: tuple[ProtectedItem, list[BackupJob], list[RecoveryPoint] | None],
    failed_hours_ago: float,
    target: int,
) -> None:
    protected, jobs, points = situation
    before = assess(protected, jobs, points, target, NOW)
    failed = job("web", "Failed", failed_hours_ago, "UserErrorSomething")
    after = assess(protected, [*jobs, failed], points, target, NOW)
    assert precedence(after.finding) <= precedence(before.finding)


@PROPERTY
@given(situations(), st.integers(min_value=1, max_value=200 * 3600), st.integers(0, 200 * 3600))
def test_a_tighter_target_never_makes_a_finding_less_severe(
    situation: tuple[ProtectedItem, list[BackupJob], list[RecoveryPoint] | None],
    target: int,
    tighter_by: int,
) -> None:
    protected, jobs, points = situation
    loose = assess(protected, jobs, points, target + tighter_by, NOW)
    tight = assess(protected, jobs, points, target, NOW)
    assert precedence(tight.finding) <= precedence(loose.finding)
    assert tight.rpo_seconds == loose.rpo_seconds
    if tight.finding == Finding.RPO_BREACHED:
        assert tight.rpo_seconds is not None
        assert tight.rpo_seconds > target


@PROPERTY
@given(situations(), st.integers(min_value=1, max_value=200 * 3600))
def test_rpo_breached_exactly_when_a_healthy_item_is_older_than_its_target(
    situation: tuple[ProtectedItem, list[BackupJob], list[RecoveryPoint] | None], target: int
) -> None:
    protected, _, points = situation
    healthy = dataclasses.replace(protected, protection_state="Protected", soft_deleted=False)
    result = assess(healthy, [], points, target, NOW)
    if result.rpo_seconds is None:
        assert result.finding == Finding.NEVER_BACKED_UP
    else:
        assert result.rpo_seconds >= 0
        assert (result.finding == Finding.RPO_BREACHED) == (result.rpo_seconds > target)


# ------------------------------------------------------------------------------------ packing


def test_a_region_of_4000_vms_fits_one_vault_message() -> None:
    entries = [
        InScope(unattached_vm(f"vm-{i:05d}"), "daily", 26.0 if i % 7 else 4.0) for i in range(4000)
    ]
    request = vault_request(
        VAULT, assessment.pack_vms(entries), slot="202611270600", designated=True
    )
    envelope = messages.make_envelope(request, run_id="r", idempotency_key="k", created=NOW)
    assert messages.encoded_size(messages.encode(envelope)) < messages.MAX_ENCODED_BYTES
    unpacked = assessment.unpack_vms(request.vms)
    assert len(unpacked) == 4000
    assert unpacked["rg-app/vm-00007"] == ("daily", 4.0)


def test_packing_keeps_policy_names_with_a_bar_and_fractional_targets() -> None:
    entries = [
        InScope(unattached_vm("a"), "gold|eu", 1.5),
        InScope(unattached_vm("b"), "daily", 26.0),
    ]
    assert assessment.unpack_vms(assessment.pack_vms(entries)) == {
        "rg-app/a": ("gold|eu", 1.5),
        "rg-app/b": ("daily", 26.0),
    }
