"""One night of rotation at estate scale, against a naive baseline, in one run.

A generated estate of 5,000 VMs (about 10,000 in-scope disks, 7 nights of Lifeboat snapshots
already there) runs one night through the local host, Azurite and the stand-in, with the
stand-in's throttling scaled up by THROTTLE_SCALE and Lifeboat's budgets set just under it. The
stand-in's request log gives ARM requests by kind. The naive baseline (GET every VM and disk,
PUT each snapshot and poll it to completion) runs on a sample of VMs in the same stand-in, and
its per-disk costs are shown beside Lifeboat's.

    python -m bench rotation            # VMS=5000 by default; BENCH_VMS=1000 for a quick look
"""

from __future__ import annotations

import itertools
import json
import os
import ssl
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
VMS = int(os.environ.get("BENCH_VMS", "5000"))
HISTORY_NIGHTS = 7
PAGE_SIZE = 1000
THROTTLE_SCALE = 10  # ARM writes and deletes refill 100/s, reads 250/s
BUDGET = 90.0  # Lifeboat's ARM write budget per subscription (and snapshot budget per region)
NAIVE_SAMPLE = 100  # VMs the naive baseline handles
START = datetime(2026, 11, 27, 1, 0, tzinfo=UTC)
SNAPSHOT_GROUP = "rg-lifeboat-snapshots"


def main() -> None:
    from cli.azurite import running_azurite
    from emulator.process import running_emulator
    from tests.fakes import patched_environ

    work = Path(tempfile.mkdtemp(prefix="lifeboat-bench-"))
    estate, disks = _estate(work)
    print(f"estate: {VMS} VMs, {disks} in-scope disks, {HISTORY_NIGHTS} nights of history, "
          f"list page size {PAGE_SIZE}", flush=True)  # fmt: skip
    options = (
        "--clock-start", START.strftime("%Y-%m-%dT%H:%M:%SZ"), "--page-size", str(PAGE_SIZE),
        "--throttle-scale", str(THROTTLE_SCALE), "--operation-seconds", "2",
        "--retry-after-scale", "0.1",
    )  # fmt: skip
    with (
        running_azurite() as azurite,
        running_emulator(estate, *options, timeout=120) as ep,
        patched_environ(ep.environment()),
    ):
        admin = httpx.Client(
            base_url=ep.admin, verify=ssl.create_default_context(cafile=ep.ca_bundle), timeout=60
        )
        lifeboat = _lifeboat_night(azurite, ep, admin, work)
        print(f"Lifeboat's night: {lifeboat['elapsed']:.0f} s", flush=True)
        started = time.monotonic()
        naive = _naive(ep, admin)
        print(f"naive baseline on {naive['disks']} disks: {time.monotonic() - started:.0f} s",
              flush=True)  # fmt: skip
        admin.close()
    imports = _import_times()
    _print(lifeboat, naive, imports, disks)


# ------------------------------------------------------------------------------------ estate


def _estate(work: Path) -> tuple[Path, int]:
    from emulator.estate import stable_uuid
    from emulator.generate import generate
    from shared.snapshots import slot_of, snapshot_name

    data = generate(VMS, subscriptions=1, per_group=100, seed=5)
    sub = data["subscriptions"][0]
    snapshots: list[dict[str, Any]] = []
    in_scope = 0
    for vm in sub["vms"]:
        if vm.get("tags", {}).get("lifeboat:policy") != "daily":
            continue
        attached = (
            [] if vm["osDisk"].get("ephemeral") else [(vm["resourceGroup"], f"{vm['name']}-osdisk")]
        )
        attached += [
            (d.get("resourceGroup", vm["resourceGroup"]), d["name"]) for d in vm["dataDisks"]
        ]
        for group, name in attached:
            in_scope += 1
            disk_id = (
                f"/subscriptions/{sub['id']}/resourceGroups/{group}"
                f"/providers/Microsoft.Compute/disks/{name}"
            )
            unique = stable_uuid(disk_id)
            for night in range(1, HISTORY_NIGHTS + 1):
                taken = START.replace(hour=2) - timedelta(days=night)
                snapshots.append(
                    {
                        "name": snapshot_name(disk_id, unique, slot_of(taken)),
                        "resourceGroup": SNAPSHOT_GROUP,
                        "source": f"{group}/{name}",
                        "incremental": True,
                        "timeCreated": (taken + timedelta(seconds=5)).isoformat(),
                        "tags": {"lifeboat:managed": "true", "lifeboat:policy": "daily"},
                    }
                )
    sub["snapshots"] = snapshots
    path = work / "estate.json"
    path.write_text(json.dumps(data))
    return path, in_scope


# ---------------------------------------------------------------------------------- Lifeboat


def _lifeboat_night(azurite: Any, ep: Any, admin: httpx.Client, work: Path) -> dict[str, Any]:
    import function_app
    from cli.clock import RemoteClock
    from cli.localhost import LocalHost
    from shared.services import override_services, reset_services
    from shared.settings import Settings
    from tests.fakes import MemoryReporter

    policies = work / "policies.yaml"
    policies.write_text("version: 1\npolicies:\n  daily: {retention: {daily: 7}}\n")
    environ = {
        "AzureWebJobsStorage": azurite.connection_string,
        "TARGET_SUBSCRIPTIONS": ep.subscriptions[0],
        "POISON_SCHEDULE": "0 0 0 1 1 *",
        "ROTATION_SCHEDULE": "0 0 2 * * *",
        "VERIFICATION_SCHEDULE": "0 0 6 * * *",
        "DRILL_SCHEDULE": "0 0 4 * * *",
        "SWEEPER_SCHEDULE": "0 30 * * * *",
        "ARM_ENDPOINT": ep.arm,
        "ARM_AUDIENCE": ep.arm_audience + ".default",
        "AZURE_CLIENT_ID": ep.client_id,
        "ARM_WRITES_PER_SECOND": str(BUDGET),
        "SNAPSHOT_WRITES_PER_SECOND": str(BUDGET),
        "CONFIRM_DELAY_SECONDS": "5",
        "POLICIES_FILE": str(policies),
        "MAX_ESTATE_DELETE_FRACTION": "0.5",
    }
    overrides = work / "host.json"
    overrides.write_text(json.dumps({"extensions": {"queues": {
        "maxPollingInterval": "00:00:00.500", "visibilityTimeout": "00:00:01"}}}))  # fmt: skip
    reporter = MemoryReporter()
    clock = RemoteClock(ep.clock, ca_bundle=ep.ca_bundle)
    reset_services()
    override_services(settings=Settings.from_env(environ), reporter=reporter, clock=clock)
    admin.delete("/requests")
    started = time.monotonic()
    with LocalHost(function_app.app, overrides=overrides, environ=environ, clock=clock) as host:
        admin.post("/clock", json={"set": START.replace(hour=2).strftime("%Y-%m-%dT%H:%M:%SZ")})
        while not any(o.operation == "run-start" for o in reporter.outcomes):
            time.sleep(0.1)
        host.wait_idle(timeout=3600, settle=2.0)
    elapsed = time.monotonic() - started
    reset_services()
    log = _requests(admin)
    counters = _counters(admin)
    outcomes = reporter.outcomes
    creates = [
        o for o in outcomes if o.operation == "snapshot-create" and o.status.value == "succeeded"
    ]
    deletes = [
        o for o in outcomes if o.operation == "snapshot-delete" and o.status.value == "succeeded"
    ]
    return {
        "elapsed": elapsed,
        "log": log,
        "counters": counters,
        "creates": len(creates),
        "deletes": len(deletes),
        "outcomes": outcomes,
    }


def _counters(admin: httpx.Client) -> dict[str, Any]:
    """The stand-in's counters: complete, unlike its log, which keeps the last 20,000 entries."""
    counters: dict[str, Any] = admin.get("/requests", params={"limit": 1}).json()["counters"]
    return counters


def _requests(admin: httpx.Client) -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = []
    since = 0
    while True:
        page = admin.get("/requests", params={"since": since, "limit": 5000}).json()["entries"]
        if not page:
            return entries
        entries += page
        since = page[-1]["seq"]


# ------------------------------------------------------------------------------------- naive


def _naive(ep: Any, admin: httpx.Client) -> dict[str, Any]:
    """GET each VM and each disk, PUT each snapshot and poll it to completion."""
    from azure.identity import ManagedIdentityCredential
    from azure.mgmt.compute import ComputeManagementClient

    subscription = ep.subscriptions[0]
    compute = ComputeManagementClient(
        ManagedIdentityCredential(client_id=ep.client_id), subscription, base_url=ep.arm,
        credential_scopes=[ep.arm_audience + ".default"], polling_interval=1,
    )  # fmt: skip
    vms = [v for v in compute.virtual_machines.list_all() if (v.tags or {}).get("lifeboat:policy")]
    admin.delete("/requests")

    def one_vm(vm: Any) -> int:
        group = vm.id.split("/")[4]
        full = compute.virtual_machines.get(group, vm.name).as_dict()
        storage = full["properties"]["storageProfile"]
        ids = [
            d.get("managedDisk", {}).get("id")
            for d in [storage["osDisk"], *storage.get("dataDisks", [])]
            if not (d.get("diffDiskSettings") or {}).get("option")
        ]
        done = 0
        for disk_id in filter(None, ids):
            parts = disk_id.split("/")
            compute.disks.get(parts[4], parts[8])
            body = {"location": full["location"], "properties": {
                "creationData": {"createOption": "Copy", "sourceResourceId": disk_id},
                "incremental": True}}  # fmt: skip
            compute.snapshots.begin_create_or_update(
                SNAPSHOT_GROUP, f"naive-{parts[8]}"[:80], body
            ).result()
            done += 1
        return done

    # Threads only shorten the wall time; the requests per disk are the same.
    with ThreadPoolExecutor(max_workers=16) as pool:
        disks = sum(pool.map(one_vm, vms[:NAIVE_SAMPLE]))
    return {"log": _requests(admin), "counters": _counters(admin), "disks": disks}


# ------------------------------------------------------------------------------------ import


def _import_times() -> dict[str, float]:
    def best(code: str) -> float:
        runs = []
        for _ in range(5):
            t = time.perf_counter()
            env = {"PATH": os.environ.get("PATH", "")}
            subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True,
                           check=True)  # fmt: skip
            runs.append(time.perf_counter() - t)
        return min(runs)

    return {
        "python": best("pass"),
        "azure.functions": best("import azure.functions"),
        "function_app": best("import function_app"),
    }


# ------------------------------------------------------------------------------------ report


def _kinds(counters: dict[str, Any]) -> dict[str, int]:
    """Requests by kind, from the stand-in's complete counters (by ARM operation and status)."""
    kinds: dict[str, int] = {}
    for operation, count in counters.get("byOperation", {}).items():
        op = operation.lower()
        if op.startswith("identity/"):
            kind = "token"
        elif "operations/read" in op:
            kind = "status poll"
        elif op.endswith("/read"):
            kind = "read"
        elif op.startswith("fault/") or op.startswith("admin/"):
            continue
        else:
            kind = "write"
        kinds[kind] = kinds.get(kind, 0) + count
    throttled = int(counters.get("byStatus", {}).get("429", 0))
    kinds["throttled (429)"] = throttled
    kinds["write"] = kinds.get("write", 0) - throttled  # 429s are only ever met on writes here
    return kinds


def _write_rate(log: list[dict[str, Any]]) -> tuple[float, int]:
    times = sorted(
        datetime.fromisoformat(e["time"].replace("Z", "+00:00")).timestamp()
        for e in log if e["method"] in ("PUT", "DELETE") and e["status"] in (200, 201, 202, 204)
    )  # fmt: skip
    if len(times) < 2:
        return 0.0, len(times)
    # Creates and deletes are separate ARM buckets and phases: rate over the busy seconds.
    busy = sum(min(b - a, 1.0) for a, b in itertools.pairwise(times))
    return len(times) / max(busy, 1e-9), len(times)


def _print(
    lifeboat: dict[str, Any], naive: dict[str, Any], imports: dict[str, float], disks: int
) -> None:
    kinds = _kinds(lifeboat["counters"])
    naive_kinds = _kinds(naive["counters"])
    rate, accepted = _write_rate(lifeboat["log"])
    writes = lifeboat["creates"] + lifeboat["deletes"]
    per_disk = lambda n, d: n / d if d else 0.0  # noqa: E731
    print()
    print(f"{'':34}{'Lifeboat':>12}{'naive':>12}")
    print(f"{'disks snapshotted':34}{lifeboat['creates']:>12}{naive['disks']:>12}")
    for kind in ("read", "write", "status poll", "throttled (429)", "token"):
        a, b = kinds.get(kind, 0), naive_kinds.get(kind, 0)
        print(f"{kind + ' requests':34}{a:>12}{b:>12}")
        mine, theirs = per_disk(a, lifeboat["creates"]), per_disk(b, naive["disks"])
        print(f"{'  per disk':34}{mine:>12.3f}{theirs:>12.3f}")
    print(f"{'writes accepted (PUT+DELETE)':34}{accepted:>12}")
    print(f"{'creates + deletes (outcomes)':34}{writes:>12}")
    print(f"{'status polls per write':34}{per_disk(kinds.get('status poll', 0), writes):>12.3f}")
    print(f"{'429s per write':34}{per_disk(kinds.get('throttled (429)', 0), writes):>12.4f}")
    print(f"{'write rate while busy (/s)':34}{rate:>12.1f}")
    print(f"{'budget (/s)':34}{BUDGET:>12.1f}")
    print(f"{'rate / budget':34}{rate / BUDGET:>12.2f}")
    print(f"{'night wall time (s)':34}{lifeboat['elapsed']:>12.1f}")
    print()
    base = imports["python"]
    functions, app = imports["azure.functions"] - base, imports["function_app"] - base
    print(
        f"cold import, best of 5, beyond the interpreter's own {base:.3f} s: "
        f"azure.functions {functions:.3f} s, function_app {app:.3f} s, ratio {app / functions:.2f}"
    )


if __name__ == "__main__":
    main()
