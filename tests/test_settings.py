from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from shared.schedules import schedule_problem
from shared.settings import (
    Settings,
    SettingsError,
    host_max_dequeue_count,
    lookalike_setting_problems,
    setting_names,
)
from tests.conftest import SUBSCRIPTION, base_settings

ROOT = Path(__file__).resolve().parent.parent


def test_missing_settings_are_all_named_in_one_error() -> None:
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({})
    message = str(caught.value)
    assert "8 problem(s)" in message
    for key in (
        "MESSAGE_SIGNING_KEYS",
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
        settings.poison_schedule = "x"


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
    identity_only = {
        "AzureWebJobsStorage__queueServiceUri",
        "AzureWebJobsStorage__blobServiceUri",
        "AzureWebJobsStorage__clientId",
    }
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


# ------------------------------------------------------------------- names that look like ours


def test_a_misspelt_setting_is_an_error_naming_the_real_one() -> None:
    with pytest.raises(SettingsError) as caught:
        Settings.from_env(base_settings(DRY_RUNN="true"))
    assert caught.value.problems == ["DRY_RUNN: not a Lifeboat setting; did you mean DRY_RUN?"]


@pytest.mark.parametrize(
    ("name", "meant"),
    [
        ("DRY_RUNN", "DRY_RUN"),
        ("DRYRUN", "DRY_RUN"),
        ("dry_run", "DRY_RUN"),
        ("ROTATION_SCHEDUL", "ROTATION_SCHEDULE"),
        ("TARGET_SUBSCRIPTION", "TARGET_SUBSCRIPTIONS"),
        ("MONITOR_DCR_IMUTABLE_ID", "MONITOR_DCR_IMMUTABLE_ID"),
        ("ARM_ENDPIONT", "ARM_ENDPOINT"),
        ("DRILL_RESOURCE_GROUP", "DRILL_RESOURCE_GROUPS"),
    ],
)
def test_names_within_two_edits_of_a_setting_are_reported(name: str, meant: str) -> None:
    with pytest.raises(SettingsError) as caught:
        Settings.from_env(base_settings(**{name: "x"}))
    (problem,) = caught.value.problems
    assert problem.startswith(f"{name}: not a Lifeboat setting")
    assert problem.endswith(f"did you mean {meant}?")
    if name.lower() == meant.lower():
        assert "case-sensitive" in problem


def test_a_name_between_two_settings_names_both() -> None:
    with pytest.raises(SettingsError, match="SNAPSHOT_RESOURCE_GROUP or SNAPSHOT_RESOURCE_GROUPS"):
        Settings.from_env(base_settings(SNAPSHOT_RESOURCE_GROUP_="rg"))


# What the Functions host, App Service, Azure tools and shells set: never taken for a typo, even
# when close to a Lifeboat name (AZURE_CLIENT_IDS, the host's own storage settings).
FOREIGN = [
    "FUNCTIONS_WORKER_RUNTIME",
    "FUNCTIONS_EXTENSION_VERSION",
    "AzureWebJobsStorage__credential",
    "AzureWebJobsStorage__clientID",
    "AzureWebJobsStorage__blobServiceUri",
    "AzureWebJobsScriptRoot",
    "AzureFunctionsJobHost__logging__logLevel__default",
    "AzureFunctionsJobHost__extensions__queues__maxDequeueCounts",
    "WEBSITE_SITE_NAME",
    "WEBSITE_RUN_FROM_PACKAGE",
    "IDENTITY_ENDPOINT",
    "IDENTITY_HEADER",
    "MSI_ENDPOINT",
    "APPSETTING_DRY_RUN",
    "AZURE_CLIENT_IDS",
    "AZURE_TENANT_ID",
    "AZURE_CLIENT_SECRET",
    "AZURE_FUNCTIONS_ENVIRONMENT",
    "APPLICATIONINSIGHTS_CONNECTION_STRING",
    "APPLICATIONINSIGHTS_AUTHENTICATION_STRING",
    "ARM_CLIENT_ID",
    "ARM_SUBSCRIPTION_ID",
    "ARM_TENANT_ID",
    "ARM_USE_MSI",
    "ARM_ENVIRONMENT",
    "REQUESTS_CA_BUNDLE",
    "SSL_CERT_FILE",
    "PYTHONPATH",
    "CONTAINER_NAME",
]
SHELL = "PATH HOME USER SHELL PWD OLDPWD TERM LANG LC_ALL TMPDIR EDITOR PAGER HOSTNAME TZ CI"
FOREIGN += [*SHELL.split(), "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "VIRTUAL_ENV"]


def test_host_azure_and_shell_variables_are_never_taken_for_typos() -> None:
    settings = Settings.from_env(base_settings(**{name: "1" for name in FOREIGN}))
    assert settings.dry_run is False
    assert lookalike_setting_problems(FOREIGN) == []
    assert lookalike_setting_problems(["AZURE_CLIENT_IDS", "DRY_RUNN"]) == [
        "DRY_RUNN: not a Lifeboat setting; did you mean DRY_RUN?"
    ]


# ------------------------------------------------------------------- schedules


@pytest.mark.parametrize(
    ("schedule", "reason"),
    [
        ("0 61 2 * * *", "minute field '61' is out of range"),
        ("60 0 2 * * *", "second field '60' is out of range"),
        ("0 0 24 * * *", "hour field '24' is out of range"),
        ("0 0 2 32 * *", "day field '32' is out of range"),
        ("0 0 2 0 * *", "day field '0' is out of range"),
        ("0 0 2 * 13 *", "month field '13' is out of range"),
        ("0 0 2 * * 7", "day-of-week field '7' is out of range"),
        ("0 0 2 * * 1-8", "day-of-week field '1-8' is out of range"),
        ("0 1,30,75 2 * * *", "minute field '1,30,75' is out of range"),
        ("0 0 2 * FOO *", "month field 'FOO' is out of range"),
        ("0 0 2 L * *", "day field 'L' is not NCRONTAB syntax"),
        ("0 0 2 * * 1#2", "day-of-week field '1#2' is not NCRONTAB syntax"),
        ("0 0 2 ? * *", "day field '?' is not NCRONTAB syntax"),
        ("0 H 2 * * *", "minute field 'H' is not NCRONTAB syntax"),
        ("0 0 2 * * * 2030", "6-field NCRONTAB"),
        ("0 2 * * *", "6-field NCRONTAB"),
        ("@daily", "6-field NCRONTAB"),
        ("0 0 0 30 2 *", "never occurs"),
    ],
)
def test_schedules_out_of_range_or_not_ncrontab_fail_validation(schedule: str, reason: str) -> None:
    assert reason in (schedule_problem(schedule) or "")
    with pytest.raises(SettingsError) as caught:
        Settings.from_env(base_settings(ROTATION_SCHEDULE=schedule))
    (problem,) = caught.value.problems
    assert problem.startswith("ROTATION_SCHEDULE: ")
    assert reason in problem
    assert repr(schedule) in problem


@pytest.mark.parametrize(
    "schedule",
    [
        "0 */15 * * * *",
        "0 0 2 * * *",
        "0 0/5 * * * *",
        "0 0 4 * * 0",
        "0 30 9 * JAN-MAR MON-FRI",
        "0 0 0 29 2 *",
        "5,35 0-10/2 1,13 1-15 */3 1-5",
    ],
)
def test_valid_ncrontab_schedules_pass(schedule: str) -> None:
    assert schedule_problem(schedule) is None
    assert Settings.from_env(base_settings(DRILL_SCHEDULE=schedule)).drill_schedule == schedule


def test_the_local_host_refuses_a_bad_schedule_with_the_same_reason() -> None:
    import azure.functions as func

    from cli.localhost import HostError, load_functions

    app = func.FunctionApp()

    @app.timer_trigger(schedule="%TICK_SCHEDULE%", arg_name="timer")
    def tick(timer: func.TimerRequest) -> None:
        pass

    assert [s.schedule for s in load_functions(app, {"TICK_SCHEDULE": "0 0 * * * *"})] == [
        "0 0 * * * *"
    ]
    with pytest.raises(HostError, match=r"schedule '0 61 \* \* \* \*': minute field '61'"):
        load_functions(app, {"TICK_SCHEDULE": "0 61 * * * *"})


# ------------------------------------------------------------------- all at once


def test_every_problem_of_every_kind_is_in_one_error() -> None:
    values = base_settings(
        DRY_RUNN="true",
        ROTATION_SCHEDULE="0 0 25 * * *",
        SWEEPER_SCHEDULE="0 30 * * *",
        ARM_ENDPOINT="management.azure.com",
        MAX_DISK_DELETE_FRACTION="2",
    )
    del values["TARGET_SUBSCRIPTIONS"]
    del values["AzureWebJobsStorage"]
    with pytest.raises(SettingsError) as caught:
        Settings.from_env(values)
    problems = caught.value.problems
    assert "7 problem(s)" in str(caught.value)
    for start in (
        "DRY_RUNN: not a Lifeboat setting",
        "AzureWebJobsStorage: missing",
        "TARGET_SUBSCRIPTIONS: missing",
        "ROTATION_SCHEDULE: hour field '25' is out of range",
        "SWEEPER_SCHEDULE: must be a 6-field NCRONTAB",
        "ARM_ENDPOINT: must be an http(s) URL",
        "MAX_DISK_DELETE_FRACTION: ",
    ):
        assert sum(p.startswith(start) for p in problems) == 1, (start, problems)


def test_settings_are_read_by_pydantic_settings_lazily() -> None:
    """Indexing the app pays for neither pydantic-settings nor croniter; reading settings does."""
    code = (
        "import sys, shared.settings, shared.schedules, shared.services\n"
        "print(sorted(m for m in ('pydantic_settings', 'croniter') if m in sys.modules))\n"
        "from tests.conftest import base_settings\n"
        "shared.settings.Settings.from_env(base_settings())\n"
        "print(sorted(m for m in ('pydantic_settings', 'croniter') if m in sys.modules))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.splitlines()
    assert out == ["[]", "['croniter', 'pydantic_settings']"]


def test_importing_the_function_app_imports_no_settings_library() -> None:
    code = (
        "import sys, function_app\n"
        "print(sorted(m for m in ('pydantic_settings', 'croniter') if m in sys.modules))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"


# ------------------------------------------------------------------- lifeboat settings check


@pytest.fixture
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """No Lifeboat setting (or lookalike) from the test process's own environment."""
    for name in list(os.environ):
        if name in setting_names() or lookalike_setting_problems([name]):
            monkeypatch.delenv(name)
    return monkeypatch


def _check(*args: str) -> Result:
    from cli.main import app

    return CliRunner().invoke(app, ["settings", "check", *args])


def _settings_file(tmp_path: Path, **values: str) -> Path:
    path = tmp_path / "local.settings.json"
    path.write_text(json.dumps({"IsEncrypted": False, "Values": values}), encoding="utf-8")
    return path


def test_settings_check_prints_every_setting_its_value_and_source(
    tmp_path: Path, clean_environment: pytest.MonkeyPatch
) -> None:
    key = "c2VjcmV0LWtleQ=="
    values = base_settings(
        AzureWebJobsStorage=f"DefaultEndpointsProtocol=https;AccountName=lb;AccountKey={key}",
        DRY_RUN="false",
        SNAPSHOT_RESOURCE_GROUP="",
    )
    clean_environment.setenv("DRY_RUN", "true")  # the environment wins over the file
    result = _check("--settings", str(_settings_file(tmp_path, **values)))
    assert result.exit_code == 0, result.output
    rows = {line.split()[0]: line.split(None, 2)[1:] for line in result.stdout.splitlines()[1:-2]}
    assert set(rows) == set(setting_names())
    assert rows["DRY_RUN"] == ["environment", "true"]
    assert rows["ROTATION_SCHEDULE"] == ["local.settings.json", "0 0 2 * * *"]
    assert rows["SNAPSHOT_RESOURCE_GROUP"] == ["default", "rg-lifeboat-snapshots"]
    assert rows["ARM_WRITES_PER_SECOND"] == ["default", "5"]
    assert rows["AzureFunctionsJobHost__extensions__queues__maxDequeueCount"][0] == "host.json"
    assert rows["AzureWebJobsStorage"] == [
        "local.settings.json",
        "DefaultEndpointsProtocol=https;AccountName=lb;AccountKey=****",
    ]
    assert key not in result.output

    as_json = _check("--settings", str(_settings_file(tmp_path, **values)), "--json")
    assert as_json.exit_code == 0
    listed = {row["name"]: row for row in json.loads(as_json.stdout)}
    assert listed["DRY_RUN"] == {"name": "DRY_RUN", "value": "true", "source": "environment"}


def test_settings_check_reads_the_environment_only_when_asked(
    clean_environment: pytest.MonkeyPatch,
) -> None:
    for name, value in base_settings().items():
        clean_environment.setenv(name, value)
    result = _check("--env-only", "--json")
    assert result.exit_code == 0, result.output
    sources = {row["name"]: row["source"] for row in json.loads(result.stdout)}
    assert sources["TARGET_SUBSCRIPTIONS"] == "environment"
    assert sources["DRY_RUN"] == "default"


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ({"DRY_RUNN": "true"}, "DRY_RUNN: not a Lifeboat setting; did you mean DRY_RUN?"),
        ({"POISON_SCHEDULE": "0 */15 * * * 7"}, "POISON_SCHEDULE: day-of-week field '7'"),
        ({"TARGET_SUBSCRIPTIONS": ""}, "TARGET_SUBSCRIPTIONS: missing"),
    ],
)
def test_settings_check_exits_2_naming_the_problem(
    tmp_path: Path,
    clean_environment: pytest.MonkeyPatch,
    extra: dict[str, str],
    expected: str,
) -> None:
    result = _check("--settings", str(_settings_file(tmp_path, **base_settings(**extra))))
    assert result.exit_code == 2
    assert expected in result.stderr
    assert result.stdout == ""


def test_settings_check_exits_2_for_an_unreadable_file(
    tmp_path: Path, clean_environment: pytest.MonkeyPatch
) -> None:
    result = _check("--settings", str(tmp_path / "missing.json"))
    assert result.exit_code == 2
    assert "cannot read settings file" in result.stderr


@pytest.mark.parametrize(
    ("keys", "problem"),
    [
        ("short=" + "A" * 20, "at least 32 bytes"),
        ("noequals", "id=base64secret"),
        ("a=" + "A" * 43 + ",a=" + "B" * 43, "given twice"),
    ],
)
def test_signing_keys_are_checked_and_never_echoed(keys: str, problem: str) -> None:
    with pytest.raises(SettingsError) as caught:
        Settings.from_env(base_settings(MESSAGE_SIGNING_KEYS=keys))
    assert problem in str(caught.value)
    assert "A" * 20 not in str(caught.value)
