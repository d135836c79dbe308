"""`lifeboat alerts` against the stand-in's Azure Monitor: the deployed rules, run as Azure Monitor
runs them, one alert per combination of dimensions, each with its runbook; exit codes."""

from __future__ import annotations

import json
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from cli.alerts_cmd import Rule, fired, load_rules
from cli.exits import Exit
from cli.main import app
from emulator.process import Endpoints
from tests.test_cli_status import estate

__all__ = ["estate"]  # the stand-in whose workspace holds test_cli_status's rows


@pytest.fixture
def alerts(estate: Endpoints, monkeypatch: pytest.MonkeyPatch) -> Any:
    for name in ("IDENTITY_ENDPOINT", "IDENTITY_HEADER", "REQUESTS_CA_BUNDLE"):
        monkeypatch.setenv(name, "")  # restored after the test: the command sets them

    def run(*args: str) -> Result:
        return CliRunner().invoke(app, ["alerts", "--emulator-endpoints", estate.path, *args])

    return run


def test_firing_rules_name_their_dimension_and_say_what_to_do(alerts: Any) -> None:
    result = alerts("--rule", "drill-failed", "--rule", "heartbeat-missing", "--json")

    assert result.exit_code == Exit.FOUND_PROBLEMS, result.output
    document = json.loads(result.stdout)
    by_rule = {a["rule"]: a for a in document["alerts"]}
    assert {a["rule"] for a in document["alerts"]} == {"drill-failed", "heartbeat-missing"}
    assert "vm-bad" in json.dumps(by_rule["drill-failed"]["rows"])
    assert "vm-good" not in json.dumps(document["alerts"])
    # No row carries a timer's run id: each timer's dead man's switch is an alert of its own.
    beats = [a["dimensions"] for a in document["alerts"] if a["rule"] == "heartbeat-missing"]
    assert {b["Timer"] for b in beats} >= {"rotation", "verification", "drill", "sweep", "poison"}
    assert len(beats) == len({b["Timer"] for b in beats})
    assert all("lifeboat " in document["runbooks"][r]["run"] for r in by_rule)

    text = alerts("--rule", "drill-failed")
    assert text.exit_code == Exit.FOUND_PROBLEMS
    assert "drill-failed" in text.stdout
    assert "run: lifeboat " in text.stdout


def test_a_rule_that_does_not_fire_exits_0(alerts: Any) -> None:
    result = alerts("--rule", "poison-messages")

    assert result.exit_code == Exit.OK, result.output
    assert "No alert fires (1 rules run)." in result.stdout


def test_an_unknown_rule_is_a_usage_error_naming_the_rules() -> None:
    result = CliRunner().invoke(app, ["alerts", "--rule", "drill-fialed"])

    assert result.exit_code == Exit.USAGE
    assert "no rule drill-fialed; rules: " in result.stderr
    assert "drill-failed" in result.stderr


def test_one_alert_per_combination_of_dimensions() -> None:
    rule = Rule("r", "", 2, ("SubscriptionId", "Policy"), False, {"run": "lifeboat status"})
    rows = [
        {"SubscriptionId": "s1", "Policy": "daily", "Vm": "a"},
        {"SubscriptionId": "s1", "Policy": "daily", "Vm": "b"},
        {"SubscriptionId": "s1", "Policy": "weekly", "Vm": "c"},
    ]

    alerts = fired(rule, rows)

    assert [(a["dimensions"], len(a["rows"])) for a in alerts] == [
        ({"SubscriptionId": "s1", "Policy": "daily"}, 2),
        ({"SubscriptionId": "s1", "Policy": "weekly"}, 1),
    ]


def test_every_deployed_rule_loads_with_its_query_and_runbook() -> None:
    rules = load_rules()

    assert len(rules) >= 9
    for rule in rules:
        assert "LifeboatOutcomes_CL" in rule.query, rule.name
        assert set(rule.runbook) >= {"what", "check", "run"}, rule.name
