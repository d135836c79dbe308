"""`lifeboat run`: one night through the local host; exit 1 when any outcome failed, was blocked or
refused; how long Azure held the work, in words; progress only on a terminal."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
from rich.console import Console

from cli.exits import Exit
from cli.plan_cmd import show_run, summarise
from cli.progress import Gauges, LiveProgress, count_writes, describe, duration
from emulator.process import DEMO_ESTATE, running_emulator
from tests.conftest import base_settings

ROOT = Path(__file__).resolve().parent.parent


def row(operation: str, status: str, **details: float) -> dict[str, object]:
    return {"Operation": operation, "Status": status, "Details": details}


def test_the_summary_counts_problems_and_says_how_long_azure_held_the_work() -> None:
    outcomes = [
        row("snapshot-create", "succeeded", heldSeconds=90),
        row("snapshot-create", "succeeded", heldSeconds=240),
        row("snapshot-delete", "blocked"),
        row("run-end", "failed"),
    ]

    document = summarise(outcomes, elapsed=1000)
    console = Console(file=io.StringIO(), width=200)
    show_run(console, document)
    text = console.file.getvalue()  # type: ignore[attr-defined]

    assert document["problems"] == 2
    assert document["held"] == {"rows": 2, "totalSeconds": 330.0, "longestSeconds": 240.0}
    assert document["elapsedSeconds"] == 1000
    assert (
        "Azure held the work for 6 minutes in all (2 outcome(s); the longest wait 4 minutes)"
        in text
    )
    assert "One night in 17 minutes: 2 outcome(s) failed, blocked or refused" in text


def test_without_held_rows_the_summary_does_not_mention_them() -> None:
    document = summarise([row("snapshot-create", "succeeded")], elapsed=5)
    console = Console(file=io.StringIO(), width=200)
    show_run(console, document)

    assert document["problems"] == 0
    assert "held" not in console.file.getvalue()  # type: ignore[attr-defined]


def test_writes_are_the_rows_that_sent_a_write_and_durations_read_as_words() -> None:
    outcomes = [
        row("snapshot-create", "succeeded"),
        row("snapshot-delete", "failed"),
        row("snapshot-create", "skipped"),
        row("plan-vm", "planned"),
    ]
    assert count_writes(outcomes) == 2
    assert describe(Gauges(in_flight=3, writes=20, budget_per_second=5), elapsed=10) == (
        "3 in flight · 20 writes, 2.0/s of 5/s"
    )
    assert duration(0.25) == "0.2 seconds"
    assert duration(7200) == "2 hours"


def test_no_progress_display_off_a_terminal() -> None:
    quiet = LiveProgress(Console(file=io.StringIO()), enabled=True)
    shown = LiveProgress(Console(file=io.StringIO(), force_terminal=True), enabled=True)
    for_json = LiveProgress(Console(file=io.StringIO(), force_terminal=True), enabled=False)

    assert (quiet.enabled, shown.enabled, for_json.enabled) == (False, True, False)


@pytest.mark.e2e
def test_a_night_with_a_failure_exits_1_with_its_json_summary(tmp_path: Path) -> None:
    settings = tmp_path / "local.settings.json"
    values = base_settings(
        ARM_WRITES_PER_SECOND="100", SNAPSHOT_WRITES_PER_SECOND="100", CONFIRM_DELAY_SECONDS="1"
    )
    with running_emulator(DEMO_ESTATE, "--clock-start", "2026-12-06T02:01:00Z") as ep:
        values["TARGET_SUBSCRIPTIONS"] = ",".join(ep.subscriptions)
        settings.write_text(json.dumps({"Values": values}))
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "cli.main",
                "run",
                "--json",
                "--settings",
                str(settings),
                "--emulator-endpoints",
                ep.path,
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )

    assert result.returncode == Exit.FOUND_PROBLEMS, result.stderr
    document = json.loads(result.stdout)
    # The demo estate denies snapshots of one disk: that night cannot be good.
    assert document["outcomes"]["snapshot-create failed"] >= 1
    assert document["outcomes"]["snapshot-create succeeded"] >= 10
    assert document["problems"] >= 1
    assert "\x1b[" not in result.stderr, "no progress display when stderr is not a terminal"
