"""`lifeboat demo`: Lifeboat's nights end to end on this machine, nothing from Azure needed.

Starts Azurite, the Azure stand-in (an estate file, by default the demo estate) and the local host
with the real app, then:
1. posts a VM-write event and shows it flow vm_events -> onboarding -> an outcome;
2. sends a malformed and an undecodable message and shows them poisoned with their reasons and
   drained (reported) by poison_drain;
3. runs N nights on the stand-in's clock: the rotation timer fires, snapshots are taken and
   pruned, and every morning's snapshots are read back; then the drill timer fires and the VMs
   tagged for a drill are restored in isolation, measured and torn down (the stand-in's clock
   runs 60 times faster meanwhile, so a VM boots in a second or two of real time); on the first
   night one VM is also drilled from its Azure Backup recovery point (`lifeboat drill start
   --from recovery-point`), its restore triggered by the backup-writer identity, when the estate
   has that identity and a staging account (the demo estate does); and, when the estate has
   Site Recovery recovery plans (the demo estate's `rp-web`), with SITE_RECOVERY_DRILLS on and
   the `nightly` drill plan, every night also test-fails-over each plan in its drill network;
4. recovers one demo VM as an operator would (`lifeboat recover --new-vm`, its own credential,
   after the app's request counters are read: the operator's requests are not the app's) and
   prints its RTO; `--json` carries it under `recoveries`.
It shows its progress on a terminal (not with --json), ends with the rotation, verification and
drill tables, stops everything it started and exits 0 whatever it found (it shows failures on
purpose): 1 only if the demo broke, 3 if what it needs cannot be started or reached. No fixed
timeout ends a long night: it is waited out for as long as outcomes keep coming.

`--requests` writes the stand-in's request counters of the app's own identity: the requests the
backup-writer identity made (the restore trigger) are counted apart, under `backupWriter`, and
those only the Site Recovery test-failover role grants (off by default; the demo turns it on)
under `siteRecoveryTestFailover`.
"""

from __future__ import annotations

import json
import os
import ssl
import sys
import tempfile
import time
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
import yaml
from azure.identity import ManagedIdentityCredential
from azure.mgmt.compute import ComputeManagementClient
from azure.storage.queue import QueueClient, TextBase64EncodePolicy
from rich.console import Console
from rich.table import Table

from cli.azurite import running_azurite, write_endpoints
from cli.events import post_events, vm_write_event
from cli.exits import Exit, explain
from cli.hostprocess import HostProcess, running_host, write_json
from cli.localhost import ROOT
from cli.progress import Gauges, LiveProgress, count_writes, duration, queue_depth
from emulator.process import DEMO_ESTATE, running_emulator

# Fast polling and pacing so a night takes seconds (host.json overrides and app settings).
FAST_HOST = {
    "extensions": {
        "queues": {"maxPollingInterval": "00:00:00.300", "visibilityTimeout": "00:00:00"}
    }
}
FAST_SETTINGS = {
    "ARM_WRITES_PER_SECOND": "100",
    "SNAPSHOT_WRITES_PER_SECOND": "100",
    "CONFIRM_DELAY_SECONDS": "1",
    "DRILL_POLL_SECONDS": "1",
}
DRILL_CLOCK_RATE = 60  # stand-in seconds per real second while drills run
STAND_IN_OPTIONS = (
    "--operation-seconds",
    "0.2",
    "--hydration-seconds",
    "0.5",
    "--retry-after-scale",
    "0.1",
)
FIRST_NIGHT_HOUR = 2
DRILL_HOUR = 4  # local.settings.sample.json's DRILL_SCHEDULE
# A night, or the drills, in which no outcome arrives for this long has stopped.
QUIET_SECONDS = 600.0


def demo_command(
    estate: Annotated[Path, typer.Option(help="estate file for the stand-in")] = DEMO_ESTATE,
    nights: Annotated[int, typer.Option(min=1, max=60, help="nights to run")] = 3,
    as_json: Annotated[
        bool, typer.Option("--json", help="end with one JSON document on stdout")
    ] = False,
    outcomes_file: Annotated[
        Path | None,
        typer.Option("--outcomes", help="also write every outcome record here, one JSON a line"),
    ] = None,
    requests_file: Annotated[
        Path | None,
        typer.Option(
            "--requests",
            help="also write the stand-in's request counters here (JSON; the backup-writer "
            "identity's apart, under backupWriter)",
        ),
    ] = None,
) -> None:
    """Run Lifeboat locally (Azurite, the Azure stand-in, the local host) and show what happened."""
    console = Console(
        file=sys.stderr if as_json else sys.stdout,
        width=None if sys.stdout.isatty() else 120,
    )
    try:
        document = _run(console, estate.resolve(), nights, show_progress=not as_json)
        if outcomes_file is not None:
            records = document.pop("outcomeRecords")
            outcomes_file.parent.mkdir(parents=True, exist_ok=True)
            outcomes_file.write_text("".join(json.dumps(r, sort_keys=True) + "\n" for r in records))
        else:
            document.pop("outcomeRecords")
        counters = document.pop("requestCounters")
        if requests_file is not None:
            requests_file.parent.mkdir(parents=True, exist_ok=True)
            requests_file.write_text(json.dumps(counters, sort_keys=True, indent=2) + "\n")
    except Exception as e:  # the demo itself broke: say so, exit non-zero
        code, text = explain("demo", e)
        if code == Exit.FOUND_PROBLEMS:
            text = f"the demo broke: {type(e).__name__}: {e}"
        console.print(f"[red]{text}[/]", markup=True, highlight=False)
        raise typer.Exit(code) from None
    if as_json:
        # The JSON document keeps its shape: the per-night table and the time are for people.
        for key in ("rotation", "elapsedSeconds"):
            document.pop(key)
        sys.stdout.write(json.dumps(document, sort_keys=True) + "\n")
        sys.stdout.flush()
    else:
        _summary(console, document)


def _run(console: Console, estate: Path, nights: int, *, show_progress: bool) -> dict[str, Any]:
    settings = json.loads((ROOT / "local.settings.sample.json").read_text())["Values"]
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="lifeboat-demo-") as tmp:
        work = Path(tmp)
        console.print("[bold]Lifeboat demo[/] — starting Azurite, the Azure stand-in, the host")
        with (
            running_azurite() as azurite,
            running_emulator(
                estate,
                *STAND_IN_OPTIONS,
                "--clock-start",
                _first_clock(),
                "--state-dir",
                str(work / "stand-in"),
            ) as stand_in,
            (work / "host.log").open("w") as log,
        ):
            write_endpoints(azurite, work / "azurite.json")
            subscriptions = ",".join(stand_in.subscriptions) or settings["TARGET_SUBSCRIPTIONS"]
            values = {**settings, **FAST_SETTINGS, "TARGET_SUBSCRIPTIONS": subscriptions}
            point_drill = _point_drill_settings(estate, subscriptions.split(",")[0])
            if point_drill is not None:
                values.update(point_drill.settings)
            values.update(_failover_drill_settings(estate))
            args = [
                "--settings",
                str(write_json(work / "local.settings.json", {"Values": values})),
                "--storage-endpoints",
                str(work / "azurite.json"),
                "--emulator-endpoints",
                stand_in.path,
                "--clock",
                stand_in.clock,
                "--host-overrides",
                str(write_json(work / "host.override.json", FAST_HOST)),
            ]
            admin = httpx.Client(
                base_url=stand_in.admin,
                verify=ssl.create_default_context(cafile=stand_in.ca_bundle),
                # A stand-in busy with a large estate answers late, not never.
                timeout=httpx.Timeout(10.0, read=None),
            )
            with (
                running_host(args, log=log) as host,
                LiveProgress(console, enabled=show_progress) as progress,
            ):
                depth = queue_depth(azurite.connection_string)
                progress.watch(
                    lambda: Gauges(
                        in_flight=depth(),
                        writes=count_writes(host.outcomes),
                        budget_per_second=float(values["ARM_WRITES_PER_SECOND"]),
                    )
                )
                console.print(f"  Azurite queues  {azurite.queue_endpoint}")
                console.print(f"  Azure stand-in  {stand_in.arm}  (estate {estate.name})")
                console.print(f"  local host      {host.base_url}")
                first = subscriptions.split(",")[0]
                _event_flow(console, host, first)
                _poison_flow(console, host, azurite.connection_string)
                os.environ.update(stand_in.environment())
                compute = ComputeManagementClient(
                    ManagedIdentityCredential(client_id=stand_in.client_id),
                    first,
                    base_url=stand_in.arm,
                    credential_scopes=[stand_in.arm_audience + ".default"],
                )
                group = values["SNAPSHOT_RESOURCE_GROUP"]
                starter = (
                    None
                    if point_drill is None
                    else _PointDrillStarter(point_drill, admin, stand_in, values, work, first)
                )
                mornings, tallies = _nights(
                    console, progress, host, admin, compute, group, nights, starter
                )
                outcomes = list(host.outcomes)
            requests = admin.get("/requests", params={"limit": 1}).json()["counters"]
            if starter is not None:
                requests = starter.apart(requests)
            if values.get("SITE_RECOVERY_DRILLS") == "true":
                requests = _test_failover_apart(requests)
            recoveries = _recoveries(console, admin, stand_in, values, first)
            admin.close()
    elapsed = time.monotonic() - started
    console.print(f"[green]finished in {duration(elapsed)}[/]; all stopped.")
    return {
        **_document(estate, nights, outcomes, mornings, requests),
        "recoveries": recoveries,
        "rotation": tallies,
        "elapsedSeconds": round(elapsed, 1),
        "outcomeRecords": outcomes,
        "requestCounters": requests,
    }


RECOVER_VM = ("rg-app", "vm-web-01")
RECOVER_SUBNET = ("rg-app", "vnet-prod", "snet-app")
RECOVERY_KEYS = ("vmId", "mode", "source", "status", "rtoSeconds", "rpoSeconds", "newVmId")


def _recoveries(
    console: Console, admin: httpx.Client, stand_in: Any, values: dict[str, str], subscription: str
) -> list[dict[str, Any]]:
    """`lifeboat recover --new-vm` of one demo VM after its nights, in this process."""
    from cli.clock import RemoteClock
    from cli.host_cmd import endpoint_settings
    from cli.recover_cmd import perform
    from shared.adapters.compute import AzureCompute
    from shared.adapters.recovery import AzureRecovery
    from shared.recovery import Request
    from shared.services import build_compute, build_runtime
    from shared.settings import Settings

    group, name = RECOVER_VM
    console.rule(f"Recovery: lifeboat recover --new-vm of {name}, as an operator")
    config = Settings.from_env({**values, **endpoint_settings(None, Path(stand_in.path))})
    compute = build_compute(config)
    assert isinstance(compute, AzureCompute)
    clock = RemoteClock(stand_in.clock, ca_bundle=stand_in.ca_bundle)
    rt = build_runtime(config, clock=clock, reporter=_NoRows(), compute=compute)
    base = f"/subscriptions/{subscription}/resourceGroups"
    vm_id = f"{base}/{group}/providers/Microsoft.Compute/virtualMachines/{name}"
    if compute.get_vm(vm_id) is None:
        # Another estate (--estate): the demo's recovery is of the demo estate's VM.
        console.print(f"  no {name} in {group} in this estate: no recovery shown")
        return []
    net_group, vnet, subnet = RECOVER_SUBNET
    request = Request(
        vm_id,
        subnet_id=f"{base}/{net_group}/providers/Microsoft.Network/virtualNetworks/{vnet}"
        f"/subnets/{subnet}",
    )
    admin.post("/clock", json={"rate": DRILL_CLOCK_RATE}).raise_for_status()
    try:
        document = perform(
            AzureRecovery(compute),
            clock,
            rt.reporter,
            request,
            config.snapshot_group,
            poll_seconds=0.2,
        )
    finally:
        admin.post("/clock", json={"rate": 1}).raise_for_status()
        clock.close()
    console.print(
        f"  recover --new-vm of {name}: {document['status']}, RTO "
        f"{duration(document['rtoSeconds'])}, RPO {duration(document['rpoSeconds'])}"
        + (f", new VM {document['newVmId'].rsplit('/', 1)[-1]}" if document["newVmId"] else "")
        + (f" ({document['reason']})" if document.get("reason") else "")
    )
    return [{key: document[key] for key in RECOVERY_KEYS}]


class _NoRows:
    """The recovery's row goes to the stand-in's Azure Monitor (configured), nowhere else."""

    def report(self, outcomes: Any) -> None:
        return None


@dataclass(frozen=True)
class PointDrill:
    """The demo's recovery-point drill: the settings that turn it on, the VM, the writer."""

    settings: dict[str, str]
    vm: tuple[str, str]  # resource group, name
    writer_object_id: str


POINT_DRILL_VM = ("rg-app", "vm-web-01")
WRITER_IDENTITY = "id-lifeboat-backup-writer"


def _point_drill_settings(estate: Path, subscription: str) -> PointDrill | None:
    """RECOVERY_POINT_DRILLS on, the estate's staging accounts and its backup-writer identity;
    None when the estate lacks the identity or a staging account (no recovery-point drill)."""
    data = yaml.safe_load(estate.read_text(encoding="utf-8")) or {}
    writer = next(
        (i for i in data.get("identities") or [] if i.get("name") == WRITER_IDENTITY), None
    )
    staging = []
    for account in data.get("storageAccounts") or []:
        sub = str(account.get("subscription") or subscription).lower()
        group = str(account["resourceGroup"])
        region = account.get("location") or _group_location(data, sub, group)
        staging.append(
            f"{region}=/subscriptions/{sub}/resourceGroups/{group}"
            f"/providers/Microsoft.Storage/storageAccounts/{account['name']}"
        )
    if writer is None or not staging:
        return None
    return PointDrill(
        settings={
            "RECOVERY_POINT_DRILLS": "true",
            "RESTORE_STAGING_ACCOUNTS": ",".join(staging),
            "BACKUP_WRITER_CLIENT_ID": str(writer["clientId"]),
        },
        vm=POINT_DRILL_VM,
        writer_object_id=str(writer["objectId"]).lower(),
    )


def _failover_drill_settings(estate: Path) -> dict[str, str]:
    """SITE_RECOVERY_DRILLS on, every night (the `nightly` drill plan), when the estate has
    Site Recovery recovery plans; nothing otherwise."""
    data = yaml.safe_load(estate.read_text(encoding="utf-8")) or {}
    if not any(vault.get("plans") for vault in data.get("siteRecovery") or []):
        return {}
    return {"SITE_RECOVERY_DRILLS": "true", "SITE_RECOVERY_DRILL_PLAN": "nightly"}


# The quota check before a test failover (the recovery region's Compute usages): a read only
# site-recovery drills make. infra/roles/actions.json has no row for it yet: it belongs with the
# test-failover role's rows, at subscription scope.
QUOTA_READ = "Microsoft.Compute/locations/usages/read"


def _test_failover_apart(counters: dict[str, Any]) -> dict[str, Any]:
    """The app identity's counters, with the requests only site-recovery drills make (those the
    Site Recovery test-failover role grants, infra/roles/actions.json: siteRecovery,
    testFailover, and the quota read) under `siteRecoveryTestFailover`: the feature is off by
    default, the demo turns it on."""
    table = json.loads((ROOT / "infra" / "roles" / "actions.json").read_text())
    scopes: dict[str, dict[str, list[dict[str, Any]]]] = table["scopes"]
    role = {a.lower() for row in scopes["siteRecovery"]["testFailover"] for a in row["actions"]}
    default = {
        a.lower()
        for by_feature in scopes.values()
        for feature, rows in by_feature.items()
        if feature in ("core", "drills")
        for row in rows
        for a in row["actions"]
    }
    only = (role - default) | {QUOTA_READ.lower()}
    result: dict[str, Any] = dict(counters)
    apart: dict[str, dict[str, int]] = {}
    for key in ("byOperation", "byAction"):
        mine = counters.get(key) or {}
        apart[key] = {k: n for k, n in mine.items() if k.lower() in only}
        result[key] = {k: n for k, n in mine.items() if k.lower() not in only}
    result["siteRecoveryTestFailover"] = apart
    return result


def _group_location(data: dict[str, Any], subscription: str, group: str) -> str:
    for sub in data.get("subscriptions") or []:
        if str(sub.get("id", "")).lower() != subscription:
            continue
        for rg in sub.get("resourceGroups") or []:
            if str(rg.get("name", "")).lower() == group.lower():
                return str(rg.get("location") or sub.get("location") or "").lower()
    raise ValueError(f"storageAccounts: group {group} is not declared in {subscription}")


class _PointDrillStarter:
    """Starts the recovery-point drill as `lifeboat drill start --from recovery-point` does (onto
    the app's drill queue), and keeps the backup-writer identity's requests apart."""

    def __init__(
        self,
        drill: PointDrill,
        admin: httpx.Client,
        stand_in: Any,
        values: dict[str, str],
        work: Path,
        subscription: str,
    ) -> None:
        self.drill = drill
        self.admin = admin
        self.stand_in = stand_in
        self.values = values
        self.work = work
        self.subscription = subscription
        self.drill_id: str | None = None
        self.since: int | None = None
        self.by_operation: Counter[str] = Counter()
        self.by_action: Counter[str] = Counter()
        self.by_method: Counter[str] = Counter()
        self.by_status: Counter[str] = Counter()

    def start(self) -> str:
        from cli.clock import RemoteClock
        from cli.host_cmd import endpoint_settings
        from shared.drills import start_drill_now
        from shared.services import build_runtime
        from shared.settings import Settings

        endpoints = endpoint_settings(self.work / "azurite.json", Path(self.stand_in.path))
        config = Settings.from_env({**self.values, **endpoints})
        clock = RemoteClock(self.stand_in.clock, ca_bundle=self.stand_in.ca_bundle)
        self.since = int(self.admin.get("/requests", params={"limit": 0}).json()["total"])
        group, name = self.drill.vm
        vm_id = (
            f"/subscriptions/{self.subscription}/resourceGroups/{group}"
            f"/providers/Microsoft.Compute/virtualMachines/{name}"
        )
        try:
            rt = build_runtime(config, clock=clock, reporter=_NoRows())
            state = start_drill_now(rt, vm_id, source="recovery-point")
        finally:
            clock.close()
        self.drill_id = state.drill_id
        return state.drill_id

    def count_writer(self) -> None:
        """The writer identity's requests since the drill started (the stand-in keeps the last
        20,000 of all; they must all still be there)."""
        since = self.since or 0
        while True:
            page = self.admin.get("/requests", params={"since": since, "limit": 1000}).json()
            entries = page["entries"]
            if not entries:
                return
            if entries[0]["seq"] != since + 1:
                raise RuntimeError(
                    f"the stand-in's request log no longer holds request {since + 1}: the "
                    "backup-writer identity's requests cannot be counted apart"
                )
            for entry in entries:
                if (entry.get("principal") or "").lower() == self.drill.writer_object_id:
                    self.by_operation[entry["operation"]] += 1
                    self.by_method[entry["method"]] += 1
                    self.by_status[str(entry["status"])] += 1
                    for action in entry["actions"]:
                        self.by_action[action] += 1
            since = entries[-1]["seq"]

    def apart(self, counters: dict[str, Any]) -> dict[str, Any]:
        """The app identity's counters, and the writer's under `backupWriter`."""
        mine = {
            "byOperation": self.by_operation,
            "byAction": self.by_action,
            "byMethod": self.by_method,
            "byStatus": self.by_status,
        }
        result: dict[str, Any] = dict(counters)
        for key, counted in mine.items():
            left = Counter(counters.get(key) or {})
            left.subtract(counted)
            result[key] = {k: n for k, n in left.items() if n > 0}
        result["backupWriter"] = {
            "principal": self.drill.writer_object_id,
            **{key: dict(counted) for key, counted in mine.items()},
        }
        return result


def _first_clock() -> str:
    """The stand-in starts an hour before the first night's 02:00 slot (today, UTC)."""
    today = datetime.now().astimezone().date()
    return f"{today.isoformat()}T{FIRST_NIGHT_HOUR - 1:02d}:00:00Z"


def _event_flow(console: Console, host: HostProcess, subscription: str) -> None:
    console.rule("A VM is written: Event Grid -> vm_events -> onboarding")
    event = vm_write_event(subscription, "rg-app", "vm-web-01")
    status, _ = post_events(host.eventgrid_url, [event])
    console.print(f"  POST ResourceWriteSuccess for vm-web-01 -> HTTP {status}")
    host.wait_for(lambda rows: any(r["Operation"] == "vm-seen" for r in rows), timeout=60)


def _poison_flow(console: Console, host: HostProcess, connection_string: str) -> None:
    console.rule("Bad messages: poisoned with their reason, reported, nothing lost")
    QueueClient.from_connection_string(
        connection_string, "onboarding", message_encode_policy=TextBase64EncodePolicy()
    ).send_message('{"type": "onboarding", "version": 1, "oops"')
    QueueClient.from_connection_string(connection_string, "onboarding").send_message("%% no %%")
    console.print("  sent a message that is not JSON and one that is not base64")
    host.wait_for(lambda rows: any(r["Operation"] == "poison" for r in rows), timeout=60)
    host.wait_idle(timeout=60)
    host.invoke("poison_drain")
    host.wait_for(lambda rows: sum(1 for r in rows if _drained(r)) >= 2, timeout=60)
    console.print("  poison_drain reported both and emptied onboarding-poison")


def _nights(
    console: Console,
    progress: LiveProgress,
    host: HostProcess,
    admin: httpx.Client,
    compute: ComputeManagementClient,
    group: str,
    nights: int,
    starter: _PointDrillStarter | None = None,
) -> tuple[list[dict[str, list[str]]], list[dict[str, Any]]]:
    start = datetime.fromisoformat(admin.get("/clock").json()["now"].replace("Z", "+00:00"))
    first = start.replace(hour=FIRST_NIGHT_HOUR, minute=0, second=0, microsecond=0)
    if first <= start:
        first += timedelta(days=1)
    mornings, tallies = [], []
    for night in range(nights):
        slot = first + timedelta(days=night)
        console.rule(f"Night {night + 1}: {slot:%Y-%m-%d %H:%M} UTC")
        progress.phase(f"night {night + 1}/{nights}")
        admin.post("/clock", json={"set": slot.strftime("%Y-%m-%dT%H:%M:%SZ")}).raise_for_status()
        stamp = slot.strftime("%Y%m%d%H%M")

        def started(rows: list[dict[str, Any]], stamp: str = stamp) -> bool:
            return any(
                r["Operation"] == "run-start" and (r.get("Details") or {}).get("slot") == stamp
                for r in rows
            )

        host.wait_for(started, timeout=60)
        host.wait_idle(timeout=None, stall=QUIET_SECONDS)
        mornings.append(_morning(compute, group))
        tonight = [
            r
            for r in host.outcomes
            if r["Job"] == "rotation" and (r.get("Details") or {}).get("slot") == stamp
        ]
        counts = Counter(f"{r['Operation']} {r['Status']}" for r in tonight)
        console.print("  " + ", ".join(f"{n} {k}" for k, n in sorted(counts.items())))
        tallies.append({"slot": stamp, "outcomes": dict(sorted(counts.items()))})
        progress.phase(f"drills {night + 1}/{nights}")
        # The first night also drills one VM from its Azure Backup recovery point.
        _drills(
            console, host, admin, slot.replace(hour=DRILL_HOUR), starter if night == 0 else None
        )
    return mornings, tallies


def _drills(
    console: Console,
    host: HostProcess,
    admin: httpx.Client,
    at: datetime,
    starter: _PointDrillStarter | None = None,
) -> None:
    """Fire the drill timer (and start the recovery-point drill, if given) and wait for every
    drill to report."""
    stamp = at.strftime("%Y%m%d%H%M")
    run = f"drill-{stamp}"
    admin.post("/clock", json={"set": at.strftime("%Y-%m-%dT%H:%M:%SZ")}).raise_for_status()
    manual = None
    if starter is not None:
        manual = starter.start()
        console.print(f"  lifeboat drill start --vm {starter.drill.vm[1]} --from recovery-point")
    admin.post("/clock", json={"rate": DRILL_CLOCK_RATE}).raise_for_status()
    try:
        host.wait_for(
            lambda rows: any(r["RunId"] == run and r["Operation"] == "run-start" for r in rows),
            timeout=60,
        )

        def reported(rows: list[dict[str, Any]]) -> bool:
            planned = [r for r in rows if r["RunId"] == run and r["Operation"] == "plan"]
            expected = sum(int(r.get("Count") or 0) for r in planned)
            done = {
                (r.get("Details") or {}).get("drillId")
                for r in rows
                if r["RunId"] == run and r["Operation"] == "drill"
            }
            return (
                bool(planned)
                and len(done) >= expected
                and (manual is None or manual in _drill_ids(rows))
            )

        rows = host.wait_for(reported, timeout=QUIET_SECONDS, while_moving=True)
        host.wait_idle(timeout=None, stall=QUIET_SECONDS)
    finally:
        admin.post("/clock", json={"rate": 1}).raise_for_status()
    if starter is not None:
        starter.count_writer()
    for row in rows:
        drill_id = (row.get("Details") or {}).get("drillId")
        if row["Operation"] == "drill" and (row["RunId"] == run or drill_id == manual):
            rto, rpo = row.get("RtoSeconds"), row.get("RpoSeconds")
            source = (row.get("Details") or {}).get("source") or "snapshots"
            what = row.get("VmName") or f"plan {(row.get('Details') or {}).get('recoveryPlan')}"
            console.print(
                f"  drill of {what} from {source}: {row['Status']}, RTO "
                f"{duration(rto)}, RPO {duration(rpo)}"
                + (f" ({row['Reason']})" if row.get("Reason") else "")
            )


def _drill_ids(rows: list[dict[str, Any]]) -> set[str]:
    return {
        str((r.get("Details") or {}).get("drillId"))
        for r in rows
        if r["Job"] == "drill" and r["Operation"] == "drill"
    }


def _morning(compute: ComputeManagementClient, group: str) -> dict[str, list[str]]:
    """Snapshots per source disk, read back through ARM like anyone would."""
    by_disk: dict[str, list[str]] = defaultdict(list)
    for snapshot in compute.snapshots.list_by_resource_group(group):
        props = snapshot.as_dict().get("properties", {})
        source = (props.get("creationData") or {}).get("sourceResourceId")
        if source and (snapshot.name or "").startswith("lb-"):
            # Azure's lists may write the id without its leading slash (REFERENCE.md)
            by_disk["/" + source.strip("/")].append(props.get("timeCreated", ""))
    return {k: sorted(v, reverse=True) for k, v in by_disk.items()}


def _drained(row: dict[str, Any]) -> bool:
    return row["Operation"] == "poison" and bool((row.get("Details") or {}).get("drained"))


def _document(
    estate: Path,
    nights: int,
    outcomes: list[dict[str, Any]],
    mornings: list[dict[str, list[str]]],
    requests: dict[str, Any],
) -> dict[str, Any]:
    snapshotted: set[str] = set()
    reasons: dict[str, str] = {}
    for row in outcomes:
        if row["Operation"] != "snapshot-create" or row["Job"] not in ("rotation", "onboarding"):
            continue
        disk = row.get("ResourceId") or ""
        if row["Status"] == "succeeded":
            snapshotted.add(disk.lower())
        elif row["Status"] == "blocked" or disk not in reasons:
            reasons[disk] = row.get("Reason") or row["Status"]
    last = mornings[-1] if mornings else {}
    snapshots = {disk: times for disk, times in sorted(last.items()) if disk.lower() in snapshotted}
    skipped = {d: r for d, r in sorted(reasons.items()) if d.lower() not in snapshotted}
    tally: dict[str, Counter[str]] = defaultdict(Counter)
    for row in outcomes:
        tally[row["Job"]][row["Status"]] += 1
    return {
        "estate": str(estate),
        "nights": nights,
        "snapshots": snapshots,
        "skipped": skipped,
        "outcomes": {job: dict(counts) for job, counts in sorted(tally.items())},
        "verification": _verification(outcomes),
        "replication": _verification(outcomes, "verify-replication"),
        "drills": _drill_results(outcomes),
        "requests": dict(requests.get("byOperation", {})),
    }


def _summary(console: Console, document: dict[str, Any]) -> None:
    rotation = Table(title="Rotation, night by night (outcomes by operation and status)")
    rotation.add_column("slot")
    rotation.add_column("outcomes", overflow="fold")
    for night in document.get("rotation", []):
        counts = night["outcomes"]
        rotation.add_row(night["slot"], ", ".join(f"{n} {k}" for k, n in counts.items()))
    console.print(rotation)
    table = Table(title=f"Snapshots after {document['nights']} night(s), per in-scope disk")
    table.add_column("disk", overflow="fold")
    table.add_column("snapshots", justify="right")
    table.add_column("newest")
    for disk, times in document["snapshots"].items():
        table.add_row(disk.rsplit("/", 1)[-1], str(len(times)), times[0] if times else "-")
    console.print(table)
    skipped = Table(title="Disks not snapshotted, and why")
    skipped.add_column("disk", overflow="fold")
    skipped.add_column("reason", overflow="fold")
    for disk, reason in document["skipped"].items():
        skipped.add_row(disk.rsplit("/", 1)[-1], reason)
    console.print(skipped)
    outcomes = Table(title="Outcomes by job and status")
    outcomes.add_column("job")
    outcomes.add_column("statuses")
    for job, counts in document["outcomes"].items():
        outcomes.add_row(job, ", ".join(f"{n} {s}" for s, n in sorted(counts.items())))
    console.print(outcomes)
    drills = Table(title="DR drills (restored in isolation, measured, torn down)")
    for column in ("VM", "source", "status", "RTO", "RTO target", "RPO", "reason"):
        drills.add_column(column, overflow="fold")
    for drill in document["drills"]:
        drills.add_row(
            (drill["vmId"] or "").rsplit("/", 1)[-1],
            drill["source"],
            drill["status"],
            duration(drill["rtoSeconds"]),
            duration(drill["rtoTargetSeconds"]),
            duration(drill["rpoSeconds"]),
            drill["reason"],
        )
    console.print(drills)
    verification = Table(title="Backup verification (each VM's latest finding)")
    for column in ("VM", "finding", "RPO", "reason"):
        verification.add_column(column, overflow="fold")
    for vm, found in document["verification"].items():
        rpo = found["rpoSeconds"]
        verification.add_row(
            vm.rsplit("/", 1)[-1],
            found["finding"],
            "-" if rpo is None else duration(rpo),
            found["reason"],
        )
    if document["verification"]:
        console.print(verification)
    else:
        console.print(
            "Backup verification: no run in these nights (it runs at 06:00, after the first "
            "night's drills: try --nights 2)"
        )
    replication = Table(title="Site Recovery (each replicated VM's latest finding)")
    for column in ("VM", "finding", "RPO", "reason"):
        replication.add_column(column, overflow="fold")
    for vm, found in document.get("replication", {}).items():
        rpo = found["rpoSeconds"]
        replication.add_row(
            vm.rsplit("/", 1)[-1],
            found["finding"],
            "-" if rpo is None else duration(rpo),
            found["reason"],
        )
    if document.get("replication"):
        console.print(replication)
    recoveries = Table(title="Recoveries (lifeboat recover, as an operator)")
    for column in ("VM", "mode", "source", "status", "RTO", "RPO", "new VM"):
        recoveries.add_column(column, overflow="fold")
    for done in document.get("recoveries", []):
        recoveries.add_row(
            done["vmId"].rsplit("/", 1)[-1],
            done["mode"],
            done["source"] or "-",
            done["status"],
            duration(done["rtoSeconds"]),
            duration(done["rpoSeconds"]),
            (done["newVmId"] or "-").rsplit("/", 1)[-1],
        )
    console.print(recoveries)
    top = sorted(document["requests"].items(), key=lambda kv: -kv[1])[:8]
    console.print("ARM requests by operation: " + ", ".join(f"{k} {v}" for k, v in top))


def _drill_results(outcomes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One entry per drill (the first report of each, should a drill report twice)."""
    results: dict[str, dict[str, Any]] = {}
    for row in outcomes:
        details = row.get("Details") or {}
        if row["Job"] != "drill" or row["Operation"] != "drill" or not details.get("drillId"):
            continue
        if details["drillId"] in results:
            continue
        entry = {
            "drillId": details["drillId"],
            "vmId": row.get("ResourceId"),
            "source": details.get("source") or "snapshots",
            "status": row["Status"],
            "rtoSeconds": row.get("RtoSeconds"),
            "rpoSeconds": row.get("RpoSeconds"),
            "rtoTargetSeconds": details.get("rtoTargetSeconds"),
            "reason": row.get("Reason") or "",
        }
        if entry["source"] == "recovery-point":
            entry.update(_restore_fields(details))
        if entry["source"] == "site-recovery":
            entry.update(_failover_fields(details))
        results[details["drillId"]] = entry
    return list(results.values())


def _restore_fields(details: dict[str, Any]) -> dict[str, Any]:
    """A recovery-point drill's point, restore job and the two statuses, from its row."""
    return {
        "point": {
            "id": details.get("pointId"),
            "time": details.get("pointTime"),
            "type": details.get("pointType"),
            "tier": details.get("pointTier"),
        },
        "job": {
            "id": details.get("restoreJobId"),
            "durationSeconds": details.get("restoreJobSeconds"),
            "status": details.get("restoreStatus"),
        },
        "validationStatus": details.get("validationStatus"),
    }


def _failover_fields(details: dict[str, Any]) -> dict[str, Any]:
    """A site-recovery drill's plan, RTO per boot group, job, cleanup and test VMs (its row)."""
    return {
        "recoveryPlan": details.get("recoveryPlan"),
        "groupRtoSeconds": details.get("groupRtoSeconds"),
        "failoverJobId": details.get("failoverJobId"),
        "cleanupStatus": details.get("cleanupStatus"),
        "vms": [
            {"name": vm.get("name"), "validation": vm.get("validation")}
            for vm in details.get("vms") or []
        ],
    }


def _verification(
    outcomes: list[dict[str, Any]], operation: str = "verify-vm"
) -> dict[str, dict[str, Any]]:
    """Each VM's latest backup finding, from the verification runs the nights' clock fired (with
    `verify-replication`: each replicated VM's latest Site Recovery finding)."""
    found: dict[str, dict[str, Any]] = {}
    for row in outcomes:
        if (
            row["Operation"] == operation
            and row.get("Finding")
            and row.get("VmName")
            and row.get("ResourceId")
        ):
            found[row["ResourceId"]] = {
                "finding": row["Finding"],
                "rpoSeconds": row.get("RpoSeconds"),
                "reason": row.get("Reason") or "",
            }
    return dict(sorted(found.items()))
