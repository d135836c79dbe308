"""App settings: read once, validated, frozen. Every problem is reported in one error.

Settings come from the environment (app settings in Azure, `local.settings.json` Values locally).
Nothing is read at import: `Settings.from_env()` runs on first use, through `services()`.
"""

from __future__ import annotations

import json
import os
import re
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
)

HOST_JSON = Path(__file__).resolve().parent.parent / "host.json"
# The Functions host lets app settings override host.json; Lifeboat reads the same override.
MAX_DEQUEUE_OVERRIDE = "AzureFunctionsJobHost__extensions__queues__maxDequeueCount"
STORAGE_QUEUE_URI = "AzureWebJobsStorage__queueServiceUri"

_NCRONTAB_FIELD = re.compile(r"^[0-9A-Za-z*/,\-]+$")


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


def _check_ncrontab(value: str) -> str:
    fields = value.split()
    if len(fields) != 6 or not all(_NCRONTAB_FIELD.match(f) for f in fields):
        raise ValueError(
            "must be a 6-field NCRONTAB expression '{second} {minute} {hour} {day} {month} "
            f"{{day-of-week}}' in UTC, got {value!r}"
        )
    return value


Schedule = Annotated[str, BeforeValidator(lambda v: v), Field(min_length=1)]


class Settings(BaseModel):
    """Every app setting Lifeboat reads. Field aliases are the app setting names."""

    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=False)

    storage_connection: str | None = Field(default=None, alias="AzureWebJobsStorage")
    storage_queue_uri: str | None = Field(
        default=None, alias="AzureWebJobsStorage__queueServiceUri"
    )
    storage_client_id: str | None = Field(default=None, alias="AzureWebJobsStorage__clientId")
    target_subscriptions: Annotated[
        tuple[uuid.UUID, ...], BeforeValidator(_split_list), Field(min_length=1)
    ] = Field(alias="TARGET_SUBSCRIPTIONS")
    poison_schedule: Schedule = Field(alias="POISON_SCHEDULE")
    managed_identity_client_id: str | None = Field(default=None, alias="AZURE_CLIENT_ID")
    arm_endpoint: str = Field(
        default="https://management.azure.com",
        alias="ARM_ENDPOINT",
    )
    arm_audience: str = Field(
        default="https://management.azure.com/.default",
        alias="ARM_AUDIENCE",
    )
    max_dequeue_count: int = Field(
        default=5, ge=1, alias="AzureFunctionsJobHost__extensions__queues__maxDequeueCount"
    )

    @field_validator("poison_schedule")
    @classmethod
    def _valid_schedule(cls, value: str) -> str:
        return _check_ncrontab(value)

    @field_validator("arm_endpoint", "storage_queue_uri")
    @classmethod
    def _https_url(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^https?://[^/\s]+", value):
            raise ValueError(f"must be an http(s) URL, got {value!r}")
        return value

    @property
    def subscriptions(self) -> frozenset[str]:
        return frozenset(str(s) for s in self.target_subscriptions)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = dict(os.environ if environ is None else environ)
        if MAX_DEQUEUE_OVERRIDE not in env:
            env[MAX_DEQUEUE_OVERRIDE] = str(host_max_dequeue_count())
        values = {k: v for k, v in env.items() if v != ""}
        problems = []
        if "AzureWebJobsStorage" not in values and STORAGE_QUEUE_URI not in values:
            problems.append(
                "AzureWebJobsStorage: missing (required): set a connection string (local) or "
                f"{STORAGE_QUEUE_URI} (identity-based, in Azure)"
            )
        try:
            settings = cls.model_validate(values)
        except ValidationError as e:
            raise SettingsError(problems + _describe(e)) from None
        if problems:
            raise SettingsError(problems)
        return settings


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
            if "got " not in message:
                message = f"{message} (got {item.get('input')!r})"
            problems.append(f"{key}: {message}")
    return problems
