"""Every alert rule in infra/alerts, run with duckdb-kql (clock pinned) over recorded outcomes.

Each rule must fire (return at least one row) when it should and stay quiet when it should not.
The table is built from the infra's generated column file, so the rules are checked against the
schema Azure Monitor will have. Fixtures: tests/data/outcomes/ (see its README).
"""

from __future__ import annotations

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
    con = duckdb_kql.connect()
    columns = ", ".join(f'"{c["name"]}" {_SQL[c["type"]]}' for c in COLUMNS)
    con.execute(f"CREATE TABLE LifeboatOutcomes_CL ({columns})")
    rows = [
        [
            json.dumps(r[c["name"]])
            if c["type"] == "dynamic" and r.get(c["name"]) is not None
            else r.get(c["name"])  # recorded before the column existed: null
            for c in COLUMNS
        ]
        for r in records
        if when(r) <= now  # what Azure Monitor holds at `now`: nothing from later
    ]
    if rows:
        marks = ", ".join("?" for _ in COLUMNS)
        con.executemany(f"INSERT INTO LifeboatOutcomes_CL VALUES ({marks})", rows)
    relation = duckdb_kql.query(con, query, query_now=now)
    names = list(relation.columns)
    return [dict(zip(names, row, strict=True)) for row in relation.fetchall()]


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


def test_the_rules_are_the_seven_the_ops_team_gets() -> None:
    assert RULES == [
        "drill-failed",
        "heartbeat-missing",
        "poison-messages",
        "refusals",
        "rpo-breached",
        "run-failures",
        "snapshot-missing",
    ]


@pytest.mark.parametrize("rule", RULES)
def test_on_an_empty_table_only_the_dead_mans_switch_fires(rule: str) -> None:
    rows = run(rule, [], datetime.fromisoformat("2026-11-29T12:00:00+00:00"))
    if rule == "heartbeat-missing":
        assert len(rows) == 1
        assert rows[0]["Heartbeats"] == 0
    else:
        assert rows == []


def test_heartbeat_is_quiet_after_a_night_and_fires_26_hours_after_the_last(
    demo: list[dict[str, Any]],
) -> None:
    last = max(
        when(r)
        for r in demo
        if r["Operation"] in ("run-start", "run-end") and r["Job"] == "rotation"
    )
    assert run("heartbeat-missing", demo, last + timedelta(hours=1)) == []
    assert run("heartbeat-missing", demo, last + timedelta(hours=25)) == []
    fired = run("heartbeat-missing", demo, last + timedelta(hours=26, minutes=5))
    assert [r["Job"] for r in fired] == ["rotation"]
    # Other jobs' heartbeats do not stand in for the rotation's.
    others = [r for r in demo if r["Job"] != "rotation"]
    assert len(run("heartbeat-missing", others, nights(demo)[-1] + timedelta(hours=1))) == 1


def test_run_failures_fire_once_per_failing_run_and_not_for_clean_runs(
    demo: list[dict[str, Any]],
) -> None:
    night = nights(demo)[-1]
    fired = run("run-failures", demo, night + timedelta(hours=3))
    rotation = [r for r in fired if r["Job"] == "rotation"]
    assert len(rotation) == len({r["RunId"] for r in rotation}) >= 1
    assert all(r["Failures"] >= 1 for r in rotation)
    assert any("not found after the create window" in r["Cases"] for r in rotation)
    clean = [r for r in demo if r["Status"] != "failed"]
    assert run("run-failures", clean, night + timedelta(hours=3)) == []
    assert run("run-failures", demo, night + timedelta(hours=27)) == []


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


def test_rpo_breach_fires_for_the_latest_verdicts_only_and_never_for_dry_runs() -> None:
    records = load("verification-drills.jsonl")
    fired = run("rpo-breached", records, VERIFY_AND_DRILL_NOW)
    assert len(fired) == 1
    assert fired[0]["RunId"] == "verification-202611290600"
    assert fired[0]["VmsBreached"] == 2  # vm-db-01 recovered; the dry run does not count
    assert fired[0]["WorstRpoSeconds"] == 50 * 3600
    assert as_list(fired[0]["Worst"])[0].startswith("vm-web-02")
    compliant = [r for r in records if r["Finding"] != "rpo-breached" or r["DryRun"]]
    assert run("rpo-breached", compliant, VERIFY_AND_DRILL_NOW) == []
    yesterday = VERIFY_AND_DRILL_NOW - timedelta(days=1)
    assert [r["RunId"] for r in run("rpo-breached", records, yesterday)] == [
        "verification-202611280600"
    ]


def test_drill_rule_fires_for_a_failed_or_slow_drill_and_not_for_good_or_dry_runs() -> None:
    records = load("verification-drills.jsonl")
    fired = run("drill-failed", records, VERIFY_AND_DRILL_NOW)
    assert len(fired) == 1
    row = fired[0]
    assert (row["RunId"], row["Drills"], row["FailedDrills"], row["OverRtoDrills"]) == (
        "drill-202611290300",
        2,
        2,
        1,
    )
    assert row["WorstRtoSeconds"] == 5400
    # A drill's report delivered twice is the same drill: it counts once.
    again = [r for r in records if r["Operation"] == "drill" and r["VmName"] == "vm-db-01"]
    assert run("drill-failed", records + again, VERIFY_AND_DRILL_NOW) == fired
    good = [r for r in records if r["Status"] == "succeeded" or r["DryRun"]]
    assert run("drill-failed", good, VERIFY_AND_DRILL_NOW) == []
    slow = [
        {**r, "Status": "succeeded"}
        for r in records
        if r["VmName"] == "vm-app-01" and r["Operation"] == "drill"
    ]
    assert [r["OverRtoDrills"] for r in run("drill-failed", slow, VERIFY_AND_DRILL_NOW)] == [1]
    assert run("drill-failed", records, VERIFY_AND_DRILL_NOW + timedelta(hours=27)) == []


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
