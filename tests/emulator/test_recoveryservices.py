"""Recovery Services on the stand-in, through Lifeboat's backup adapter and the real SDKs.

Covers the quirks (ids, `%3B`, the 2001 sentinel), the job filter format, on-demand backup with
its daily cap, configure protection, backup status, paging across vaults, throttling, every
finding on the demo vault, and the request budget for 20 vaults x 100 VMs.
"""

from __future__ import annotations

import json
import math
import ssl
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from azure.identity import ManagedIdentityCredential

from cli.clock import RemoteClock
from emulator.process import Endpoints, running_emulator
from shared import dispatch, verification
from shared.adapters.backup import AzureBackup, job_filter
from shared.adapters.compute import AzureCompute
from shared.dispatch import Send
from shared.model import Vault
from shared.names import Job, Queue, Timer
from shared.policies import parse_policies
from shared.ports import RefusedError, ThrottledError
from shared.settings import Settings
from tests.conftest import base_settings
from tests.emulator.conftest import CLOCK_START, SUB, pointed_at
from tests.fakes import MemoryQueues, MemoryReporter, deliver, drain, runtime

VAULT_ID = (
    f"/subscriptions/{SUB}/resourceGroups/rg-app/providers/Microsoft.RecoveryServices/"
    "vaults/rsv-prod-weu"
)
POLICIES = parse_policies(
    {"version": 1, "policies": {"daily": {"retention": {"daily": 7}, "rpoHours": 26}}}
)


def vm(group: str, name: str, sub: str = SUB) -> str:
    return (
        f"/subscriptions/{sub}/resourceGroups/{group}/providers/Microsoft.Compute/"
        f"virtualMachines/{name}"
    )


def make_backup(ep: Endpoints, credential: Any) -> AzureBackup:
    return AzureBackup(
        credential,
        arm_endpoint=ep.arm,
        arm_audience=ep.arm_audience + ".default",
        connection_verify=ep.ca_bundle,
    )


@pytest.fixture
def backup(sdk_env: Endpoints, credential: ManagedIdentityCredential) -> AzureBackup:
    return make_backup(sdk_env, credential)


def demo_vault() -> Vault:
    return Vault(VAULT_ID, "rsv-prod-weu", SUB, "rg-app", "westeurope")


def test_vaults_and_protected_items_with_their_quirks(backup: AzureBackup) -> None:
    vaults = {v.name: v for v in backup.list_vaults(SUB)}
    # rsv-asr-neu is the demo's Site Recovery vault (North Europe): it protects no backup item.
    assert set(vaults) == {"rsv-prod-weu", "rsv-asr-neu"}
    found = vaults["rsv-prod-weu"]
    assert found.location == "westeurope"
    items = {i.vm_id.rsplit("/", 1)[-1]: i for i in backup.list_protected_items(demo_vault())}
    assert set(items) == {
        "vm-web-01",
        "vm-web-02",
        "vm-api-01",
        "vm-db-01",
        "vm-cluster-01",
        "vm-cluster-02",
    }
    web = items["vm-web-01"]
    assert web.id.startswith("/Subscriptions/")
    assert web.container_name == "IaasVMContainer;iaasvmcontainerv2;rg-app;vm-web-01"
    assert web.last_recovery_point is not None
    assert items["vm-db-01"].last_backup_time is None  # the 2001-01-01 sentinel
    assert items["vm-db-01"].protection_state == "IRPending"
    points = backup.list_recovery_points(web)  # the SDK sends `;` as %3B
    assert points[0].consistency == "AppConsistent"
    assert len(points) >= 3  # three from the estate, more once the clock passes 02:30
    assert points == sorted(points, key=lambda p: p.time, reverse=True)


def test_job_filter_format_is_enforced(backup: AzureBackup, arm: httpx.Client) -> None:
    path = f"{VAULT_ID}/backupJobs"
    iso = "startTime eq '2026-11-26T00:00:00Z' and endTime eq '2026-11-27T00:00:00Z'"
    refused = arm.get(path, params={"api-version": "2026-10-01", "$filter": iso})
    assert refused.status_code == 400
    assert refused.json()["error"]["code"] == "BMSUserErrorInvalidFilter"
    start = datetime.fromisoformat(CLOCK_START.replace("Z", "+00:00"))
    good = job_filter(start - timedelta(days=1), start)
    ok = arm.get(path, params={"api-version": "2026-10-01", "$filter": good})
    assert ok.status_code == 200
    jobs = backup.list_jobs(demo_vault(), start - timedelta(days=1), start + timedelta(days=9))
    failed = [j for j in jobs if j.status == "Failed"]
    assert failed
    assert failed[0].error_code == "CloudDosAbsoluteLimitReached"
    assert failed[0].entity_name == "vm-api-01"


def test_backup_status_sees_protection_in_any_vault(backup: AzureBackup) -> None:
    protected = backup.get_backup_status(vm("rg-app", "vm-web-01"), "westeurope")
    assert protected.protected
    assert (protected.vault_id or "").lower() == VAULT_ID.lower()
    assert not backup.get_backup_status(vm("rg-data", "vm-report-01"), "westeurope").protected


def test_on_demand_backup_job_id_and_the_daily_cap(backup: AzureBackup) -> None:
    items = {i.vm_id.rsplit("/", 1)[-1]: i for i in backup.list_protected_items(demo_vault())}
    web = items["vm-web-02"]
    job_ids = [backup.trigger_backup(web, datetime(2026, 12, 30, tzinfo=UTC)) for _ in range(3)]
    assert all(job_ids)
    assert len(set(job_ids)) == 3
    with pytest.raises(RefusedError) as refused:
        backup.trigger_backup(web, datetime(2026, 12, 30, tzinfo=UTC))
    assert refused.value.code == "CloudDosAbsoluteLimitReached"
    start = datetime.fromisoformat(CLOCK_START.replace("Z", "+00:00"))
    jobs = backup.list_jobs(demo_vault(), start - timedelta(days=1), start + timedelta(days=9))
    mine = [j for j in jobs if j.id.endswith(tuple(str(i) for i in job_ids))]
    assert len(mine) == 3
    assert all(j.user_triggered for j in mine)


def test_configure_protection_then_status_says_protected(
    backup: AzureBackup, sdk_env: Endpoints
) -> None:
    compute = AzureCompute(
        ManagedIdentityCredential(client_id=sdk_env.client_id),
        arm_endpoint=sdk_env.arm,
        arm_audience=sdk_env.arm_audience + ".default",
        connection_verify=sdk_env.ca_bundle,
    )
    target = compute.get_vm(vm("rg-data", "vm-db-02"))
    assert target is not None
    item = backup.ensure_protection(demo_vault(), target, "DefaultPolicy")
    assert item is not None
    assert item.protection_state == "IRPending"
    assert backup.get_backup_status(target.id, target.location).protected
    again = backup.ensure_protection(demo_vault(), target, "DefaultPolicy")  # a PUT: idempotent
    assert again is not None
    assert again.id == item.id


# ------------------------------------------------------------------ big estates, own stand-in


def big_estate(
    path: Path,
    *,
    vaults: int,
    per_vault: int,
    regions: int,
    unprotected: int,
    page_size: int,
    throttle: dict[str, float] | None = None,
) -> Path:
    sub = SUB
    names = [f"region{r}" for r in range(regions)]
    groups = [{"name": "rg-app", "location": names[0]}, {"name": "rg-backup", "location": names[0]}]
    vms, vault_list = [], []
    for v in range(vaults):
        region = names[v % regions]
        items = []
        for n in range(per_vault):
            name = f"vm-{v:02d}-{n:03d}"
            vms.append(
                {
                    "name": name,
                    "resourceGroup": "rg-app",
                    "location": region,
                    "tags": {"lifeboat:policy": "daily"},
                }
            )
            late = n % 25 == 0  # 4 per vault: rpo-breached
            items.append(
                {
                    "vm": f"rg-app/{name}",
                    "lastBackup": "40h" if late else "5h",
                    "outcome": "none" if late else "complete",
                }
            )
        vault_list.append(
            {
                "name": f"rsv-{v:02d}",
                "resourceGroup": "rg-backup",
                "location": region,
                "items": items,
            }
        )
    for n in range(unprotected):
        vms.append(
            {
                "name": f"vm-naked-{n:02d}",
                "resourceGroup": "rg-app",
                "location": names[n % regions],
                "tags": {"lifeboat:policy": "daily"},
            }
        )
    estate = {
        "version": 1,
        "identities": [
            {
                "name": "id",
                "clientId": "11111111-1111-4111-8111-111111111111",
                "objectId": "22222222-2222-4222-8222-222222222222",
            }
        ],
        "subscriptions": [
            {"id": sub, "name": "big", "location": names[0], "resourceGroups": groups, "vms": vms}
        ],
        "vaults": vault_list,
        "recoveryServices": {"pageSize": page_size, **({"throttle": throttle} if throttle else {})},
    }
    path.write_text(json.dumps(estate))
    return path


class Run:
    def __init__(self, ep: Endpoints, **settings: str) -> None:
        credential = ManagedIdentityCredential(client_id=ep.client_id)
        self.reporter = MemoryReporter()
        self.queues = MemoryQueues()
        self.rt = runtime(
            Settings.from_env(base_settings(TARGET_SUBSCRIPTIONS=SUB, **settings)),
            RemoteClock(ep.clock, ca_bundle=ep.ca_bundle),
            self.reporter,
            self.queues,
            compute=AzureCompute(
                credential,
                arm_endpoint=ep.arm,
                arm_audience=ep.arm_audience + ".default",
                connection_verify=ep.ca_bundle,
            ),
            policies=POLICIES,
            backup=make_backup(ep, credential),
        )

    def verify(self) -> None:
        """The verification timer fires; every message goes through the real dispatch."""
        dispatch.fire(self.rt, Timer.VERIFICATION)
        drain(self.rt, self.queues, [Queue.VERIFICATION])

    def findings(self) -> dict[str, str]:
        return {
            o.vm_name or "": o.finding or ""
            for o in self.reporter.outcomes
            if o.operation == "verify-vm" and o.finding
        }


def test_twenty_vaults_of_a_hundred_vms_stay_within_the_read_budget(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    vaults, per_vault, unprotected, page = 20, 100, 10, 100
    estate = big_estate(
        tmp_path / "big.json",
        vaults=vaults,
        per_vault=per_vault,
        regions=4,
        unprotected=unprotected,
        page_size=page,
    )
    args = (
        "--page-size",
        "1000",
        "--clock-start",
        CLOCK_START,
        "--clock-rate",
        "0",
        "--no-throttle",
    )
    with running_emulator(estate, *args, timeout=30) as ep:
        pointed_at(ep, monkeypatch)
        run = Run(ep)
        admin = httpx.Client(
            base_url=ep.admin, verify=ssl.create_default_context(cafile=ep.ca_bundle), timeout=30
        )
        admin.delete("/requests")
        run.verify()
        log = admin.get("/requests", params={"limit": 100000}).json()
    found = run.findings()
    assert len(found) == vaults * per_vault + unprotected
    with_findings = sum(1 for f in found.values() if f != "compliant")
    assert with_findings == vaults * 4 + unprotected
    assert sum(1 for f in found.values() if f == "unprotected") == unprotected
    arm = [e for e in log["entries"] if e["operation"] != "identity/token"]
    reads = [e for e in arm if e["method"] == "GET"]
    pages = math.ceil(per_vault / page)
    assert len(reads) <= 3 * 1 + vaults * (2 + pages) + with_findings, len(reads)
    posts = [e for e in arm if e["method"] == "POST"]
    assert len(posts) == unprotected  # backup status only for real candidates


def test_paging_across_vaults_and_throttling(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def paged(name: str, vaults: int, per_vault: int, unprotected: int, **bucket: float) -> Path:
        """One region, pages of ten, ARM reads throttled by `bucket`."""
        return big_estate(
            tmp_path / name,
            vaults=vaults,
            per_vault=per_vault,
            regions=1,
            unprotected=unprotected,
            page_size=10,
            throttle=bucket,
        )

    estate = paged("paged.json", 3, 25, 2, capacity=4, perSecond=1000)
    args = ("--clock-start", CLOCK_START, "--clock-rate", "0", "--retry-after-scale", "0")
    with running_emulator(estate, *args, timeout=30) as ep:
        pointed_at(ep, monkeypatch)
        run = Run(ep)
        backup = run.rt.backup
        vaults = backup.list_vaults(SUB)
        assert sum(len(backup.list_protected_items(v)) for v in vaults) == 75  # 3 pages each
        run.verify()
        assert len(run.findings()) == 77
        estate2 = paged("slow.json", 1, 3, 0, capacity=2, perSecond=0.01)
    with running_emulator(estate2, *args, timeout=30) as ep2:
        pointed_at(ep2, monkeypatch)
        slow = make_backup(ep2, ManagedIdentityCredential(client_id=ep2.client_id))
        slow.list_vaults(SUB)
        slow.list_vaults(SUB)
        with pytest.raises(ThrottledError):
            slow.list_vaults(SUB)
        run = Run(ep2)
        start = dispatch.fire(run.rt, Timer.VERIFICATION)
        assert isinstance(start, Send)
        assert len(start.messages) == 1
        deliver(run.rt, run.queues.sent[Queue.VERIFICATION].pop())
        again = json.loads(run.queues.sent[Queue.VERIFICATION][0])
        assert again["type"] == "verification-plan"
        assert again["putBacks"] == 1  # back on the queue, not slept through


def test_every_finding_on_the_demo_vault(sdk_env: Endpoints) -> None:
    run = Run(sdk_env)
    run.verify()
    found = run.findings()
    assert found["vm-web-01"] == "compliant"
    assert found["vm-web-02"] == "rpo-breached"
    assert found["vm-api-01"] == "backup-failing"
    assert found["vm-db-01"] == "never-backed-up"
    assert found["vm-cluster-01"] == "protection-stopped"
    assert found["vm-cluster-02"] == "soft-deleted"
    assert found["vm-report-01"] == "unprotected"


def test_lifeboat_verify_json_and_fail_on(stand_in: Endpoints, tmp_path: Path) -> None:
    import subprocess
    import sys

    settings = tmp_path / "local.settings.json"
    settings.write_text(json.dumps({"Values": base_settings(TARGET_SUBSCRIPTIONS=SUB)}))
    command = [
        sys.executable,
        "-m",
        "cli.main",
        "verify",
        "--settings",
        str(settings),
        "--emulator-endpoints",
        stand_in.path,
    ]
    root = Path(__file__).resolve().parents[2]

    def verify(*flags: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*command, *flags], cwd=root, capture_output=True, text=True, timeout=120, check=False
        )

    done = verify("--json")
    assert done.returncode == 0, done.stderr
    document = json.loads(done.stdout)
    assert len(set(document["totals"])) >= 3
    web = document["vms"][vm("rg-app", "vm-web-01")]
    assert web["finding"] == "compliant"
    assert web["rpoSeconds"] > 0
    assert verify("--json", "--fail-on", "unprotected").returncode == 1


# ------------------------------------------------------ fidelity: recording (flow), spec (shape)

DATA = Path(__file__).resolve().parents[1] / "data"
API = {"api-version": "2026-10-01"}


def _keys(body: dict[str, Any]) -> set[str]:
    return {k for k in body if k != "source"} | {
        f"properties.{k}" for k in (body.get("properties") or {})
    }


def test_flow_matches_the_recording(arm: httpx.Client) -> None:
    recorded = {
        e["Index"]: e
        for e in json.loads((DATA / "recording_backup_flow.json").read_text())["Entries"]
    }
    lro = {"azure-asyncoperation", "location", "retry-after"}
    item = (
        f"{VAULT_ID}/backupFabrics/Azure/protectionContainers/"
        "iaasvmcontainer%3Biaasvmcontainerv2%3Brg-app%3Bvm-web-01/protectedItems/"
        "vm%3Biaasvmcontainerv2%3Brg-app%3Bvm-web-01"
    )
    trigger = arm.post(f"{item}/backup", params=API, json=recorded[19]["RequestBody"])
    assert trigger.status_code == recorded[19]["StatusCode"] == 202
    assert lro <= {k.lower() for k in trigger.headers}
    assert trigger.content == b""
    results = httpx.URL(trigger.headers["location"])
    first = arm.get(results.path, params=API)
    assert first.status_code == recorded[20]["StatusCode"] == 202
    assert lro <= {k.lower() for k in first.headers}
    assert arm.get(results.path, params=API).status_code == recorded[21]["StatusCode"] == 204
    status = arm.get(httpx.URL(trigger.headers["azure-asyncoperation"]).path, params=API)
    body = status.json()
    assert set(body) >= set(recorded[22]["ResponseBody"])
    assert body["status"] == "Succeeded"
    assert body["properties"]["objectType"] == "OperationStatusJobExtendedInfo"
    job = arm.get(f"{VAULT_ID}/backupJobs/{body['properties']['jobId']}", params=API).json()
    assert set(job["properties"]) >= set(recorded[24]["ResponseBody"]["properties"]) - {
        "extendedInfo"  # only with $expand
    }


def test_bodies_carry_every_key_of_the_spec_examples(arm: httpx.Client) -> None:
    spec_item = json.loads((DATA / "spec_backup_protected_item_get.json").read_text())
    items = arm.get(f"{VAULT_ID}/backupProtectedItems", params=API).json()["value"]
    web = next(i for i in items if i["properties"]["friendlyName"] == "vm-web-01")
    assert _keys(web) >= _keys(spec_item)
    spec_jobs = json.loads((DATA / "spec_backup_jobs_list.json").read_text())
    jobs = arm.get(f"{VAULT_ID}/backupJobs", params={**API, "$filter": spec_jobs["filter"]})
    assert jobs.status_code == 200  # the spec's own filter, midnight written `00:00:00 AM`
    listed = arm.get(f"{VAULT_ID}/backupJobs", params=API).json()["value"]
    assert _keys(listed[0]) >= _keys(spec_jobs["value"][0])
    spec_rp = json.loads((DATA / "spec_backup_recovery_points_list.json").read_text())["value"][0]
    container = web["id"].split("/protectionContainers/")[1].split("/")[0]
    points = arm.get(
        f"{VAULT_ID}/backupFabrics/Azure/protectionContainers/{container}/"
        f"protectedItems/{web['name']}/recoveryPoints",
        params=API,
    ).json()
    assert _keys(points["value"][0]) >= _keys(spec_rp)
    spec_status = json.loads((DATA / "spec_backup_status.json").read_text())
    where = f"/subscriptions/{SUB}/providers/Microsoft.RecoveryServices/locations/westeurope"
    asked = {"resourceType": "VM", "resourceId": vm("rg-app", "vm-web-01")}
    status = arm.post(f"{where}/backupStatus", params=API, json=asked)
    assert set(status.json()) >= set(spec_status) - {"source"}


def test_new_vm_is_protected_backed_up_and_checked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Onboarding with ENABLE_BACKUP_PROTECTION: unprotected at once, then protected, first
    backup triggered, and the delayed check finds its first recovery point."""

    estate = big_estate(
        tmp_path / "one.json", vaults=1, per_vault=1, regions=1, unprotected=0, page_size=50
    )
    args = ("--clock-start", CLOCK_START, "--clock-rate", "0", "--retry-after-scale", "0")
    with running_emulator(estate, *args, timeout=30) as ep:
        pointed_at(ep, monkeypatch)
        tls = ssl.create_default_context(cafile=ep.ca_bundle)
        admin = httpx.Client(base_url=ep.admin, verify=tls, timeout=30)
        new = {
            "name": "vm-fresh",
            "resourceGroup": "rg-app",
            "location": "region0",
            "tags": {"lifeboat:policy": "daily"},
        }
        assert admin.post("/vms", json={"subscriptionId": SUB, "vm": new}).status_code == 201
        run = Run(ep, ENABLE_BACKUP_PROTECTION="true", BACKUP_WRITER_CLIENT_ID=ep.client_id)
        fresh = run.rt.compute.get_vm(vm("rg-app", "vm-fresh"))
        assert fresh is not None

        def onboarding(ctx: dispatch.Context) -> Send:
            return Send(*verification.check_new_vm(ctx, fresh))

        dispatch.start(run.rt, Job.ONBOARDING, "onboarding-test", "onboarding:e1", onboarding)
        # The second event: protection is on now, nothing is repeated.
        dispatch.start(run.rt, Job.ONBOARDING, "onboarding-test", "onboarding:e2", onboarding)
        assert run.findings() == {"vm-fresh": "unprotected"}
        enabled = [o for o in run.reporter.outcomes if o.operation == "enable-protection"]
        assert [o.status.value for o in enabled] == ["succeeded"]
        assert enabled[0].details["firstBackupJobId"]
        (check,) = run.queues.sent[Queue.VERIFICATION]
        admin.post("/clock", json={"advanceSeconds": 3600}).raise_for_status()
        admin.close()
        run.reporter.outcomes.clear()
        deliver(run.rt, check)
        assert run.findings() == {"vm-fresh": "compliant"}
