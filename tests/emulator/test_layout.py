"""The stand-in's layout: each module imports on its own, the import graph has no cycle, nothing
of the app is imported, and state is reachable as plain objects without HTTP."""

from __future__ import annotations

import ast
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from emulator.clock import Clock
from emulator.config import Behaviour
from emulator.estate import load_estate_file
from emulator.eventgrid import DeliveryOptions, EventGrid
from emulator.process import DEMO_ESTATE
from emulator.stand_in import build_stand_in
from emulator.throttling import Throttler

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "emulator"
MODULES = sorted(f"emulator.{p.stem}" for p in PACKAGE.glob("*.py") if not p.stem.startswith("__"))
APP_PACKAGES = {"shared", "triggers", "cli", "function_app"}


def _imports(module: str) -> set[str]:
    """Every module an emulator module imports anywhere (function bodies and TYPE_CHECKING too)."""
    tree = ast.parse((PACKAGE / f"{module.split('.')[1]}.py").read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            if node.module == "emulator":
                found |= {f"emulator.{alias.name}" for alias in node.names}
    return found


@pytest.mark.parametrize("module", MODULES)
def test_each_module_imports_on_its_own(module: str) -> None:
    done = subprocess.run(
        [sys.executable, "-c", f"import {module}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr


def test_no_import_cycles_and_nothing_of_the_app() -> None:
    graph = {m: {i for i in _imports(m) if i in MODULES} for m in MODULES}
    for module in MODULES:
        assert not {i.split(".")[0] for i in _imports(module)} & APP_PACKAGES, module
    state: dict[str, str] = {}  # unseen, "open" (on the path), "done"

    def visit(module: str, path: list[str]) -> None:
        state[module] = "open"
        for target in sorted(graph[module]):
            assert state.get(target) != "open", " -> ".join([*path, module, target])
            if target not in state:
                visit(target, [*path, module])
        state[module] = "done"

    for module in MODULES:
        if module not in state:
            visit(module, [])


def test_state_is_reached_without_http() -> None:
    clock = Clock(datetime(2026, 11, 27, 1, 0, tzinfo=UTC), rate=0)
    cloud = load_estate_file(DEMO_ESTATE, clock.now())
    stand_in = build_stand_in(
        cloud, clock, Behaviour(), Throttler(), EventGrid(clock, cloud.tenant_id, DeliveryOptions())
    )
    assert any(vm.name == "vm-web-01" for vm in stand_in.cloud.vms.values())
    assert any(v.name == "vnet-drill-isolated" for v in stand_in.network.state.vnets.values())
    assert any(vault.name == "rsv-prod-weu" for vault in stand_in.backup.vaults.values())
    assert stand_in.monitor.config.streams
    served = {route.operation for route, _ in stand_in.router.table}
    for provider in ("Resources", "Compute", "Network", "RecoveryServices", "Authorization"):
        assert any(op.startswith(f"Microsoft.{provider}/") for op in served), provider
