"""End to end: `lifeboat host` as a process with the real app, Azurite, and Event Grid posts."""

from __future__ import annotations

import json
import os
import subprocess
import urllib.request
from pathlib import Path

import pytest
from azure.storage.queue import QueueClient, QueueServiceClient, TextBase64EncodePolicy

from cli.azurite import Azurite, write_endpoints
from cli.events import post_events, vm_write_event
from cli.hostprocess import running_host, write_json
from emulator.process import DEMO_ESTATE, running_emulator
from tests.conftest import OTHER_SUBSCRIPTION, SUBSCRIPTION, DemoRun, base_settings
from tests.fakes import run_python

ROOT = Path(__file__).resolve().parent.parent
FAST = {
    "extensions": {
        "queues": {"maxPollingInterval": "00:00:00.200", "visibilityTimeout": "00:00:00"}
    }
}

pytestmark = pytest.mark.e2e


def test_event_to_onboarding_outcome_and_poison_through_drain(
    azurite: Azurite, queue_service: QueueServiceClient, tmp_path: Path
) -> None:
    write_endpoints(azurite, tmp_path / "azurite.json")
    settings = write_json(tmp_path / "local.settings.json", {"Values": base_settings()})
    with (
        running_emulator(DEMO_ESTATE) as stand_in,
        running_host(
            [
                "--settings",
                str(settings),
                "--storage-endpoints",
                str(tmp_path / "azurite.json"),
                "--emulator-endpoints",
                stand_in.path,
                "--host-overrides",
                str(write_json(tmp_path / "o.json", FAST)),
                "--no-timers",
            ]
        ) as host,
    ):
        created = vm_write_event(SUBSCRIPTION, "rg-app", "vm-web-01", event_id="evt-1")
        foreign = vm_write_event(OTHER_SUBSCRIPTION, "rg-x", "vm-x", event_id="evt-2")
        assert post_events(host.eventgrid_url, [created, foreign])[0] == 202
        rows = host.wait_for(lambda rows: any(r["Operation"] == "vm-seen" for r in rows))
        seen = next(r for r in rows if r["Operation"] == "vm-seen")
        assert seen["VmName"] == "vm-web-01"
        assert seen["Job"] == "onboarding"
        assert seen["Details"]["eventId"] == "evt-1"
        assert seen["TimeGenerated"].endswith("Z")
        skipped = next(r for r in rows if r["Operation"] == "vm-event")
        assert (skipped["Status"], skipped["SubscriptionId"]) == ("skipped", OTHER_SUBSCRIPTION)

        QueueClient.from_connection_string(
            azurite.connection_string, "onboarding", message_encode_policy=TextBase64EncodePolicy()
        ).send_message('{"type": "onboarding"}')
        host.wait_for(lambda rows: any(r["Operation"] == "poison" for r in rows))

        key = host.eventgrid_url.rsplit("code=", 1)[1]
        request = urllib.request.Request(
            f"{host.base_url}/admin/functions/poison_drain",
            data=b"{}",
            method="POST",
            headers={"x-functions-key": key},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 202
        rows = host.wait_for(
            lambda rows: any((r.get("Details") or {}).get("drained") for r in rows)
        )
        drained = next(r for r in rows if (r.get("Details") or {}).get("drained"))
        assert drained["Reason"].startswith("unsigned")  # refused before it is even parsed
        assert json.loads(drained["Details"]["message"]) == {"type": "onboarding"}
    poison = QueueClient.from_connection_string(azurite.connection_string, "onboarding-poison")
    assert poison.get_queue_properties().approximate_message_count == 0


def test_host_refuses_to_start_when_a_schedule_setting_is_missing(tmp_path: Path) -> None:
    values = base_settings()
    del values["POISON_SCHEDULE"]
    settings = write_json(tmp_path / "s.json", {"Values": values})
    env = {k: v for k, v in os.environ.items() if k != "POISON_SCHEDULE"}
    result = run_python("-m", "cli.main", "host", "--settings", str(settings), env=env)
    assert result.returncode == 2
    assert "'%POISON_SCHEDULE%' does not resolve" in result.stderr


def test_demo_json_is_the_last_thing_on_stdout_and_nothing_is_left_behind(
    demo_run: DemoRun,
) -> None:
    """`capture_output` returns only when every holder of the pipe has exited."""
    result = demo_run
    assert result.returncode == 0, result.stderr[-3000:]
    document = demo_run.document
    assert set(document) == {
        "estate",
        "nights",
        "snapshots",
        "skipped",
        "outcomes",
        "verification",
        "replication",
        "drills",
        "requests",
        "recoveries",
    }
    assert document["nights"] == 2
    assert document["snapshots"], "in-scope disks have snapshots"
    assert all(len(times) >= 2 for times in document["snapshots"].values())
    assert any("ephemeral" in reason for reason in document["skipped"].values())
    assert document["outcomes"]["rotation"]["succeeded"] > 0
    assert document["outcomes"]["onboarding"]["succeeded"] >= 1
    assert document["outcomes"]["maintenance"]["failed"] >= 2  # the poisoned demo messages
    # The clock passing 06:00 fired the verification run: the demo vault's findings.
    findings = {v["finding"] for v in document["verification"].values()}
    assert {"compliant", "rpo-breached", "unprotected"} <= findings
    # Each night the drill timer restored the three VMs tagged lifeboat:drill=nightly and
    # test-failed-over the recovery plan rp-web (test_site_recovery_drill_demo.py); the first
    # night also drilled one from its Azure Backup recovery point (test_recovery_point_demo.py).
    drills = document["drills"]
    assert sorted(d["source"] for d in drills) == (
        ["recovery-point"] + ["site-recovery"] * 2 + ["snapshots"] * 6
    )
    assert {d["status"] for d in drills} == {"succeeded", "failed"}
    for drill in drills:
        assert set(drill) >= {
            "drillId",
            "vmId",
            "source",
            "status",
            "rtoSeconds",
            "rpoSeconds",
            "rtoTargetSeconds",
        }
        assert isinstance(drill["rpoSeconds"], int)
        if drill["status"] == "succeeded":
            assert 0 < drill["rtoSeconds"] <= drill["rtoTargetSeconds"]
        else:
            assert drill["vmId"].endswith("/vm-report-01")
    for text in ("HTTP 202", "poison_drain reported both", "Night 2"):
        assert text in result.stderr
    # The demo's stand-in and host carry its working folder on their command lines.
    leftovers = subprocess.run(
        ["pgrep", "-f", "-a", "lifeboat-demo-"], capture_output=True, text=True, check=False
    )
    own = [line for line in leftovers.stdout.splitlines() if "pgrep" not in line]
    assert not own, f"the demo left processes behind: {own}"
