"""A subscription and region near, then at, Azure's snapshot limit, end to end: one night
through the local host, Azurite and the stand-in.

Azure allows 75,000 snapshots per subscription and region; 67,500 take too long to list in a
test, so both sides count to 12 here: the stand-in refuses the 13th (`--region-snapshot-limit`)
and Lifeboat plans against 12 (`REGION_SNAPSHOT_LIMIT`). 11 are seeded: the plan warns (90% of
12 is 10.8), the first of tonight's three creates takes the last place, Azure refuses the other
two and Lifeboat reports them `blocked`, final for the night.
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

import pytest

from cli.azurite import Azurite
from cli.plan_cmd import _describe
from emulator.process import running_emulator
from shared import rotation
from shared.model import Outcome
from shared.services import reset_services, services
from tests.e2e_env import SUB, app_host, app_settings, stand_in_options, wire_services
from tests.fakes import MemoryReporter, patched_environ

pytestmark = pytest.mark.e2e

LIMIT = 12
NIGHT = datetime.fromisoformat("2026-11-27T02:00:00+00:00")

ESTATE = f"""\
version: 1
identities:
  - {{name: id-lifeboat, clientId: 8a4f1e27-3c6b-4d95-a0e8-5b2c7f9d1e43,
     objectId: c2e75b19-8d4a-4f36-9b1e-7a3d5c8f2e64}}
subscriptions:
  - id: {SUB}
    location: westeurope
    resourceGroups:
      - {{name: rg-app}}
      - {{name: rg-lifeboat-snapshots}}
    vms:
      - {{name: vm-a, resourceGroup: rg-app, tags: {{"lifeboat:policy": daily}},
         osDisk: {{sku: Premium_LRS, sizeGB: 32,
                  snapshots: {{count: 11, every: 1d, newest: 1d}}}},
         dataDisks: [{{lun: 0, name: vm-a-data-01, sku: Premium_LRS, sizeGB: 64}}]}}
      - {{name: vm-b, resourceGroup: rg-app, tags: {{"lifeboat:policy": daily}},
         osDisk: {{sku: Premium_LRS, sizeGB: 32}}}}
"""


@pytest.fixture(scope="module")
def night(azurite: Azurite, tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, ...]:
    """`lifeboat plan`'s document before the night, and the night's rows."""
    tmp = tmp_path_factory.mktemp("region-limit")
    estate, policies = tmp / "estate.yaml", tmp / "policies.yaml"
    estate.write_text(ESTATE)
    policies.write_text("version: 1\npolicies:\n  daily: {retention: {last: 3}}\n")
    options = stand_in_options(7, "--region-snapshot-limit", str(LIMIT))
    with running_emulator(estate, *options) as ep, patched_environ(ep.environment()):
        environ = app_settings(
            azurite,
            ep,
            POLICIES_FILE=str(policies),
            ARM_WRITES_PER_SECOND="200",
            SNAPSHOT_WRITES_PER_SECOND="200",
            CONFIRM_DELAY_SECONDS="1",
            REGION_SNAPSHOT_LIMIT=str(LIMIT),
        )
        reporter = MemoryReporter()
        overrides, clock, admin = wire_services(ep, environ, reporter, tmp / "host.json")
        try:
            with app_host(overrides, environ, clock) as host:
                plan = _describe(*rotation.preview_night(services(), SUB, NIGHT))
                admin.post("/clock", json={"set": NIGHT.isoformat()}).raise_for_status()
                _wait_for_run_end(reporter)
                host.wait_idle(timeout=60)
        finally:
            admin.close()
            reset_services()
    return plan, reporter


def _wait_for_run_end(reporter: MemoryReporter, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(o.operation == "run-end" for o in list(reporter.outcomes)):
            return
        time.sleep(0.05)
    raise TimeoutError(f"no run-end: {reporter.operations()}")


def _unique(rows: list[Outcome]) -> list[Outcome]:
    return list({o.id: o for o in rows}.values())


def test_azures_refusal_at_the_region_limit_is_blocked_and_final(night: Any) -> None:
    _plan, reporter = night
    creates = [o for o in reporter.outcomes if o.operation == "snapshot-create"]
    by_disk: dict[str, set[str]] = {}
    for o in creates:
        by_disk.setdefault((o.resource_id or "").lower(), set()).add(o.status.value)
    assert len(by_disk) == 3
    blocked = _unique([o for o in creates if o.status.value == "blocked"])
    assert len({o.resource_id for o in blocked}) == 2, "one place was left for three creates"
    assert all("snapshots quota" in (o.reason or "") for o in blocked)
    assert all("westeurope" in (o.reason or "") for o in blocked)
    assert [s for s in by_disk.values() if "succeeded" in s] != []
    assert all("failed" not in s for s in by_disk.values()), "blocked is final for the night"
    [end] = _unique([o for o in reporter.outcomes if o.operation == "run-end"])
    assert end.status.value == "succeeded"


def test_the_plan_warns_from_90_percent_of_the_region_limit_it_is_given(night: Any) -> None:
    plan, reporter = night
    [warning] = [w for w in plan["warnings"] if w["kind"] == "region-near-limit"]
    assert (warning["region"], warning["seenByLifeboat"], warning["limit"]) == (
        "westeurope",
        11,
        LIMIT,
    )
    rows = _unique(
        [
            o
            for o in reporter.outcomes
            if o.operation == "quota-warning" and o.details.get("limit") == "region-near-limit"
        ]
    )
    assert [(o.status.value, o.severity, o.count) for o in rows] == [("planned", "warning", 11)]
    assert (rows[0].reason or "").startswith(
        f"westeurope: 11 snapshots seen by Lifeboat, of Azure's {LIMIT} per subscription and region"
    )
