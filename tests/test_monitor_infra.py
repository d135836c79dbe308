"""infra/app/monitor.bicep and what it loads: the outcome columns (drift), alerts, workbook.

The Bicep is checked statically: every file it loads exists, every alert rule file is loaded,
and the generated columns match the code's `OUTCOME_COLUMNS` exactly. The drift check is shown
to fail when a column is added on one side only.
"""

from __future__ import annotations

import itertools
import json
import re
from pathlib import Path

import duckdb_kql
import pytest

from cli.outcome_columns import COLUMNS_FILE, drift, render
from shared.model import OUTCOME_COLUMNS, Job, Outcome, Status

ROOT = Path(__file__).resolve().parent.parent
BICEP = ROOT / "infra" / "app" / "monitor.bicep"


def test_infra_columns_are_generated_from_the_code() -> None:
    assert drift() == []
    assert COLUMNS_FILE.read_text() == render()


def test_drift_is_found_when_the_code_gains_a_column() -> None:
    code = (*OUTCOME_COLUMNS, ("Tenant", "string"))
    problems = drift(code, COLUMNS_FILE)
    assert problems == ["column Tenant (string) is in the code but not in outcome-columns.json"]


def test_drift_is_found_when_the_infra_gains_a_column(tmp_path: Path) -> None:
    infra = [*json.loads(COLUMNS_FILE.read_text()), {"name": "Tenant", "type": "string"}]
    path = tmp_path / "outcome-columns.json"
    path.write_text(json.dumps(infra))
    assert drift(OUTCOME_COLUMNS, path) == [
        "column Tenant (string) is in outcome-columns.json but not in the code"
    ]


def test_drift_is_found_when_a_type_changes() -> None:
    code = tuple((n, "string" if n == "Count" else t) for n, t in OUTCOME_COLUMNS)
    assert drift(code, COLUMNS_FILE) == [
        "column Count is string in the code but long in outcome-columns.json"
    ]


def test_records_carry_exactly_the_columns() -> None:
    from datetime import UTC, datetime

    record = Outcome(
        time=datetime(2026, 11, 27, tzinfo=UTC),
        run_id="r",
        job=Job.ROTATION,
        operation="run-start",
        status=Status.SUCCEEDED,
    ).to_record()
    assert list(record) == [name for name, _ in OUTCOME_COLUMNS]


def test_the_bicep_loads_the_columns_every_alert_rule_and_the_workbook() -> None:
    text = BICEP.read_text()
    loaded = re.findall(r"load(?:Json|Text)Content\('([^']+)'\)", text)
    for relative in loaded:
        assert (BICEP.parent / relative).is_file(), relative
    rules = {p.name for p in (ROOT / "infra" / "alerts").glob("*.kql")}
    assert {Path(p).name for p in loaded if p.endswith(".kql")} == rules
    assert "outcome-columns.json" in loaded
    assert "workbook.json" in loaded
    assert "Custom-${tableName}" in text
    assert "var tableName = 'LifeboatOutcomes_CL'" in text
    # Every rule fires on at least one row.
    assert "threshold: 1" in text
    assert "operator: 'GreaterThanOrEqual'" in text
    assert text.count("{") == text.count("}")
    assert text.count("[") == text.count("]")


RULE_SETTINGS = json.loads((ROOT / "infra" / "alerts" / "rules.json").read_text())
RULE_FILES = sorted(p.stem for p in (ROOT / "infra" / "alerts").glob("*.kql"))
# Event-like rules (a thing happened) and condition rules (a state holds until it clears).
EVENTS = {"run-failures", "newly-blocked", "poison-messages", "drill-failed", "refusals"}


def test_every_rule_has_its_settings_and_a_runbook_that_says_what_to_do() -> None:
    assert sorted(RULE_SETTINGS) == RULE_FILES
    for name, rule in RULE_SETTINGS.items():
        runbook = rule["runbook"]
        assert sorted(runbook) == ["check", "run", "what"], name
        assert all(len(text) >= 40 for text in runbook.values()), name
        assert "lifeboat " in runbook["run"], f"{name}: the runbook names no command to run"
        description = f"{runbook['what']} Check: {runbook['check']} Run: {runbook['run']}"
        assert len(description) <= 1024, f"{name}: description of {len(description)} characters"
        assert rule["severity"] in (0, 1, 2, 3, 4)
        assert re.fullmatch(r"P(\d+D)?(T(\d+H)?(\d+M)?)?", rule["window"]), name
        assert rule["frequency"] in ("PT5M", "PT15M", "PT30M", "PT1H"), name


def test_event_rules_are_stateless_and_muted_a_day_and_condition_rules_auto_resolve() -> None:
    assert {n for n, r in RULE_SETTINGS.items() if not r["stateful"]} == EVENTS
    text = BICEP.read_text()
    assert "autoMitigate: ruleSettings[alert.name].stateful" in text
    assert "ruleSettings[alert.name].stateful ? {} : {\n      muteActionsDuration: 'P1D'" in text
    assert "description: '${ruleSettings[alert.name].runbook.what} Check: " in text
    # Dimensions: each rule splits by the columns its settings name, every value included.
    assert "for dimension in ruleSettings[alert.name].dimensions" in text
    assert "operator: 'Include'" in text


def test_rules_split_by_subscription_policy_vault_queue_or_timer_and_by_vm_only_for_drills() -> (
    None
):
    allowed = {"SubscriptionId", "Policy", "Vault", "Job", "Queue", "Type", "Timer", "Vm", "Kind"}
    for name, rule in RULE_SETTINGS.items():
        # posture-at-risk is one alert for the estate; the others split by one or two columns.
        counts = {0} if name == "posture-at-risk" else {1, 2}
        assert len(rule["dimensions"]) in counts, name
        assert set(rule["dimensions"]) <= allowed, name
        assert ("Vm" in rule["dimensions"]) == (name == "drill-failed"), name


@pytest.mark.parametrize("rule", RULE_FILES)
def test_each_rules_dimensions_are_columns_of_its_results(rule: str) -> None:
    """A dimension Azure cannot find among the results' columns would split nothing."""
    from tests.test_alerts import _SQL, COLUMNS

    con = duckdb_kql.connect()
    columns = ", ".join(f'"{c["name"]}" {_SQL[c["type"]]}' for c in COLUMNS)
    con.execute(f"CREATE TABLE LifeboatOutcomes_CL ({columns})")
    query = (ROOT / "infra" / "alerts" / f"{rule}.kql").read_text()
    results = list(duckdb_kql.query(con, query).columns)
    for dimension in RULE_SETTINGS[rule]["dimensions"]:
        assert dimension in results, f"{rule}: dimension {dimension} not in {results}"


def test_the_dead_mans_switch_knows_every_timer_and_its_default_period() -> None:
    """heartbeat-missing.kql's table: one row per timer, its period that of its default schedule."""
    from datetime import UTC, datetime, timedelta

    from shared.names import TIMER_SPECS
    from shared.schedules import next_occurrence

    text = (ROOT / "infra" / "alerts" / "heartbeat-missing.kql").read_text()
    rows = re.findall(r'"([a-z]+)", "([a-z]+)", "([A-Z_]+)", (\d+)([hm]), \d+[hm]', text)
    table = {
        timer: (job, setting, timedelta(minutes=int(n) * (60 if unit == "h" else 1)))
        for timer, job, setting, n, unit in rows
    }
    defaults = dict(
        re.findall(
            r"param (\w+Schedule) string = '([^']+)'",
            ROOT.joinpath("infra", "main.bicep").read_text(),
        )
    )
    assert sorted(table) == sorted(t.value for t in TIMER_SPECS)
    for timer, (setting, _module, job) in TIMER_SPECS.items():
        assert table[timer.value][:2] == (job.value, setting), timer
        schedule = defaults[_bicep_param(setting)]
        times = [next_occurrence(schedule, datetime(2026, 11, 29, tzinfo=UTC))]
        for _ in range(48):
            times.append(next_occurrence(schedule, times[-1]))
        longest = max(b - a for a, b in itertools.pairwise(times))
        assert table[timer.value][2] == longest, (timer, schedule)


def _bicep_param(setting: str) -> str:
    """ROTATION_SCHEDULE -> rotationSchedule (infra/main.bicep's parameter names)."""
    head, *rest = setting.lower().split("_")
    return head + "".join(word.title() for word in rest)


# The workbook's queries run in tests/test_workbook.py.
