"""One night of rotation at estate scale, against the write budget and a naive baseline.

A generated estate of 5,000 VMs (11,205 in-scope disks, 7 nights of Lifeboat snapshots already
there, one subscription, two regions) runs through the local host, Azurite and the stand-in:

1. the headroom night (only with BENCH_HEADROOM=1): throttling off and budgets far above what
   the harness can do, so the write rates show how fast the harness itself goes;
2. the measured nights, one per Compute family an incremental create may count against (the
   stand-in's default CreateUpdateDisks, then HighCostSnapshotCreateHydrate; BENCH_FAMILIES to
   choose): the stand-in's throttling scaled by THROTTLE_SCALE, Lifeboat's ARM budgets set to the
   scaled ARM write refill and its snapshot budget per region to the family's (the ARM refill,
   or HighCost's 1,000 per 3 minutes, scaled).

The measured night is printed side by side with what the write budget allows: the ideal night
(creates ÷ min(ARM write budget, sum of the regional snapshot budgets) + deletes ÷ ARM delete
budget + the confirm delay) against its wall time; create and prune rates (each from the phase's
first to its last accepted write) against their budgets; 429s as a share of writes; the worst
60-second window of creates and deletes per subscription and region against its budget; reads;
and the messages the prunes took on `rotation-prune`. The stand-in's counters give ARM requests
by kind; its request log, read while the night runs (it keeps only the last 20,000 entries),
gives the time of every write and 429. The naive baseline (GET every VM and disk, PUT each
snapshot and poll it to completion) runs on a sample of VMs in the same stand-in.

    python -m bench rotation            # 5,000 VMs, ~45 min; BENCH_VMS=1500 (~12 min) to develop
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from emulator.throttling import CREATE_UPDATE, HYDRATE, ComputeLimits

ROOT = Path(__file__).resolve().parent.parent
VMS = int(os.environ.get("BENCH_VMS", "5000"))
HISTORY_NIGHTS = 7
PAGE_SIZE = 1000
# Azure's ARM write and delete buckets refill 10/s (200 deep) per subscription and principal;
# scaled x2 they refill 20/s (400 deep), and Compute's snapshot policies 33/s (3-min window) and
# 28/s (30-min window) per region. The harness carries about twice that (RESULTS.md).
THROTTLE_SCALE = 2.0
BUDGET = 10.0 * THROTTLE_SCALE  # Lifeboat's ARM write budget, and snapshot budget per region
HEADROOM = os.environ.get("BENCH_HEADROOM", "0") == "1"
CONFIRM_DELAY = 5.0  # seconds between the create window's end and the confirm
WINDOW = 60.0  # seconds: pacing is judged per subscription and region in every such window
# The targets the night is held to (issue 19): wall time within 10% of the ideal, prunes at
# 95% of their budget at least, 429s under 1% of writes, every 60 s window within 10%.
TARGETS = {"wall": 1.10, "prune": 0.95, "throttled": 0.01, "window": 1.10}
# The families an incremental create may count against, each measured on a night of its own
# (BENCH_FAMILIES, comma-separated, to run fewer), and Lifeboat's SNAPSHOT_WRITES_PER_SECOND on
# it: the ARM budget, or the HighCost family's 3-minute refill (1,000 per 3 min, scaled).
FAMILIES = os.environ.get("BENCH_FAMILIES", f"{CREATE_UPDATE},{HYDRATE}").split(",")
FAMILY_BUDGETS = {CREATE_UPDATE: BUDGET, HYDRATE: ComputeLimits().hydrate[0] * THROTTLE_SCALE / 180}
UNPACED = 10_000.0  # the headroom night's budgets: every message is visible at once
NAIVE_SAMPLE = 100  # VMs the naive baseline handles
START = datetime(2026, 11, 27, 1, 0, tzinfo=UTC)
SNAPSHOT_GROUP = "rg-lifeboat-snapshots"
# (subscription, region) of each in-scope disk, by the hash its snapshots are named with.
DISK_REGIONS: dict[str, tuple[str, str]] = {}


def main() -> None:
    from cli.azurite import running_azurite
    from emulator.process import running_emulator
    from tests.fakes import patched_environ

    work = Path(tempfile.mkdtemp(prefix="lifeboat-bench-"))
    estate, disks = _estate(work)
    print(
        f"estate: {VMS} VMs, {disks} in-scope disks, {HISTORY_NIGHTS} nights of history, "
        f"list page size {PAGE_SIZE}",
        flush=True,
    )
    options = (
        "--clock-start",
        START.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "--page-size",
        str(PAGE_SIZE),
        "--throttle-scale",
        str(THROTTLE_SCALE),
        "--operation-seconds",
        "2",
        "--retry-after-scale",
        "0.1",
    )
    night = START.replace(hour=2)
    with (
        running_azurite() as azurite,
        running_emulator(estate, *options, timeout=120) as ep,
        patched_environ(ep.environment()),
    ):
        admin = httpx.Client(
            base_url=ep.admin, verify=ssl.create_default_context(cafile=ep.ca_bundle), timeout=60
        )
        headroom: dict[str, Any] | None = None
        if HEADROOM:
            admin.post("/throttle", json={"enabled": False}).raise_for_status()
            # The confirm waits for the creates as if the harness did 40 writes/s.
            headroom = _lifeboat_night(
                azurite, ep, admin, work, night, budget=UNPACED, confirm_delay=5 + disks / 40
            )
            print(f"headroom night (unthrottled): {headroom['elapsed']:.0f} s", flush=True)
            night += timedelta(days=1)
        # Full buckets, and 429s with Retry-After in whole seconds as ARM sends them: scaled by
        # 0.1 (as the LRO polls still are) most would say 0 s and be retried at once.
        # One measured night per Compute family incremental creates may count against (no
        # recording says which): the stand-in's default, then the copying creates' HighCost one,
        # whose refill is below the ARM budget per region, so Lifeboat's snapshot budget per
        # region is set to it, as an operator would.
        measured: list[dict[str, Any]] = []
        for family in FAMILIES:
            throttle = {
                "enabled": True,
                "retryAfterScale": 1.0,
                "compute": {"incremental_family": family},
            }
            admin.post("/throttle", json=throttle).raise_for_status()
            result = _lifeboat_night(
                azurite,
                ep,
                admin,
                work,
                night,
                budget=BUDGET,
                snapshot_budget=FAMILY_BUDGETS[family],
                confirm_delay=CONFIRM_DELAY,
            )
            result["family"] = family
            measured.append(result)
            print(f"Lifeboat's night ({family}): {result['elapsed']:.0f} s", flush=True)
            night += timedelta(days=1)
        started = time.monotonic()
        naive = _naive(ep, admin)
        print(
            f"naive baseline on {naive['disks']} disks: {time.monotonic() - started:.0f} s",
            flush=True,
        )
        admin.close()
    imports = _import_times()
    _print(measured, naive, headroom, imports)


# ------------------------------------------------------------------------------------ estate


def _estate(work: Path) -> tuple[Path, int]:
    from emulator.estate import stable_uuid
    from emulator.generate import generate
    from shared.snapshots import disk_hash, slot_of, snapshot_name

    data = generate(VMS, subscriptions=1, per_group=100, seed=5)
    sub = data["subscriptions"][0]
    region_of_group = {g["name"]: g.get("location", sub["location"]) for g in sub["resourceGroups"]}
    snapshots: list[dict[str, Any]] = []
    in_scope = 0
    for vm in sub["vms"]:
        region = region_of_group[vm["resourceGroup"]]  # a VM's disks are in its region
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
            DISK_REGIONS[disk_hash(disk_id, unique)] = (sub["id"], region)
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


def _lifeboat_night(
    azurite: Any,
    ep: Any,
    admin: httpx.Client,
    work: Path,
    night: datetime,
    *,
    budget: float,
    confirm_delay: float,
    snapshot_budget: float | None = None,
) -> dict[str, Any]:
    import function_app
    from cli.clock import RemoteClock
    from cli.localhost import LocalHost
    from shared.rotation import AHEAD_OF_PACE
    from shared.services import override_services, reset_services
    from shared.settings import Settings
    from tests.fakes import MemoryReporter

    policies = work / "policies.yaml"
    policies.write_text("version: 1\npolicies:\n  daily: {retention: {daily: 7}}\n")
    environ = {
        "AzureWebJobsStorage": azurite.connection_string,
        "TARGET_SUBSCRIPTIONS": ep.subscriptions[0],
        "MESSAGE_SIGNING_KEYS": "bench="
        + base64.urlsafe_b64encode(secrets.token_bytes(32)).decode(),
        # Only the rotation timer fires: the others (new year's day) would share the buckets.
        "POISON_SCHEDULE": "0 0 0 1 1 *",
        "ROTATION_SCHEDULE": "0 0 2 * * *",
        "VERIFICATION_SCHEDULE": "0 0 0 1 1 *",
        "DRILL_SCHEDULE": "0 0 0 1 1 *",
        "SWEEPER_SCHEDULE": "0 0 0 1 1 *",
        "POSTURE_SCHEDULE": "0 0 0 1 1 *",
        "ARM_ENDPOINT": ep.arm,
        "ARM_AUDIENCE": ep.arm_audience + ".default",
        "AZURE_CLIENT_ID": ep.client_id,
        "ARM_WRITES_PER_SECOND": str(budget),
        "SNAPSHOT_WRITES_PER_SECOND": str(snapshot_budget or budget),
        "CONFIRM_DELAY_SECONDS": str(confirm_delay),
        "POLICIES_FILE": str(policies),
        "MAX_ESTATE_DELETE_FRACTION": "0.5",
    }
    overrides = work / "host.json"
    overrides.write_text(
        json.dumps(
            {
                "extensions": {
                    "queues": {
                        "maxPollingInterval": "00:00:00.500",
                        "visibilityTimeout": "00:00:01",
                    }
                }
            }
        )
    )
    reporter = MemoryReporter()
    clock = RemoteClock(ep.clock, ca_bundle=ep.ca_bundle)
    reset_services()
    override_services(settings=Settings.from_env(environ), reporter=reporter, clock=clock)
    # The host starts just before the night, so its timers see no occurrence already past.
    before = night - timedelta(seconds=30)
    admin.post("/clock", json={"set": before.strftime("%Y-%m-%dT%H:%M:%SZ")}).raise_for_status()
    admin.delete("/requests")
    tail = _LogTail(ep)
    queue = _QueueLength(azurite.connection_string, "rotation-prune")
    started = time.monotonic()
    with LocalHost(function_app.app, overrides=overrides, environ=environ, clock=clock) as host:
        admin.post("/clock", json={"set": night.strftime("%Y-%m-%dT%H:%M:%SZ")}).raise_for_status()
        while not any(o.operation == "run-start" for o in reporter.outcomes):
            time.sleep(0.1)
        host.wait_idle(timeout=3600, settle=2.0)
        elapsed = time.monotonic() - started
        prune_stats = vars(host.stats["rotation_prune"]).copy()
    reset_services()
    longest = queue.stop()
    log = tail.stop()
    kept = [e for e in log if e["method"] in ("PUT", "DELETE") or e["status"] == 429]
    saved = work / f"writes-{night:%Y%m%d}-budget-{budget:.0f}.json"
    saved.write_text(json.dumps(kept))
    print(f"writes and 429s of the night: {saved}", flush=True)
    counters = _counters(admin)
    outcomes = reporter.outcomes
    creates = [
        o for o in outcomes if o.operation == "snapshot-create" and o.status.value == "succeeded"
    ]
    deletes = [
        o for o in outcomes if o.operation == "snapshot-delete" and o.status.value == "succeeded"
    ]
    sent = [
        o
        for o in outcomes
        if o.operation == "run-end" and o.details.get("totals", {}).get("prunesDue") is not None
    ]
    return {
        "elapsed": elapsed,
        "prune_messages": prune_stats["invocations"],
        "prune_put_backs": sum(
            1 for o in outcomes if o.operation == "rotation-prune" and o.status.value == "waiting"
        ),
        "prune_queue_longest": longest,
        # Work a worker put back because it was ahead of the night's pace (PACE_CATCH_UP).
        "ahead_of_pace": sum(
            1 for o in outcomes if o.status.value == "waiting" and o.reason == AHEAD_OF_PACE
        ),
        "prunes_due": sum(o.details["totals"]["prunesDue"] for o in sent),
        "confirm_delay": confirm_delay,
        "log": log,
        "counters": counters,
        "creates": len(creates),
        "deletes": len(deletes),
        "outcomes": outcomes,
        "budget": budget,
        "snapshot_budget": snapshot_budget or budget,
        "family": CREATE_UPDATE,
    }


class _LogTail:
    """Reads the stand-in's request log every second while a night runs, so no entry is lost."""

    def __init__(self, ep: Any) -> None:
        verify = ssl.create_default_context(cafile=ep.ca_bundle)
        self._client = httpx.Client(base_url=ep.admin, verify=verify, timeout=60)
        self._since = self._client.get("/requests", params={"limit": 1}).json()["total"]
        self._entries: list[dict[str, Any]] = []
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, name="log-tail", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._done.wait(1.0):
            self._read()

    def _read(self) -> None:
        while True:
            params = {"since": self._since, "limit": 5000}
            page = self._client.get("/requests", params=params).json()["entries"]
            if not page:
                return
            if page[0]["seq"] != self._since + 1:
                raise RuntimeError(f"request log entries {self._since + 1}.. were lost")
            self._entries += page
            self._since = page[-1]["seq"]

    def stop(self) -> list[dict[str, Any]]:
        self._done.set()
        self._thread.join()
        self._read()
        self._client.close()
        return self._entries


class _QueueLength:
    """The longest a queue got while the night ran, from Azurite's approximate count every 5 s
    (rarely enough that Azurite, which slows with long queues, barely notices)."""

    def __init__(self, connection_string: str, name: str) -> None:
        from azure.storage.queue import QueueClient

        self._client = QueueClient.from_connection_string(connection_string, name)
        self.longest = 0
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, name="queue-length", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        from azure.core.exceptions import ResourceNotFoundError

        while not self._done.wait(5.0):
            try:
                count = self._client.get_queue_properties().approximate_message_count or 0
            except ResourceNotFoundError:  # the host makes the queue when it starts
                continue
            self.longest = max(self.longest, count)

    def stop(self) -> int:
        self._done.set()
        self._thread.join()
        self._client.close()
        return self.longest


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
        ManagedIdentityCredential(client_id=ep.client_id),
        subscription,
        base_url=ep.arm,
        credential_scopes=[ep.arm_audience + ".default"],
        polling_interval=1,
    )
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
            body = {
                "location": full["location"],
                "properties": {
                    "creationData": {"createOption": "Copy", "sourceResourceId": disk_id},
                    "incremental": True,
                },
            }
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
            subprocess.run(
                [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, check=True
            )
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


@dataclass(frozen=True)
class Phase:
    """One phase's accepted writes: rate from the first to the last, and the busiest 10 s."""

    writes: int
    throttled: int
    span: float
    peak: float  # most writes in any 10-second window, per second

    @property
    def rate(self) -> float:
        return (self.writes - 1) / self.span if self.writes > 1 and self.span > 0 else 0.0


def _phase(log: list[dict[str, Any]], method: str) -> Phase:
    def stamp(entry: dict[str, Any]) -> float:
        return datetime.fromisoformat(entry["time"].replace("Z", "+00:00")).timestamp()

    mine = [e for e in log if e["method"] == method and "/snapshots/" in e["path"].lower()]
    times = sorted(stamp(e) for e in mine if 200 <= e["status"] < 300)
    throttled = sum(1 for e in mine if e["status"] == 429)
    if not times:
        return Phase(0, throttled, 0.0, 0.0)
    peak, low = 0, 0
    for high, t in enumerate(times):
        while t - times[low] >= 10.0:
            low += 1
        peak = max(peak, high - low + 1)
    return Phase(len(times), throttled, times[-1] - times[0], peak / 10.0)


def _stamp(entry: dict[str, Any]) -> float:
    return datetime.fromisoformat(entry["time"].replace("Z", "+00:00")).timestamp()


def _worst_window(times: list[float]) -> int:
    """The most events in any WINDOW-second span [t, t + WINDOW) of these sorted times."""
    worst, low = 0, 0
    for high, t in enumerate(times):
        while t - times[low] >= WINDOW:
            low += 1
        worst = max(worst, high - low + 1)
    return worst


def _windows(log: list[dict[str, Any]]) -> dict[tuple[str, str, str], int]:
    """Worst window of accepted snapshot writes, by (create|delete, subscription, region|*)."""
    times: dict[tuple[str, str, str], list[float]] = {}
    for entry in log:
        path = entry["path"].split("?")[0]
        if "/snapshots/" not in path.lower() or not 200 <= entry["status"] < 300:
            continue
        kind = {"PUT": "create", "DELETE": "delete"}.get(entry["method"])
        name = path.rsplit("/", 1)[-1]
        where = DISK_REGIONS.get(name.split("-")[1] if name.count("-") == 2 else "")
        if kind is None or where is None:
            continue
        subscription, region = where
        t = _stamp(entry)
        times.setdefault((kind, subscription, region), []).append(t)
        times.setdefault((kind, subscription, "*"), []).append(t)
    return {k: _worst_window(sorted(v)) for k, v in times.items()}


def _at_the_budget(night: dict[str, Any], kinds: dict[str, int]) -> dict[str, str]:
    """The measured night beside what its write budget allows, with the issue's targets; the
    headline ratios, for the families side by side."""
    budget = night["budget"]  # ARM writes = ARM deletes
    creates, prunes = _phase(night["log"], "PUT"), _phase(night["log"], "DELETE")
    windows = _windows(night["log"])
    regions = sorted({r for (_, _, r) in windows if r != "*"})
    per_region = night["snapshot_budget"]  # Lifeboat's SNAPSHOT_WRITES_PER_SECOND
    create_budget = min(budget, per_region * max(1, len(regions)))
    ideal = creates.writes / create_budget + prunes.writes / budget + night["confirm_delay"]
    writes = creates.writes + prunes.writes
    throttled = kinds.get("throttled (429)", 0)

    def verdict(ratio: float, target: float, *, at_least: bool = False) -> str:
        ok = ratio >= target if at_least else ratio <= target
        return "met" if ok else "MISSED"

    rows: list[tuple[str, str, str, str, str, str]] = []

    def row(
        label: str,
        measured: str,
        against: str = "",
        ratio: str = "",
        target: str = "",
        result: str = "",
    ) -> None:
        rows.append((label, measured, against, ratio, target, result))

    wall = night["elapsed"] / ideal
    row(
        "night wall time (s) / ideal",
        f"{night['elapsed']:.1f}",
        f"{ideal:.1f}",
        f"{wall:.2f}",
        f"<= {TARGETS['wall']:.2f}",
        verdict(wall, TARGETS["wall"]),
    )
    row("  ideal: creates / min(ARM, regions)", f"{creates.writes}", f"{create_budget:.0f}/s")
    row("  ideal: deletes / ARM deletes", f"{prunes.writes}", f"{budget:.0f}/s")
    row("  ideal: confirm delay (s)", f"{night['confirm_delay']:.0f}")
    row(
        "create rate (/s) / ARM write budget",
        f"{creates.rate:.1f}",
        f"{create_budget:.0f}",
        f"{creates.rate / create_budget:.2f}",
    )
    prune_ratio = prunes.rate / budget
    row(
        "prune rate (/s) / ARM delete budget",
        f"{prunes.rate:.1f}",
        f"{budget:.0f}",
        f"{prune_ratio:.2f}",
        f">= {TARGETS['prune']:.2f}",
        verdict(prune_ratio, TARGETS["prune"], at_least=True),
    )
    share = throttled / writes if writes else 0.0
    row(
        "429s / writes",
        f"{throttled}",
        f"{writes}",
        f"{share:.2%}",
        f"< {TARGETS['throttled']:.0%}",
        verdict(share, TARGETS["throttled"] - 1e-12),
    )
    for kind, what in (("create", "ARM writes"), ("delete", "ARM deletes")):
        for (k, subscription, region), count in sorted(windows.items()):
            if k != kind:
                continue
            where = f"{subscription[:8]}/{region if region != '*' else 'all'}"
            per_second = budget if region == "*" or kind == "delete" else per_region
            allowed = per_second * WINDOW
            against = what if region == "*" or kind == "delete" else "snapshot budget"
            ratio = count / allowed
            row(
                f"worst 60 s {kind}s {where}",
                f"{count}",
                f"{allowed:.0f} {against}",
                f"{ratio:.2f}",
                f"<= {TARGETS['window']:.2f}",
                verdict(ratio, TARGETS["window"]),
            )
    row("reads", f"{kinds.get('read', 0)}")
    row(
        "prune messages handled (with put-backs)",
        f"{night['prune_messages']}",
        f"{night['prunes_due']} deletes",
    )
    row("  of which put back", f"{night['prune_put_backs']}")
    row("longest rotation-prune queue (5 s samples)", f"{night['prune_queue_longest']}")
    row("put back ahead of the pace (creates, prunes)", f"{night['ahead_of_pace']}")
    print(
        f"the night at the write budget: {VMS} VMs, incremental creates counted against "
        f"{night['family']}; budgets {budget:.0f}/s (ARM writes, ARM deletes), "
        f"{per_region:.1f}/s (snapshot writes per region); {WINDOW:.0f} s windows"
    )
    print(f"{'':44}{'measured':>10}{'against':>22}{'ratio':>8}{'target':>10}{'':>8}")
    for label, measured, against, ratio, target, result in rows:
        print(f"{label:44}{measured:>10}{against:>22}{ratio:>8}{target:>10}{result:>8}")
    print()
    worst = max(
        ((float(r[3]), r[5]) for r in rows if r[0].startswith("worst 60 s")), default=(0.0, "")
    )
    return {
        "wall time / ideal": f"{wall:.2f} {verdict(wall, TARGETS['wall'])}",
        "prune rate / budget": (
            f"{prune_ratio:.2f} {verdict(prune_ratio, TARGETS['prune'], at_least=True)}"
        ),
        "429s / writes": f"{share:.2%} {verdict(share, TARGETS['throttled'] - 1e-12)}",
        "worst 60 s window": f"{worst[0]:.2f} {worst[1]}",
        "writes": f"{writes}",
    }


def _print(
    measured: list[dict[str, Any]],
    naive: dict[str, Any],
    headroom: dict[str, Any] | None,
    imports: dict[str, float],
) -> None:
    lifeboat = measured[0]
    kinds = _kinds(lifeboat["counters"])
    naive_kinds = _kinds(naive["counters"])
    writes = lifeboat["creates"] + lifeboat["deletes"]
    per_disk = lambda n, d: n / d if d else 0.0  # noqa: E731
    print()
    # Each night's counters are its own: the request log is reset as a night starts.
    headlines = [(n["family"], _at_the_budget(n, _kinds(n["counters"]))) for n in measured]
    if len(headlines) > 1:
        print("the families side by side (incremental creates counted against each)")
        print(f"{'':24}" + "".join(f"{family:>32}" for family, _ in headlines))
        for label in headlines[0][1]:
            print(f"{label:24}" + "".join(f"{h[label]:>32}" for _, h in headlines))
        print()
    print(f"{'':34}{'Lifeboat':>12}{'naive':>12}")
    print(f"{'disks snapshotted':34}{lifeboat['creates']:>12}{naive['disks']:>12}")
    for kind in ("read", "write", "status poll", "throttled (429)", "token"):
        a, b = kinds.get(kind, 0), naive_kinds.get(kind, 0)
        print(f"{kind + ' requests':34}{a:>12}{b:>12}")
        mine, theirs = per_disk(a, lifeboat["creates"]), per_disk(b, naive["disks"])
        print(f"{'  per disk':34}{mine:>12.3f}{theirs:>12.3f}")
    print(f"{'creates + deletes (outcomes)':34}{writes:>12}")
    print(f"{'status polls per write':34}{per_disk(kinds.get('status poll', 0), writes):>12.3f}")
    print(f"{'429s per write':34}{per_disk(kinds.get('throttled (429)', 0), writes):>12.4f}")
    print(f"{'night wall time (s)':34}{lifeboat['elapsed']:>12.1f}")
    print()
    budget = lifeboat["budget"]
    columns = [("paced", lifeboat)] + ([("unthrottled", headroom)] if headroom else [])
    print(f"write rate by phase, first to last accepted write; budget {budget:.0f}/s")
    print(f"{'':34}" + "".join(f"{'create':>10}{'prune':>10}" for _ in columns))
    print(f"{'':34}" + "".join(f"{name:>20}" for name, _ in columns))
    phases = [(_phase(n["log"], "PUT"), _phase(n["log"], "DELETE")) for _, n in columns]
    rows: list[tuple[str, Any]] = [
        ("accepted writes", lambda p: f"{p.writes:>10}"),
        ("429 answers", lambda p: f"{p.throttled:>10}"),
        ("429s per write", lambda p: f"{per_disk(p.throttled, p.writes):>10.4f}"),
        ("span, first to last write (s)", lambda p: f"{p.span:>10.1f}"),
        ("write rate (/s)", lambda p: f"{p.rate:>10.1f}"),
        ("busiest 10 s (/s)", lambda p: f"{p.peak:>10.1f}"),
        ("rate / budget", lambda p: f"{p.rate / budget:>10.2f}"),
    ]
    for label, cell in rows:
        print(f"{label:34}" + "".join(cell(c) + cell(d) for c, d in phases))
    print()
    base = imports["python"]
    functions, app = imports["azure.functions"] - base, imports["function_app"] - base
    print(
        f"cold import, best of 5, beyond the interpreter's own {base:.3f} s: "
        f"azure.functions {functions:.3f} s, function_app {app:.3f} s, ratio {app / functions:.2f}"
    )


if __name__ == "__main__":
    main()
