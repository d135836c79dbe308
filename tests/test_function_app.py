"""The app indexes with no settings at all, and registers exactly these functions."""

from __future__ import annotations

import json

import function_app
from cli.localhost import index_app
from tests.conftest import ROOT, run_in_bare_python


def _bindings() -> dict[str, list[dict[str, object]]]:
    return {
        f.get_function_name(): json.loads(f.get_function_json())["bindings"]
        for f in index_app(function_app.app)
    }


def test_functions_names_triggers_queues_and_schedules_are_pinned() -> None:
    assert _bindings() == {
        "vm_events": [{"direction": "IN", "type": "eventGridTrigger", "name": "event"}],
        "onboarding": [
            {
                "direction": "IN",
                "type": "queueTrigger",
                "name": "msg",
                "queueName": "onboarding",
                "connection": "AzureWebJobsStorage",
            }
        ],
        "poison_drain": [
            {
                "direction": "IN",
                "type": "timerTrigger",
                "name": "timer",
                "schedule": "%POISON_SCHEDULE%",
                "runOnStartup": False,
            }
        ],
        "rotation_timer": [
            {
                "direction": "IN",
                "type": "timerTrigger",
                "name": "timer",
                "schedule": "%ROTATION_SCHEDULE%",
                "runOnStartup": False,
            }
        ],
        **{
            f"rotation_{kind}": [
                {
                    "direction": "IN",
                    "type": "queueTrigger",
                    "name": "msg",
                    "queueName": f"rotation-{kind}",
                    "connection": "AzureWebJobsStorage",
                }
            ]
            for kind in ("plan", "vm", "prune")
        },
        "outcomes_retry": [
            {
                "direction": "IN",
                "type": "queueTrigger",
                "name": "msg",
                "queueName": "outcomes-retry",
                "connection": "AzureWebJobsStorage",
            }
        ],
        "verification_timer": [
            {
                "direction": "IN",
                "type": "timerTrigger",
                "name": "timer",
                "schedule": "%VERIFICATION_SCHEDULE%",
                "runOnStartup": False,
            }
        ],
        "verification_vault": [
            {
                "direction": "IN",
                "type": "queueTrigger",
                "name": "msg",
                "queueName": "verification-vault",
                "connection": "AzureWebJobsStorage",
            }
        ],
        **{
            name: [
                {
                    "direction": "IN",
                    "type": "timerTrigger",
                    "name": "timer",
                    "schedule": f"%{setting}%",
                    "runOnStartup": False,
                }
            ]
            for name, setting in (
                ("drill_timer", "DRILL_SCHEDULE"),
                ("sweeper", "SWEEPER_SCHEDULE"),
                ("posture_timer", "POSTURE_SCHEDULE"),
            )
        },
        "drill_step": [
            {
                "direction": "IN",
                "type": "queueTrigger",
                "name": "msg",
                "queueName": "drill-step",
                "connection": "AzureWebJobsStorage",
            }
        ],
    }


def test_app_indexes_in_an_empty_environment() -> None:
    code = "import function_app; print(len(function_app.app.get_functions()))"
    assert run_in_bare_python(code).strip() == "14"


def test_function_app_only_composes() -> None:
    source = (ROOT / "function_app.py").read_text()
    assert "os.environ" not in source
    assert "services(" not in source
    assert "Settings" not in source


def test_imports_flow_one_way() -> None:
    """shared never imports triggers, function_app, cli or emulator; the pure core no adapters."""
    for path in (ROOT / "shared").rglob("*.py"):
        text = path.read_text()
        for banned in ("import triggers", "from triggers", "function_app", "from cli", "emulator"):
            assert banned not in text, f"{path.name} imports {banned}"
        if path.parent.name != "adapters" and path.name != "services.py":
            assert "shared.adapters" not in text, f"{path.name} imports an adapter"
        assert "azure.functions" not in text, f"{path.name} imports azure.functions"


def test_funcignore_keeps_tooling_out_of_the_package() -> None:
    lines = set((ROOT / ".funcignore").read_text().split())
    for entry in (
        "tests",
        "cli",
        "emulator",
        "bench",
        "infra",
        ".ci",
        "Makefile",
        "package.json",
        "package-lock.json",
        "node_modules",
        ".venv*",
        "local.settings.json",
    ):
        assert entry in lines, entry
