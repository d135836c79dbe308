"""Site Recovery findings in the posture query and `lifeboat status`, next to backup and snapshots.

The `verify-replication` rows are what verification records (port fakes, real dispatch), placed
beside the snapshot, backup and drill rows of tests/test_posture.py: VM_EVIDENCE_QUERY (run with
duckdb-kql, once) puts a replicated VM at risk for unhealthy replication, an RPO over target or a
test failover overdue, never for a test failover not cleaned up yet or an agent to renew (shown,
not at risk), and keeps the backup finding of the same VM apart; the status table shows both.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from rich.console import Console

from cli.status_cmd import show
from shared import posture
from tests.fakes import FakeSiteRecovery
from tests.test_posture import ESTATE, KqlReader, row, snapshots, verified
from tests.test_replication import ASR_VAULT, AsrWorld, replicated
from tests.test_replication import NOW as VERIFIED_AT


def replication_rows(*items: Any) -> list[dict[str, Any]]:
    world = AsrWorld(FakeSiteRecovery({ASR_VAULT: list(items)}))
    world.run()
    rows = [o.to_record() for o in world.rows("verify-replication")]
    for r in rows:  # recorded six hours before the posture's NOW, like the backup rows
        r["TimeGenerated"] = row(6)["TimeGenerated"]
    return rows


def test_replication_findings_take_their_place_in_the_verdict_and_in_status() -> None:
    renamed = [
        replicated("web", replication_health="Critical", health_errors=("153039: stuck",)),
        replicated("db", rpo_seconds=30 * 3600),  # over the 26 h target of the policy
        replicated("late", last_successful_test_failover=VERIFIED_AT - timedelta(days=200)),
        replicated("plain", agent_expiry=VERIFIED_AT + timedelta(days=3)),  # shown, not at risk
    ]
    evidence = [
        *ESTATE,
        *(r for vm in ("web", "db", "late", "plain") for r in snapshots(vm, 10)),
        verified("web", rpo_hours=50),  # a backup breach of the same VM stays its own
        verified("plain", rpo_hours=2),
        *replication_rows(*renamed),
    ]
    tables = posture.read_tables(KqlReader(evidence), posture.evidence_queries(), days=30)
    report = posture.assemble(tables.rows)
    vms = {vm["vm"]: vm for vm in report["vms"]}
    assert {n: vms[n]["verdict"] for n in ("web", "db", "late", "plain")} == {
        "web": "at-risk",
        "db": "at-risk",
        "late": "at-risk",
        "plain": "healthy",
    }
    assert {n: vms[n]["replication"] for n in ("web", "db", "late", "plain")} == {
        "web": "unhealthy",
        "db": "rpo-breached",
        "late": "overdue",
        "plain": "warning",
    }
    web = vms["web"]
    assert (web["finding"], web["rpo"]) == ("rpo-breached", "breached")  # backup, not hidden
    assert web["replicationFinding"] == "replication-unhealthy"
    assert web["reasons"][-1] == (
        "replication: replication-unhealthy: replication health is Critical: 153039: stuck"
    )
    assert any(r.startswith("backup: recovery point") for r in web["reasons"])
    assert vms["db"]["replicationRpoSeconds"] == 30 * 3600
    assert vms["db"]["replicationRpoTargetSeconds"] == 26 * 3600
    assert vms["vm-ok"]["replication"] == "none"
    console = Console(record=True, width=240)
    show(console, {**report, "heldSnapshots": [], "heldVms": []})
    text = console.export_text()
    assert "replication (Site Recovery)" in text
    assert "replication-rpo-breached, RPO a day / a day" in text
    assert "not replicated" in text
    assert "agent-expiring" in text
