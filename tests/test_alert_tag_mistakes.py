"""infra/alerts/tag-mistakes.kql over outcome rows, with the duckdb-kql harness of the other rules:
one alert per subscription and kind of mistake, from each VM's latest plan row; quiet once the
tag is fixed, for tags that are fine, and a day and more after the last plan."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from tests.test_alerts import as_list, run

NIGHT = datetime.fromisoformat("2026-11-27T02:00:00+00:00")
SUB_A = "6f1c3a52-7d2e-4b8a-9c41-3e5d2a7b9f10"
SUB_B = "00000000-0000-0000-0000-000000000001"


def plan_row(
    vm: str,
    status: str,
    reason: str | None = None,
    skip: str | None = None,
    *,
    at: datetime = NIGHT,
    sub: str = SUB_A,
) -> dict[str, Any]:
    resource = (
        f"/subscriptions/{sub}/resourceGroups/rg-app/providers/Microsoft.Compute/"
        f"virtualMachines/{vm}"
    )
    return {
        "TimeGenerated": at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "RunId": "rotation-" + at.strftime("%Y%m%d%H%M"),
        "Job": "rotation",
        "Operation": "plan-vm",
        "Status": status,
        "SubscriptionId": sub,
        "ResourceId": resource,
        "VmName": vm,
        "Reason": reason,
        "Details": {"skip": skip} if skip else {"slot": at.strftime("%Y%m%d%H%M")},
        "DryRun": False,
        "OutcomeId": f"{vm}-{status}-{at.isoformat()}",
        "VmKey": resource.lower(),
    }


TYPO = 'tag "lifebaot:policy" looks like "lifeboat:policy"'
UNKNOWN = "unknown policy gold-plus; known: daily, weekly"


def night_rows(at: datetime = NIGHT) -> list[dict[str, Any]]:
    return [
        plan_row("vm-typo", "skipped", TYPO, "tag-typo", at=at),
        plan_row("vm-typo-2", "skipped", TYPO, "tag-typo", at=at),
        plan_row("vm-gold", "skipped", UNKNOWN, "unknown-policy", at=at),
        plan_row("vm-other-sub", "skipped", TYPO, "tag-typo", at=at, sub=SUB_B),
        plan_row("vm-ok", "planned", at=at),
        plan_row("vm-none", "skipped", "opted out (lifeboat:policy=none)", at=at),
    ]


def test_one_alert_per_subscription_and_kind_naming_the_vms() -> None:
    rows = night_rows()
    fired = run("tag-mistakes", [*rows, *rows], NIGHT + timedelta(minutes=10))  # sent twice
    got = {(r["SubscriptionId"], r["Kind"]): r for r in fired}
    assert set(got) == {(SUB_A, "tag-typo"), (SUB_A, "unknown-policy"), (SUB_B, "tag-typo")}
    typo = got[SUB_A, "tag-typo"]
    assert typo["VmsSkipped"] == 2  # each VM once, though the rows came twice
    assert as_list(typo["Vms"]) == ["vm-typo", "vm-typo-2"]
    assert as_list(got[SUB_A, "unknown-policy"]["Cases"]) == [f"vm-gold: {UNKNOWN}"]


def test_quiet_once_the_tag_is_fixed_and_a_day_after_the_last_plan() -> None:
    first = night_rows()
    second_night = NIGHT + timedelta(days=1)
    fixed = [
        plan_row("vm-typo", "planned", at=second_night),
        plan_row("vm-typo-2", "planned", at=second_night),
        plan_row("vm-gold", "planned", at=second_night),
        plan_row("vm-other-sub", "planned", at=second_night, sub=SUB_B),
    ]
    assert run("tag-mistakes", [*first, *fixed], second_night + timedelta(minutes=10)) == []
    assert run("tag-mistakes", first, NIGHT + timedelta(hours=27)) == []
    clean = [r for r in first if not (r["Details"] or {}).get("skip")]
    assert run("tag-mistakes", clean, NIGHT + timedelta(minutes=10)) == []
