"""How a `lifeboat` command ends: one exit code per kind of ending, and failures in plain words.

Every command ends with one of the `Exit` codes. A command that needs Azurite, the Azure stand-in
or the local host probes it first (`require`) and fails within seconds with one line naming what
is missing and the command that starts it. Errors that reach the top (no credential, a service
that does not answer, a settings error) are turned into a few plain lines by `explain`; the
traceback is shown only with `lifeboat --debug`.
"""

from __future__ import annotations

import json
import re
import socket
import urllib.error
from collections.abc import Iterator
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import typer
from typer.core import TyperGroup


class Exit(IntEnum):
    OK = 0
    FOUND_PROBLEMS = 1  # the command worked and found problems
    USAGE = 2  # usage or configuration error
    UNREACHABLE = 3  # cannot reach Azure, Azurite, the Azure stand-in or the local host


EXIT_CODES_HELP = (
    "Exit codes: 0 all good; 1 the command worked and found problems (failures, blocked work, "
    "AT-RISK, findings at or above --fail-on); 2 usage or configuration error; 3 cannot reach "
    "Azure (or sign in to it), Azurite, the Azure stand-in or the local host."
)

PROBE_SECONDS = 2.0
AZURITE_HINT = "start it with `npx azurite-queue --queuePort 10001` (installed by `make setup`)"
STAND_IN_HINT = (
    "start it with `lifeboat emulator --estate emulator/estates/demo.yaml --endpoints FILE`"
)
HOST_HINT = "start it with `lifeboat host --storage-endpoints FILE`"
# Azurite's queue port when a connection string says UseDevelopmentStorage=true.
DEVELOPMENT_QUEUE = ("127.0.0.1", 10001)


class Unreachable(Exception):
    """A service the command needs does not answer. The message names it and how to start it."""


@dataclass(frozen=True, slots=True)
class Service:
    what: str
    host: str
    port: int
    start_with: str


def require(*services: Service | None, timeout: float = PROBE_SECONDS) -> None:
    """Raise Unreachable for the first service that does not accept a TCP connection."""
    for service in services:
        if service is None:
            continue
        try:
            with socket.create_connection((service.host, service.port), timeout=timeout):
                pass
        except OSError as e:
            reason = "connection refused" if isinstance(e, ConnectionRefusedError) else str(e)
            raise Unreachable(
                f"{service.what} does not answer at {service.host}:{service.port} ({reason}); "
                f"{service.start_with}"
            ) from None


def _is_local(host: str) -> bool:
    return host in ("localhost", "::1") or host.startswith("127.")


def azurite_of(connection_string: str | None) -> Service | None:
    """Azurite's queue service named by a storage connection string; None for Azure Storage."""
    if not connection_string:
        return None
    parts = dict(p.split("=", 1) for p in connection_string.split(";") if "=" in p and p.strip())
    if parts.get("UseDevelopmentStorage", "").lower() == "true":
        return Service("Azurite (queues)", *DEVELOPMENT_QUEUE, AZURITE_HINT)
    url = urlsplit(parts.get("QueueEndpoint", ""))
    if url.hostname and _is_local(url.hostname):
        port = url.port or (443 if url.scheme == "https" else 80)
        return Service("Azurite (queues)", url.hostname, port, AZURITE_HINT)
    return None


def stand_in_of(endpoints: Path | None) -> Service | None:
    """The Azure stand-in of an endpoints file (which must exist and name its ARM endpoint)."""
    if endpoints is None:
        return None
    try:
        document = json.loads(endpoints.read_text(encoding="utf-8"))
        url = urlsplit(document["arm"])
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise typer.BadParameter(
            f"{endpoints} is not a stand-in endpoints file ({type(e).__name__}: {e}); "
            "`lifeboat emulator --endpoints FILE` writes one",
            param_hint="'--emulator-endpoints'",
        ) from None
    return Service(
        "the Azure stand-in", url.hostname or "127.0.0.1", url.port or 443, STAND_IN_HINT
    )


def host_of(url: str) -> Service:
    parts = urlsplit(url)
    return Service("the local host", parts.hostname or "127.0.0.1", parts.port or 80, HOST_HINT)


# ------------------------------------------------------------------------------ plain failures

_CREDENTIAL_NAME = re.compile(r"^\s*(\w+Credential)\s*:", re.MULTILINE)
DEFAULT_CHAIN = (
    "EnvironmentCredential, WorkloadIdentityCredential, ManagedIdentityCredential, "
    "SharedTokenCacheCredential, VisualStudioCodeCredential, AzureCliCredential, "
    "AzurePowerShellCredential, AzureDeveloperCliCredential"
)


def _chain(error: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def credential_message(command: str, error: BaseException) -> str:
    """At most ten lines: which credentials were tried, and what to do."""
    tried = list(dict.fromkeys(_CREDENTIAL_NAME.findall(str(error))))
    first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    chain = ", ".join(tried) if tried else f"{type(error).__name__}: {first[:200]}"
    if not tried and "DefaultAzureCredential" in first:
        chain = DEFAULT_CHAIN
    return "\n".join(
        [
            f"lifeboat {command}: cannot sign in to Azure: no credential in the chain worked.",
            f"  tried: {chain}",
            "  to fix: run `az login` (then `az account set --subscription ID`),",
            "  or, for a service principal, set AZURE_TENANT_ID, AZURE_CLIENT_ID and",
            "  AZURE_CLIENT_SECRET (or AZURE_CLIENT_CERTIFICATE_PATH) in the environment.",
            "  Run `lifeboat --debug ...` for the full error.",
        ]
    )


def _unreachable_text(error: BaseException) -> str | None:
    """Why a connection failed, when `error` is a connection failure (of any client library)."""
    from azure.core.exceptions import ServiceRequestError

    if isinstance(error, ConnectionRefusedError | socket.timeout | TimeoutError):
        return str(error) or type(error).__name__
    if isinstance(error, ServiceRequestError):
        return error.message
    if isinstance(error, urllib.error.URLError) and not isinstance(error, urllib.error.HTTPError):
        return str(error.reason)
    try:
        import httpx
    except ImportError:  # pragma: no cover - httpx is pinned with the CLI
        return None
    if isinstance(error, httpx.ConnectError | httpx.ConnectTimeout):
        return str(error)
    return None


def explain(command: str, error: BaseException) -> tuple[Exit, str]:
    """The exit code and the plain message for an error that ended a command."""
    from azure.core.exceptions import ClientAuthenticationError
    from azure.identity import CredentialUnavailableError

    from shared.settings import SettingsError

    for cause in _chain(error):
        if isinstance(cause, Unreachable):
            return Exit.UNREACHABLE, f"lifeboat {command}: {cause}"
        if isinstance(cause, CredentialUnavailableError | ClientAuthenticationError):
            return Exit.UNREACHABLE, credential_message(command, cause)
        if isinstance(cause, SettingsError):
            return Exit.USAGE, f"lifeboat {command}: {cause}"
    for cause in _chain(error):
        reason = _unreachable_text(cause)
        if reason is not None:
            return Exit.UNREACHABLE, (
                f"lifeboat {command}: cannot reach a service it needs: {reason.splitlines()[0]}"
            )
    return Exit.FOUND_PROBLEMS, (
        f"lifeboat {command}: it broke: {type(error).__name__}: {error} "
        "(run `lifeboat --debug ...` for the traceback)"
    )


class PlainFailures(TyperGroup):
    """The `lifeboat` group: an error that ends a command becomes plain lines and an exit code."""

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except (typer.Exit, typer.Abort, typer.TyperException, KeyboardInterrupt):
            raise
        except Exception as e:
            if ctx.params.get("debug"):
                raise
            code, text = explain(ctx.invoked_subcommand or "", e)
            typer.echo(text, err=True)
            raise typer.Exit(code) from None
