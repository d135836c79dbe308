"""`lifeboat verify` records its outcomes in Azure Monitor unless --no-record; --fail-on fails at or
above a finding or a severity; exit codes pinned."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner, Result

from cli.exits import Exit
from cli.main import app
from cli.verify_cmd import failing_findings
from emulator.process import DEMO_ESTATE, Endpoints, running_emulator
from tests.conftest import base_settings

SUB = "6f1c3a52-7d2e-4b8a-9c41-3e5d2a7b9f10"


@pytest.fixture(autouse=True)
def _own_environ() -> Iterator[None]:
    saved = dict(os.environ)  # the command sets its settings in os.environ
    yield
    os.environ.clear()
    os.environ.update(saved)


@pytest.fixture
def stand_in() -> Iterator[Endpoints]:
    with running_emulator(DEMO_ESTATE, "--clock-start", "2026-11-27T12:00:00Z") as ep:
        yield ep


def lifeboat(tmp_path: Path, ep: Endpoints, *args: str, **settings: str) -> Result:
    path = tmp_path / "local.settings.json"
    path.write_text(json.dumps({"Values": base_settings(TARGET_SUBSCRIPTIONS=SUB, **settings)}))
    command, *rest = args
    flags = ["--emulator-endpoints", ep.path]
    if command == "verify":
        flags += ["--settings", str(path)]
    return CliRunner().invoke(app, [command, *flags, *rest])


def verified_vms(tmp_path: Path, ep: Endpoints) -> set[str]:
    result = lifeboat(tmp_path, ep, "status", "--json", "--ignore-holds")
    return {v["vm"] for v in json.loads(result.stdout)["vms"] if v["finding"]}


def test_verify_records_its_findings_unless_no_record(tmp_path: Path, stand_in: Endpoints) -> None:
    quiet = lifeboat(tmp_path, stand_in, "verify", "--no-record", "--json")
    assert quiet.exit_code == Exit.OK, quiet.output
    assert verified_vms(tmp_path, stand_in) == set(), "--no-record writes nothing"

    recorded = lifeboat(tmp_path, stand_in, "verify", "--json")
    assert recorded.exit_code == Exit.OK, recorded.output
    found = {vm.rsplit("/", 1)[-1] for vm in json.loads(recorded.stdout)["vms"]}
    assert found
    assert verified_vms(tmp_path, stand_in) == found


def test_fail_on_exits_1_at_or_above_the_finding(tmp_path: Path, stand_in: Endpoints) -> None:
    # The demo estate has rpo-breached and more severe findings, nothing is only "info".
    breached = lifeboat(tmp_path, stand_in, "verify", "--no-record", "--fail-on", "rpo-breached")
    assert breached.exit_code == Exit.FOUND_PROBLEMS
    assert "totals:" in breached.stdout


def test_recording_without_monitor_settings_is_a_configuration_error(tmp_path: Path) -> None:
    path = tmp_path / "local.settings.json"
    path.write_text(json.dumps({"Values": base_settings(TARGET_SUBSCRIPTIONS=SUB)}))

    result = CliRunner().invoke(app, ["verify", "--settings", str(path)])

    assert result.exit_code == Exit.USAGE
    assert "MONITOR_INGESTION_ENDPOINT" in result.stderr
    assert "--no-record" in result.stderr


def test_fail_on_reads_findings_by_precedence_and_severities() -> None:
    assert failing_findings(["unprotected"]) == {"unprotected"}
    assert failing_findings(["never-backed-up"]) == {
        "unprotected",
        "soft-deleted",
        "protection-stopped",
        "never-backed-up",
    }
    assert failing_findings(["medium"]) == failing_findings(["rpo-breached"])
    assert "compliant" in failing_findings(["info"])
    with pytest.raises(typer.BadParameter, match="neither a finding"):
        failing_findings(["bad"])
