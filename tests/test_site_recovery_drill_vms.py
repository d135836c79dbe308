"""A site-recovery drill's test VMs are the drill's: the nightly plan and the drill planner skip
a VM tagged with a drill's id (a VM's own `lifeboat:drill` names a drill plan, and stays in), and
the drills adapter reads a VM's primary NIC's subnet (what onboarding checks before the tag)."""

from __future__ import annotations

from shared.adapters.drills import AzureDrills
from shared.planning import drill_resource, plan_night
from tests.builders import disk, night, vm
from tests.test_planning import CONFIG, index, policies


def test_the_nightly_plan_skips_a_drills_test_vm_but_not_a_vm_named_for_drills() -> None:
    plan = plan_night(
        [
            vm(
                "web-test",
                "a-os",
                tags={"lifeboat:policy": "daily", "Lifeboat:Drill": "lbd-abcdefghij"},
            ),
            vm("web", "b-os", tags={"lifeboat:policy": "daily", "lifeboat:drill": "nightly"}),
        ],
        index(disk("a-os"), disk("b-os")),
        [],
        policies(),
        CONFIG,
        night(27),
    )
    assert [p.vm.name for p in plan.vms] == ["web"]
    assert [s.reason for s in plan.skipped_vms] == [
        "a drill's test VM (lifeboat:drill=lbd-abcdefghij)"
    ]
    assert drill_resource({"lifeboat:drill": "lbd-abc"}) is None
    assert drill_resource({"lifeboat:drill": "none"}) is None


def test_the_primary_subnet_is_the_primary_nics_primary_ip_configuration() -> None:
    vm_id = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/v"
    nic = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Network/networkInterfaces/"
    bodies = {
        vm_id: {
            "properties": {
                "networkProfile": {
                    "networkInterfaces": [
                        {"id": nic + "n0", "properties": {"primary": False}},
                        {"id": nic + "n1", "properties": {"primary": True}},
                    ]
                }
            }
        },
        nic + "n1": {
            "properties": {
                "ipConfigurations": [
                    {"properties": {"subnet": {"id": "/x/subnets/other"}}},
                    {"properties": {"primary": True, "subnet": {"id": "/x/subnets/drill"}}},
                ]
            }
        },
    }
    adapter = AzureDrills.__new__(AzureDrills)
    adapter._get_by_id = lambda resource_id: bodies.get(resource_id)  # type: ignore[method-assign]
    assert adapter.get_primary_subnet(vm_id) == "/x/subnets/drill"
    bodies[vm_id]["properties"]["networkProfile"]["networkInterfaces"] = []
    assert adapter.get_primary_subnet(vm_id) is None
    assert adapter.get_primary_subnet(vm_id + "-gone") is None
