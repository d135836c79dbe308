"""The estate's posture: one per-VM evidence query, its verdicts, and the daily posture timer.

`VM_EVIDENCE_QUERY` is the one KQL query that judges each VM from `LifeboatOutcomes_CL`: its
last good (and last complete) snapshot set, its last Backup verification against its RPO target,
its last drill against its RTO target (and, side by side, its last drill from a snapshot set and
its last from an Azure Backup recovery point), its last real recovery (`lifeboat recover`: mode,
source, RTO, when, who), its last Site Recovery verification (replicated VMs), and a verdict
(`healthy`, `at-risk`, `unknown`). The verdict is computed by the query, so everything that runs it
agrees: `lifeboat status`, the posture timer (daily, `POSTURE_SCHEDULE`), and the
workbook's per-VM tile. Python only words the reasons (which evidence, how old, against which
target) from the states the query returns.

The timer writes one `posture-vm` row per VM at risk (its reasons), one `posture-estate` row
(counts by verdict; the posture-at-risk alert compares it with the previous one) and one digest
row each for blocked disks, skipped VMs and lookalike snapshots of the last day (counts and the
first 20 items), between its run-start and run-end heartbeats.

azure-monitor-query is imported when a query runs, never at import: the posture timer's module
is loaded on its first invocation, and a cold start pays for none of it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

from shared.names import Status, Timer

if TYPE_CHECKING:
    from shared.dispatch import Context, Result
    from shared.settings import Settings

log = logging.getLogger(__name__)

TABLE = "LifeboatOutcomes_CL"
# A snapshot set older than this is stale: the nightly schedule plus a grace.
SNAPSHOT_STALE_HOURS = 26.0
# How far back the evidence is read (the query API's timespan; the workbook's time range).
DEFAULT_DAYS = 30
HISTORY_ROWS = 200
# A digest row names at most this many items; its count covers all of them.
DIGEST_ITEMS = 20
VERDICTS = ("healthy", "at-risk", "unknown")

# One row per VM named by a plan, snapshot, verification or drill outcome. Verdict: at-risk when
# any evidence is bad (a stale or incomplete snapshot set, an RPO breached or a failing
# verification, a failed drill or one over its RTO, replication unhealthy, over its RPO target or
# its test failover overdue) or when there is no good snapshot although
# other evidence exists; unknown when nothing but a plan names it (planned and not yet taken, or
# skipped: a tag mistake, no policy); healthy otherwise.
VM_EVIDENCE_QUERY = f"""let staleSeconds = {int(SNAPSHOT_STALE_HOURS * 3600)};
let outcomes = {TABLE}
    | where DryRun == false and isnotempty(VmName)
    | extend Vm = tolower(strcat(SubscriptionId, "/", ResourceGroup, "/", VmName));
let vms = outcomes
    | where Operation in ("plan-vm", "snapshot-create", "verify-vm", "drill", "verify-replication")
    | summarize arg_max(TimeGenerated, VmName, SubscriptionId, ResourceGroup, Policy) by Vm
    | project Vm, VmName, SubscriptionId, ResourceGroup, Policy;
let plans = outcomes
    | where Operation == "plan-vm" and Status == "planned"
    | summarize arg_max(TimeGenerated, Count) by Vm
    | project Vm, Planned = Count;
let lastPlans = outcomes
    | where Operation == "plan-vm"
    | summarize arg_max(TimeGenerated, Status, Reason) by Vm
    | project Vm, PlanStatus = Status, PlanReason = Reason;
let snapshots = outcomes
    | where Operation == "snapshot-create" and Job in ("rotation", "onboarding")
    | extend Slot = tostring(Details.slot)
    | summarize Good = countif(Status == "succeeded"), Bad = countif(Status == "failed"),
        At = max(iff(Status == "succeeded", TimeGenerated, datetime(null)))
        by Vm, Slot, Disk = tolower(ResourceId)
    | summarize GoodDisks = countif(Good > 0 and Bad == 0), At = max(At) by Vm, Slot
    | where GoodDisks > 0
    | join kind=leftouter plans on Vm
    | extend Complete = GoodDisks >= coalesce(Planned, 0)
    | summarize LastGood = max(At), LastComplete = max(iff(Complete, At, datetime(null))) by Vm;
let verification = outcomes
    | where Job == "verification" and Operation == "verify-vm"
    | extend RpoTargetSeconds = tolong(Details.rpoTargetSeconds)
    | summarize arg_max(TimeGenerated, Finding, Status, RpoSeconds, RpoTargetSeconds) by Vm
    | project Vm, Verified = TimeGenerated, Finding, Verification = Status, RpoSeconds,
        RpoTargetSeconds;
let replication = outcomes
    | where Job == "verification" and Operation == "verify-replication"
    | extend ReplicationTargetSeconds = tolong(Details.rpoTargetSeconds),
        ReplicationFindings = tostring(Details.findings)
    | summarize arg_max(TimeGenerated, Finding, RpoSeconds, ReplicationTargetSeconds,
        ReplicationFindings, Reason) by Vm
    | project Vm, Replicated = TimeGenerated, ReplicationFinding = Finding,
        ReplicationRpoSeconds = RpoSeconds, ReplicationTargetSeconds, ReplicationFindings,
        ReplicationReason = Reason;
let drills = outcomes
    | where Job == "drill" and Operation == "drill"
    | extend RtoTargetSeconds = tolong(Details.rtoTargetSeconds)
    | summarize arg_max(TimeGenerated, Status, RtoSeconds, RtoTargetSeconds, Reason) by Vm
    | project Vm, LastDrill = TimeGenerated, DrillStatus = Status, RtoSeconds, RtoTargetSeconds,
        DrillReason = Reason;
let snapshotDrills = outcomes
    | where Job == "drill" and Operation == "drill"
        and tostring(Details.source) in ("", "snapshots")
    | summarize arg_max(TimeGenerated, Status, RtoSeconds) by Vm
    | project Vm, LastSnapshotDrill = TimeGenerated, SnapshotDrillStatus = Status,
        SnapshotDrillRtoSeconds = RtoSeconds;
let pointDrills = outcomes
    | where Job == "drill" and Operation == "drill"
        and tostring(Details.source) == "recovery-point"
    | summarize arg_max(TimeGenerated, Status, RtoSeconds, RpoSeconds) by Vm
    | project Vm, LastPointDrill = TimeGenerated, PointDrillStatus = Status,
        PointDrillRtoSeconds = RtoSeconds, PointDrillRpoSeconds = RpoSeconds;
let recoveries = outcomes
    | where Job == "recovery" and Operation == "recover"
    | extend RecoveryMode = tostring(Details.mode), RecoverySource = tostring(Details.source),
        RecoveryCaller = tostring(Details.caller)
    | summarize arg_max(TimeGenerated, Status, RtoSeconds, RecoveryMode, RecoverySource,
        RecoveryCaller) by Vm
    | project Vm, LastRecovery = TimeGenerated, RecoveryStatus = Status,
        RecoveryRtoSeconds = RtoSeconds, RecoveryMode, RecoverySource, RecoveryCaller;
vms
| join kind=leftouter lastPlans on Vm
| join kind=leftouter snapshots on Vm
| join kind=leftouter verification on Vm
| join kind=leftouter drills on Vm
| join kind=leftouter snapshotDrills on Vm
| join kind=leftouter pointDrills on Vm
| join kind=leftouter recoveries on Vm
| join kind=leftouter replication on Vm
| extend SnapshotAgeSeconds = tolong((now() - LastGood) / 1s),
    CompleteAgeSeconds = tolong((now() - LastComplete) / 1s)
| extend Snapshot = case(
        isnull(LastGood), "none",
        isnotnull(CompleteAgeSeconds) and CompleteAgeSeconds <= staleSeconds, "ok",
        SnapshotAgeSeconds <= staleSeconds, "partial",
        "stale"),
    Rpo = case(
        isnull(Verified), "unknown",
        Finding == "rpo-breached", "breached",
        Verification == "succeeded", "ok",
        "failing"),
    Drill = case(
        isnull(LastDrill), "none",
        DrillStatus != "succeeded", "failed",
        isnotnull(RtoSeconds) and isnotnull(RtoTargetSeconds) and RtoSeconds > RtoTargetSeconds,
        "over-rto",
        "ok"),
    Replication = case(
        isnull(Replicated), "none",
        ReplicationFindings contains '"replication-unhealthy"'
        or ReplicationFindings contains '"replication-not-protected"', "unhealthy",
        ReplicationFindings contains '"replication-rpo-breached"', "rpo-breached",
        ReplicationFindings contains '"test-failover-overdue"', "overdue",
        ReplicationFinding == "compliant", "ok",
        "warning")
| extend Verdict = case(
        Snapshot in ("stale", "partial") or Rpo in ("breached", "failing")
        or Drill in ("failed", "over-rto")
        or Replication in ("unhealthy", "rpo-breached", "overdue"), "at-risk",
        Snapshot == "none" and Rpo == "unknown" and Drill == "none" and Replication == "none",
        "unknown",
        Snapshot == "none", "at-risk",
        "healthy")
| project Vm, VmName, SubscriptionId, ResourceGroup, Policy, Verdict, PlanStatus, PlanReason,
    Snapshot, LastGood,
    SnapshotAgeSeconds, CompleteAgeSeconds, Rpo, Finding, RpoSeconds, RpoTargetSeconds, Verified,
    Drill, DrillStatus, LastDrill, RtoSeconds, RtoTargetSeconds, DrillReason, Replication,
    ReplicationFinding, ReplicationRpoSeconds, ReplicationTargetSeconds, Replicated,
    ReplicationReason, LastSnapshotDrill, SnapshotDrillStatus, SnapshotDrillRtoSeconds,
    LastPointDrill, PointDrillStatus, PointDrillRtoSeconds, PointDrillRpoSeconds, LastRecovery,
    RecoveryStatus, RecoveryRtoSeconds, RecoveryMode, RecoverySource, RecoveryCaller
| order by Vm asc"""

HEARTBEATS_QUERY = f"""{TABLE}
| where Operation in ("run-start", "run-end")
| summarize LastHeartbeat = max(TimeGenerated) by Job
| extend AgeSeconds = tolong((now() - LastHeartbeat) / 1s)"""

# The daily digests: the last day's rows of one kind, latest per resource (a message delivered
# twice, or a disk blocked on two nights, is one item). Rows: Item, VmName, Kind, Reason, Count,
# Items, TimeGenerated. Row shapes: shared/rotation.py (README "What Lifeboat writes for...").
_DIGEST = """{table}
| where TimeGenerated > ago(1d) and DryRun == false
| where {where}
| extend Kind = tostring(Details.skip)
| summarize arg_max(TimeGenerated, VmName, Kind, Reason, Count, Details) by Item = tolower({item})
| extend Items = {items}
| project Item, VmName, Kind, Reason, Count, Items, TimeGenerated
| order by TimeGenerated desc, Item asc"""
DIGEST_QUERIES = {
    # A disk Lifeboat was refused or held off (a deny assignment, a limit): counted, not taken.
    "blocked-disks": _DIGEST.format(
        table=TABLE,
        where='Operation == "snapshot-create" and Status == "blocked"',
        item="ResourceId",
        items="dynamic(null)",
    ),
    # A VM or disk left out of rotation: tag mistakes (a policy tag key within two edits, an
    # unknown policy), tagged disks attached to no VM, unmanaged (VHD) disks.
    "skipped-vms": _DIGEST.format(
        table=TABLE,
        where='Status == "skipped" and Operation in ("plan-vm", "snapshot-create")',
        item="ResourceId",
        items="dynamic(null)",
    ),
    # Snapshots in Lifeboat's group named like its own that fail ownership: one row a night per
    # group, its Count and the first names in Details.snapshots.
    "lookalike-snapshots": _DIGEST.format(
        table=TABLE,
        where='Operation == "lookalike-snapshots"',
        item='strcat(SubscriptionId, "/", ResourceGroup)',
        items="Details.snapshots",
    ),
}


def history_query(vm: str) -> str:
    """Every outcome that names this VM, newest first (its evidence history)."""
    import json

    name = json.dumps(vm.lower())
    return f"""{TABLE}
| where DryRun == false and tolower(VmName) == {name}
| project TimeGenerated, Job, Operation, Status, ResourceId, Reason, Finding, RpoSeconds,
    RtoSeconds, Details
| order by TimeGenerated desc
| take {HISTORY_ROWS}"""


# ------------------------------------------------------------------------------ reading


@dataclass
class Tables:
    """Query results by name: rows as dicts, and the partial errors the service reported."""

    rows: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    partial: list[str] = field(default_factory=list)


class OutcomeReader(Protocol):
    """Runs KQL over the outcomes workspace (Log Analytics query API, or a test's rows)."""

    def query(self, query: str, *, days: int) -> tuple[list[dict[str, Any]], str | None]:
        """Rows as dicts and a partial error's message (None when complete)."""
        ...


class LogAnalyticsReader:
    """`LogsQueryClient.query_workspace` against one workspace; the SDK is imported on first use."""

    def __init__(self, credential: Any, workspace_id: str, endpoint: str, audience: str) -> None:
        self.credential = credential
        self.workspace_id = workspace_id
        self.endpoint = endpoint
        self.audience = audience.removesuffix("/.default").removesuffix("/")
        self._client: Any = None

    def query(self, query: str, *, days: int) -> tuple[list[dict[str, Any]], str | None]:
        from azure.monitor.query import LogsQueryClient, LogsQueryStatus

        if self._client is None:
            self._client = LogsQueryClient(
                self.credential, endpoint=self.endpoint, audience=self.audience
            )
        result = self._client.query_workspace(
            self.workspace_id, query, timespan=timedelta(days=days)
        )
        if result.status == LogsQueryStatus.SUCCESS:
            table, partial = result.tables[0], None
        else:
            table, partial = result.partial_data[0], str(result.partial_error.message)
        return [dict(zip(table.columns, row, strict=True)) for row in table.rows], partial


def read_tables(reader: OutcomeReader, queries: Mapping[str, str], *, days: int) -> Tables:
    tables = Tables()
    for name, query in queries.items():
        rows, partial = reader.query(query, days=days)
        tables.rows[name] = rows
        if partial is not None:
            tables.partial.append(f"{name}: {partial}")
    return tables


def evidence_queries(vm: str | None = None) -> dict[str, str]:
    """What `lifeboat status` and the timer read: the per-VM evidence and the heartbeats."""
    queries = {"vms": VM_EVIDENCE_QUERY, "heartbeats": HEARTBEATS_QUERY}
    if vm is not None:
        queries["history"] = history_query(vm)
    return queries


# ---------------------------------------------------------------------------- verdicts


def assemble(
    tables: Mapping[str, Sequence[Mapping[str, Any]]],
    held_vm_ids: Iterable[str] = (),
    partial: Iterable[str] = (),
    *,
    days: int = DEFAULT_DAYS,
) -> dict[str, Any]:
    """The per-VM evidence with its verdict and reasons, the heartbeats, and the posture.

    `held_vm_ids` are VMs under `lifeboat:hold` (read from ARM by `lifeboat status`): shown as
    held, and not counted at risk."""
    held = {str(v).lower() for v in held_vm_ids}
    vms = [vm_entry(row, held, days=days) for row in tables["vms"]]
    heartbeats = {
        r["Job"]: {"last": iso(r["LastHeartbeat"]), "ageHours": hours(r["AgeSeconds"])}
        for r in tables["heartbeats"]
    }
    posture, why = estate_posture(vms, heartbeats)
    return {
        "posture": posture,
        "postureReasons": why,
        "vms": vms,
        "counts": verdict_counts(vms),
        "heartbeats": heartbeats,
        "partialErrors": list(partial),
    }


def vm_entry(row: Mapping[str, Any], held: set[str], *, days: int = DEFAULT_DAYS) -> dict[str, Any]:
    """One VM of the evidence query, as `lifeboat status --json` prints it."""
    vm_id = (
        f"/subscriptions/{row['SubscriptionId']}/resourcegroups/{row['ResourceGroup']}"
        f"/providers/microsoft.compute/virtualmachines/{row['VmName']}"
    ).lower()
    entry: dict[str, Any] = {
        "vm": row["VmName"],
        "id": vm_id,
        "subscriptionId": row["SubscriptionId"],
        "resourceGroup": row["ResourceGroup"],
        "policy": row.get("Policy"),
        "verdict": row["Verdict"],
        "plan": row.get("PlanStatus"),
        "planReason": row.get("PlanReason"),
        "held": vm_id in held,
        "lastGoodSnapshot": iso(row.get("LastGood")),
        "snapshotAgeHours": hours(row.get("SnapshotAgeSeconds")),
        "completeSetAgeHours": hours(row.get("CompleteAgeSeconds")),
        "snapshot": row["Snapshot"],
        "recoveryPointAgeHours": hours(row.get("RpoSeconds")),
        "rpoTargetHours": hours(row.get("RpoTargetSeconds")),
        "finding": row.get("Finding"),
        "rpo": row["Rpo"],
        "lastDrill": iso(row.get("LastDrill")),
        "drillStatus": row.get("DrillStatus"),
        "drillReason": row.get("DrillReason") or None,
        "rtoSeconds": row.get("RtoSeconds"),
        "rtoTargetSeconds": row.get("RtoTargetSeconds"),
        "drill": row["Drill"],
        # Azure Site Recovery (verify-replication rows): its own finding, RPO and target.
        "replication": row.get("Replication") or "none",
        "replicationFinding": row.get("ReplicationFinding"),
        "replicationRpoSeconds": row.get("ReplicationRpoSeconds"),
        "replicationRpoTargetSeconds": row.get("ReplicationTargetSeconds"),
        "replicationReason": row.get("ReplicationReason") or None,
        "lastReplicationCheck": iso(row.get("Replicated")),
        # The last drill of each kind side by side, and the last real recovery (informational:
        # the verdict reads the last drill of any kind).
        "lastSnapshotDrill": _drill_of(
            row, "LastSnapshotDrill", "SnapshotDrillStatus", "SnapshotDrillRtoSeconds"
        ),
        "lastRecoveryPointDrill": _drill_of(
            row,
            "LastPointDrill",
            "PointDrillStatus",
            "PointDrillRtoSeconds",
            "PointDrillRpoSeconds",
        ),
        "lastRecovery": _recovery_of(row),
    }
    entry["reasons"] = vm_reasons(entry, days=days)
    entry["atRisk"] = entry["verdict"] == "at-risk" and not entry["held"]
    return entry


def _drill_of(
    row: Mapping[str, Any], at: str, status: str, rto: str, rpo: str | None = None
) -> dict[str, Any] | None:
    """One kind of drill's last result (None: never drilled that way in the period read)."""
    if row.get(at) is None:
        return None
    found = {"at": iso(row[at]), "status": row.get(status), "rtoSeconds": row.get(rto)}
    if rpo is not None:
        found["rpoSeconds"] = row.get(rpo)
    return found


def _recovery_of(row: Mapping[str, Any]) -> dict[str, Any] | None:
    """The last `lifeboat recover` of the VM: mode, source, result, RTO, when and who."""
    if row.get("LastRecovery") is None:
        return None
    return {
        "at": iso(row["LastRecovery"]),
        "status": row.get("RecoveryStatus"),
        "mode": row.get("RecoveryMode") or None,
        "source": row.get("RecoverySource") or None,
        "rtoSeconds": row.get("RecoveryRtoSeconds"),
        "by": row.get("RecoveryCaller") or None,
    }


def verdict_counts(vms: Iterable[Mapping[str, Any]]) -> dict[str, int]:
    counts = dict.fromkeys(VERDICTS, 0)
    counts["held"] = 0
    for vm in vms:
        if vm["held"]:
            counts["held"] += 1
        else:
            counts[vm["verdict"]] += 1
    return counts


def _ago(value: float | None) -> str:
    import humanize

    return "never" if value is None else f"{humanize.naturaldelta(timedelta(hours=value))} ago"


def _span(seconds: Any) -> str:
    import humanize

    return "?" if seconds is None else humanize.naturaldelta(timedelta(seconds=float(seconds)))


def vm_reasons(vm: Mapping[str, Any], *, days: int = DEFAULT_DAYS) -> list[str]:
    """Why each verdict of one VM is not OK: the evidence, its age, the target it misses."""
    reasons = []
    limit = f"the {SNAPSHOT_STALE_HOURS:g} h limit"
    if vm["verdict"] == "unknown":
        if vm["plan"] == "skipped":
            return [f"skipped by the last plan: {vm['planReason'] or 'no reason given'}"]
        return [f"no evidence: planned, but no snapshot, verification or drill in {days} days"]
    if vm["snapshot"] == "none":
        reasons.append(f"snapshot: no good snapshot in the last {days} days")
    elif vm["snapshot"] == "stale":
        reasons.append(f"snapshot: last good snapshot {_ago(vm['snapshotAgeHours'])}, over {limit}")
    elif vm["snapshot"] == "partial":
        complete = vm["completeSetAgeHours"]
        reasons.append(
            f"snapshot: the newest set ({_ago(vm['snapshotAgeHours'])}) misses disks and "
            + (
                "no set is complete"
                if complete is None
                else f"the last complete set is {_ago(complete)}"
            )
            + f", against {limit}"
        )
    if vm["rpo"] == "breached":
        reasons.append(
            f"backup: recovery point {_ago(vm['recoveryPointAgeHours'])}, over the RPO target "
            f"of {_span((vm['rpoTargetHours'] or 0) * 3600)}"
        )
    elif vm["rpo"] == "failing":
        reasons.append(f"backup: verification found {vm['finding']}")
    if vm["drill"] == "failed":
        why = f": {vm['drillReason']}" if vm["drillReason"] else ""
        reasons.append(f"drill: the last drill ({vm['lastDrill']}) {vm['drillStatus']}{why}")
    elif vm["drill"] == "over-rto":
        reasons.append(
            f"drill: the last drill ({vm['lastDrill']}) took {_span(vm['rtoSeconds'])}, over "
            f"the RTO target of {_span(vm['rtoTargetSeconds'])}"
        )
    if vm.get("replication", "none") not in ("none", "ok"):
        reasons.append(f"replication: {vm['replicationFinding']}: {vm['replicationReason']}")
    return reasons


def estate_posture(
    vms: Sequence[Mapping[str, Any]], heartbeats: Mapping[str, Any]
) -> tuple[str, list[str]]:
    """The estate's posture, and why when it is not healthy."""
    if not vms and not heartbeats:
        return "unknown", ["no outcome in the workspace for the period read"]
    why = []
    rotation = heartbeats.get("rotation")
    if rotation is None:
        why.append("rotation: no run-start or run-end recorded")
    elif (rotation["ageHours"] or 0) > SNAPSHOT_STALE_HOURS:
        why.append(
            f"rotation: last run {_ago(rotation['ageHours'])}, over the "
            f"{SNAPSHOT_STALE_HOURS:g} h limit"
        )
    risky = [vm["vm"] for vm in vms if vm["atRisk"]]
    if risky:
        why.append(f"{len(risky)} VM(s) at risk: {_first(risky, 5)}")
    unknown = [vm["vm"] for vm in vms if vm["verdict"] == "unknown" and not vm["held"]]
    if unknown:
        why.append(f"{len(unknown)} VM(s) without evidence: {_first(unknown, 5)}")
    return ("at-risk" if why else "healthy"), why


def _first(names: Sequence[str], n: int) -> str:
    return ", ".join(names[:n]) + (f" and {len(names) - n} more" if len(names) > n else "")


def hours(seconds: Any) -> float | None:
    return None if seconds is None else round(float(seconds) / 3600, 1)


def iso(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    return str(value)


# ------------------------------------------------------------------------------- timer


def digest(name: str, rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """A digest's details: how many items, the first 20 (newest first), counts by kind.

    A row that counts several items (a night's lookalike snapshots of one group) adds its Count
    and lists the items it names."""
    items: list[dict[str, Any]] = []
    by_kind: dict[str, int] = {}
    total = 0
    for row in rows:
        listed = _as_list(row.get("Items"))
        count = int(row.get("Count") or 0) if listed else 1
        total += max(count, len(listed))
        kind = str(row.get("Kind") or "") or str(row.get("Reason") or "(no reason)")
        by_kind[kind] = by_kind.get(kind, 0) + max(count, len(listed))
        if listed:
            items.extend({"item": row.get("Item"), **entry} for entry in listed)
        else:
            items.append(
                {
                    "item": row.get("Item"),
                    "vm": row.get("VmName"),
                    "kind": row.get("Kind") or None,
                    "reason": row.get("Reason"),
                    "time": iso(row.get("TimeGenerated")),
                }
            )
    return {
        "digest": name,
        "total": total,
        "items": items[:DIGEST_ITEMS],
        "byKind": dict(sorted(by_kind.items(), key=lambda kv: (-kv[1], kv[0]))[:DIGEST_ITEMS]),
    }


def _as_list(value: Any) -> list[dict[str, Any]]:
    """A dynamic array as the query API (or DuckDB) hands it back: a list, or its JSON text."""
    import json

    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return []
    return (
        [v if isinstance(v, dict) else {"name": v} for v in value]
        if isinstance(value, list)
        else []
    )


def run_posture(
    ctx: Context, occurrence: datetime, *, reader: OutcomeReader | None = None
) -> Result:
    """The posture timer: run-start, a row per VM at risk, the estate row, the digests, run-end."""
    from shared.dispatch import Done

    ctx.out.succeeded("run-start", details={"function": "posture_timer"})
    if reader is None:
        if not ctx.settings.log_analytics_workspace_id:
            ctx.out.feature_off(
                "run-end", "LOG_ANALYTICS_WORKSPACE_ID is not set: no posture is read"
            )
            return Done("posture: off (no workspace)")
        reader = build_reader(ctx.settings)
    tables = read_tables(
        reader, {**evidence_queries(), **DIGEST_QUERIES}, days=DEFAULT_DAYS
    )  # if it raises, dispatch reports run-end failed
    report = assemble(tables.rows, partial=tables.partial)
    # The posture is a finding, not failed work: its rows succeed and say what they found (run
    # summaries, the failures tile and run-failures count failed work only).
    for vm in report["vms"]:
        if not vm["atRisk"]:
            continue
        ctx.out.succeeded(
            "posture-vm",
            "; ".join(vm["reasons"]),
            finding="at-risk",
            severity="warning",
            subscription_id=vm["subscriptionId"],
            resource_group=vm["resourceGroup"],
            resource_id=vm["id"],
            vm_name=vm["vm"],
            policy=vm["policy"],
            details={
                "reasons": vm["reasons"],
                "snapshot": vm["snapshot"],
                "rpo": vm["rpo"],
                "drill": vm["drill"],
            },
        )
    counts = report["counts"]
    ctx.out.succeeded(
        "posture-estate",
        "; ".join(report["postureReasons"]) or None,
        finding=report["posture"],
        severity=None if report["posture"] == "healthy" else "warning",
        count=counts["at-risk"],
        details={
            "posture": report["posture"],
            "counts": counts,
            "vms": len(report["vms"]),
            "partialErrors": report["partialErrors"],
        },
    )
    totals: dict[str, int] = dict(counts)
    for name in DIGEST_QUERIES:
        details = digest(name, tables.rows[name])
        ctx.out.succeeded(f"digest-{name}", count=details["total"], details=details)
        totals[name] = details["total"]
    status = Status.FAILED if tables.partial else Status.SUCCEEDED
    ctx.out.row(
        "run-end",
        status,
        "; ".join(tables.partial) or None,
        count=counts["at-risk"],
        details={"function": "posture_timer", "totals": totals},
    )
    log.info("posture %s: %s, counts %s", ctx.run_id, report["posture"], counts)
    return Done(f"posture {report['posture']}: {counts['at-risk']} VM(s) at risk")


def build_reader(settings: Settings) -> OutcomeReader:
    """The Log Analytics reader for these settings, with Lifeboat's managed identity."""
    from shared.services import build_outcome_reader

    reader: OutcomeReader = build_outcome_reader(settings)
    return reader


TIMERS = {Timer.POSTURE: run_posture}
