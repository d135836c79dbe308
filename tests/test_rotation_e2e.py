"""Nights of rotation end to end: the local host runs the real app against Azurite and the stand-in.

Every morning, each in-scope disk's owned, unheld snapshots must be exactly the retention keep
set of every snapshot Lifeboat ever took of it; with writes throttled and every message delivered
twice, the snapshots left must be the same as in a clean run, nothing poisoned or duplicated.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from azure.identity import ManagedIdentityCredential
from azure.mgmt.compute import ComputeManagementClient

from cli.azurite import Azurite
from cli.localhost import Faults, LocalHost
from cli.processes import stop_process_group
from emulator.process import DEMO_ESTATE, running_emulator
from shared.policies import load_policies
from shared.retention import plan_retention
from shared.services import reset_services
from tests.e2e_env import SUB, app_host, app_settings, stand_in_options, wire_services
from tests.fakes import MemoryReporter, patched_environ

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parent.parent
GROUP = "rg-lifeboat-snapshots"
START = datetime.fromisoformat("2026-11-27T01:00:00+00:00")
STAND_IN = stand_in_options(11, "--page-size", "20", "--throttle-scale", "10")


@dataclass
class Night:
    """What one run saw: snapshot names per disk each morning, and every outcome."""

    reporter: MemoryReporter = field(default_factory=MemoryReporter)
    mornings: list[dict[str, set[str]]] = field(default_factory=list)
    seen_times: dict[str, dict[str, datetime]] = field(default_factory=lambda: defaultdict(dict))
    poisoned: int = 0
    failures: set[tuple[str, str, str]] = field(default_factory=set)
    retried: int = 0


def _owned_snapshots(compute: ComputeManagementClient) -> dict[str, dict[str, Any]]:
    return {s.name: s.as_dict() for s in compute.snapshots.list_by_resource_group(GROUP)}


def run_nights(azurite: Azurite, tmp_path: Path, nights: int, *, faults: bool) -> Night:
    result = Night()
    with running_emulator(DEMO_ESTATE, *STAND_IN) as ep, patched_environ(ep.environment()):
        environ = app_settings(
            azurite,
            ep,
            VERIFICATION_SCHEDULE="0 0 6 * * *",
            ARM_WRITES_PER_SECOND="200",
            SNAPSHOT_WRITES_PER_SECOND="200",
            # The create window must outlast throttled retries; faults make it longer.
            CONFIRM_DELAY_SECONDS="3" if faults else "1.5",
        )
        overrides, clock, admin = wire_services(
            ep, environ, result.reporter, tmp_path / f"host.{faults}.json"
        )
        if faults:
            for method in ("PUT", "DELETE"):
                admin.post(
                    "/faults",
                    json={
                        "action": "status",
                        "method": method,
                        "path": "/snapshots/",
                        "status": 429,
                        "code": "TooManyRequests",
                        "retryAfter": 0,
                        "probability": 0.3,
                    },
                ).raise_for_status()
        compute = ComputeManagementClient(
            ManagedIdentityCredential(client_id=ep.client_id),
            SUB,
            base_url=ep.arm,
            credential_scopes=[ep.arm_audience + ".default"],
        )
        host = app_host(overrides, environ, clock, faults=Faults(duplicate_deliveries=faults))
        with host:
            for night in range(nights):
                occurrence = START.replace(hour=2) + timedelta(days=night)
                admin.post("/clock", json={"set": occurrence.strftime("%Y-%m-%dT%H:%M:%SZ")})
                _wait_for_night(host, result.reporter, occurrence)
                host.wait_idle(timeout=60)
                result.mornings.append(_morning(compute, result))
            result.poisoned = sum(s.poisoned for s in host.stats.values())
        admin.close()
    reset_services()
    return result


def _wait_for_night(host: LocalHost, reporter: MemoryReporter, occurrence: datetime) -> None:
    slot = occurrence.strftime("%Y%m%d%H%M")
    deadline = datetime.now() + timedelta(seconds=30)
    while datetime.now() < deadline:
        if any(
            o.operation == "run-start" and o.details.get("slot") == slot for o in reporter.outcomes
        ):
            return
        host._stop.wait(0.05)
    raise TimeoutError(f"the rotation timer did not fire for {slot}")


def _morning(compute: ComputeManagementClient, result: Night) -> dict[str, set[str]]:
    by_disk: dict[str, set[str]] = defaultdict(set)
    for name, body in _owned_snapshots(compute).items():
        props = body["properties"]
        source = props["creationData"].get("sourceResourceId", "").lower()
        result.seen_times[source][name] = datetime.fromisoformat(
            props["timeCreated"].replace("Z", "+00:00")
        )
        by_disk[source].add(name)
    return dict(by_disk)


def _check_mornings(result: Night) -> None:
    """Each morning: a disk's owned, unheld snapshots are the keep set of all it ever had."""
    policy = load_policies(ROOT / "policies.yaml").policies["daily"].retention
    held = {n for times in result.seen_times.values() for n in times if n in HELD}
    for index, morning in enumerate(result.mornings):
        cutoff = START + timedelta(days=index, hours=1, minutes=30)
        for source, names in morning.items():
            history = {
                n: t
                for n, t in result.seen_times[source].items()
                if n.startswith("lb-") and n not in held and t <= cutoff
            }
            ordered = sorted(history)
            keep = plan_retention([history[n] for n in ordered], policy).keep if ordered else ()
            expected = {ordered[k.index] for k in keep}
            owned_unheld = {n for n in names if n.startswith("lb-") and n not in held}
            assert owned_unheld == expected, (index, source, owned_unheld ^ expected)


HELD = {"lb-4fpx7cgz2zw7slu7-202611200200"}
NIGHTS = 40
FAULTY_NIGHTS = 20  # compared with the clean run's morning of the same night


@pytest.fixture(scope="module")
def faulty_process(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, Path]]:
    """The faulty run, in its own process (own Azurite, stand-in and host), beside the clean one."""
    out = tmp_path_factory.mktemp("faulty") / "night.json"
    command = [sys.executable, "-m", "tests.test_rotation_e2e", str(FAULTY_NIGHTS), str(out)]
    proc = subprocess.Popen(
        command,
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=(out.parent / "log.txt").open("w"),
        start_new_session=True,
    )
    try:
        yield proc, out
    finally:
        stop_process_group(proc)


@pytest.fixture(scope="module")
def clean_run(
    faulty_process: tuple[Any, Path], azurite: Azurite, tmp_path_factory: pytest.TempPathFactory
) -> Night:
    _empty_queues(azurite)
    return run_nights(azurite, tmp_path_factory.mktemp("clean"), NIGHTS, faults=False)


def _empty_queues(azurite: Azurite) -> None:
    from azure.storage.queue import QueueServiceClient

    service = QueueServiceClient.from_connection_string(azurite.connection_string)
    for queue in list(service.list_queues()):
        service.delete_queue(queue.name)


@pytest.mark.timeout(400)
def test_forty_nights_keep_exactly_the_retention_keep_set(clean_run: Night) -> None:
    _check_mornings(clean_run)
    outcomes = clean_run.reporter.outcomes
    assert clean_run.poisoned == 0
    planned = [o for o in outcomes if o.operation == "plan-vm" and o.status.value == "planned"]
    assert len(planned) == 8 * NIGHTS
    skipped = {o.reason for o in outcomes if o.status.value == "skipped"}
    assert "ephemeral OS disk: cannot be snapshotted" in skipped
    blocked = {(o.reason or "").split(":")[0] for o in outcomes if o.status.value == "blocked"}
    assert "LinkedAuthorizationFailed" in blocked
    deleted = [
        o for o in outcomes if o.operation == "snapshot-delete" and o.status.value == "succeeded"
    ]
    assert deleted, "forty nights of a 7-daily policy must prune"
    last = clean_run.mornings[-1]
    assert set().union(*last.values()) >= HELD, "the held snapshot survives every night"
    assert "manual-before-upgrade" in set().union(*last.values()), "unowned snapshots survive"


@pytest.mark.timeout(400)
def test_throttled_and_duplicated_nights_end_where_the_clean_run_does(
    clean_run: Night, faulty_process: tuple[Any, Path]
) -> None:
    proc, out = faulty_process
    assert proc.wait(timeout=300) == 0, (out.parent / "log.txt").read_text()[-3000:]
    faulty = _load(json.loads(out.read_text()))
    assert faulty.poisoned == 0
    assert faulty.mornings[-1] == clean_run.mornings[FAULTY_NIGHTS - 1]
    _check_mornings(faulty)
    clean_failures = {
        key
        for key in _failure_keys(clean_run.reporter.outcomes)
        if key[2] < (START + timedelta(days=FAULTY_NIGHTS)).strftime("%Y%m%d%H%M")
    }
    # Duplicates may report a failure twice; throttled retries may finish after the create
    # window (reported as not found then). Every clean failure is there, and every extra one
    # is a late snapshot that the next morning has: late, never lost.
    assert faulty.failures >= clean_failures  # the deny-assigned disk, every night
    for operation, resource, slot in faulty.failures - clean_failures:
        if operation == "run-end":
            continue
        assert operation == "snapshot-create", (operation, resource, slot)
        night = (datetime.strptime(slot, "%Y%m%d%H%M").replace(tzinfo=START.tzinfo) - START).days
        names = faulty.mornings[min(night + 1, len(faulty.mornings) - 1)].get(
            resource.lower(), set()
        )
        assert any(n.endswith(slot) for n in names), (resource, slot)
    assert faulty.retried > 0, "throttling must have been met and retried"


def _failure_keys(outcomes: list[Any]) -> set[tuple[str, str, str]]:
    return {
        (o.operation, o.resource_id or o.subscription_id or "", str(o.details.get("slot", "")))
        for o in outcomes
        if o.status.value == "failed"
    }


def _dump(night: Night) -> dict[str, Any]:
    outcomes = night.reporter.outcomes
    return {
        "mornings": [{k: sorted(v) for k, v in m.items()} for m in night.mornings],
        "seenTimes": {
            src: {n: t.isoformat() for n, t in times.items()}
            for src, times in night.seen_times.items()
        },
        "poisoned": night.poisoned,
        "failures": sorted(_failure_keys(outcomes)),
        # Work put back (429s, low headroom) and later done: its waiting rows.
        "retried": sum(1 for o in outcomes if o.status.value == "waiting"),
    }


def _load(document: dict[str, Any]) -> Night:
    night = Night()
    night.mornings = [{k: set(v) for k, v in m.items()} for m in document["mornings"]]
    for src, times in document["seenTimes"].items():
        night.seen_times[src] = {n: datetime.fromisoformat(t) for n, t in times.items()}
    night.poisoned = document["poisoned"]
    night.failures = {tuple(key) for key in document["failures"]}  # type: ignore[misc]
    night.retried = document["retried"]
    return night


if __name__ == "__main__":
    # The faulty run, as the module fixture starts it: NIGHTS OUT.json
    from cli.azurite import running_azurite

    with running_azurite() as own_azurite:
        result = run_nights(own_azurite, Path(sys.argv[2]).parent, int(sys.argv[1]), faults=True)
    Path(sys.argv[2]).write_text(json.dumps(_dump(result)))
