"""infra/app/monitor.bicep and what it loads: the outcome columns (drift), alerts, workbook.

The Bicep is checked statically: every file it loads exists, every alert rule file is loaded,
and the generated columns match the code's `OUTCOME_COLUMNS` exactly. The drift check is shown
to fail when a column is added on one side only.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import duckdb_kql
import pytest

from cli.outcome_columns import COLUMNS_FILE, drift, render
from shared.model import OUTCOME_COLUMNS, Job, Outcome, Status
from tests.test_alerts import load, run_query

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


def test_every_workbook_query_runs() -> None:
    workbook = json.loads((ROOT / "infra" / "app" / "workbook.json").read_text())
    queries = [i["content"]["query"] for i in workbook["items"] if i["type"] == 3]
    assert len(queries) >= 5
    records = load("demo-nights.jsonl") + load("verification-drills.jsonl")
    for query in queries:
        try:
            run_query(query, records)
        except duckdb_kql.KqlError as e:  # pragma: no cover - the message is the point
            pytest.fail(f"workbook query does not run: {e}\n{query}")
