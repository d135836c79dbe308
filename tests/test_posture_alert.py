"""infra/alerts/posture-at-risk.kql with duckdb-kql (the harness of test_alerts.py): it fires when
the latest posture-estate row counts more VMs at risk than the one before, and only then."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.test_alerts import as_list, run

NOW = datetime(2026, 11, 28, 7, 0, tzinfo=UTC)
RULE = "posture-at-risk"


def estate(hours_ago: float, at_risk: int, run: str) -> dict[str, Any]:
    return {
        "TimeGenerated": (NOW - timedelta(hours=hours_ago)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "RunId": run,
        "Job": "posture",
        "Operation": "posture-estate",
        "Status": "succeeded",
        "Finding": "at-risk" if at_risk else "healthy",
        "Count": at_risk,
        "Reason": f"{at_risk} VM(s) at risk" if at_risk else None,
        "DryRun": False,
        "Details": {"counts": {"at-risk": at_risk}},
    }


def vm(hours_ago: float, name: str, run: str) -> dict[str, Any]:
    return {
        **estate(hours_ago, 1, run),
        "Operation": "posture-vm",
        "VmName": name,
        "Count": None,
        "Reason": "snapshot: stale",
    }


YESTERDAY, TODAY = "posture-202611270630", "posture-202611280630"


@pytest.mark.parametrize(
    ("before", "now", "fires"),
    [
        (1, 3, True),  # rose
        (3, 3, False),  # the same VMs (or as many) still at risk: the alert stays as it was
        (3, 1, False),  # better
        (None, 2, True),  # the first estate row counts from 0
        (None, 0, False),
        (0, 0, False),
    ],
)
def test_fires_only_when_the_at_risk_count_rises(before: int | None, now: int, fires: bool) -> None:
    rows = [estate(0.5, now, TODAY)]
    if before is not None:
        rows.append(estate(24.5, before, YESTERDAY))

    result = run(RULE, rows, NOW)

    assert bool(result) is fires
    if fires:
        [alert] = result
        assert (alert["AtRisk"], alert["AtRiskBefore"]) == (now, before or 0)
        assert alert["RunId"] == TODAY
        assert "lifeboat status --at-risk" in alert["Problem"]


def test_names_the_vms_of_the_latest_run_and_counts_a_repeated_report_once() -> None:
    rows = [
        estate(24.5, 1, YESTERDAY),
        vm(24.5, "vm-old", YESTERDAY),
        estate(0.5, 2, TODAY),
        estate(0.4, 2, TODAY),  # the same run reported again (outcomes-retry)
        vm(0.5, "vm-a", TODAY),
        vm(0.5, "vm-b", TODAY),
    ]

    [alert] = run(RULE, rows, NOW)

    assert (alert["AtRisk"], alert["AtRiskBefore"], alert["Rise"]) == (2, 1, 1)
    assert sorted(as_list(alert["VmsAtRisk"])) == ["vm-a", "vm-b"]


def test_compares_with_the_row_before_not_with_an_older_one_and_forgets_beyond_two_days() -> None:
    older = estate(48.5, 5, "posture-202611260630")
    assert run(RULE, [older, estate(24.5, 3, YESTERDAY), estate(0.5, 4, TODAY)], NOW)
    assert not run(RULE, [estate(60, 0, "posture-old"), estate(0.5, 0, TODAY)], NOW)
    # Yesterday's rise, with no row since: still firing until the next estate row.
    assert run(RULE, [older, estate(24.5, 7, YESTERDAY)], NOW)
    # Two days of silence: nothing to compare (the heartbeat alert covers a timer that stopped).
    assert not run(RULE, [estate(51, 4, YESTERDAY)], NOW)
