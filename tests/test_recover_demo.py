"""`lifeboat demo` ends with one `lifeboat recover --new-vm` of a demo VM, after its nights."""

from __future__ import annotations

import pytest

from tests.conftest import DemoRun

pytestmark = pytest.mark.e2e


def test_demo_json_carries_a_succeeded_recovery_with_its_rto_and_rpo(demo_run: DemoRun) -> None:
    assert demo_run.returncode == 0, demo_run.stderr[-3000:]
    [recovery] = demo_run.document["recoveries"]
    assert set(recovery) == {
        "vmId",
        "mode",
        "source",
        "status",
        "rtoSeconds",
        "rpoSeconds",
        "newVmId",
    }
    assert recovery["status"] == "succeeded"
    assert recovery["mode"] == "new-vm"
    assert recovery["vmId"].endswith("/virtualMachines/vm-web-01")
    assert recovery["newVmId"].rsplit("/", 1)[-1].startswith("vm-web-01-r")
    assert recovery["source"].startswith("snapshot set ")
    # create 60 s, boot 45 s and agent 30 s of the stand-in's time at the least
    assert recovery["rtoSeconds"] >= 135
    # the second night's set (02:00), recovered after that night's 04:00 drills
    assert 2 * 3600 <= recovery["rpoSeconds"] <= 6 * 3600
