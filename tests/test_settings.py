from __future__ import annotations

import json
from pathlib import Path

import pytest

from shared.settings import Settings, SettingsError, host_max_dequeue_count
from tests.conftest import SUBSCRIPTION, base_settings

ROOT = Path(__file__).resolve().parent.parent


def test_missing_settings_are_all_named_in_one_error() -> None:
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({})
    message = str(caught.value)
    assert "7 problem(s)" in message
    for key in (
        "AzureWebJobsStorage",
        "TARGET_SUBSCRIPTIONS",
        "POISON_SCHEDULE",
        "ROTATION_SCHEDULE",
        "VERIFICATION_SCHEDULE",
        "DRILL_SCHEDULE",
        "SWEEPER_SCHEDULE",
    ):
        assert f"{key}: missing" in message


def test_empty_values_count_as_missing_not_as_empty_strings() -> None:
    with pytest.raises(SettingsError, match="TARGET_SUBSCRIPTIONS: missing"):
        Settings.from_env(base_settings(TARGET_SUBSCRIPTIONS=""))


def test_malformed_values_are_named_with_what_is_wrong() -> None:
    with pytest.raises(SettingsError) as caught:
        Settings.from_env(
            base_settings(
                TARGET_SUBSCRIPTIONS=f"{SUBSCRIPTION}, not-a-guid",
                POISON_SCHEDULE="*/5 * * * *",
                ARM_ENDPOINT="management.azure.com",
            )
        )
    problems = caught.value.problems
    assert len(problems) == 3
    assert any(p.startswith("TARGET_SUBSCRIPTIONS") and "UUID" in p for p in problems)
    assert any(p.startswith("POISON_SCHEDULE") and "6-field NCRONTAB" in p for p in problems)
    assert any(p.startswith("ARM_ENDPOINT") and "URL" in p for p in problems)


def test_valid_settings_are_frozen_and_parsed() -> None:
    settings = Settings.from_env(
        base_settings(TARGET_SUBSCRIPTIONS=f" {SUBSCRIPTION.upper()} ,{SUBSCRIPTION}")
    )
    assert settings.subscriptions == {SUBSCRIPTION}
    assert settings.arm_endpoint == "https://management.azure.com"
    with pytest.raises(ValueError, match="frozen"):
        settings.poison_schedule = "x"  # type: ignore[misc]


def test_identity_based_storage_is_enough() -> None:
    values = base_settings()
    del values["AzureWebJobsStorage"]
    values["AzureWebJobsStorage__queueServiceUri"] = "https://acct.queue.core.windows.net"
    assert Settings.from_env(values).storage_queue_uri == "https://acct.queue.core.windows.net"


def test_max_dequeue_count_follows_host_json_and_its_app_setting_override() -> None:
    host = json.loads((ROOT / "host.json").read_text())
    assert host["extensions"]["queues"]["messageEncoding"] == "base64"
    expected = host["extensions"]["queues"]["maxDequeueCount"]
    assert host_max_dequeue_count() == expected
    assert Settings.from_env(base_settings()).max_dequeue_count == expected
    override = {"AzureFunctionsJobHost__extensions__queues__maxDequeueCount": "2"}
    assert Settings.from_env(base_settings(**override)).max_dequeue_count == 2


def test_sample_settings_list_every_setting_and_are_valid() -> None:
    sample = json.loads((ROOT / "local.settings.sample.json").read_text())["Values"]
    Settings.from_env(sample)
    read = {f.alias or name for name, f in Settings.model_fields.items()}
    optional_override = "AzureFunctionsJobHost__extensions__queues__maxDequeueCount"
    identity_only = {"AzureWebJobsStorage__queueServiceUri", "AzureWebJobsStorage__clientId"}
    missing = read - set(sample) - {optional_override} - identity_only
    assert not missing, f"local.settings.sample.json lacks {missing}"
    readme = (ROOT / "README.md").read_text()
    for key in read | set(sample):
        assert key in readme, f"README settings table lacks {key}"


def test_drill_groups_by_region_template_and_exclusions() -> None:
    settings = Settings.from_env(
        base_settings(DRILL_RESOURCE_GROUPS="northeurope=rg-dr-ne, rg-Operator-Drills")
    )
    groups = settings.drill_groups
    assert groups.for_region("NorthEurope") == "rg-dr-ne"
    assert groups.for_region("westeurope") == "rg-lifeboat-drill-westeurope"
    for name in ("RG-DR-NE", "rg-operator-drills", "rg-lifeboat-drill-eastus2"):
        assert name in groups
    for name in ("rg-app", "rg-lifeboat-drill-", "rg-lifeboat-drill-west-europe"):
        assert name not in groups


def test_malformed_drill_settings_are_named() -> None:
    with pytest.raises(SettingsError) as caught:
        Settings.from_env(
            base_settings(
                DRILL_RESOURCE_GROUPS="west europe=rg-x",
                DRILL_RESOURCE_GROUP_TEMPLATE="rg-drill",
                DRILL_SCHEDULE="daily",
            )
        )
    problems = caught.value.problems
    assert len(problems) == 3
    assert any(p.startswith("DRILL_RESOURCE_GROUPS") and "region=" in p for p in problems)
    assert any(p.startswith("DRILL_RESOURCE_GROUP_TEMPLATE") for p in problems)
    assert any(p.startswith("DRILL_SCHEDULE") and "NCRONTAB" in p for p in problems)
