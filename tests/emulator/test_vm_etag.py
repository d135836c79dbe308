"""The stand-in's VM ETag counts the updates of the VM's model (If-Match needs it to move)."""

from __future__ import annotations

from datetime import UTC, datetime

from emulator.ids import key
from emulator.model import Cloud, DataDisk, Disk, VirtualMachine

NOW = datetime(2026, 11, 27, 4, 0, tzinfo=UTC)
SUB = "6f1c3a52-7d2e-4b8a-9c41-3e5d2a7b9f10"


def _disk(cloud: Cloud, name: str) -> str:
    disk = Disk(SUB, "rg-app", name, "westeurope", "Premium_LRS", 64, f"uid-{name}", NOW)
    cloud.disks[key(disk.id)] = disk
    return key(disk.id)


def test_every_update_of_the_model_moves_the_etag_and_power_does_not() -> None:
    cloud = Cloud("tenant", [])
    vm = VirtualMachine(
        SUB,
        "rg-app",
        "vm-1",
        "westeurope",
        "Standard_D2s_v5",
        "vmid",
        NOW,
        "Linux",
        _disk(cloud, "vm-1-os"),
    )

    def etag() -> str:
        return str(cloud.vm_json(vm, NOW)["etag"])

    seen = [etag()]
    vm.tags = {"owner": "ops"}  # a PATCH or the Tags API
    seen.append(etag())
    vm.os_disk_key = _disk(cloud, "vm-1-os-new")  # a PUT swapping the disks
    vm.data_disks = [DataDisk(0, _disk(cloud, "vm-1-d0"), "None")]
    seen.append(etag())
    assert seen == ['"1"', '"2"', '"4"']
    vm.power_state = "deallocated"  # a power action is not an update of the model
    vm.agent_ready = False
    assert etag() == seen[-1]
