"""The posture: one evidence query's verdicts per VM, and the daily timer's rows and digests.

The query runs with duckdb-kql over hand-written outcome rows (the harness of test_alerts.py, the
clock pinned), through a reader that stands in for `LogsQueryClient`; the timer runs through the
real dispatch with in-memory ports.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from shared import dispatch, posture
from shared.names import Job
from shared.settings import Settings, SettingsError
from tests.conftest import base_settings
from tests.fakes import FixedClock, MemoryQueues, MemoryReporter, runtime
from tests.test_alerts import run_query

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
SUB = "6f1c3a52-7d2e-4b8a-9c41-3e5d2a7b9f10"
VM_ID = f"/subscriptions/{SUB}/resourceGroups/rg-app/providers/Microsoft.Compute/virtualMachines/"
DISK_ID = f"/subscriptions/{SUB}/resourceGroups/rg-app/providers/Microsoft.Compute/disks/"


def row(hours_ago: float, **fields: Any) -> dict[str, Any]:
    return {
        "TimeGenerated": (NOW - timedelta(hours=hours_ago)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "RunId": "r1",
        "Job": "rotation",
        "Status": "succeeded",
        "SubscriptionId": SUB,
        "ResourceGroup": "rg-app",
        "DryRun": False,
        "Details": {},
        **fields,
    }


def snapshots(vm: str, hours_ago: float, *, disks: int = 1, good: int = 1) -> list[dict[str, Any]]:
    """A night for `vm`: its plan of `disks` disks and `good` good snapshots."""
    slot = (NOW - timedelta(hours=hours_ago)).strftime("%Y%m%d%H%M")
    return [
        row(hours_ago, Operation="plan-vm", Status="planned", VmName=vm, Count=disks),
        *(
            row(
                hours_ago,
                Operation="snapshot-create",
                VmName=vm,
                ResourceId=f"{DISK_ID}{vm}-{i}",
                Details={"slot": slot},
            )
            for i in range(good)
        ),
    ]


def verified(vm: str, *, rpo_hours: float, target_hours: float = 24) -> dict[str, Any]:
    breached = rpo_hours > target_hours
    return row(
        6,
        Job="verification",
        Operation="verify-vm",
        VmName=vm,
        Status="failed" if breached else "succeeded",
        Finding="rpo-breached" if breached else "compliant",
        RpoSeconds=int(rpo_hours * 3600),
        Details={"rpoTargetSeconds": int(target_hours * 3600)},
    )


def drilled(vm: str, *, status: str = "succeeded", rto: int = 600, target: int = 1800) -> Any:
    return row(
        5,
        Job="drill",
        Operation="drill",
        VmName=vm,
        Status=status,
        RtoSeconds=rto,
        Details={"rtoTargetSeconds": target},
    )


HEARTBEAT = row(10, Operation="run-start")
ESTATE = [
    HEARTBEAT,
    *snapshots("vm-ok", 10),
    verified("vm-ok", rpo_hours=2),
    drilled("vm-ok"),
    *snapshots("vm-stale", 30),
    *snapshots("vm-partial", 10, disks=2, good=1),
    *snapshots("vm-rpo", 10),
    verified("vm-rpo", rpo_hours=50),
    *snapshots("vm-slow", 10),
    drilled("vm-slow", rto=2400),
    *snapshots("vm-new", 1, good=0),
    row(9, Operation="plan-vm", Status="planned", VmName="vm-dry", Count=1, DryRun=True),
]


class KqlReader:
    """Runs each query with duckdb-kql over `records` as the query API would at NOW (the
    timespan as a TimeGenerated filter); `partial` names queries answered partially."""

    def __init__(self, records: Iterable[dict[str, Any]], partial: Iterable[str] = ()) -> None:
        self.records = list(records)
        self.partial = set(partial)
        self.queries: list[str] = []

    def query(self, query: str, *, days: int) -> tuple[list[dict[str, Any]], str | None]:
        self.queries.append(query)
        since = NOW - timedelta(days=days)
        rows = [r for r in self.records if _when(r) >= since]
        error = "Query result set has exceeded the limit" if query in self.partial else None
        return run_query(query, rows, NOW), error


def _when(record: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(record["TimeGenerated"].replace("Z", "+00:00"))


def verdicts(records: Iterable[dict[str, Any]]) -> dict[str, str]:
    rows = run_query(posture.VM_EVIDENCE_QUERY, records, NOW)
    return {r["VmName"]: r["Verdict"] for r in rows}


def test_the_query_judges_each_vm_by_its_evidence() -> None:
    assert verdicts(ESTATE) == {
        "vm-ok": "healthy",
        "vm-stale": "at-risk",
        "vm-partial": "at-risk",
        "vm-rpo": "at-risk",
        "vm-slow": "at-risk",
        "vm-new": "unknown",
    }


def test_the_reasons_name_the_evidence_its_age_and_the_target() -> None:
    typo = row(
        9,
        Operation="plan-vm",
        Status="skipped",
        VmName="vm-typo",
        Reason='tag "lifebaot:policy" looks like "lifeboat:policy"',
    )
    tables = posture.read_tables(KqlReader([*ESTATE, typo]), posture.evidence_queries(), days=30)
    report = posture.assemble(tables.rows, [(VM_ID + "vm-slow").lower()])
    reasons = {vm["vm"]: vm["reasons"] for vm in report["vms"]}

    assert reasons["vm-ok"] == []
    assert reasons["vm-stale"] == ["snapshot: last good snapshot a day ago, over the 26 h limit"]
    assert reasons["vm-rpo"] == ["backup: recovery point 2 days ago, over the RPO target of a day"]
    assert reasons["vm-slow"][0].endswith("took 40 minutes, over the RTO target of 30 minutes")
    assert reasons["vm-new"] == [
        "no evidence: planned, but no snapshot, verification or drill in 30 days"
    ]
    assert reasons["vm-typo"] == [
        'skipped by the last plan: tag "lifebaot:policy" looks like "lifeboat:policy"'
    ]
    assert report["counts"] == {"healthy": 1, "at-risk": 3, "unknown": 2, "held": 1}
    assert report["posture"] == "at-risk"
    assert report["postureReasons"] == [
        "3 VM(s) at risk: vm-partial, vm-rpo, vm-stale",
        "2 VM(s) without evidence: vm-new, vm-typo",
    ]


def test_each_vm_shows_its_last_drill_of_each_kind_and_its_last_recovery() -> None:
    def drill(hours_ago: float, source: str | None, status: str, rto: int | None) -> Any:
        details: dict[str, Any] = {"rtoTargetSeconds": 1800}
        if source is not None:
            details["source"] = source
        return row(
            hours_ago,
            Job="drill",
            Operation="drill",
            VmName="vm-web",
            Status=status,
            RtoSeconds=rto,
            RpoSeconds=5400,
            Details=details,
        )

    recovered = row(
        1,
        Job="recovery",
        Operation="recover",
        VmName="vm-web",
        RtoSeconds=157,
        RpoSeconds=8700,
        Details={
            "mode": "new-vm",
            "source": "snapshot set 202611270200 (kdawrygmbdsp)",
            "caller": "oncall@contoso.com (9c4e2a71)",
        },
    )
    records = [
        *snapshots("vm-web", 10),
        drill(30, None, "succeeded", 500),  # a row older than `source`: a snapshot drill
        drill(8, "snapshots", "failed", None),
        drill(9, "recovery-point", "succeeded", 1085),
        drill(40, "recovery-point", "failed", None),
        drill(7, "site-recovery", "succeeded", 900),  # neither kind
        recovered,
        *snapshots("vm-none", 10),
    ]
    tables = posture.read_tables(KqlReader(records), posture.evidence_queries(), days=30)
    vms = {vm["vm"]: vm for vm in posture.assemble(tables.rows)["vms"]}
    web = vms["vm-web"]
    assert web["lastSnapshotDrill"] == {
        "at": "2026-11-27T04:00:00Z",
        "status": "failed",
        "rtoSeconds": None,
    }
    assert web["lastRecoveryPointDrill"] == {
        "at": "2026-11-27T03:00:00Z",
        "status": "succeeded",
        "rtoSeconds": 1085,
        "rpoSeconds": 5400,
    }
    assert web["lastRecovery"] == {
        "at": "2026-11-27T11:00:00Z",
        "status": "succeeded",
        "mode": "new-vm",
        "source": "snapshot set 202611270200 (kdawrygmbdsp)",
        "rtoSeconds": 157,
        "by": "oncall@contoso.com (9c4e2a71)",
    }
    # The verdict still reads the last drill of any kind.
    assert (web["drillStatus"], web["drill"]) == ("succeeded", "ok")
    none = vms["vm-none"]
    assert (none["lastSnapshotDrill"], none["lastRecoveryPointDrill"], none["lastRecovery"]) == (
        None,
        None,
        None,
    )


def test_an_empty_workspace_is_unknown_not_healthy() -> None:
    report = posture.assemble({"vms": [], "heartbeats": []})
    assert report["posture"] == "unknown"
    assert verdicts([]) == {}


# ------------------------------------------------------------------------------- the timer

LOOKALIKES = row(
    9,
    Operation="lookalike-snapshots",
    Status="skipped",
    ResourceGroup="rg-lifeboat-snapshots",
    Count=23,
    Details={
        "rules": {"not tagged lifeboat:managed": 23},
        "snapshots": [{"name": f"lb-fake-{i:02}", "rule": "not tagged"} for i in range(20)],
    },
)
DIGEST_ROWS = [
    *(
        row(h, Operation="snapshot-create", Status="blocked", VmName="vm-ok", ResourceId=disk)
        for h in (9, 8)  # the same disk blocked twice is one item
        for disk in (f"{DISK_ID}locked-0",)
    ),
    row(
        9,
        Operation="plan-vm",
        Status="skipped",
        VmName="vm-typo",
        ResourceId=VM_ID + "vm-typo",
        Reason='tag "lifebaot:policy" looks like "lifeboat:policy"',
        Severity="warning",
        Details={"skip": "tag-typo"},
    ),
    row(
        9,
        Operation="snapshot-create",
        Status="skipped",
        ResourceId=DISK_ID + "loose",
        Reason="tagged disk attached to no VM",
        Details={"skip": "unattached"},
    ),
    row(30, Operation="plan-vm", Status="skipped", ResourceId=VM_ID + "old", VmName="old"),
    LOOKALIKES,
]


def fire(reader: Any, **settings: str) -> MemoryReporter:
    values = base_settings(LOG_ANALYTICS_WORKSPACE_ID="ws-1", **settings)
    reporter = MemoryReporter()
    rt = runtime(Settings.from_env(values), FixedClock(NOW), reporter, MemoryQueues())
    dispatch.start(
        rt,
        Job.POSTURE,
        "posture-202611270630",
        "posture:202611270630",
        lambda c: posture.run_posture(c, NOW, reader=reader),
    )
    return reporter


def rows_of(reporter: MemoryReporter, operation: str) -> list[Any]:
    return [o for o in reporter.outcomes if o.operation == operation]


def test_the_timer_writes_a_row_per_vm_at_risk_the_estate_row_and_the_digests() -> None:
    reader = KqlReader([*ESTATE, *DIGEST_ROWS])
    reporter = fire(reader)

    assert reader.queries[0] == posture.VM_EVIDENCE_QUERY
    assert reporter.outcomes[0].operation == "run-start"
    at_risk = {o.vm_name: o for o in rows_of(reporter, "posture-vm")}
    assert sorted(at_risk) == ["vm-partial", "vm-rpo", "vm-slow", "vm-stale"]
    slow = at_risk["vm-slow"]
    assert (slow.status, slow.finding, slow.job) == ("succeeded", "at-risk", Job.POSTURE)
    assert slow.severity == "warning", "a finding, not failed work"
    assert slow.resource_id == (VM_ID + "vm-slow").lower()
    assert "over the RTO target of 30 minutes" in (slow.reason or "")
    assert slow.details["drill"] == "over-rto"
    [estate] = rows_of(reporter, "posture-estate")
    assert (estate.status, estate.finding, estate.count) == ("succeeded", "at-risk", 4)
    # vm-new is planned and not yet taken; vm-typo and old are skipped by their plans.
    assert estate.details["counts"] == {"healthy": 1, "at-risk": 4, "unknown": 3, "held": 0}
    assert "3 VM(s) without evidence: old, vm-new, vm-typo" in (estate.reason or "")

    [blocked] = rows_of(reporter, "digest-blocked-disks")
    assert blocked.count == 1
    assert blocked.details["items"][0]["item"] == (DISK_ID + "locked-0").lower()
    [skipped] = rows_of(reporter, "digest-skipped-vms")
    assert skipped.count == 2, "a skip older than a day is not in today's digest"
    assert skipped.details["byKind"] == {"tag-typo": 1, "unattached": 1}
    [lookalikes] = rows_of(reporter, "digest-lookalike-snapshots")
    assert lookalikes.count == 23
    assert len(lookalikes.details["items"]) == posture.DIGEST_ITEMS
    assert lookalikes.details["items"][0]["name"] == "lb-fake-00"

    [end] = rows_of(reporter, "run-end")
    assert (end.status, end.count) == ("succeeded", 4)
    assert end.details["totals"]["lookalike-snapshots"] == 23
    assert reporter.outcomes[-1] is end


def test_a_healthy_estate_writes_no_vm_row_and_a_succeeded_estate_row() -> None:
    healthy = [HEARTBEAT, *snapshots("vm-ok", 10), verified("vm-ok", rpo_hours=2)]
    reporter = fire(KqlReader(healthy))

    assert rows_of(reporter, "posture-vm") == []
    [estate] = rows_of(reporter, "posture-estate")
    assert (estate.status, estate.finding, estate.count) == ("succeeded", "healthy", 0)
    assert [o.count for o in reporter.outcomes if o.operation.startswith("digest-")] == [0, 0, 0]


def test_a_partial_answer_ends_the_run_failed_naming_the_query() -> None:
    reporter = fire(KqlReader(ESTATE, partial=[posture.VM_EVIDENCE_QUERY]))

    [end] = rows_of(reporter, "run-end")
    assert end.status == "failed"
    assert end.reason == "vms: Query result set has exceeded the limit"
    [estate] = rows_of(reporter, "posture-estate")
    assert estate.details["partialErrors"] == [end.reason]


def test_a_workspace_that_cannot_be_read_fails_the_run_and_raises_for_the_retry() -> None:
    class Refusing:
        def query(self, query: str, *, days: int) -> Any:
            raise PermissionError("403 InsufficientAccessError: LifeboatOutcomes_CL")

    reporter = MemoryReporter()
    rt = runtime(
        Settings.from_env(base_settings(LOG_ANALYTICS_WORKSPACE_ID="ws-1")),
        FixedClock(NOW),
        reporter,
        MemoryQueues(),
    )
    with pytest.raises(PermissionError):
        dispatch.start(
            rt, Job.POSTURE, "p", "p", lambda c: posture.run_posture(c, NOW, reader=Refusing())
        )
    assert [(o.operation, o.status) for o in reporter.outcomes] == [
        ("run-start", "succeeded"),
        ("run-end", "failed"),
    ]
    assert "InsufficientAccessError" in (reporter.outcomes[-1].reason or "")


def test_the_schedule_is_daily_by_default_and_checked_as_ncrontab() -> None:
    assert Settings.from_env(base_settings()).posture_schedule == "0 30 6 * * *"
    with pytest.raises(SettingsError) as caught:
        Settings.from_env(base_settings(POSTURE_SCHEDULE="0 30 25 * * *"))
    assert any(p.startswith("POSTURE_SCHEDULE: ") for p in caught.value.problems)


def test_the_query_module_costs_nothing_at_import() -> None:
    from tests.conftest import run_in_bare_python

    loaded = run_in_bare_python(
        "import sys, shared.posture; print(sorted(m for m in sys.modules if m.startswith("
        "('azure', 'pydantic', 'humanize'))))"
    )
    assert loaded.strip() == "[]"


def test_the_local_host_points_the_timer_at_the_stand_ins_query_endpoint(tmp_path: Any) -> None:
    """`lifeboat host --emulator-endpoints` must never send the timer to the real query API."""
    import json

    from cli.host_cmd import endpoint_settings

    endpoints = tmp_path / "standin.json"
    document = {
        "arm": "https://127.0.0.1:9",
        "identityEndpoint": "https://127.0.0.1:9/identity",
        "identityHeader": "h",
        "caBundle": "ca.pem",
        "ingestionEndpoint": "https://127.0.0.1:9",
        "dcrImmutableId": "dcr-1",
        "workspaceId": "ws-1",
        "logAnalyticsEndpoint": "https://127.0.0.1:9",
        "logAnalyticsAudience": "https://api.loganalytics.io",
    }
    endpoints.write_text(json.dumps(document))

    values = endpoint_settings(None, endpoints)

    assert values["LOG_ANALYTICS_WORKSPACE_ID"] == "ws-1"
    assert values["LOG_ANALYTICS_ENDPOINT"] == "https://127.0.0.1:9"
    assert values["LOG_ANALYTICS_AUDIENCE"] == "https://api.loganalytics.io/.default"
