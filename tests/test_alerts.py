"""Every alert rule in infra/alerts, run with duckdb-kql (clock pinned) over recorded outcomes.

Each rule must fire (return at least one row) when it should and stay quiet when it should not.
The table is built from the infra's generated column file, so the rules are checked against the
schema Azure Monitor will have. Fixtures: tests/data/outcomes/ (see its README).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb_kql
import pytest

ROOT = Path(__file__).resolve().parent.parent
ALERTS = ROOT / "infra" / "alerts"
OUTCOMES = ROOT / "tests" / "data" / "outcomes"
COLUMNS = json.loads((ROOT / "infra" / "app" / "outcome-columns.json").read_text())
_SQL = {
    "datetime": "TIMESTAMPTZ",
    "string": "VARCHAR",
    "long": "BIGINT",
    "boolean": "BOOLEAN",
    "dynamic": "JSON",
}
RULES = sorted(p.stem for p in ALERTS.glob("*.kql"))


def load(name: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (OUTCOMES / name).read_text().splitlines() if line]


def when(record: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(record["TimeGenerated"].replace("Z", "+00:00"))


def run(rule: str, records: Iterable[dict[str, Any]], now: datetime) -> list[dict[str, Any]]:
    return run_query((ALERTS / f"{rule}.kql").read_text(), records, now)


def run_query(
    query: str, records: Iterable[dict[str, Any]], now: datetime | None = None
) -> list[dict[str, Any]]:
    """Run KQL over outcome records as Azure Monitor holds them at `now` (default: the last)."""
    records = list(records)
    if now is None:
        now = max((when(r) for r in records), default=datetime.fromisoformat("2026-11-29T00:00Z"))
    con = _connection(records)
    # What Azure Monitor holds at `now`: nothing from later.
    con.execute(
        "CREATE OR REPLACE TABLE LifeboatOutcomes_CL AS "
        "SELECT * FROM recorded WHERE TimeGenerated <= ?",
        [now],
    )
    relation = duckdb_kql.query(con, query, query_now=now)
    names = list(relation.columns)
    return [dict(zip(names, row, strict=True)) for row in relation.fetchall()]


_CONNECTIONS: dict[str, Any] = {}


def _connection(records: list[dict[str, Any]]) -> Any:
    """A DuckDB connection holding `records` as the table `recorded` (made once per record set)."""
    key = hashlib.sha256(json.dumps(records, sort_keys=True, default=str).encode()).hexdigest()
    if key in _CONNECTIONS:
        return _CONNECTIONS[key]
    if len(_CONNECTIONS) > 64:
        _CONNECTIONS.clear()
    con = duckdb_kql.connect()
    columns = ", ".join(f'"{c["name"]}" {_SQL[c["type"]]}' for c in COLUMNS)
    con.execute(f"CREATE TABLE recorded ({columns})")
    rows = [
        [
            json.dumps(r[c["name"]])
            if c["type"] == "dynamic" and r.get(c["name"]) is not None
            else r.get(c["name"])  # recorded before the column existed: null
            for c in COLUMNS
        ]
        for r in records
    ]
    if rows:
        marks = ", ".join("?" for _ in COLUMNS)
        con.executemany(f"INSERT INTO recorded VALUES ({marks})", rows)
    _CONNECTIONS[key] = con
    return con


@pytest.fixture(scope="module")
def demo() -> list[dict[str, Any]]:
    return load("demo-nights.jsonl")


def as_list(value: Any) -> list[Any]:
    """A dynamic array as DuckDB hands it back (JSON text or a list)."""
    return list(json.loads(value) if isinstance(value, str) else value)


def nights(records: list[dict[str, Any]]) -> list[datetime]:
    """The rotation nights of a fixture: the times of its run-start heartbeats."""
    return sorted(
        when(r) for r in records if r["Job"] == "rotation" and r["Operation"] == "run-start"
    )


# Rules other engineers add (registered in monitor.bicep when they land); the rest are these.
OTHERS = {"tag-mistakes", "posture-at-risk", "replication"}


def test_the_rules_are_the_ones_the_ops_team_gets() -> None:
    assert sorted(set(RULES) - OTHERS) == [
        "drill-failed",
        "heartbeat-missing",
        "newly-blocked",
        "poison-messages",
        "refusals",
        "rpo-breached",
        "run-failures",
        "snapshot-missing",
    ]


TIMERS = ["drill", "poison", "posture", "rotation", "sweep", "verification"]


@pytest.mark.parametrize("rule", RULES)
def test_on_an_empty_table_only_the_dead_mans_switch_fires(rule: str) -> None:
    rows = run(rule, [], datetime.fromisoformat("2026-11-29T12:00:00+00:00"))
    if rule == "heartbeat-missing":
        assert sorted(r["Timer"] for r in rows) == TIMERS  # one alert per timer
        assert {r["Heartbeats"] for r in rows} == {0}
    else:
        assert rows == []


def everything() -> list[dict[str, Any]]:
    return load("demo-nights.jsonl") + load("verification-drills.jsonl") + load("refusals.jsonl")


def firing_moment(rule: str, records: list[dict[str, Any]]) -> datetime:
    """A time at which `rule` fires on the fixtures (the check below proves it does)."""
    night = nights(records)
    return {
        "run-failures": night[-1] + timedelta(hours=3),
        "snapshot-missing": night[-1] + timedelta(hours=3),
        "newly-blocked": night[0] + timedelta(hours=3),
        "heartbeat-missing": night[0] + timedelta(hours=3),
        "poison-messages": min(
            when(r) for r in records if r["Operation"] == "poison" and r["Status"] == "failed"
        )
        + timedelta(minutes=10),
        "rpo-breached": VERIFY_AND_DRILL_NOW,
        "drill-failed": VERIFY_AND_DRILL_NOW,
        "refusals": REFUSALS_NOW,
    }[rule]


@pytest.mark.parametrize("rule", sorted(set(RULES) - OTHERS))
def test_a_row_delivered_twice_never_doubles_a_count(rule: str) -> None:
    """Each rule where it fires: every row delivered twice gives what every row once gives."""
    records = everything()
    twice = [r for record in records for r in (record, dict(record))]
    now = firing_moment(rule, records)
    once = run(rule, records, now)
    assert once, f"{rule} does not fire at {now}: the check would prove nothing"
    assert unordered(run(rule, twice, now)) == unordered(once)


def unordered(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows in a fixed order, each set-valued column sorted: neither a query without
    `order by` nor `make_set` promises an order (a set may come back as a JSON text)."""

    def settled(value: Any) -> Any:
        if isinstance(value, str) and value.startswith("["):
            try:
                value = json.loads(value)
            except ValueError:
                return value
        return sorted(value, key=str) if isinstance(value, list) else value

    tidy = [{k: settled(v) for k, v in r.items()} for r in rows]
    return sorted(tidy, key=lambda r: json.dumps(r, sort_keys=True, default=str))


def test_heartbeat_fires_per_timer_only_for_the_timer_that_stopped(
    demo: list[dict[str, Any]],
) -> None:
    beats = [r for r in demo if r["Operation"] in ("run-start", "run-end")]
    last = {
        timer: max(when(r) for r in beats if r["RunId"].startswith(f"{timer}-"))
        for timer in ("rotation", "drill", "poison", "sweep")
    }
    night = nights(demo)[-1]
    # Verification ran once, the first morning (06:00): a day and a grace later it is overdue.
    fired = [r["Timer"] for r in run("heartbeat-missing", demo, night + timedelta(minutes=30))]
    assert not {"rotation", "verification", "drill"} & set(fired)
    later = last["poison"] + timedelta(minutes=46)
    assert "poison" in [r["Timer"] for r in run("heartbeat-missing", demo, later)]
    # The rotation's dead man's switch: quiet for 26 hours, then an alert for rotation.
    others = [r for r in demo if not r["RunId"].startswith("rotation-")]
    assert "rotation" in [r["Timer"] for r in run("heartbeat-missing", others, night)]
    assert "rotation" not in [
        r["Timer"] for r in run("heartbeat-missing", demo, last["rotation"] + timedelta(hours=25))
    ]
    late = last["rotation"] + timedelta(hours=26, minutes=5)
    assert "rotation" in [r["Timer"] for r in run("heartbeat-missing", demo, late)]


def test_heartbeat_resolves_at_the_next_heartbeat() -> None:
    now = datetime.fromisoformat("2026-11-29T12:00:00+00:00")
    beats = [
        record(Job=job, Operation="run-start", RunId=f"{timer}-202611291145", at=now - d)
        for timer, job, d in [
            ("rotation", "rotation", timedelta(hours=10)),
            ("verification", "verification", timedelta(hours=6)),
            ("drill", "drill", timedelta(hours=8)),
            ("sweep", "drill", timedelta(minutes=20)),
            ("poison", "maintenance", timedelta(minutes=50)),
            ("posture", "posture", timedelta(hours=5)),
        ]
    ]
    assert [r["Timer"] for r in run("heartbeat-missing", beats, now)] == ["poison"]
    beats.append(record(Job="maintenance", Operation="run-end", RunId="poison-1", at=now))
    assert run("heartbeat-missing", beats, now + timedelta(minutes=1)) == []
    # Another job's heartbeat never stands in for a timer's.
    odd = [record(Job="rotation", Operation="run-start", RunId="poison-2", at=now)]
    assert "poison" in [r["Timer"] for r in run("heartbeat-missing", odd, now)]


SUB_A = "6f1c3a52-7d2e-4b8a-9c41-3e5d2a7b9f10"
SUB_B = "0b7e2d41-5a3c-4f9e-8d21-6c4a9e3b7f52"


def vm_id(name: str, sub: str = SUB_A, group: str = "rg-app") -> str:
    kind = "Microsoft.Compute/virtualMachines"
    return f"/subscriptions/{sub}/resourceGroups/{group}/providers/{kind}/{name}"


def disk_id(name: str, sub: str = SUB_A, group: str = "rg-app") -> str:
    return f"/subscriptions/{sub}/resourceGroups/{group}/providers/Microsoft.Compute/disks/{name}"


def record(*, at: datetime, vm: str | None = None, **values: Any) -> dict[str, Any]:
    """One outcome record as `Outcome.to_record()` makes it (keys, ids and all)."""
    from shared.model import Outcome

    fields = {
        "run_id": values.pop("RunId", "rotation-202611290200"),
        "job": values.pop("Job", "rotation"),
        "operation": values.pop("Operation"),
        "status": values.pop("Status", "succeeded"),
    }
    names = {
        "Finding": "finding",
        "SubscriptionId": "subscription_id",
        "ResourceId": "resource_id",
        "VmName": "vm_name",
        "Policy": "policy",
        "Reason": "reason",
        "Details": "details",
        "RpoSeconds": "rpo_seconds",
        "RtoSeconds": "rto_seconds",
        "Count": "count",
        "DryRun": "dry_run",
        "OutcomeId": "id",
    }
    for column, value in values.items():
        fields[names[column]] = value
    if vm is not None:
        fields.setdefault("vm_name", vm.rsplit("/", 1)[-1])
        fields.setdefault("subscription_id", vm.split("/")[2].lower())
        fields["vm_key"] = vm
    fields.setdefault("id", f"{fields['run_id']}|{fields['operation']}|{fields.get('resource_id')}")
    return Outcome(time=at, **fields).to_record()


def test_run_failures_fire_per_subscription_and_job_with_the_20_worst_and_a_total() -> None:
    now = datetime.fromisoformat("2026-11-29T03:00:00+00:00")
    rows = []
    for i in range(25):  # 25 VMs failing in subscription A, vm-00 failing most
        vm = vm_id(f"vm-{i:02}")
        for k in range(3 if i == 0 else 1):
            rows.append(
                record(
                    Operation="snapshot-create",
                    Status="failed",
                    vm=vm,
                    ResourceId=disk_id(f"disk-{i:02}-{k}"),
                    Reason="InternalError",
                    at=now - timedelta(hours=1),
                )
            )
    rows.append(
        record(
            Operation="verify-vm",
            Status="failed",
            Job="verification",
            RunId="verification-202611290600",
            vm=vm_id("vm-x", SUB_B),
            ResourceId=vm_id("vm-x", SUB_B),
            Reason="no recovery point",
            at=now - timedelta(hours=2),
        )
    )
    fired = {(r["SubscriptionId"], r["Job"]): r for r in run("run-failures", rows, now)}
    assert sorted(fired) == sorted([(SUB_A, "rotation"), (SUB_B, "verification")])
    a = fired[(SUB_A, "rotation")]
    assert (a["Failures"], a["Resources"]) == (27, 25)
    worst = as_list(a["Worst"])
    assert len(worst) == 20
    assert worst[0] == "vm-00 (3)"
    assert fired[(SUB_B, "verification")]["Failures"] == 1
    # Event-like: the failures age out of the window and the rule goes quiet.
    assert run("run-failures", rows, now + timedelta(hours=26)) == []


def test_run_failures_stay_quiet_for_clean_runs(demo: list[dict[str, Any]]) -> None:
    night = nights(demo)[-1]
    clean = [r for r in demo if r["Status"] != "failed"]
    assert run("run-failures", clean, night + timedelta(hours=3)) == []
    fired = run("run-failures", demo, night + timedelta(hours=3))
    assert fired
    assert all(r["Failures"] >= 1 for r in fired)
    assert len(fired) == len({(r["SubscriptionId"], r["Job"]) for r in fired})


def test_snapshot_missing_fires_for_a_vm_whose_set_is_never_complete(
    demo: list[dict[str, Any]],
) -> None:
    night = nights(demo)[-1]
    fired = run("snapshot-missing", demo, night + timedelta(hours=3))
    assert len(fired) == 1, "one alert row per run, not per VM"
    # vm-db-02 has a disk under a deny assignment: its snapshot is refused every night.
    assert as_list(fired[0]["Vms"]) == ["vm-db-02"]
    assert fired[0]["VmsWithoutSnapshots"] == 1


def test_snapshot_missing_stays_quiet_when_every_set_is_complete_or_in_a_dry_run(
    demo: list[dict[str, Any]],
) -> None:
    night = nights(demo)[-1]
    healthy = [r for r in demo if r["VmName"] != "vm-db-02"]
    assert run("snapshot-missing", healthy, night + timedelta(hours=3)) == []
    dry = [{**r, "DryRun": True} for r in demo]
    assert run("snapshot-missing", dry, night + timedelta(hours=3)) == []
    # Tonight's plan is not yet two hours old: no verdict on tonight alone.
    first = nights(demo)[0]
    assert run("snapshot-missing", healthy, first + timedelta(minutes=30)) == []


def test_snapshot_missing_fires_26_hours_after_a_vms_last_complete_set(
    demo: list[dict[str, Any]],
) -> None:
    first, second = nights(demo)[:2]
    # vm-web-01's snapshots of the second night never came.
    lost = [
        r
        for r in demo
        if r["VmName"] != "vm-db-02"
        and not (
            r["VmName"] == "vm-web-01" and r["Operation"] == "snapshot-create" and when(r) >= second
        )
    ]
    last_set = max(
        when(r)
        for r in lost
        if r["VmName"] == "vm-web-01"
        and r["Operation"] == "snapshot-create"
        and r["Status"] == "succeeded"
    )
    assert first <= last_set < second
    assert run("snapshot-missing", lost, last_set + timedelta(hours=25)) == []
    fired = run("snapshot-missing", lost, last_set + timedelta(hours=26, minutes=5))
    assert [as_list(r["Vms"]) for r in fired] == [["vm-web-01"]]


def test_poison_messages_fire_while_fresh_and_then_go_quiet(demo: list[dict[str, Any]]) -> None:
    poisoned = [when(r) for r in demo if r["Operation"] == "poison"]
    assert poisoned, "the demo poisons two messages"
    fired = run("poison-messages", demo, max(poisoned) + timedelta(minutes=10))
    assert [r["Queue"] for r in fired] == ["onboarding"]
    assert fired[0]["Drained"] == 2
    assert run("poison-messages", demo, max(poisoned) + timedelta(hours=2)) == []
    assert (
        run(
            "poison-messages",
            [r for r in demo if r["Operation"] != "poison"],
            max(poisoned) + timedelta(minutes=10),
        )
        == []
    )


VERIFY_AND_DRILL_NOW = datetime.fromisoformat("2026-11-29T07:00:00+00:00")


def test_rpo_breach_fires_per_vault_for_the_latest_verdicts_only_and_never_for_dry_runs() -> None:
    records = load("verification-drills.jsonl")
    fired = run("rpo-breached", records, VERIFY_AND_DRILL_NOW)
    assert [(r["SubscriptionId"], r["Vault"]) for r in fired] == [(SUB_A, "rsv-prod-weu")]
    assert fired[0]["RunId"] == "verification-202611290600"
    assert fired[0]["VmsBreached"] == 2  # vm-db-01 recovered; the dry run does not count
    assert fired[0]["WorstRpoSeconds"] == 50 * 3600
    assert as_list(fired[0]["Worst"])[0].startswith("vm-web-02")
    # A breach under a second vault is a second alert; the first vault's is unchanged.
    other = [
        {**r, "Details": {**r["Details"], "vault": "RSV-DR-NEU"}}
        for r in records
        if r["VmName"] == "vm-web-02" and r["Operation"] == "verify-vm"
    ]
    moved = [r for r in records if r["VmName"] != "vm-web-02"] + other
    by_vault = {
        r["Vault"]: r["VmsBreached"] for r in run("rpo-breached", moved, VERIFY_AND_DRILL_NOW)
    }
    assert by_vault == {"rsv-prod-weu": 1, "rsv-dr-neu": 1}
    # It resolves: once the latest verdicts are compliant, or only a dry run breaches.
    compliant = [r for r in records if r["Finding"] != "rpo-breached" or r["DryRun"]]
    assert run("rpo-breached", compliant, VERIFY_AND_DRILL_NOW) == []


def test_drill_failed_fires_once_per_vm_for_a_failed_or_slow_drill() -> None:
    records = load("verification-drills.jsonl")
    fired = {r["VmName"]: r for r in run("drill-failed", records, VERIFY_AND_DRILL_NOW)}
    assert sorted(fired) == ["vm-app-01", "vm-db-01"]  # one alert per VM (dimension Vm)
    assert {r["Vm"] for r in fired.values()} == {
        r["VmKey"] for r in records if r["VmName"] in fired
    }
    app = fired["vm-app-01"]
    assert (app["FailedDrills"], app["OverRtoDrills"], app["WorstRtoSeconds"]) == (1, 1, 5400)
    # A second failed drill of the same VM that day is the same alert, not another one.
    again = [
        {
            **r,
            "Details": {**r["Details"], "drillId": "lbd-dbbbbbbbbb"},
            "OutcomeId": "again",
            "TimeGenerated": "2026-11-29T05:00:00Z",
        }
        for r in records
        if r["Operation"] == "drill" and r["VmName"] == "vm-db-01" and not r["DryRun"]
    ]
    twice = {r["VmName"]: r for r in run("drill-failed", records + again, VERIFY_AND_DRILL_NOW)}
    assert sorted(twice) == ["vm-app-01", "vm-db-01"]
    assert twice["vm-db-01"]["Drills"] == 2
    good = [r for r in records if r["Status"] == "succeeded" or r["DryRun"]]
    assert run("drill-failed", good, VERIFY_AND_DRILL_NOW) == []
    assert run("drill-failed", records, VERIFY_AND_DRILL_NOW + timedelta(hours=27)) == []


def test_newly_blocked_fires_on_the_first_night_a_disk_is_blocked_only(
    demo: list[dict[str, Any]],
) -> None:
    first, second = nights(demo)[:2]
    # vm-db-02's disk is under a deny assignment: blocked both nights, alerted after the first.
    [fired] = run("newly-blocked", demo, first + timedelta(hours=3))
    assert (fired["SubscriptionId"], fired["Policy"], fired["Blocked"], fired["Disks"]) == (
        SUB_A,
        "daily",
        1,
        1,
    )
    assert as_list(fired["First"])[0].startswith("vm-db-02 snapshot-create: LinkedAuthorization")
    assert run("newly-blocked", demo, second + timedelta(hours=3)) == []
    # Another disk blocked for the first time on the second night alerts then.
    web = [
        r
        for r in demo
        if r["VmName"] == "vm-web-01"
        and r["Operation"] == "snapshot-create"
        and when(r) >= second
        and r["DiskKey"]
    ]
    assert web, "vm-web-01 took snapshots the second night"
    locked = [
        {**r, "Status": "blocked", "Reason": "ScopeLocked: the disk's group has a lock"}
        if r in web
        else r
        for r in demo
    ]
    [fired] = run("newly-blocked", locked, second + timedelta(hours=3))
    assert fired["Blocked"] == len(web)
    assert all(line.startswith("vm-web-01") for line in as_list(fired["First"]))


def test_rotation_rules_stay_quiet_on_verification_and_drill_outcomes() -> None:
    records = load("verification-drills.jsonl")
    assert run("snapshot-missing", records, VERIFY_AND_DRILL_NOW) == []
    assert run("poison-messages", records, VERIFY_AND_DRILL_NOW) == []


def test_a_refused_message_fires_the_refusal_rule_and_then_goes_quiet() -> None:
    """Rows made by the real dispatch: an unsigned prune and an altered one."""
    from shared import dispatch
    from shared.names import Queue
    from shared.settings import Settings
    from tests.conftest import base_settings
    from tests.fakes import FixedClock, MemoryQueues, MemoryReporter, runtime

    now = datetime.fromisoformat("2026-11-29T12:00:00+00:00")
    reporter = MemoryReporter()
    rt = runtime(Settings.from_env(base_settings()), FixedClock(now), reporter, MemoryQueues())
    unsigned = json.dumps({"type": "rotation-prune", "version": 2, "payload": {}})
    for message_id in ("m-1", "m-2"):
        dispatch.deliver(rt, Queue.ROTATION_PRUNE, unsigned, message_id=message_id)
    records = [o.to_record() for o in reporter.outcomes]
    assert [r["Status"] for r in records] == ["refused", "refused"]
    [fired] = run("refusals", records, now + timedelta(minutes=5))
    assert (fired["Queue"], fired["Type"], fired["Refusals"]) == (
        "rotation-prune",
        "rotation-prune",
        2,
    )
    assert sorted(as_list(fired["MessageIds"])) == ["m-1", "m-2"]
    assert "unsigned" in as_list(fired["Reasons"])[0]
    assert run("refusals", records, now + timedelta(hours=2)) == []
    quiet = [r for r in load("demo-nights.jsonl") if r["Status"] != "refused"]
    assert run("refusals", quiet, max(when(r) for r in quiet)) == []


REFUSALS_NOW = datetime.fromisoformat("2026-11-29T12:20:00+00:00")


def test_refusals_fire_per_queue_and_type_counting_a_repeated_report_once() -> None:
    """Hand-written rows (refusals.jsonl): refused prunes, an altered drill step, an odd event."""
    records = load("refusals.jsonl")
    fired = {(r["Queue"], r["Type"]): r for r in run("refusals", records, REFUSALS_NOW)}
    assert sorted(fired) == [
        ("drill-step", "drill-step"),
        ("rotation-prune", "rotation-prune"),
        ("vm-event", "Microsoft.Resources.ResourceWriteSuccess"),
    ]
    prunes = fired[("rotation-prune", "rotation-prune")]
    # Three messages; the unsigned one was reported twice (same OutcomeId) and drained later
    # (a failed poison row): neither counts again.
    assert prunes["Refusals"] == 3
    assert len(as_list(prunes["MessageIds"])) == 3
    assert any(r.startswith("unsigned") for r in as_list(prunes["Reasons"]))
    event = fired[("vm-event", "Microsoft.Resources.ResourceWriteSuccess")]
    assert as_list(event["MessageIds"]) == ["3f0c9a7e-2b5d-4e81-9a6c-7d1e4b2f8c93"]
    assert "is not a VM id" in as_list(event["Reasons"])[0]
    # The rotation-vm refusal at 10:40 is older than the hour.
    assert ("rotation-vm", "rotation-vm") not in fired
    earlier = datetime.fromisoformat("2026-11-29T11:00:00+00:00")
    assert [r["Queue"] for r in run("refusals", records, earlier)] == ["rotation-vm"]


def test_refusals_stay_quiet_without_refused_rows_and_an_hour_later() -> None:
    records = load("refusals.jsonl")
    others = [r for r in records if r["Status"] != "refused"]
    assert others, "the fixture has a drained poison row and a skipped event"
    assert run("refusals", others, REFUSALS_NOW) == []
    assert run("refusals", records, REFUSALS_NOW + timedelta(hours=1)) == []
    assert run("refusals", load("verification-drills.jsonl"), VERIFY_AND_DRILL_NOW) == []
