"""Each refusal of `lifeboat recover`, end to end: the real command (the `lifeboat` app's
`recover VM ... --yes --json`) against one stand-in (tests/data/recover-refusals.yaml, a VM
per refusal).

A refusal is decided from reads alone, so each run must exit 1 with its reason, and the
stand-in's request log must show the VM read and no write to ARM: the refusal's outcome row
(to Azure Monitor) is all it sends. The command runs in this process (its app settings, which
it puts in the environment, are put back after each run); `tests/test_recover_e2e.py` runs it
as its own process.
"""

from __future__ import annotations

import json
import os
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from azure.identity import ManagedIdentityCredential
from azure.mgmt.network import NetworkManagementClient
from typer.testing import CliRunner

from cli.main import app
from emulator.process import running_emulator
from tests.e2e_env import SUB
from tests.fakes import patched_environ

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parent.parent
ESTATE = ROOT / "tests" / "data" / "recover-refusals.yaml"
OTHER_SUB = "0b7e2d41-5a3c-4f9e-8d21-6c4a9e3b7f52"  # the disk encryption set's, in the estate
GROUP = f"/subscriptions/{SUB}/resourceGroups/rg-app/providers"
DES = (
    f"/subscriptions/{OTHER_SUB}/resourceGroups/rg-keys/providers/Microsoft.Compute/"
    "diskEncryptionSets/des-central"
)
SUBNET = f"{GROUP}/Microsoft.Network/virtualNetworks/vnet-prod/subnets/snet-app"


def vm_id(name: str) -> str:
    return f"{GROUP}/Microsoft.Compute/virtualMachines/{name}"


# case: (VM, options, the reason's start; {ip}: the address vm-plain's NIC holds)
CASES: dict[str, tuple[str, tuple[str, ...], str]] = {
    "ade": (
        "vm-ade",
        (),
        "disk vm-ade-osdisk uses Azure Disk Encryption: its keys are in Key Vault with the VM's "
        "encryption settings, which a disk copied from a snapshot does not carry",
    ),
    "des-in-another-subscription": (
        "vm-des",
        (),
        f"disk vm-des-data-00 is encrypted with disk encryption set {DES}, in another "
        f"subscription than the target {SUB}: the target cannot use its keys",
    ),
    "in-use-by-another-recovery": (
        "vm-busy",
        (),
        "vm-busy is in use by another recovery (lifeboat:recovery = rec-vm-busy-202611270330)",
    ),
    "target-name-exists": (
        "vm-plain",
        ("--name", "vm-busy"),
        f"the target name vm-busy exists already ({vm_id('vm-busy')})",
    ),
    "quota": (
        "vm-plain",
        ("--size", "Standard_D16s_v5"),
        "quota exceeded: standardDSv5Family in westeurope is at 12 of 16; "
        "a Standard_D16s_v5 needs 16 more",
    ),
    "swap-confidential-vm": (
        "vm-cvm",
        ("--swap-disks",),
        "vm-cvm is a Confidential VM: its disks are bound to its own keys, so Lifeboat does not "
        "swap disks it",
    ),
    "swap-ephemeral-os-disk": (
        "vm-eph",
        ("--swap-disks",),
        "vm-eph has an ephemeral OS disk: it has no snapshot to recover from and cannot be swapped",
    ),
    "keep-ip-while-held": (
        "vm-plain",
        ("--keep-ip",),
        "--keep-ip: vm-plain's NIC vm-plain-nic still holds {ip}",
    ),
}


@dataclass
class Run:
    exit_code: int
    output: str  # stdout: the --json document
    requests: list[dict[str, Any]]  # the stand-in's request log while the command ran


def _nic(ep: Any) -> str:
    """vm-plain's NIC (estate VMs name theirs {vm}-nic) in the production subnet: its address."""
    network = NetworkManagementClient(
        ManagedIdentityCredential(client_id=ep.client_id),
        SUB,
        base_url=ep.arm,
        credential_scopes=[ep.arm_audience + ".default"],
    )
    nic = network.network_interfaces.begin_create_or_update(
        "rg-app",
        "vm-plain-nic",
        {
            "location": "westeurope",
            "properties": {
                "ipConfigurations": [
                    {"name": "ipconfig1", "properties": {"subnet": {"id": SUBNET}}}
                ]
            },
        },
    ).result()
    return str(nic.ip_configurations[0].private_ip_address)


def _command(admin: httpx.Client, *args: str) -> Run:
    """`lifeboat recover *args` in this process (the command sets app settings in the
    environment: they are put back), with the request log it caused."""
    mark = admin.get("/requests", params={"limit": 1}).json()["total"]
    saved = dict(os.environ)
    try:
        result = CliRunner().invoke(app, ["recover", *args])
    finally:
        os.environ.clear()
        os.environ.update(saved)
    log = admin.get("/requests", params={"since": mark, "limit": 5000}).json()["entries"]
    return Run(result.exit_code, result.stdout, log)


@pytest.fixture(scope="module")
def stand_in() -> Iterator[tuple[Any, httpx.Client, str]]:
    # The clock runs (at its real rate): a recovery that was not refused ends at its timeout.
    options = ("--clock-start", "2026-11-27T04:00:00Z")
    with running_emulator(ESTATE, *options) as ep, patched_environ(ep.environment()):
        ip = _nic(ep)
        verify = ssl.create_default_context(cafile=ep.ca_bundle)
        with httpx.Client(base_url=ep.admin, verify=verify, timeout=30) as admin:
            yield ep, admin, ip


@pytest.mark.parametrize("case", list(CASES))
def test_the_command_refuses_with_its_reason_and_writes_nothing(
    stand_in: tuple[Any, httpx.Client, str], case: str
) -> None:
    ep, admin, ip = stand_in
    vm, options, reason = CASES[case]
    done = _command(
        admin,
        *(vm_id(vm), *options, "--yes", "--json", "--emulator-endpoints", ep.path),
        *("--timeout", "2", "--poll-seconds", "0.1"),
        *("--settings", str(ROOT / "local.settings.sample.json")),
    )
    assert done.exit_code == 1, done.output
    document = json.loads(done.output)
    assert document["status"] == "refused"
    # the reason quotes ids as Azure wrote them, in any casing
    assert document["reason"].lower().startswith(reason.format(ip=ip).lower()), document["reason"]
    assert document["created"] == []
    reads = {e["path"].lower() for e in done.requests if e["method"] == "GET"}
    assert vm_id(vm).lower() in reads  # the command did read the stand-in
    # No write to ARM: the refusal's outcome row (to Azure Monitor) is all that is sent.
    writes = [e for e in done.requests if e["method"] != "GET"]
    assert [(e["method"], e["path"].rsplit("/streams/", 1)[-1]) for e in writes] == [
        ("POST", "Custom-LifeboatOutcomes_CL")
    ]
