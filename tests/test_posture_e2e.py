"""The posture end to end: the same outcomes in the stand-in's Azure Monitor, read three ways.

The posture timer runs in the local host (the real app, its managed identity, the stand-in's Log
Analytics query endpoint); `lifeboat status` reads the workspace as an operator does; the
workbook's per-VM tile runs its own query through the same endpoint. All three name the same VMs
at risk. When the query endpoint refuses, the timer's run ends failed and says why.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from cli.azurite import Azurite
from cli.localhost import LocalHost
from cli.main import app
from emulator.process import DEMO_ESTATE, Endpoints, running_emulator
from shared import posture
from shared.services import reset_services
from tests.e2e_env import app_host, app_settings, wire_services
from tests.fakes import MemoryReporter, patched_environ
from tests.test_posture import DIGEST_ROWS, ESTATE, NOW

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parent.parent
WORKBOOK = ROOT / "infra" / "app" / "workbook.json"
EXPECTED_AT_RISK = ["vm-partial", "vm-rpo", "vm-slow", "vm-stale"]


def _credential(ep: Endpoints) -> Any:
    from azure.identity import ManagedIdentityCredential

    return ManagedIdentityCredential(client_id=ep.client_id)


def _ingest(ep: Endpoints, rows: list[dict[str, Any]]) -> None:
    from azure.monitor.ingestion import LogsIngestionClient

    client = LogsIngestionClient(
        ep.raw["ingestionEndpoint"],
        _credential(ep),
        credential_scopes=[ep.raw["monitorAudience"] + "/.default"],
        connection_verify=ep.ca_bundle,
    )
    client.upload(rule_id=ep.raw["dcrImmutableId"], stream_name=ep.raw["stream"], logs=rows)


@contextlib.contextmanager
def _posture_host(
    azurite: Azurite, tmp_path: Path
) -> Iterator[tuple[Endpoints, LocalHost, MemoryReporter, Any]]:
    """The stand-in (its clock at NOW, its workspace holding the test outcomes) and the local host
    running the app with the posture timer reading that workspace."""
    clock = NOW.strftime("%Y-%m-%dT%H:%M:%SZ")
    with (
        running_emulator(DEMO_ESTATE, "--clock-start", clock) as ep,
        patched_environ(ep.environment()),
    ):
        _ingest(ep, [*ESTATE, *DIGEST_ROWS])
        environ = app_settings(
            azurite,
            ep,
            LOG_ANALYTICS_WORKSPACE_ID=ep.raw["workspaceId"],
            LOG_ANALYTICS_ENDPOINT=ep.raw["logAnalyticsEndpoint"],
            LOG_ANALYTICS_AUDIENCE=ep.raw["logAnalyticsAudience"] + "/.default",
        )
        reporter = MemoryReporter()
        overrides, remote, admin = wire_services(ep, environ, reporter, tmp_path / "host.json")
        try:
            with app_host(overrides, environ, remote) as host:
                yield ep, host, reporter, admin
        finally:
            admin.close()
            reset_services()


def _status_at_risk(ep: Endpoints, monkeypatch: pytest.MonkeyPatch) -> tuple[int, list[str]]:
    for name in ("IDENTITY_ENDPOINT", "IDENTITY_HEADER", "REQUESTS_CA_BUNDLE"):
        monkeypatch.setenv(name, "")  # the command sets them from the endpoints file
    result = CliRunner().invoke(
        app,
        ["status", "--emulator-endpoints", ep.path, "--ignore-holds", "--at-risk", "--json"],
    )
    report = json.loads(result.stdout)
    return result.exit_code, sorted(vm["vm"] for vm in report["vms"])


def _workbook_tile_query() -> str:
    """The query of the workbook's per-VM evidence tile: the one that judges VMs (Verdict)."""
    items = json.loads(WORKBOOK.read_text())["items"]
    queries = [
        i["content"]["query"] for i in items if "Verdict" in i.get("content", {}).get("query", "")
    ]
    assert queries, "the workbook has no per-VM tile running posture.VM_EVIDENCE_QUERY"
    return queries[0]


def _run_in_workspace(ep: Endpoints, query: str) -> list[dict[str, Any]]:
    reader = posture.LogAnalyticsReader(
        _credential(ep),
        ep.raw["workspaceId"],
        endpoint=ep.raw["logAnalyticsEndpoint"],
        audience=ep.raw["logAnalyticsAudience"],
    )
    rows, partial = reader.query(query, days=posture.DEFAULT_DAYS)
    assert partial is None
    return rows


def test_the_timer_status_and_the_workbook_tile_name_the_same_vms_at_risk(
    azurite: Azurite, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with _posture_host(azurite, tmp_path) as (ep, host, reporter, _admin):
        assert host.invoke_timer("posture_timer")

        timer = sorted(o.vm_name for o in reporter.outcomes if o.operation == "posture-vm")
        [estate] = [o for o in reporter.outcomes if o.operation == "posture-estate"]
        [end] = [o for o in reporter.outcomes if o.operation == "run-end"]
        code, status = _status_at_risk(ep, monkeypatch)
        tile = _run_in_workspace(ep, _workbook_tile_query())

    assert timer == EXPECTED_AT_RISK
    assert status == timer
    assert sorted(r["VmName"] for r in tile if r["Verdict"] == "at-risk") == timer
    assert code == 1
    assert (estate.count, end.status) == (len(timer), "succeeded")
    digests = {o.operation: o.count for o in reporter.outcomes if o.operation.startswith("digest")}
    assert digests == {
        "digest-blocked-disks": 1,
        "digest-skipped-vms": 2,
        "digest-lookalike-snapshots": 23,
    }


def test_a_query_endpoint_that_refuses_ends_the_run_failed_with_the_reason(
    azurite: Azurite, tmp_path: Path
) -> None:
    with _posture_host(azurite, tmp_path) as (_ep, host, reporter, admin):
        admin.post(
            "/faults",
            json={
                "action": "status",
                "method": "POST",
                "path": "/v1/workspaces/",
                "status": 403,
                "code": "InsufficientAccessError",
                "message": "The provided credentials have insufficient access to this workspace",
            },
        ).raise_for_status()

        assert not host.invoke_timer("posture_timer")

    assert [o.operation for o in reporter.outcomes if o.operation.startswith("posture")] == []
    [end] = [o for o in reporter.outcomes if o.operation == "run-end"]
    assert end.status == "failed"
    assert "insufficient access" in (end.reason or "").lower()
