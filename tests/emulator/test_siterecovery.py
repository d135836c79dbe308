"""Azure Site Recovery (Azure-to-Azure) on the stand-in, through the real
azure-mgmt-recoveryservicessiterecovery SDK.

One stand-in with a frozen clock (advanced by the admin API) serves a vault in North Europe
replicating West Europe VMs: the whole recovery-plan test failover cycle (job InProgress, test
VMs booting in the network given, the plan waiting for cleanup, cleanup deleting them and setting
the last successful test failover time) and each fault (failover job fails, a VM never boots,
cleanup fails once then succeeds, replication unhealthy, RPO high). Bodies carry every key of the
REST-spec examples (tests/data/siterecovery/ORIGIN.md) with the same JSON type.
"""

from __future__ import annotations

import json
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from azure.core.exceptions import HttpResponseError
from azure.identity import ManagedIdentityCredential
from azure.mgmt.compute import ComputeManagementClient
from azure.mgmt.recoveryservicessiterecovery import SiteRecoveryManagementClient

from emulator.estate import EstateError, build_cloud
from emulator.process import Endpoints, running_emulator
from emulator.siterecovery_state import SiteRecoveryState, load_site_recovery
from tests.emulator.conftest import CLOCK_START

SUB = "0b5e3c1a-2f4d-4e6a-9b8c-7d1e2f3a4b5c"
RG, VAULT = "rg-asr-neu", "rsv-asr-neu"
DATA = Path(__file__).resolve().parents[1] / "data" / "siterecovery"
TEST_NET = (
    f"/subscriptions/{SUB}/resourceGroups/rg-drill-neu/providers/Microsoft.Network/"
    "virtualNetworks/vnet-drill-neu"
)
# Hyper-V's VMM server in the job example's affected objects: A2A has none.
VMM_KEYS = {
    f"properties.customDetails.affectedObjectDetails.{k}"
    for k in ("PrimaryVmmId", "PrimaryVmmName", "RecoveryVmmId")
}


def _vm(name: str) -> dict[str, Any]:
    return {
        "name": name,
        "resourceGroup": "rg-app",
        "size": "Standard_D2s_v5",
        "osType": "Linux",
        "osDisk": {"sku": "Premium_LRS", "sizeGB": 64},
        "dataDisks": [{"lun": 0, "name": f"{name}-data-01", "sku": "Premium_LRS", "sizeGB": 32}],
    }


def _item(vm: str, **extra: Any) -> dict[str, Any]:
    return {
        "vm": f"rg-app/{vm}",
        "targetResourceGroup": "rg-app-asr",
        "recoveryNetwork": "rg-net-neu/vnet-dr-neu",
        "testNetwork": "rg-drill-neu/vnet-drill-neu",
        **extra,
    }


ESTATE: dict[str, Any] = {
    "version": 1,
    "identities": [
        {
            "name": "id-lifeboat",
            "clientId": "5b1d7e2a-9c3f-4a8b-b6e1-2d4f6a8c0e13",
            "objectId": "7c2e9a4b-1d5f-4e3a-8b7c-6a5d4e3f2a10",
        }
    ],
    "subscriptions": [
        {
            "id": SUB,
            "name": "contoso-dr",
            "location": "westeurope",
            "resourceGroups": [
                {"name": "rg-app", "location": "westeurope"},
                {"name": RG, "location": "northeurope"},
                {"name": "rg-app-asr", "location": "northeurope"},
                {"name": "rg-net-neu", "location": "northeurope"},
                {
                    "name": "rg-drill-neu",
                    "location": "northeurope",
                    "tags": {"managedBy": "lifeboat"},
                },
            ],
            "vms": [
                _vm(n)
                for n in (
                    "vm-web",
                    "vm-api",
                    "vm-report",
                    "vm-batch",
                    "vm-tidy",
                    "vm-db",
                    "vm-etl",
                    "vm-old",
                )
            ],
            "virtualNetworks": [
                {
                    "name": "vnet-dr-neu",
                    "resourceGroup": "rg-net-neu",
                    "addressPrefixes": ["10.50.0.0/16"],
                    "subnets": [{"name": "snet-app", "addressPrefix": "10.50.1.0/24"}],
                },
                {
                    "name": "vnet-drill-neu",
                    "resourceGroup": "rg-drill-neu",
                    "addressPrefixes": ["10.250.0.0/24"],
                    "subnets": [{"name": "snet-drill", "addressPrefix": "10.250.0.0/26"}],
                },
            ],
        }
    ],
    "siteRecovery": [
        {
            "vault": VAULT,
            "resourceGroup": RG,
            "items": [
                _item("vm-web"),
                _item(
                    "vm-api",
                    nics=[
                        {
                            "testNsg": "rg-drill-neu/nsg-open",
                            "testPublicIp": "rg-drill-neu/pip-test",
                            "reuseExistingNic": True,
                        }
                    ],
                ),
                _item("vm-report", bootFails=True),
                _item("vm-batch"),
                _item("vm-tidy"),
                _item(
                    "vm-db",
                    replicationHealth="Critical",
                    healthErrors=[
                        {"errorCode": "153039", "message": "Replication is stuck.", "since": "3h"}
                    ],
                    agentExpiresIn="10d",
                    lastSuccessfulTestFailoverTime="200d",
                ),
                _item("vm-etl", rpoInSeconds=7200, allowedOperations=["DisableProtection"]),
                _item("vm-old"),
            ],
            "plans": [
                {
                    "name": "rp-app",
                    "groups": [
                        {
                            "vms": ["vm-web"],
                            "start": [
                                {
                                    "name": "stop-writes",
                                    "type": "script",
                                    "failoverTypes": ["PlannedFailover"],
                                }
                            ],
                        },
                        {
                            "vms": ["rg-app/vm-api"],
                            "end": [{"name": "check-dns", "type": "manual"}],
                        },
                    ],
                },
                {"name": "rp-report", "groups": [{"vms": ["vm-report"]}]},
                {"name": "rp-batch", "testFailoverFails": True, "groups": [{"vms": ["vm-batch"]}]},
                {"name": "rp-tidy", "cleanupFailures": 1, "groups": [{"vms": ["vm-tidy"]}]},
                {
                    "name": "rp-forgotten",
                    "testFailoverStarted": "30h",
                    "groups": [{"vms": ["vm-old"]}],
                },
            ],
        }
    ],
}


@pytest.fixture(scope="module")
def asr_stand_in(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Endpoints]:
    estate = tmp_path_factory.mktemp("asr") / "estate.yaml"
    estate.write_text(yaml.safe_dump(ESTATE), encoding="utf-8")
    args = ("--clock-start", CLOCK_START, "--clock-rate", "0", "--retry-after-scale", "0")
    with running_emulator(estate, *args) as endpoints:
        yield endpoints


@pytest.fixture(scope="module")
def clients(
    asr_stand_in: Endpoints,
) -> Iterator[tuple[SiteRecoveryManagementClient, ComputeManagementClient]]:
    with pytest.MonkeyPatch.context() as mp:
        for name, value in asr_stand_in.environment().items():
            mp.setenv(name, value)
        credential = ManagedIdentityCredential(client_id=asr_stand_in.client_id)
        common: dict[str, Any] = {
            "base_url": asr_stand_in.arm,
            "credential_scopes": [asr_stand_in.arm_audience + ".default"],
            "connection_verify": asr_stand_in.ca_bundle,
            "polling_interval": 0,
        }
        yield (
            SiteRecoveryManagementClient(credential, SUB, **common),
            ComputeManagementClient(credential, SUB, **common),
        )


@pytest.fixture
def asr(
    clients: tuple[SiteRecoveryManagementClient, ComputeManagementClient],
) -> SiteRecoveryManagementClient:
    return clients[0]


@pytest.fixture
def compute(
    clients: tuple[SiteRecoveryManagementClient, ComputeManagementClient],
) -> ComputeManagementClient:
    return clients[1]


@pytest.fixture(scope="module")
def admin(asr_stand_in: Endpoints) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=asr_stand_in.admin,
        verify=ssl.create_default_context(cafile=asr_stand_in.ca_bundle),
        timeout=30,
    ) as client:
        yield client


def advance(admin: httpx.Client, seconds: float) -> None:
    admin.post("/clock", json={"advanceSeconds": seconds}).raise_for_status()


def items_by_vm(asr: SiteRecoveryManagementClient) -> dict[str, Any]:
    return {i.properties.friendly_name: i for i in asr.replication_protected_items.list(RG, VAULT)}


def tfo_input(network: str = TEST_NET) -> dict[str, Any]:
    return {
        "properties": {
            "failoverDirection": "PrimaryToRecovery",
            "networkType": "VmNetworkAsInput",
            "networkId": network,
            "providerSpecificDetails": [
                {
                    "instanceType": "A2A",
                    "recoveryPointType": "LatestProcessed",
                    "multiVmSyncPointOption": "UseMultiVmSyncRecoveryPoint",
                }
            ],
        }
    }


def raw(pipeline_response: Any, deserialized: Any, headers: Any) -> Any:
    """`cls=raw`: the body as served (REST names and JSON types), not the SDK's model."""
    return pipeline_response.http_response.json()


def job_of(asr: SiteRecoveryManagementClient, plan: Any) -> Any:
    return asr.replication_jobs.get(
        RG, VAULT, plan.properties.current_scenario.job_id.rsplit("/", 1)[-1]
    )


def assert_shape(
    actual: dict[str, Any], example: str, *, skip: frozenset[str] | set[str] = frozenset()
) -> None:
    """Every key of the REST-spec example, with the same JSON type (nulls and empty lists aside)."""
    expected = json.loads((DATA / example).read_text(encoding="utf-8"))

    def walk(exp: Any, act: Any, path: str) -> None:
        if isinstance(exp, dict):
            assert isinstance(act, dict), path
            for k, v in exp.items():
                if f"{path}.{k}".lstrip(".") in skip:
                    continue
                assert k in act, f"{path}.{k} missing"
                walk(v, act[k], f"{path}.{k}")
        elif isinstance(exp, list):
            assert isinstance(act, list), path
            if exp and act:
                walk(exp[0], act[0], f"{path}[]")
        elif exp is not None and act is not None:
            assert type(act) is type(exp), f"{path}: {type(act).__name__} vs {type(exp).__name__}"

    walk(expected, actual, "")


def test_items_with_a2a_details_and_findings(asr: SiteRecoveryManagementClient) -> None:
    items = items_by_vm(asr)
    assert set(items) == {
        "vm-web",
        "vm-api",
        "vm-report",
        "vm-batch",
        "vm-tidy",
        "vm-db",
        "vm-etl",
        "vm-old",
    }
    web = items["vm-web"].properties
    assert web.protection_state == "Protected"
    assert web.replication_health == "Normal"
    assert items["vm-db"].properties.test_failover_state == "None"
    assert (
        items["vm-db"].properties.last_successful_test_failover_time.isoformat()[:10]
        == "2026-05-11"
    )
    a2a = web.provider_specific_details
    assert a2a.instance_type == "A2A"
    assert a2a.primary_fabric_location == "westeurope"
    assert a2a.recovery_fabric_location == "northeurope"
    assert a2a.selected_tfo_azure_network_id == TEST_NET
    assert a2a.recovery_azure_resource_group_id.endswith("/resourceGroups/rg-app-asr")
    assert a2a.tfo_azure_vm_name == "vm-web-test"
    assert a2a.rpo_in_seconds == 60
    assert len(a2a.protected_managed_disks) == 2
    # NIC test-failover settings that could escape the test network
    (nic,) = items["vm-api"].properties.provider_specific_details.vm_nics
    assert nic.tfo_network_security_group_id.endswith("/networkSecurityGroups/nsg-open")
    assert nic.tfo_reuse_existing_nic is True
    assert nic.ip_configs[0].tfo_public_ip_address_id.endswith("/publicIPAddresses/pip-test")
    # faults: replication unhealthy, RPO high, agent expiring, operations the estate limits
    db = items["vm-db"].properties
    assert db.replication_health == "Critical"
    assert db.health_errors[0].error_code == "153039"
    assert db.health_errors[0].error_message == "Replication is stuck."
    assert db.provider_specific_details.agent_expiry_date.isoformat().startswith("2026-12-07")
    etl = items["vm-etl"].properties
    assert etl.provider_specific_details.rpo_in_seconds == 7200
    assert etl.allowed_operations == ["DisableProtection"]
    # the per-container list and the get agree with the vault-level list
    fabric, container = "asr-a2a-default-westeurope", "asr-a2a-default-westeurope-container"
    assert (
        items["vm-web"]
        .id.split("/replicationFabrics/")[1]
        .startswith(f"{fabric}/replicationProtectionContainers/{container}/")
    )
    one = asr.replication_protected_items.get(RG, VAULT, fabric, container, items["vm-web"].name)
    assert one.properties.friendly_name == "vm-web"
    assert (
        len(
            list(
                asr.replication_protected_items.list_by_replication_protection_containers(
                    RG, VAULT, fabric, container
                )
            )
        )
        == 8
    )
    (recovery_fabric,) = [
        f for f in asr.replication_fabrics.list(RG, VAULT) if f.name.endswith("northeurope")
    ]
    assert recovery_fabric.properties.custom_details.instance_type == "Azure"
    assert_shape(
        asr.replication_protected_items.get(RG, VAULT, fabric, container, one.name, cls=raw),
        "ReplicationProtectedItems_Get.json",
        skip={"properties.recoveryServicesProviderId"},
    )


def test_plans_with_groups_and_actions(asr: SiteRecoveryManagementClient) -> None:
    plans = {p.name: p for p in asr.replication_recovery_plans.list(RG, VAULT)}
    assert set(plans) == {"rp-app", "rp-report", "rp-batch", "rp-tidy", "rp-forgotten"}
    app = asr.replication_recovery_plans.get(RG, VAULT, "rp-app")
    kinds = [g.group_type for g in app.properties.groups]
    assert kinds == ["Shutdown", "Failover", "Boot", "Boot"]
    first, second = app.properties.groups[2:]
    assert [i.id.rsplit("/", 1)[-1] for i in first.replication_protected_items] == [
        items_by_vm(asr)["vm-web"].name
    ]
    (script,) = first.start_group_actions
    assert script.custom_details.instance_type == "ScriptActionDetails"
    assert script.failover_types == ["PlannedFailover"]
    (manual,) = second.end_group_actions
    assert manual.custom_details.instance_type == "ManualActionDetails"
    assert "TestFailover" in app.properties.allowed_operations
    assert_shape(
        asr.replication_recovery_plans.get(RG, VAULT, "rp-app", cls=raw),
        "ReplicationRecoveryPlans_Get.json",
    )


def test_test_failover_cycle(
    asr: SiteRecoveryManagementClient, compute: ComputeManagementClient, admin: httpx.Client
) -> None:
    poller = asr.replication_recovery_plans.begin_test_failover(
        RG, VAULT, "rp-app", tfo_input(), cls=raw
    )
    plan = asr.replication_recovery_plans.get(RG, VAULT, "rp-app")
    assert plan.properties.current_scenario_status == "InProgress"
    assert plan.properties.allowed_operations == []
    job = job_of(asr, plan)
    assert job.properties.state == "InProgress"
    assert job.properties.scenario_name == "TestFailover"
    assert [t.state for t in job.properties.tasks][:1] == ["InProgress"]
    assert items_by_vm(asr)["vm-web"].properties.test_failover_state == "InProgress"
    # test VMs in the recovery region's target group, NICs in the network given
    vm = compute.virtual_machines.get("rg-app-asr", "vm-web-test")
    assert vm.location == "northeurope"
    refused = asr.replication_recovery_plans.begin_test_failover
    with pytest.raises(HttpResponseError) as info:
        refused(RG, VAULT, "rp-app", tfo_input())
    assert info.value.status_code == 409
    # group 1 boots, then group 2: 20 s prerequisites + 2 x (60 s create + 45 s boot)
    advance(admin, 20 + 105)
    assert (
        job_of(asr, asr.replication_recovery_plans.get(RG, VAULT, "rp-app")).properties.state
        == "InProgress"
    )
    advance(admin, 105)
    done = poller.result()
    assert done["properties"]["currentScenarioStatus"] == "Suspended"
    assert done["properties"]["currentScenarioStatusDescription"] == "WaitingForStopTestFailover"
    assert done["properties"]["allowedOperations"] == ["TestFailoverCleanup"]
    assert_shape(done, "ReplicationRecoveryPlans_TestFailover.json")
    job_name = done["properties"]["currentScenario"]["jobId"].rsplit("/", 1)[-1]
    job = asr.replication_jobs.get(RG, VAULT, job_name)
    assert job.properties.state == "Succeeded"
    assert {t.state for t in job.properties.tasks} == {"Succeeded"}
    assert_shape(
        asr.replication_jobs.get(RG, VAULT, job_name, cls=raw),
        "ReplicationJobs_Get.json",
        skip=VMM_KEYS,
    )
    assert items_by_vm(asr)["vm-api"].properties.test_failover_state == "WaitingForCompletion"
    advance(admin, 30)  # agents report Ready
    for name in ("vm-web-test", "vm-api-test"):
        view = compute.virtual_machines.instance_view("rg-app-asr", name)
        assert [s.code for s in view.statuses][-1] == "PowerState/running"
        assert view.vm_agent.statuses[0].display_status == "Ready"
    cleanup = asr.replication_recovery_plans.begin_test_failover_cleanup(
        RG, VAULT, "rp-app", {"properties": {"comments": "lifeboat drill d-1"}}, cls=raw
    )
    assert (
        job_of(
            asr, asr.replication_recovery_plans.get(RG, VAULT, "rp-app")
        ).properties.scenario_name
        == "TestFailoverCleanup"
    )
    advance(admin, 20 + 30 + 1)
    cleaned = cleanup.result()
    assert cleaned["properties"]["currentScenarioStatus"] == "Succeeded"
    assert "TestFailover" in cleaned["properties"]["allowedOperations"]
    assert_shape(
        cleaned,
        "ReplicationRecoveryPlans_TestFailoverCleanup.json",
        skip={"properties.lastPlannedFailoverTime"},  # no planned failover has run
    )
    names = {v.name for v in compute.virtual_machines.list("rg-app-asr")}
    assert not names & {"vm-web-test", "vm-api-test"}
    disks = {d.name for d in compute.disks.list_by_resource_group("rg-app-asr")}
    assert not {d for d in disks if d.startswith(("vm-web-", "vm-api-"))}
    web = items_by_vm(asr)["vm-web"].properties
    assert web.test_failover_state == "None"
    assert web.last_successful_test_failover_time == job.properties.end_time  # when the VMs were up


def test_vm_that_never_boots(
    asr: SiteRecoveryManagementClient, compute: ComputeManagementClient, admin: httpx.Client
) -> None:
    poller = asr.replication_recovery_plans.begin_test_failover(RG, VAULT, "rp-report", tfo_input())
    advance(admin, 20 + 105 + 600)
    assert (
        poller.result().properties.current_scenario_status == "Suspended"
    )  # ASR does not look inside
    view = compute.virtual_machines.instance_view("rg-app-asr", "vm-report-test")
    assert [s.code for s in view.statuses][-1] == "PowerState/running"
    assert view.vm_agent.statuses[0].display_status == "Not Ready"
    cleanup = asr.replication_recovery_plans.begin_test_failover_cleanup(
        RG, VAULT, "rp-report", {"properties": {"comments": "x"}}
    )
    advance(admin, 60)
    assert cleanup.result().properties.current_scenario_status == "Succeeded"


def test_failover_job_fails(asr: SiteRecoveryManagementClient, admin: httpx.Client) -> None:
    poller = asr.replication_recovery_plans.begin_test_failover(RG, VAULT, "rp-batch", tfo_input())
    advance(admin, 60)
    with pytest.raises(HttpResponseError) as info:
        poller.result()
    assert "TestFailoverVmCreationFailed" in str(info.value)
    plan = asr.replication_recovery_plans.get(RG, VAULT, "rp-batch")
    assert plan.properties.current_scenario_status == "Failed"
    assert plan.properties.allowed_operations == ["TestFailoverCleanup"]
    job = job_of(asr, plan)
    assert job.properties.state == "Failed"
    (error,) = job.properties.errors
    assert error.service_error_details.code == "TestFailoverVmCreationFailed"
    assert [t.state for t in job.properties.tasks] == ["Succeeded", "Failed"]
    assert items_by_vm(asr)["vm-batch"].properties.test_failover_state == "Failed"


def test_cleanup_fails_once_then_succeeds(
    asr: SiteRecoveryManagementClient, compute: ComputeManagementClient, admin: httpx.Client
) -> None:
    poller = asr.replication_recovery_plans.begin_test_failover(RG, VAULT, "rp-tidy", tfo_input())
    advance(admin, 20 + 105)
    poller.result()
    first = asr.replication_recovery_plans.begin_test_failover_cleanup(
        RG, VAULT, "rp-tidy", {"properties": {"comments": "1"}}
    )
    advance(admin, 60)
    with pytest.raises(HttpResponseError):
        first.result()
    plan = asr.replication_recovery_plans.get(RG, VAULT, "rp-tidy")
    assert plan.properties.current_scenario_status == "Failed"
    assert plan.properties.allowed_operations == ["TestFailoverCleanup"]
    assert compute.virtual_machines.get("rg-app-asr", "vm-tidy-test").name == "vm-tidy-test"
    assert items_by_vm(asr)["vm-tidy"].properties.last_successful_test_failover_time is None
    second = asr.replication_recovery_plans.begin_test_failover_cleanup(
        RG, VAULT, "rp-tidy", {"properties": {"comments": "2"}}
    )
    advance(admin, 60)
    assert second.result().properties.current_scenario_status == "Succeeded"
    assert items_by_vm(asr)["vm-tidy"].properties.last_successful_test_failover_time is not None
    jobs = [
        j
        for j in asr.replication_jobs.list(RG, VAULT)
        if j.properties.target_object_name == "rp-tidy"
    ]
    assert sorted(j.properties.state for j in jobs) == ["Failed", "Succeeded", "Succeeded"]


def test_forgotten_test_failover_from_the_estate(
    asr: SiteRecoveryManagementClient, compute: ComputeManagementClient, admin: httpx.Client
) -> None:
    plan = asr.replication_recovery_plans.get(RG, VAULT, "rp-forgotten")
    assert plan.properties.current_scenario_status_description == "WaitingForStopTestFailover"
    assert plan.properties.current_scenario.start_time.isoformat()[:13] == "2026-11-25T19"
    assert items_by_vm(asr)["vm-old"].properties.test_failover_state == "WaitingForCompletion"
    view = compute.virtual_machines.instance_view("rg-app-asr", "vm-old-test")
    assert view.vm_agent.statuses[0].display_status == "Ready"
    with pytest.raises(HttpResponseError) as info:  # not started again while waiting
        asr.replication_recovery_plans.begin_test_failover(RG, VAULT, "rp-forgotten", tfo_input())
    assert info.value.status_code == 409
    cleanup = asr.replication_recovery_plans.begin_test_failover_cleanup(
        RG, VAULT, "rp-forgotten", {"properties": {"comments": "sweeper"}}
    )
    advance(admin, 60)
    assert cleanup.result().properties.current_scenario_status == "Succeeded"
    assert items_by_vm(asr)["vm-old"].properties.last_successful_test_failover_time is not None


def test_test_failover_refusals(asr: SiteRecoveryManagementClient) -> None:
    elsewhere = TEST_NET.replace("rg-drill-neu", "rg-net-neu").replace(
        "vnet-drill-neu", "vnet-missing"
    )
    with pytest.raises(HttpResponseError) as info:
        asr.replication_recovery_plans.begin_test_failover(
            RG, VAULT, "rp-app", tfo_input(elsewhere)
        )
    assert info.value.status_code == 400
    with pytest.raises(HttpResponseError) as info:
        asr.replication_recovery_plans.begin_test_failover_cleanup(
            RG, VAULT, "rp-app", {"properties": {"comments": "x"}}
        )
    assert info.value.status_code == 409


def test_estate_problems_name_their_path() -> None:
    from datetime import UTC, datetime

    estate = json.loads(json.dumps(ESTATE))
    estate["siteRecovery"][0]["items"][0]["vm"] = "rg-app/vm-missing"
    estate["siteRecovery"][0]["items"][1]["replicationHealth"] = "Sad"
    estate["siteRecovery"][0]["plans"][1]["groups"][0]["start"] = [{"name": "x", "type": "email"}]
    now = datetime(2026, 11, 27, 1, tzinfo=UTC)
    cloud = build_cloud(estate, now)
    with pytest.raises(EstateError) as info:
        load_site_recovery(SiteRecoveryState(), cloud, cloud.extra["siteRecovery"], now)
    message = str(info.value)
    assert "siteRecovery[0].items[0].vm: no VM 'rg-app/vm-missing'" in message
    assert "siteRecovery[0].items[1].replicationHealth" in message
    assert "siteRecovery[0].plans[1].groups[0].start[0].type" in message
