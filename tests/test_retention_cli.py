"""`lifeboat retention`: restic's flags in, a table (or with --json one JSON document) out, exit 2
on bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import date, timedelta
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

import cli.main
from cli.retention import retention_command


@pytest.fixture(scope="module")
def app() -> typer.Typer:
    # A group of its own, so `retention` is a subcommand whatever else cli.main registers.
    app = typer.Typer()
    app.callback()(lambda: None)
    app.command("retention")(retention_command)
    return app


def run(app: typer.Typer, args: list[str], stdin: str, *, as_json: bool = True) -> Any:
    return CliRunner().invoke(
        app, ["retention", *(["--json"] if as_json else []), *args], input=stdin
    )


def test_cli_main_registers_retention() -> None:
    commands = {c.name: c.callback for c in cli.main.app.registered_commands}
    assert commands.get("retention") is retention_command


def test_restic_documentation_example(app: typer.Typer) -> None:
    # doc/060_forget.rst: a backup every Sunday for 12 weeks, `forget --keep-daily 4`.
    sundays = [date(2019, 9, 1) + timedelta(weeks=w) for w in range(12)]
    stdin = "".join(f"{d}T11:00:00Z\n" for d in sundays)

    result = run(app, ["--keep-daily", "4"], stdin)

    assert result.exit_code == 0, result.stderr
    newest_first = [f"{d}T11:00:00Z" for d in reversed(sundays)]
    assert json.loads(result.stdout) == {
        "keep": newest_first[:4],
        "remove": newest_first[4:],
        "reasons": {t: ["daily snapshot"] for t in newest_first[:4]},
    }


def test_unsorted_input_with_offsets_comes_out_in_utc_newest_first(app: typer.Typer) -> None:
    stdin = "\n".join(
        [
            "2024-05-01T23:00:00Z",
            "",
            "2024-05-02T01:30:00.250+02:00",  # 2024-05-01T23:30:00.25Z
            "  2024-05-02T00:10:00z  ",
            "2024-04-30 12:00:00-00:00",
        ]
    )

    result = run(app, ["--keep-daily", "2", "--keep-within-hourly", "2d"], stdin)

    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout) == {
        "keep": ["2024-05-02T00:10:00Z", "2024-05-01T23:30:00Z", "2024-04-30T12:00:00Z"],
        "remove": ["2024-05-01T23:00:00Z"],
        "reasons": {
            "2024-05-02T00:10:00Z": ["daily snapshot", "hourly within 2d"],
            "2024-05-01T23:30:00Z": ["daily snapshot", "hourly within 2d"],
            "2024-04-30T12:00:00Z": ["hourly within 2d"],
        },
    }


def test_stdout_is_one_json_document_and_logs_go_elsewhere(app: typer.Typer) -> None:
    result = run(app, ["--keep-last", "1"], "2024-01-01T00:00:00Z\n2024-01-02T00:00:00Z\n")

    assert result.exit_code == 0
    assert result.stdout.count("\n") == 1
    assert json.loads(result.stdout)["keep"] == ["2024-01-02T00:00:00Z"]


def test_equal_timestamps_share_one_reasons_entry(app: typer.Typer) -> None:
    stdin = "2024-06-01T10:00:00Z\n" * 3

    result = run(app, ["--keep-daily", "2"], stdin)

    assert json.loads(result.stdout) == {
        "keep": ["2024-06-01T10:00:00Z", "2024-06-01T10:00:00Z"],
        "remove": ["2024-06-01T10:00:00Z"],
        "reasons": {"2024-06-01T10:00:00Z": ["daily snapshot", "oldest daily snapshot"]},
    }


@pytest.mark.parametrize("unlimited", ["-1", "unlimited"])
def test_unlimited_counts(app: typer.Typer, unlimited: str) -> None:
    stdin = "".join(f"2024-01-{d:02d}T12:00:00Z\n" for d in range(1, 6))

    result = run(app, ["--keep-daily", unlimited, "-w", "0"], stdin)

    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["remove"] == []


def test_short_flags_and_every_within_flag(app: typer.Typer) -> None:
    args = ["-l", "1", "-H", "1", "-d", "1", "-w", "1", "-m", "1", "-y", "1"]
    for kind in ("", "-hourly", "-daily", "-weekly", "-monthly", "-yearly"):
        args += [f"--keep-within{kind}", "1d"]

    result = run(app, args, "2024-01-01T00:00:00Z\n")

    assert json.loads(result.stdout)["reasons"]["2024-01-01T00:00:00Z"] == [
        "within 1d",
        "last snapshot",
        "hourly snapshot",
        "daily snapshot",
        "weekly snapshot",
        "monthly snapshot",
        "yearly snapshot",
        "hourly within 1d",
        "daily within 1d",
        "weekly within 1d",
        "monthly within 1d",
        "yearly within 1d",
    ]


@pytest.mark.parametrize(
    ("line", "why"),
    [
        ("yesterday", "RFC 3339"),
        ("2024-06-01", "RFC 3339"),  # a date alone
        ("2024-06-01T10:00:00", "RFC 3339"),  # no offset
        ("20240601T100000Z", "RFC 3339"),  # ISO 8601 basic format
        ("2024-02-30T10:00:00Z", "day is out of range"),
        ("2024-06-01T24:00:00Z", "hour must be in"),
    ],
)
def test_a_bad_timestamp_names_its_line_and_exits_2(app: typer.Typer, line: str, why: str) -> None:
    stdin = f"2024-06-01T09:00:00Z\n\n{line}\n2024-06-01T11:00:00Z\n"

    result = run(app, ["--keep-daily", "7"], stdin)

    assert result.exit_code == 2
    assert result.stdout == ""
    assert f"line 3: {line!r}" in result.stderr
    assert why in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--keep-daily", "-2"], "'--keep-daily'"),
        (["--keep-daily", "seven"], "not a count"),
        (["--keep-weekly", "1.5"], "'--keep-weekly'"),
        (["--keep-within", "2w"], "unknown unit 'w'"),
        (["--keep-within-daily", "-1d"], "'--keep-within-daily'"),
        (["--keep-dayly", "7"], "--keep-dayly"),
    ],
)
def test_a_bad_flag_is_a_usage_error(app: typer.Typer, args: list[str], message: str) -> None:
    result = run(app, args, "2024-06-01T09:00:00Z\n")

    assert result.exit_code == 2
    assert result.stdout == ""
    assert message in result.stderr


@pytest.mark.parametrize("args", [[], ["--keep-daily", "0", "--keep-within", "0d"]])
def test_no_policy_is_refused(app: typer.Typer, args: list[str]) -> None:
    result = run(app, args, "2024-06-01T09:00:00Z\n")

    assert result.exit_code == 2
    assert result.stdout == ""
    assert "no policy" in result.stderr


def test_no_timestamps_is_an_empty_plan(app: typer.Typer) -> None:
    result = run(app, ["--keep-daily", "7"], "")

    assert result.exit_code == 0
    assert json.loads(result.stdout) == {"keep": [], "remove": [], "reasons": {}}


def test_the_installed_command_keeps_stdout_for_json() -> None:
    # Through cli.main as the console script runs it: its logging is configured onto stderr.
    result = subprocess.run(
        [sys.executable, "-m", "cli.main", "retention", "--json", "--keep-last", "1"],
        input="2024-01-01T00:00:00Z\n2024-01-02T00:00:00Z\n",
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {
        "keep": ["2024-01-02T00:00:00Z"],
        "remove": ["2024-01-01T00:00:00Z"],
        "reasons": {"2024-01-02T00:00:00Z": ["last snapshot"]},
    }
    assert "keep 1, remove 1" in result.stderr


def test_the_table_names_each_snapshot_with_its_decision_and_reasons(app: typer.Typer) -> None:
    stdin = (
        "2024-01-01T00:00:00Z lb-disk1-202401010000\n"
        "2024-01-02 00:00:00+00:00   lb-disk1-202401020000\n"
        "2024-01-03T00:00:00Z\n"
    )

    result = run(app, ["--keep-last", "2"], stdin, as_json=False)

    assert result.exit_code == 0, result.stderr
    lines = [" ".join(line.strip("│ ").split()) for line in result.stdout.splitlines()]
    assert "- │ 2024-01-03T00:00:00Z │ keep │ last snapshot" in lines
    assert "lb-disk1-202401020000 │ 2024-01-02T00:00:00Z │ keep │ last snapshot" in lines
    assert "lb-disk1-202401010000 │ 2024-01-01T00:00:00Z │ forget" in lines
    assert lines[-1] == "keep 2, forget 1"


def test_a_name_does_not_change_the_json_document(app: typer.Typer) -> None:
    named = run(app, ["--keep-last", "1"], "2024-01-01T00:00:00Z a\n2024-01-02T00:00:00Z b\n")
    bare = run(app, ["--keep-last", "1"], "2024-01-01T00:00:00Z\n2024-01-02T00:00:00Z\n")

    assert named.exit_code == 0, named.stderr
    assert json.loads(named.stdout) == json.loads(bare.stdout)
