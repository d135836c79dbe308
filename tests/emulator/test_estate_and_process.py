"""Estate files, the generator, `lifeboat emulator` and the process helper."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from emulator.estate import EstateError, build_cloud, load_estate_file
from emulator.generate import main as generate_main
from emulator.process import DEMO_ESTATE, REPO_ROOT, Endpoints, running_emulator

NOW = datetime(2026, 11, 27, 1, 0, tzinfo=UTC)


def test_demo_estate_has_the_quirks() -> None:
    cloud = load_estate_file(DEMO_ESTATE, NOW)
    assert 6 <= len(cloud.vms) <= 10
    assert len({vm.group for vm in cloud.vms.values()}) == 2
    assert any(vm.ephemeral_os for vm in cloud.vms.values())
    assert any(d.max_shares and len(d.managed_by) == 2 for d in cloud.disks.values())
    assert any(lock.scope.endswith("/resourceGroups/rg-data") for lock in cloud.locks)
    assert any("lifeboat:hold" in s.tags for s in cloud.snapshots.values())
    assert any("lifeboat:managed" not in s.tags for s in cloud.snapshots.values())
    assert cloud.deny_assignments
    for sub in cloud.subscriptions.values():
        assert "rg-lifeboat-snapshots" in sub.groups


def test_every_problem_is_reported_at_once() -> None:
    data = {
        "version": 9,
        "identities": [],
        "subscriptions": [
            {
                "id": "6f1c3a52-7d2e-4b8a-9c41-3e5d2a7b9f10",
                "resourceGroups": [{"name": "rg"}],
                "vms": [{"name": "a", "resourceGroup": "missing"}, {"resourceGroup": "rg"}],
                "snapshots": [{"name": "s", "resourceGroup": "rg", "source": "rg/nope"}],
            }
        ],
    }
    with pytest.raises(EstateError) as info:
        build_cloud(data, NOW)
    message = str(info.value)
    for expected in ("version", "identities", "'missing'", "name is required", "rg/nope"):
        assert expected in message


def test_unknown_top_level_sections_are_kept_for_later_formats() -> None:
    data = yaml.safe_load(DEMO_ESTATE.read_text())
    data["vaults"] = [{"name": "rsv-prod"}]
    assert build_cloud(data, NOW).extra["vaults"] == [{"name": "rsv-prod"}]


def test_generator_writes_a_loadable_10000_vm_estate(tmp_path: Path) -> None:
    out = tmp_path / "big.yaml"
    assert generate_main(["--vms", "10000", "--out", str(out)]) == 0
    start = time.monotonic()
    cloud = load_estate_file(out, NOW)
    assert len(cloud.vms) == 10000
    assert time.monotonic() - start < 10
    assert any(vm.ephemeral_os for vm in cloud.vms.values())
    for sub in cloud.subscriptions.values():
        assert "rg-lifeboat-snapshots" in sub.groups


def test_lifeboat_emulator_is_ready_within_3s_and_stops_on_sigterm(tmp_path: Path) -> None:
    code = (
        "from pathlib import Path; from cli.emulator_cmd import emulator_command; "
        f"emulator_command(Path({str(DEMO_ESTATE)!r}), state_dir=Path({str(tmp_path)!r}))"
    )
    start = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-c", code],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        elapsed = time.monotonic() - start
        assert line.startswith("ready https://127.0.0.1:")
        assert elapsed < 3.0
        endpoints = Endpoints.load(line.strip().split("endpoints=", 1)[1])
        assert endpoints.pid == proc.pid  # exec'd: the command is the server
        proc.send_signal(signal.SIGTERM)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        if proc.stdout:
            proc.stdout.close()


def test_running_emulator_cleans_up_on_error() -> None:
    pids: list[int] = []

    def crash() -> None:
        with running_emulator(DEMO_ESTATE) as endpoints:
            pids.append(endpoints.pid)
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        crash()
    pid = pids[0]
    time.sleep(0.1)
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_bad_estate_fails_fast(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: 1\n")
    with pytest.raises(RuntimeError, match="did not get ready"), running_emulator(bad, timeout=5):
        pass
