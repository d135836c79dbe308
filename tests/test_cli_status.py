"""`lifeboat status` against the stand-in's Azure Monitor: reasons, --vm, --at-risk, exit codes.

Hand-written outcome rows go in through the Logs Ingestion API (the stand-in's, with its managed
identity) and come back through the command, as an operator reads them.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from cli.exits import Exit
from cli.main import app
from emulator.process import DEMO_ESTATE, Endpoints, running_emulator

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
SUB = "6f1c3a52-7d2e-4b8a-9c41-3e5d2a7b9f10"


def row(hours_ago: float, **fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "TimeGenerated": (NOW - timedelta(hours=hours_ago)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "RunId": "r1",
        "Job": "rotation",
        "Status": "succeeded",
        "SubscriptionId": SUB,
        "ResourceGroup": "rg-app",
        "DryRun": False,
        "Details": {},
    }
    return {**base, **fields}


def vm_rows(vm: str, disks: int, good: int, *, slot: str = "202611270200") -> list[dict[str, Any]]:
    disk = f"/subscriptions/{SUB}/resourceGroups/rg-app/providers/Microsoft.Compute/disks/{vm}-d"
    return [
        row(10, Operation="plan-vm", Status="planned", VmName=vm, Count=disks),
        *(
            row(
                10,
                Operation="snapshot-create",
                VmName=vm,
                ResourceId=f"{disk}{i}",
                Details={"slot": slot},
            )
            for i in range(good)
        ),
    ]


ROWS = [
    row(10, Operation="run-start", Details={"slot": "202611270200"}),
    *vm_rows("vm-good", disks=1, good=1),
    row(
        6,
        Job="verification",
        Operation="verify-vm",
        VmName="vm-good",
        Finding="compliant",
        RpoSeconds=3600,
        Details={"rpoTargetSeconds": 86400},
    ),
    # vm-good's last drill of each kind and its last real recovery (lifeboat recover).
    row(
        8,
        Job="drill",
        Operation="drill",
        VmName="vm-good",
        RtoSeconds=540,
        RpoSeconds=7200,
        Details={"rtoTargetSeconds": 1800, "drillId": "d2", "source": "snapshots"},
    ),
    row(
        7,
        Job="drill",
        Operation="drill",
        VmName="vm-good",
        RtoSeconds=1085,
        RpoSeconds=4800,
        Details={"rtoTargetSeconds": 1800, "drillId": "d3", "source": "recovery-point"},
    ),
    row(
        3,
        Job="recovery",
        Operation="recover",
        VmName="vm-good",
        RtoSeconds=157,
        RpoSeconds=8727,
        Details={
            "mode": "new-vm",
            "source": "snapshot set 202611270200 (kdawrygmbdsp)",
            "caller": "oncall@contoso.com (9c4e2a71)",
        },
    ),
    *vm_rows("vm-bad", disks=2, good=1),
    row(
        6,
        Job="verification",
        Operation="verify-vm",
        VmName="vm-bad",
        Status="failed",
        Finding="rpo-breached",
        RpoSeconds=200000,
        Details={"rpoTargetSeconds": 86400},
    ),
    row(
        5,
        Job="drill",
        Operation="drill",
        VmName="vm-bad",
        Status="failed",
        Reason="the VM did not boot",
        RtoSeconds=900,
        Details={"rtoTargetSeconds": 3600, "drillId": "d1"},
    ),
]


@pytest.fixture(scope="module")
def estate() -> Iterator[Endpoints]:
    """A stand-in whose Monitor workspace holds ROWS, its clock at NOW."""
    from azure.identity import ManagedIdentityCredential
    from azure.monitor.ingestion import LogsIngestionClient

    with running_emulator(DEMO_ESTATE, "--clock-start", NOW.strftime("%Y-%m-%dT%H:%M:%SZ")) as ep:
        with pytest.MonkeyPatch.context() as env:
            for name, value in ep.environment().items():
                env.setenv(name, value)
            document = json.loads(Path(ep.path).read_text())
            client = LogsIngestionClient(
                document["ingestionEndpoint"],
                ManagedIdentityCredential(client_id=ep.client_id),
                credential_scopes=[document["monitorAudience"] + "/.default"],
                connection_verify=ep.ca_bundle,
            )
            client.upload(
                rule_id=document["dcrImmutableId"], stream_name=document["stream"], logs=ROWS
            )
        yield ep


@pytest.fixture
def status(estate: Endpoints, monkeypatch: pytest.MonkeyPatch) -> Any:
    for name in ("IDENTITY_ENDPOINT", "IDENTITY_HEADER", "REQUESTS_CA_BUNDLE"):
        monkeypatch.setenv(name, "")  # restored after the test: the command sets them

    def run(*args: str) -> Result:
        return CliRunner().invoke(
            app, ["status", "--emulator-endpoints", estate.path, "--ignore-holds", *args]
        )

    return run


def test_an_estate_at_risk_exits_1_and_says_why_per_vm(status: Any) -> None:
    result = status("--json")

    assert result.exit_code == Exit.FOUND_PROBLEMS, result.output
    report = json.loads(result.stdout)
    assert report["posture"] == "at-risk"
    assert report["postureReasons"] == ["1 VM(s) at risk: vm-bad"]
    vms = {v["vm"]: v for v in report["vms"]}
    assert vms["vm-good"]["reasons"] == []
    assert not vms["vm-good"]["atRisk"]
    bad = vms["vm-bad"]["reasons"]
    assert bad[0] == (
        "snapshot: the newest set (10 hours ago) misses disks and no set is complete, "
        "against the 26 h limit"
    )
    assert bad[1] == ("backup: recovery point 2 days ago, over the RPO target of a day")
    assert bad[2] == "drill: the last drill (2026-11-27T07:00:00Z) failed: the VM did not boot"


def test_at_risk_lists_only_the_vms_at_risk_and_the_text_names_the_reasons(status: Any) -> None:
    result = status("--at-risk")

    assert result.exit_code == Exit.FOUND_PROBLEMS
    assert "vm-bad" in result.stdout
    assert "vm-good" not in result.stdout
    assert "over the RPO target of a day" in result.stdout
    assert "Posture: AT-RISK" in result.stdout


def test_vm_shows_one_vms_history_and_exits_by_that_vm(status: Any) -> None:
    good = status("--vm", "VM-GOOD", "--json")
    bad = status("--vm", "vm-bad")

    assert good.exit_code == Exit.OK, good.output
    document = json.loads(good.stdout)
    assert [v["vm"] for v in document["vms"]] == ["vm-good"]
    assert sorted(r["Operation"] for r in document["history"]) == [
        "drill",
        "drill",
        "plan-vm",
        "recover",
        "snapshot-create",
        "verify-vm",
    ]
    assert document["history"][0]["Operation"] == "recover", "newest first"
    assert bad.exit_code == Exit.FOUND_PROBLEMS
    assert "Evidence history" in bad.stdout


def test_each_vm_shows_its_last_drill_of_each_kind_and_its_last_recovery(
    status: Any, estate: Endpoints
) -> None:
    document = json.loads(status("--json").stdout)
    vms = {vm["vm"]: vm for vm in document["vms"]}
    good = vms["vm-good"]
    assert good["lastSnapshotDrill"] == {
        "at": "2026-11-27T04:00:00Z",
        "status": "succeeded",
        "rtoSeconds": 540,
    }
    assert good["lastRecoveryPointDrill"] == {
        "at": "2026-11-27T05:00:00Z",
        "status": "succeeded",
        "rtoSeconds": 1085,
        "rpoSeconds": 4800,
    }
    assert good["lastRecovery"] == {
        "at": "2026-11-27T09:00:00Z",
        "status": "succeeded",
        "mode": "new-vm",
        "source": "snapshot set 202611270200 (kdawrygmbdsp)",
        "rtoSeconds": 157,
        "by": "oncall@contoso.com (9c4e2a71)",
    }
    bad = vms["vm-bad"]
    assert bad["lastSnapshotDrill"]["status"] == "failed"  # a row without a source: snapshots
    assert (bad["lastRecoveryPointDrill"], bad["lastRecovery"]) == (None, None)
    wide = CliRunner().invoke(
        app,
        ["status", "--emulator-endpoints", estate.path, "--ignore-holds", "--vm", "vm-good"],
        env={"COLUMNS": "400"},
    )
    text = " ".join(wide.stdout.split())
    for shown in (
        "Drills by source, and the last recovery",
        "succeeded at 2026-11-27T04:00:00Z, RTO 9 minutes",
        "succeeded at 2026-11-27T05:00:00Z, RTO 18 minutes, RPO an hour",
        "new-vm from snapshot set 202611270200 (kdawrygmbdsp): succeeded at",
        "by oncall@contoso.com (9c4e2a71)",
    ):
        assert shown in text, text


def test_an_unknown_vm_is_named(status: Any) -> None:
    result = status("--vm", "vm-nowhere")

    assert result.exit_code == Exit.FOUND_PROBLEMS
    assert "no outcome names a VM called 'vm-nowhere'" in result.stderr


def test_a_stand_in_that_is_not_running_fails_in_two_seconds(tmp_path: Path) -> None:
    from cli.processes import free_port

    endpoints = tmp_path / "endpoints.json"
    endpoints.write_text(json.dumps({"arm": f"https://127.0.0.1:{free_port()}"}))

    result = CliRunner().invoke(app, ["status", "--emulator-endpoints", str(endpoints)])

    assert result.exit_code == Exit.UNREACHABLE
    (line,) = result.stderr.strip().splitlines()
    assert "the Azure stand-in does not answer at 127.0.0.1:" in line
    assert "lifeboat emulator --estate" in line
