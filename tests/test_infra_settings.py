"""The app settings in Bicep agree with Settings, local.settings.sample.json and the bindings.

The bindings are read from the app itself, so functions added later (drills) are checked too.
"""

from __future__ import annotations

import json
import re
from typing import Any

import function_app
from cli.localhost import index_app
from shared.settings import MAX_DEQUEUE_OVERRIDE, Settings
from tests.conftest import TEST_SIGNING_KEYS
from tests.test_infra_bicep import BICEP_FILES, INFRA, ROOT, Bicep

QUEUES = {
    "rotation-plan",
    "rotation-vm",
    "rotation-prune",
    "verification-vault",
    "onboarding",
    "drill-step",
    "outcomes-retry",
}
HOST_STORAGE = {
    "AzureWebJobsStorage__credential",
    "AzureWebJobsStorage__clientId",
    "AzureWebJobsStorage__blobServiceUri",
    "AzureWebJobsStorage__queueServiceUri",
    "AzureWebJobsStorage__tableServiceUri",
}
TELEMETRY = {"APPLICATIONINSIGHTS_CONNECTION_STRING", "APPLICATIONINSIGHTS_AUTHENTICATION_STRING"}
LOCAL_ONLY = {"FUNCTIONS_WORKER_RUNTIME", "AzureWebJobsStorage"}
FLEX_REJECTS = re.compile(
    r"^(FUNCTIONS_WORKER_RUNTIME|FUNCTIONS_EXTENSION_VERSION|WEBSITE_RUN_FROM_PACKAGE|WEBSITE_CONTENT.*)$"
)


def _main_settings() -> dict[str, Any]:
    return dict(Bicep(INFRA / "main.bicep").tree["variables"]["appSettings"]["value"])


def _function_settings() -> set[str]:
    variables = Bicep(INFRA / "app" / "function.bicep").tree["variables"]
    return set(variables["hostStorage"]["value"]) | set(variables["telemetry"]["value"])


def _sample() -> dict[str, str]:
    return dict(json.loads((ROOT / "local.settings.sample.json").read_text())["Values"])


def _bindings() -> list[dict[str, Any]]:
    return [
        binding
        for f in index_app(function_app.app)
        for binding in json.loads(f.get_function_json())["bindings"]
    ]


def test_the_app_settings_are_exactly_settings_names_plus_host_storage_and_telemetry() -> None:
    bicep = set(_main_settings()) | _function_settings()
    assert _function_settings() == HOST_STORAGE | TELEMETRY
    aliases = {field.alias or name for name, field in Settings.model_fields.items()}
    expected = aliases - {"AzureWebJobsStorage", MAX_DEQUEUE_OVERRIDE}
    assert expected - bicep == set(), "Settings reads these but Bicep does not set them"
    assert bicep - expected - HOST_STORAGE - TELEMETRY == set(), "Bicep sets unknown settings"


def test_every_required_setting_is_set_to_something() -> None:
    settings = _main_settings()
    required = {
        field.alias or name for name, field in Settings.model_fields.items() if field.is_required()
    }
    assert required, "Settings has required fields"
    for key in required:
        assert settings.get(key) not in (None, ""), f"{key} is required but empty in Bicep"
    assert "AzureWebJobsStorage__queueServiceUri" in _function_settings()


def test_the_sample_has_the_same_keys_as_the_bicep() -> None:
    assert set(_sample()) - LOCAL_ONLY == set(_main_settings())


def test_settings_flex_rejects_are_absent() -> None:
    keys = set(_main_settings()) | _function_settings()
    assert not [k for k in keys if FLEX_REJECTS.match(k)]
    for path in BICEP_FILES:
        code = re.sub(r"//.*", "", path.read_text())  # comments may name them
        for name in ("linuxFxVersion", "FUNCTIONS_WORKER_RUNTIME", "FUNCTIONS_EXTENSION_VERSION"):
            assert name not in code, f"{path.name} sets {name}"
        assert "WEBSITE_RUN_FROM_PACKAGE" not in code
        assert "WEBSITE_CONTENT" not in code


def test_schedules_and_queues_match_the_function_bindings() -> None:
    main = Bicep(INFRA / "main.bicep")
    settings = _main_settings()
    sample = _sample()
    bindings = _bindings()
    timers = [b for b in bindings if b["type"] == "timerTrigger"]
    assert len(timers) >= 3
    for timer in timers:
        key = re.fullmatch(r"%(\w+)%", timer["schedule"])
        assert key, f"schedule {timer['schedule']} is not an app setting"
        name = key.group(1)
        assert name in settings, f"{name} is not set in Bicep"
        assert main.evaluate(settings[name]) == sample[name], f"{name} differs from the sample"
    queues = set(main.variable("queueNames"))
    assert queues == QUEUES
    for binding in bindings:
        if binding["type"] == "queueTrigger":
            assert binding["queueName"] in queues, binding["queueName"]
            assert binding["connection"] == "AzureWebJobsStorage"


def test_literal_settings_validate_like_the_app_would_read_them() -> None:
    """Bicep's values (param defaults, literals) pass Settings; computed ones get a stand-in."""
    main = Bicep(INFRA / "main.bicep")
    env: dict[str, str] = {"AzureWebJobsStorage__queueServiceUri": "https://x.queue.example"}
    for key, node in _main_settings().items():
        try:
            value = main.evaluate(node)
        except (NotImplementedError, KeyError, TypeError):
            continue
        if isinstance(value, bool):
            value = str(value).lower()
        if isinstance(value, str) and "${" not in value and value not in main.tree["variables"]:
            env[key] = value
    env["TARGET_SUBSCRIPTIONS"] = "6f1c3a52-7d2e-4b8a-9c41-3e5d2a7b9f10"
    # A Key Vault reference: the platform puts the secret's value in its place.
    reference = _main_settings()["MESSAGE_SIGNING_KEYS"]
    assert "@Microsoft.KeyVault(SecretUri=" in json.dumps(reference)
    env["MESSAGE_SIGNING_KEYS"] = TEST_SIGNING_KEYS
    settings = Settings.from_env(env)
    assert settings.dry_run is True, "a new deployment starts in dry-run"
    assert settings.tag_default_policy is False
    assert settings.on_demand_backup is False
