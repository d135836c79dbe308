"""Site Recovery in verification end to end: the app in the local host against the stand-in.

The demo estate, its Site Recovery vault replicating one VM per finding (a plan's test failover
started 30 hours ago and never cleaned up among them): the verification timer fires in the local
host, the app reads the stand-in's vaults through the real SDK and records one
`verify-replication` row per replicated VM in the stand-in's Azure Monitor, and `lifeboat status`
shows each finding next to the backup evidence. Then the stand-in refuses Site Recovery reads
(403): the next run records one blocked row per vault naming the role; backup verification
goes on.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from cli.azurite import Azurite
from cli.main import app
from emulator.process import DEMO_ESTATE, running_emulator
from shared.services import reset_services
from tests.conftest import DemoRun
from tests.e2e_env import app_host, app_settings, replicated_item, wire_services
from tests.fakes import MemoryReporter, patched_environ

pytestmark = pytest.mark.e2e

VAULT = "rsv-asr-neu"


def _item(vm: str, **extra: Any) -> dict[str, Any]:
    """A replicated VM whose last test failover was 30 days ago, unless `extra` says otherwise."""
    return replicated_item(vm, **{"lastSuccessfulTestFailoverTime": "30d", **extra})


# One replicated VM per finding (each VM's policy: daily, RPO target 26 h).
EXPECTED = {
    "vm-web-01": "compliant",
    "vm-web-02": "replication-not-protected",
    "vm-api-01": "replication-unhealthy",
    "vm-cluster-01": "replication-rpo-breached",
    "vm-db-01": "test-failover-not-cleaned",
    "vm-db-02": "test-failover-overdue",
    "vm-report-01": "agent-expiring",
}


def _estate(tmp_path: Path) -> Path:
    estate = yaml.safe_load(Path(DEMO_ESTATE).read_text())
    estate["siteRecovery"][0]["items"] = [
        _item("rg-app/vm-web-01"),
        _item("rg-app/vm-web-02", protectionState="InitialReplicationInProgress"),
        _item(
            "rg-app/vm-api-01",
            replicationHealth="Critical",
            healthErrors=[{"errorCode": "153039", "message": "Replication is stuck."}],
        ),
        _item("rg-app/vm-cluster-01", rpoInSeconds=30 * 3600),
        _item("rg-data/vm-db-01"),
        _item("rg-data/vm-db-02", lastSuccessfulTestFailoverTime="200d"),
        _item("rg-data/vm-report-01", agentExpiresIn="10d"),
    ]
    estate["siteRecovery"][0]["plans"] = [
        {"name": "rp-db", "groups": [{"vms": ["vm-db-01"]}], "testFailoverStarted": "30h"}
    ]
    path = tmp_path / "estate.yaml"
    path.write_text(yaml.safe_dump(estate))
    return path


def _status(endpoints: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    for name in ("IDENTITY_ENDPOINT", "IDENTITY_HEADER", "REQUESTS_CA_BUNDLE"):
        monkeypatch.setenv(name, "")  # the command sets them from the endpoints file
    result = CliRunner().invoke(
        app, ["status", "--emulator-endpoints", endpoints, "--ignore-holds", "--json"]
    )
    report: dict[str, Any] = json.loads(result.stdout)
    return report


def test_every_finding_from_stand_in_state_is_recorded_and_shown_by_status(
    azurite: Azurite, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    estate = _estate(tmp_path)
    with (
        running_emulator(estate, "--clock-start", "2026-11-27T06:00:00Z") as ep,
        patched_environ(ep.environment()),
    ):
        environ = app_settings(
            azurite,
            ep,
            MONITOR_INGESTION_ENDPOINT=ep.raw["ingestionEndpoint"],
            MONITOR_DCR_IMMUTABLE_ID=ep.raw["dcrImmutableId"],
            MONITOR_STREAM=ep.raw["stream"],
        )
        reporter = MemoryReporter()
        overrides, remote, admin = wire_services(ep, environ, reporter, tmp_path / "host.json")
        try:
            with app_host(overrides, environ, remote) as host:
                assert host.invoke_timer("verification_timer")
                host.wait_idle(timeout=60)
                rows = [o for o in reporter.outcomes if o.operation == "verify-replication"]
                report = _status(ep.path, monkeypatch)
                # Site Recovery refuses Lifeboat (a missing role): one row, and the run goes on.
                admin.post(
                    "/faults",
                    json={
                        "action": "status",
                        "method": "GET",
                        "path": "/replicationProtectedItems",
                        "status": 403,
                        "code": "AuthorizationFailed",
                    },
                ).raise_for_status()
                reporter.outcomes.clear()
                assert host.invoke_timer("verification_timer")
                host.wait_idle(timeout=60)
                refused = [o for o in reporter.outcomes if o.operation == "verify-replication"]
                backup = [o for o in reporter.outcomes if o.operation == "verify-vm"]
        finally:
            admin.close()
            reset_services()

    assert {o.vm_name: o.finding for o in rows} == EXPECTED
    by_vm = {o.vm_name: o for o in rows}
    assert by_vm["vm-cluster-01"].rpo_seconds == 30 * 3600
    assert by_vm["vm-cluster-01"].details["rpoTargetSeconds"] == 26 * 3600
    assert by_vm["vm-db-01"].details["recoveryPlan"] == "rp-db"
    assert by_vm["vm-db-01"].details["testFailoverOpenSeconds"] >= 30 * 3600
    shown = {vm["vm"]: vm for vm in report["vms"]}
    assert {name: shown[name]["replicationFinding"] for name in EXPECTED} == EXPECTED
    # Next to the backup evidence of the same VM, never instead of it.
    assert shown["vm-api-01"]["finding"] == "backup-failing"
    assert shown["vm-api-01"]["verdict"] == "at-risk"
    assert shown["vm-cluster-02"]["replication"] == "none"

    # One row per vault (the fault refuses both), none per VM.
    assert sorted((o.resource_id or "").rsplit("/", 1)[-1] for o in refused) == [
        VAULT,
        "rsv-prod-weu",
    ]
    for row in refused:
        assert (row.status, row.finding) == ("blocked", "site-recovery-unreadable")
        vault = (row.resource_id or "").rsplit("/", 1)[-1]
        assert f"cannot read Site Recovery in {vault}: needs Site Recovery Reader" in (
            row.reason or ""
        )
    assert backup, "backup verification went on"


def test_the_demo_json_carries_the_replicated_vms_findings(demo_run: DemoRun) -> None:
    """`lifeboat demo --json` (two nights; verification at 06:00): the demo's replicated pair."""
    assert demo_run.returncode == 0, demo_run.stderr[-3000:]
    replication = demo_run.document["replication"]
    by_name = {vm.rsplit("/", 1)[-1]: found for vm, found in replication.items()}
    assert set(by_name) == {"vm-web-01", "vm-db-01"}
    # Overdue in the estate (200 days); the first night's test failover of rp-web proved it.
    assert by_name["vm-web-01"]["finding"] == "compliant"
    assert "last test failover 0 days ago" in by_name["vm-web-01"]["reason"]
    assert by_name["vm-db-01"]["finding"] == "replication-unhealthy"
    assert by_name["vm-db-01"]["rpoSeconds"] == 180000
    for vm, found in replication.items():
        assert vm.startswith("/subscriptions/")
        assert "/virtualMachines/" in vm
        assert set(found) == {"finding", "rpoSeconds", "reason"}
        assert found["reason"]
