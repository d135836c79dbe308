"""Outcomes end to end: the local host runs the real app against Azurite and the stand-in; every
outcome reaches the stand-in's Logs Ingestion endpoint, and `lifeboat status` reads them back
through the query API with azure-monitor-query. An ingestion outage (503 for a while) loses no
outcome and repeats no work.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from cli.azurite import Azurite
from cli.localhost import LocalHost
from emulator.process import DEMO_ESTATE, Endpoints, running_emulator
from shared.services import reset_services
from tests.e2e_env import app_host, app_settings, fail_ingestion, stand_in_options, wire_services
from tests.fakes import MemoryReporter, patched_environ

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parent.parent
NIGHT = datetime.fromisoformat("2026-11-27T02:00:00+00:00")
STAND_IN = stand_in_options(7)


def _empty_queues(azurite: Azurite) -> None:
    from azure.storage.queue import QueueServiceClient

    service = QueueServiceClient.from_connection_string(azurite.connection_string)
    for queue in list(service.list_queues()):
        service.delete_queue(queue.name)


def _environment(azurite: Azurite, ep: Endpoints) -> dict[str, str]:
    return app_settings(
        azurite,
        ep,
        ARM_WRITES_PER_SECOND="200",
        SNAPSHOT_WRITES_PER_SECOND="200",
        CONFIRM_DELAY_SECONDS="0.5",
        MONITOR_INGESTION_ENDPOINT=ep.raw["ingestionEndpoint"],
        MONITOR_DCR_IMMUTABLE_ID=ep.raw["dcrImmutableId"],
        MONITOR_STREAM=ep.raw["stream"],
        MONITOR_MAX_RETRY_SECONDS="0.5",
        MONITOR_RETRY_DELAY_SECONDS="0.5",
    )


def _wait_for(reporter: MemoryReporter, operation: str, slot: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(
            o.operation == operation and o.details.get("slot") == slot
            for o in list(reporter.outcomes)
        ):
            return
        time.sleep(0.05)
    raise TimeoutError(f"no {operation} for slot {slot}")


def _key(record: dict[str, Any]) -> tuple[Any, ...]:
    return (
        record["TimeGenerated"],
        record["RunId"],
        record["Operation"],
        record["Status"],
        record["ResourceId"],
    )


def _monitor_rows(ep: Endpoints) -> list[dict[str, Any]]:
    """Every row Azure Monitor holds, read through the query API with azure-monitor-query."""
    from azure.identity import ManagedIdentityCredential
    from azure.monitor.query import LogsQueryClient

    client = LogsQueryClient(
        ManagedIdentityCredential(client_id=ep.client_id),
        endpoint=ep.raw["logAnalyticsEndpoint"],
        audience=ep.raw["logAnalyticsAudience"],
    )
    result = client.query_workspace(
        ep.raw["workspaceId"],
        "LifeboatOutcomes_CL | project TimeGenerated, RunId, Operation, Status, ResourceId",
        timespan=None,
    )
    rows = []
    for row in result.tables[0].rows:
        record = dict(zip(result.tables[0].columns, row, strict=True))
        record["TimeGenerated"] = record["TimeGenerated"].strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        rows.append(record)
    return rows


def _expected(reporter: MemoryReporter) -> Counter[tuple[Any, ...]]:
    counter: Counter[tuple[Any, ...]] = Counter()
    for outcome in reporter.outcomes:
        record = outcome.to_record()
        stamp = outcome.time.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        counter[_key({**record, "TimeGenerated": stamp})] += 1
    return counter


@contextlib.contextmanager
def _night_host(
    azurite: Azurite, tmp_path: Path
) -> Iterator[tuple[Endpoints, LocalHost, MemoryReporter, httpx.Client]]:
    _empty_queues(azurite)
    with running_emulator(DEMO_ESTATE, *STAND_IN) as ep, patched_environ(ep.environment()):
        environ = _environment(azurite, ep)
        reporter = MemoryReporter()
        overrides, clock, admin = wire_services(ep, environ, reporter, tmp_path / "host.json")
        try:
            with app_host(overrides, environ, clock) as host:
                yield ep, host, reporter, admin
        finally:
            admin.close()
            reset_services()


def _run_night(admin: httpx.Client, reporter: MemoryReporter, night: datetime) -> None:
    admin.post("/clock", json={"set": night.strftime("%Y-%m-%dT%H:%M:%SZ")}).raise_for_status()
    slot = night.strftime("%Y%m%d%H%M")
    _wait_for(reporter, "run-start", slot)
    _wait_for(reporter, "run-end", slot)


def test_nights_reach_azure_monitor_and_status_reads_them_back(
    azurite: Azurite, tmp_path: Path
) -> None:
    with _night_host(azurite, tmp_path) as (ep, host, reporter, admin):
        for night in range(2):
            _run_night(admin, reporter, NIGHT + timedelta(days=night))
            host.wait_idle(timeout=60)
        admin.post("/clock", json={"advanceSeconds": 3600}).raise_for_status()
        assert Counter(_key(r) for r in _monitor_rows(ep)) == _expected(reporter)
        ends = [
            o for o in reporter.outcomes if o.job.value == "rotation" and o.operation == "run-end"
        ]
        assert len(ends) == 2, "one run-end per subscription and night"
        totals = ends[-1].details["totals"]
        assert totals["vms"] == 8
        assert totals["snapshotsGood"] == ends[-1].count
        # The disk under a deny assignment: blocked by Azure, never taken, and never reported
        # failed after it (blocked is final for the night, and the night is not failed for it).
        assert (totals["snapshotsFailed"], totals["snapshotsNotTaken"]) == (0, 1)
        assert ends[-1].status.value == "succeeded"
        status = subprocess.run(
            [sys.executable, "-m", "cli.main", "status", "--json", "--emulator-endpoints", ep.path],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert status.returncode == 1, status.stderr  # at risk: the command worked and found problems
    report = json.loads(status.stdout)
    vms = {vm["vm"]: vm for vm in report["vms"]}
    assert {"vm-web-01", "vm-db-02"} <= set(vms)
    assert vms["vm-web-01"]["snapshot"] == "ok"
    assert vms["vm-web-01"]["snapshotAgeHours"] == pytest.approx(1.0, abs=0.1)
    assert vms["vm-web-01"]["rpo"] == "unknown"  # no verification outcome yet
    assert vms["vm-web-01"]["drill"] == "none"
    assert report["heartbeats"]["rotation"]["ageHours"] <= 1.1
    assert any(s["hold"] for s in report["heldSnapshots"]), "the demo estate holds a snapshot"
    # vm-db-02's disk under a deny assignment is never snapshotted: not recoverable in full.
    assert vms["vm-db-02"]["snapshot"] == "partial"
    assert report["posture"] == "at-risk"


def test_an_ingestion_outage_loses_no_outcome_and_repeats_no_work(
    azurite: Azurite, tmp_path: Path
) -> None:
    with _night_host(azurite, tmp_path) as (ep, host, reporter, admin):
        fail_ingestion(admin, retryAfter=1)
        _run_night(admin, reporter, NIGHT)
        time.sleep(1.0)  # the prunes of the night, still during the outage
        assert _monitor_rows(ep) == []
        failed_uploads = admin.get("/requests", params={"limit": 1}).json()["counters"]
        assert failed_uploads["byStatus"].get("503", 0) >= 2
        admin.delete("/faults").raise_for_status()
        host.wait_idle(timeout=60)  # outcomes-retry drains
        rows = _monitor_rows(ep)
        stats = dict(host.stats)
        log = admin.get("/requests", params={"limit": 20000}).json()["entries"]
    assert Counter(_key(r) for r in rows) == _expected(reporter), "nothing lost, nothing twice"
    assert stats["outcomes_retry"].invocations >= 1
    for name in ("rotation_timer", "rotation_plan", "rotation_vm", "rotation_prune"):
        assert stats[name].failed == 0, name
        assert stats[name].poisoned == 0, name
    puts = Counter(
        e["path"].lower() for e in log if e["method"] == "PUT" and "/snapshots/" in e["path"]
    )
    assert puts
    assert max(puts.values()) == 1, "no snapshot was written twice"
    creates = [
        o
        for o in reporter.outcomes
        if o.operation == "snapshot-create" and o.status.value in ("succeeded", "blocked")
    ]
    assert len(puts) == len(creates)
