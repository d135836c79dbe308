"""App settings: read once, validated, frozen. Every problem is reported in one error.

Settings come from the environment (app settings in Azure, `local.settings.json` Values locally),
read by pydantic-settings' environment source. Nothing is read at import: `Settings.from_env()`
runs on first use, through `services()`, and pydantic-settings is imported only then.

A setting name that is not Lifeboat's but is within two edits of one (`DRY_RUNN`) is an error: a
misspelt setting would otherwise be ignored while the real one keeps its default.
"""

from __future__ import annotations

import functools
import json
import os
import re
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, cast

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
)

from shared.schedules import check_schedule
from shared.signing import SigningKeys


@functools.lru_cache(maxsize=8)
def signing_keys(text: str) -> SigningKeys:
    return SigningKeys.parse(text)


HOST_JSON = Path(__file__).resolve().parent.parent / "host.json"
# The Functions host lets app settings override host.json; Lifeboat reads the same override.
MAX_DEQUEUE_OVERRIDE = "AzureFunctionsJobHost__extensions__queues__maxDequeueCount"
STORAGE_QUEUE_URI = "AzureWebJobsStorage__queueServiceUri"


class SettingsError(ValueError):
    """Raised once with every missing or malformed setting named."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"Lifeboat settings are invalid ({len(problems)} problem(s)):\n{lines}")


def _split_list(value: Any) -> Any:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


def _split_pairs(value: Any) -> Any:
    """`sub=rg,sub=rg` into a mapping (subscription ids lower-cased)."""
    if not isinstance(value, str):
        return value
    pairs: dict[str, str] = {}
    for part in value.split(","):
        if not part.strip():
            continue
        key, sep, group = part.partition("=")
        if not sep or not key.strip() or not group.strip():
            raise ValueError(f"expected subscription=resource-group pairs, got {part.strip()!r}")
        pairs[key.strip().lower()] = group.strip()
    return pairs


# The Functions host's six-field NCRONTAB, ranges checked by croniter (shared/schedules.py).
Schedule = Annotated[str, Field(min_length=1), AfterValidator(check_schedule)]

_REGION = re.compile(r"^[a-z0-9]+$")


class DrillGroups:
    """The drill resource groups: one per region, and every group Lifeboat must leave alone.

    `DRILL_RESOURCE_GROUPS` holds `region=group` pairs (that region's drill group) and plain
    names (groups excluded from planning and events, e.g. an operator's own drill groups). A
    region without a pair uses `DRILL_RESOURCE_GROUP_TEMPLATE` (`{region}` is replaced).
    `name in groups` is true for every one of them, whatever the casing.
    """

    def __init__(self, entries: tuple[str, ...], template: str) -> None:
        self.template = template
        self.by_region: dict[str, str] = {}
        self.names: set[str] = set()
        for entry in entries:
            region, sep, group = entry.partition("=")
            if sep:
                self.by_region[region.strip().lower()] = group.strip()
                self.names.add(group.strip().lower())
            else:
                self.names.add(entry.strip().lower())
        prefix, _, suffix = template.partition("{region}")
        self._pattern = re.compile(
            "^" + re.escape(prefix.lower()) + "[a-z0-9]+" + re.escape(suffix.lower()) + "$"
        )

    def for_region(self, region: str) -> str:
        key = region.lower()
        return self.by_region.get(key) or self.template.replace("{region}", key)

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        key = name.lower()
        return key in self.names or bool(self._pattern.match(key))


def _check_drill_entries(entries: tuple[str, ...]) -> tuple[str, ...]:
    for entry in entries:
        region, sep, group = entry.partition("=")
        if sep and (not _REGION.match(region.strip().lower()) or not group.strip()):
            raise ValueError(f"expected region=resource-group or a group name, got {entry!r}")
    return entries


class Settings(BaseModel):
    """Every app setting Lifeboat reads. Field aliases are the app setting names."""

    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=False)

    storage_connection: str | None = Field(default=None, alias="AzureWebJobsStorage")
    storage_queue_uri: str | None = Field(
        default=None, alias="AzureWebJobsStorage__queueServiceUri"
    )
    storage_blob_uri: str | None = Field(default=None, alias="AzureWebJobsStorage__blobServiceUri")
    storage_client_id: str | None = Field(default=None, alias="AzureWebJobsStorage__clientId")
    target_subscriptions: Annotated[
        tuple[uuid.UUID, ...], BeforeValidator(_split_list), Field(min_length=1)
    ] = Field(alias="TARGET_SUBSCRIPTIONS")
    poison_schedule: Schedule = Field(alias="POISON_SCHEDULE")
    managed_identity_client_id: str | None = Field(default=None, alias="AZURE_CLIENT_ID")
    # Lifeboat's own principal (the managed identity's object id): VM events whose caller it is
    # are Lifeboat's own writes, skipped and counted (shared/vm_events.py).
    lifeboat_principal_id: uuid.UUID | None = Field(default=None, alias="LIFEBOAT_PRINCIPAL_ID")
    arm_endpoint: str = Field(
        default="https://management.azure.com",
        alias="ARM_ENDPOINT",
    )
    arm_audience: str = Field(
        default="https://management.azure.com/.default",
        alias="ARM_AUDIENCE",
    )
    rotation_schedule: Schedule = Field(alias="ROTATION_SCHEDULE")
    snapshot_resource_group: str = Field(
        default="rg-lifeboat-snapshots", alias="SNAPSHOT_RESOURCE_GROUP", min_length=1
    )
    snapshot_resource_groups: Annotated[dict[str, str], BeforeValidator(_split_pairs)] = Field(
        default_factory=dict, alias="SNAPSHOT_RESOURCE_GROUPS"
    )
    # DR drills (issue 8): the drill groups, the two timers and how often a step looks again.
    drill_resource_groups: Annotated[tuple[str, ...], BeforeValidator(_split_list)] = Field(
        default=(), alias="DRILL_RESOURCE_GROUPS"
    )
    drill_resource_group_template: str = Field(
        default="rg-lifeboat-drill-{region}",
        alias="DRILL_RESOURCE_GROUP_TEMPLATE",
        pattern=r"^[-\w.()]*\{region\}[-\w.()]*$",
    )
    drill_subscription: uuid.UUID | None = Field(default=None, alias="DRILL_SUBSCRIPTION")
    drill_schedule: Schedule = Field(alias="DRILL_SCHEDULE")
    sweeper_schedule: Schedule = Field(alias="SWEEPER_SCHEDULE")
    drill_poll_seconds: float = Field(default=30.0, ge=0, le=600, alias="DRILL_POLL_SECONDS")
    # Drills from Azure Backup recovery points (issue 20): off until the operator turns them on
    # (the restore needs VM write on the source VM, held by the backup-writer identity).
    recovery_point_drills: bool = Field(default=False, alias="RECOVERY_POINT_DRILLS")
    # Where restores stage: `region=storage-account-id` pairs, one per subscription and region
    # (the account is Lifeboat's, in the vault's region, not zone-redundant).
    restore_staging_accounts: Annotated[tuple[str, ...], BeforeValidator(_split_list)] = Field(
        default=(), alias="RESTORE_STAGING_ACCOUNTS"
    )
    # The staging accounts' blob service, where a restore leaves its config blob: each account's
    # endpoint ({account} is its name; infra sets https://{account}.blob.<the cloud's suffix>),
    # reached with Lifeboat's identity (Storage Blob Data Contributor on the account); locally, a
    # connection string that stands in for every staging account (Azurite) instead. Neither set:
    # the config blobs are reported left, never looked for.
    restore_staging_blob_endpoint: str | None = Field(
        default=None, alias="RESTORE_STAGING_BLOB_ENDPOINT"
    )
    restore_staging_connection: str | None = Field(
        default=None, alias="RESTORE_STAGING_CONNECTION", min_length=1, repr=False
    )
    # Test failovers of Site Recovery plans (issue 21): off until the operator turns them on and
    # grants the test-failover role. The drill plan (policies) whose everyDays, RTO target,
    # lifetime and boot timeout the plans' drills use (none: every 30 days, 60 min, 4 h, 20 min);
    # plan actions (script, runbook, manual) allowed to run in a test failover, by name; the
    # point used; how many cleanups are tried before the drill reports it left one.
    site_recovery_drills: bool = Field(default=False, alias="SITE_RECOVERY_DRILLS")
    site_recovery_drill_plan: str | None = Field(default=None, alias="SITE_RECOVERY_DRILL_PLAN")
    site_recovery_allowed_actions: Annotated[tuple[str, ...], BeforeValidator(_split_list)] = Field(
        default=(), alias="SITE_RECOVERY_ALLOWED_ACTIONS"
    )
    site_recovery_recovery_point: str = Field(
        default="LatestProcessed",
        pattern=r"^(LatestProcessed|LatestApplicationConsistent)$",
        alias="SITE_RECOVERY_RECOVERY_POINT",
    )
    site_recovery_cleanup_attempts: int = Field(
        default=3, ge=1, le=8, alias="SITE_RECOVERY_CLEANUP_ATTEMPTS"
    )
    dry_run: bool = Field(default=False, alias="DRY_RUN")
    max_disk_delete_fraction: float = Field(
        default=0.5, gt=0, le=1, alias="MAX_DISK_DELETE_FRACTION"
    )
    max_estate_delete_fraction: float = Field(
        default=0.5, gt=0, le=1, alias="MAX_ESTATE_DELETE_FRACTION"
    )
    arm_writes_per_second: float = Field(default=5.0, gt=0, alias="ARM_WRITES_PER_SECOND")
    snapshot_writes_per_second: float = Field(default=3.0, gt=0, alias="SNAPSHOT_WRITES_PER_SECOND")
    # Azure's snapshots per subscription and region (Standard_ZRS and Standard_LRS apart): the
    # plan warns from 90% of it. 75,000 is Azure's published limit; a smaller one warns sooner.
    region_snapshot_limit: int = Field(default=75_000, ge=1, alias="REGION_SNAPSHOT_LIMIT")
    # Count every snapshot of the subscription (needs snapshots/read there), not only Lifeboat's
    # group, so the limit warnings count what Azure counts (Azure Disk Backup's included).
    count_all_snapshots: bool = Field(default=False, alias="COUNT_ALL_SNAPSHOTS")
    confirm_delay_seconds: float = Field(default=900, ge=0, alias="CONFIRM_DELAY_SECONDS")
    # Keys that sign and verify queue messages: id=base64secret[,id=...], the first signs.
    message_signing_keys: str = Field(alias="MESSAGE_SIGNING_KEYS", min_length=1, repr=False)
    stale_slot_hours: float = Field(default=20, gt=0, alias="STALE_SLOT_HOURS")
    # A rotation-vm message older than this re-reads its VM before it writes (the plan may be
    # out of date: VM deleted, untagged, a disk detached).
    message_freshness_minutes: float = Field(
        default=30, gt=0, le=24 * 60, alias="MESSAGE_FRESHNESS_MINUTES"
    )
    min_write_headroom: int = Field(default=20, ge=0, alias="MIN_WRITE_HEADROOM")
    # How far over each write budget a worker process may go in any 60 seconds, to catch up
    # after a stall delivered the paced messages together (0.05: 5%); beyond it, put back.
    pace_catch_up: float = Field(default=0.05, ge=0, le=1, alias="PACE_CATCH_UP")
    tag_default_policy: bool = Field(default=False, alias="TAG_DEFAULT_POLICY")
    # Azure Backup verification (issue 6). Remediations are off unless set.
    verification_schedule: Schedule = Field(alias="VERIFICATION_SCHEDULE")
    verification_window_hours: float = Field(
        default=48, gt=0, le=24 * 30, alias="VERIFICATION_WINDOW_HOURS"
    )
    on_demand_backup: bool = Field(default=False, alias="ON_DEMAND_BACKUP")
    enable_backup_protection: bool = Field(default=False, alias="ENABLE_BACKUP_PROTECTION")
    backup_protection_policy: str = Field(
        default="DefaultPolicy", alias="BACKUP_PROTECTION_POLICY", min_length=1
    )
    backup_writer_client_id: str | None = Field(default=None, alias="BACKUP_WRITER_CLIENT_ID")
    first_backup_check_hours: float = Field(
        default=24, gt=0, le=24 * 6, alias="FIRST_BACKUP_CHECK_HOURS"
    )
    policies_file: str = Field(default="policies.yaml", alias="POLICIES_FILE", min_length=1)
    max_dequeue_count: int = Field(
        default=5, ge=1, alias="AzureFunctionsJobHost__extensions__queues__maxDequeueCount"
    )
    # Azure Monitor (Logs Ingestion): outcomes go there when the endpoint and DCR are set.
    monitor_ingestion_endpoint: str | None = Field(default=None, alias="MONITOR_INGESTION_ENDPOINT")
    monitor_dcr_immutable_id: str | None = Field(default=None, alias="MONITOR_DCR_IMMUTABLE_ID")
    monitor_stream: str = Field(
        default="Custom-LifeboatOutcomes_CL", alias="MONITOR_STREAM", min_length=1
    )
    monitor_audience: str = Field(
        default="https://monitor.azure.com/.default", alias="MONITOR_AUDIENCE", min_length=1
    )
    monitor_max_retry_seconds: float = Field(
        default=30.0, ge=0, le=300, alias="MONITOR_MAX_RETRY_SECONDS"
    )
    monitor_retry_delay_seconds: float = Field(
        default=60.0, ge=0, le=3600, alias="MONITOR_RETRY_DELAY_SECONDS"
    )
    log_analytics_workspace_id: str | None = Field(default=None, alias="LOG_ANALYTICS_WORKSPACE_ID")
    # The posture timer (issue 23): daily, reads the outcomes back through the query API.
    posture_schedule: Schedule = Field(default="0 30 6 * * *", alias="POSTURE_SCHEDULE")
    log_analytics_endpoint: str = Field(
        default="https://api.loganalytics.io", alias="LOG_ANALYTICS_ENDPOINT", min_length=1
    )
    log_analytics_audience: str = Field(
        default="https://api.loganalytics.io/.default", alias="LOG_ANALYTICS_AUDIENCE", min_length=1
    )

    @field_validator("restore_staging_accounts")
    @classmethod
    def _valid_staging_accounts(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for entry in value:
            region, sep, account = entry.partition("=")
            parts = account.strip().strip("/").split("/")
            if (
                not sep
                or not _REGION.match(region.strip().lower())
                or len(parts) != 8
                or parts[5].lower() != "microsoft.storage"
                or parts[6].lower() != "storageaccounts"
            ):
                raise ValueError(
                    f"expected region=/subscriptions/…/providers/Microsoft.Storage/"
                    f"storageAccounts/name, got {entry!r}"
                )
        return value

    @field_validator("restore_staging_blob_endpoint")
    @classmethod
    def _valid_staging_endpoint(cls, value: str | None) -> str | None:
        if value is not None and (
            not re.match(r"^https?://\S+$", value) or value.count("{account}") != 1
        ):
            raise ValueError(
                "expected an http(s) URL naming {account} once, such as "
                f"https://{{account}}.blob.core.windows.net, got {value!r}"
            )
        return value

    @field_validator("drill_resource_groups")
    @classmethod
    def _valid_drill_groups(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return _check_drill_entries(value)

    @field_validator(
        "arm_endpoint", "storage_queue_uri", "monitor_ingestion_endpoint", "log_analytics_endpoint"
    )
    @classmethod
    def _https_url(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^https?://[^/\s]+", value):
            raise ValueError(f"must be an http(s) URL, got {value!r}")
        return value

    @field_validator("message_signing_keys")
    @classmethod
    def _valid_signing_keys(cls, value: str) -> str:
        signing_keys(value)  # raises ValueError naming the problem (never the secret)
        return value

    @property
    def signing_keys(self) -> SigningKeys:
        return signing_keys(self.message_signing_keys)

    @property
    def monitor_configured(self) -> bool:
        """Outcomes go to Azure Monitor only when both the endpoint and the DCR are set."""
        return bool(self.monitor_ingestion_endpoint and self.monitor_dcr_immutable_id)

    @property
    def drill_groups(self) -> DrillGroups:
        return DrillGroups(self.drill_resource_groups, self.drill_resource_group_template)

    def staging_account(self, subscription_id: str, region: str) -> str | None:
        """The staging account of `subscription_id` in `region` (RESTORE_STAGING_ACCOUNTS)."""
        for entry in self.restore_staging_accounts:
            where, _, account = entry.partition("=")
            parts = account.strip().strip("/").split("/")
            if (
                where.strip().lower() == region.lower()
                and len(parts) == 8
                and parts[1].lower() == subscription_id.lower()
            ):
                return account.strip()
        return None

    @property
    def staging_blobs_configured(self) -> bool:
        """Whether drills and the sweeper can reach the staging accounts' blobs."""
        return bool(self.restore_staging_blob_endpoint or self.restore_staging_connection)

    def snapshot_group(self, subscription_id: str) -> str:
        return self.snapshot_resource_groups.get(
            subscription_id.lower(), self.snapshot_resource_group
        )

    @property
    def policies_path(self) -> Path:
        path = Path(self.policies_file)
        return path if path.is_absolute() else HOST_JSON.parent / path

    @property
    def subscriptions(self) -> frozenset[str]:
        return frozenset(str(s) for s in self.target_subscriptions)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """The settings in `environ` (default: the process environment), or one SettingsError."""
        return _load(os.environ if environ is None else environ)[0]


def setting_names() -> tuple[str, ...]:
    """Every app setting name Lifeboat reads, as spelt in Azure."""
    return tuple(field.alias or name for name, field in Settings.model_fields.items())


def _read_environment(environ: Mapping[str, str]) -> dict[str, Any]:
    """Lifeboat's settings in `environ`, by app setting name, through pydantic-settings.

    Names are case-sensitive as on Linux (Flex Consumption); empty values count as unset, so a
    setting left `""` in local.settings.json takes its default or is reported missing. List
    settings are comma-separated, not JSON: they are passed on as text for `Settings` to split.
    """
    from pydantic.fields import FieldInfo
    from pydantic_settings import EnvSettingsSource
    from pydantic_settings.sources.utils import parse_env_vars

    class MappingSource(EnvSettingsSource):
        def _load_env_vars(self) -> Mapping[str, str | None]:
            return parse_env_vars(dict(environ), self.case_sensitive, self.env_ignore_empty, None)

        def decode_complex_value(self, field_name: str, field: FieldInfo, value: Any) -> Any:
            return value

    # `Settings` is a plain pydantic model (importing it must not import pydantic-settings); the
    # environment source reads only its fields, aliases and config.
    source = MappingSource(
        cast(Any, Settings), case_sensitive=_case_sensitive(environ), env_ignore_empty=True
    )
    return source()


def _case_sensitive(environ: Mapping[str, str]) -> bool:
    # os.environ on Windows is case-insensitive (names upper-cased), as pydantic-settings knows.
    return not (os.name == "nt" and environ is os.environ)


def _load(environ: Mapping[str, str]) -> tuple[Settings, dict[str, str]]:
    """The settings and, per app setting name, where its value came from."""
    values = _read_environment(environ)
    origins = {name: "environment" for name in values}
    if MAX_DEQUEUE_OVERRIDE not in values:
        values[MAX_DEQUEUE_OVERRIDE] = host_max_dequeue_count()
        origins[MAX_DEQUEUE_OVERRIDE] = "host.json"
    problems = lookalike_setting_problems(environ, case_sensitive=_case_sensitive(environ))
    if "AzureWebJobsStorage" not in values and STORAGE_QUEUE_URI not in values:
        problems.append(
            "AzureWebJobsStorage: missing (required): set a connection string (local) or "
            f"{STORAGE_QUEUE_URI} (identity-based, in Azure)"
        )
    try:
        settings = Settings.model_validate(values)
    except ValidationError as e:
        raise SettingsError(problems + _describe(e)) from None
    if problems:
        raise SettingsError(problems)
    return settings, origins


# Names the Functions host, App Service, Azure SDKs and tools set or read: never Lifeboat typos.
# (Shell variables are short or far from every Lifeboat name; the tests keep it so.)
_FOREIGN_PREFIXES = (
    "azurewebjobs",
    "azurefunctionsjobhost",
    "functions_",
    "function_",
    "website_",
    "websites_",
    "identity_",
    "msi_",
    "appsetting_",
    "azure_",
    "applicationinsights_",
    "appinsights_",
    "scm_",
    "container_",
    "dotnet_",
    "aspnetcore_",
    "oryx_",
    "enable_oryx",
    "python",
    "pip_",
    "requests_",
    "ssl_",
    "curl_",
    "lc_",
    "xdg_",
    "ssh_",
    "git_",
    "github_",
    "runner_",
    "npm_",
    "node_",
    "pytest_",
    "kubernetes_",
    "conda_",
    "virtual_env",
    "vscode_",
)
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")


def lookalike_setting_problems(names: Iterable[str], *, case_sensitive: bool = True) -> list[str]:
    """One problem per name that is not a Lifeboat setting but is within two edits of one."""
    known = setting_names()
    known_lower = {name.lower() for name in known}
    problems = []
    for name in sorted(set(names)):
        if name in known or (not case_sensitive and name.lower() in known_lower):
            continue
        lower = name.lower()
        if not _NAME.match(name) or lower.startswith(_FOREIGN_PREFIXES):
            continue
        distances = {candidate: _edit_distance(lower, candidate.lower(), 2) for candidate in known}
        best = min(distances.values())
        if best > 2:
            continue
        nearest = sorted(c for c, d in distances.items() if d == best)
        casing = " (names are case-sensitive)" if best == 0 else ""
        problems.append(
            f"{name}: not a Lifeboat setting{casing}; did you mean {' or '.join(nearest)}?"
        )
    return problems


def _edit_distance(a: str, b: str, limit: int) -> int:
    """Levenshtein distance of `a` and `b`, or `limit + 1` once it is certainly above `limit`."""
    if abs(len(a) - len(b)) > limit:
        return limit + 1
    previous = list(range(len(b) + 1))
    for i, char_a in enumerate(a, start=1):
        current = [i]
        for j, char_b in enumerate(b, start=1):
            current.append(
                min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (char_a != char_b))
            )
        if min(current) > limit:
            return limit + 1
        previous = current
    return min(previous[-1], limit + 1)


@dataclass(frozen=True)
class EffectiveSetting:
    """One setting as Lifeboat will use it: its name, its value for people, and its source."""

    name: str
    value: str
    source: str


def effective_settings(
    environ: Mapping[str, str] | None = None, sources: Mapping[str, str] | None = None
) -> list[EffectiveSetting]:
    """Every setting with its effective value (secrets masked) and where that value came from.

    A value read from `environ` is labelled by `sources` (name -> label, e.g. a settings file),
    else "environment"; the rest are "default" (maxDequeueCount: "host.json"). Raises
    SettingsError as `Settings.from_env` does.
    """
    settings, origins = _load(os.environ if environ is None else environ)
    labels = dict(sources or {})
    rows = []
    for name, field in Settings.model_fields.items():
        alias = field.alias or name
        origin = origins.get(alias, "default")
        if origin == "environment":
            origin = labels.get(alias, origin)
        rows.append(EffectiveSetting(alias, _shown(alias, getattr(settings, name)), origin))
    return rows


_SECRET_NAME = re.compile(r"KEY|SECRET|PASSWORD|TOKEN|CONNECTION_STRING", re.IGNORECASE)
_SECRET_PART = re.compile(
    r"((?:AccountKey|SharedAccessKey|SharedAccessSignature|sig)=)[^;&]+", re.IGNORECASE
)


def _shown(name: str, value: Any) -> str:
    if value is None:
        return "(not set)"
    if isinstance(value, tuple | dict) and not value:
        return "(none)"
    if isinstance(value, bool):
        text = str(value).lower()
    elif isinstance(value, float):
        text = f"{value:g}"
    elif isinstance(value, tuple):
        text = ",".join(str(item) for item in value)
    elif isinstance(value, dict):
        text = ",".join(f"{key}={item}" for key, item in value.items())
    else:
        text = str(value)
    if _SECRET_NAME.search(name):
        return "****"
    return _SECRET_PART.sub(r"\1****", text)


def host_max_dequeue_count(path: Path = HOST_JSON) -> int:
    """maxDequeueCount as host.json sets it (the Functions host's default is 5)."""
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return 5
    return int(config.get("extensions", {}).get("queues", {}).get("maxDequeueCount", 5))


def _describe(error: ValidationError) -> list[str]:
    aliases = {name: (field.alias or name) for name, field in Settings.model_fields.items()}
    problems = []
    for item in error.errors():
        loc = [str(part) for part in item["loc"]]
        key = aliases.get(loc[0], loc[0]) if loc else "settings"
        message = str(item["msg"]).removeprefix("Value error, ")
        if item["type"] == "missing":
            problems.append(f"{key}: missing (required)")
        elif key == "settings" or not loc:
            problems.append(message)
        else:
            secret = any(word in key.upper() for word in ("KEY", "SECRET", "TOKEN"))
            if "got " not in message and not secret:  # a secret is never echoed
                message = f"{message} (got {item.get('input')!r})"
            problems.append(f"{key}: {message}")
    return problems
