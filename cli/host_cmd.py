"""`lifeboat host`: the local Functions host as a command."""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import threading
from collections import Counter
from pathlib import Path
from typing import Annotated, Any

import typer

from cli.clock import RemoteClock
from cli.localhost import ROOT, Faults, HostError, LocalHost, import_app

log = logging.getLogger("lifeboat.host")


def load_local_settings(path: Path) -> dict[str, str]:
    """The Values of a local.settings.json file."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise HostError(f"cannot read settings file {path}: {e}") from e
    values = document.get("Values")
    if not isinstance(values, dict):
        raise HostError(f"{path}: no 'Values' object (local.settings.json format)")
    return {str(k): str(v) for k, v in values.items()}


def endpoint_settings(storage: Path | None, emulator: Path | None) -> dict[str, str]:
    """App settings that depend on free ports, from the stand-ins' endpoint files."""
    values: dict[str, str] = {}
    if storage is not None:
        document = json.loads(storage.read_text(encoding="utf-8"))
        values["AzureWebJobsStorage"] = document["connectionString"]
    if emulator is not None:
        document = json.loads(emulator.read_text(encoding="utf-8"))
        values["ARM_ENDPOINT"] = document["arm"]
        values["IDENTITY_ENDPOINT"] = document["identityEndpoint"]
        values["IDENTITY_HEADER"] = document["identityHeader"]
        values["REQUESTS_CA_BUNDLE"] = document["caBundle"]
        if document.get("armAudience"):
            values["ARM_AUDIENCE"] = document["armAudience"].rstrip("/") + "/.default"
        if document.get("clientId"):
            values["AZURE_CLIENT_ID"] = document["clientId"]
        if document.get("ingestionEndpoint") and document.get("dcrImmutableId"):
            # Outcomes go to the stand-in's Azure Monitor too (still printed as JSON lines).
            values["MONITOR_INGESTION_ENDPOINT"] = document["ingestionEndpoint"]
            values["MONITOR_DCR_IMMUTABLE_ID"] = document["dcrImmutableId"]
            values["MONITOR_STREAM"] = document.get("stream") or "Custom-LifeboatOutcomes_CL"
            values["LOG_ANALYTICS_WORKSPACE_ID"] = document.get("workspaceId") or ""
        if document.get("logAnalyticsEndpoint"):
            # The posture timer reads the outcomes back from the stand-in's query endpoint.
            values["LOG_ANALYTICS_ENDPOINT"] = document["logAnalyticsEndpoint"]
            audience = document.get("logAnalyticsAudience") or "https://api.loganalytics.io"
            values["LOG_ANALYTICS_AUDIENCE"] = audience.rstrip("/") + "/.default"
    return values


def default_settings_file() -> Path:
    local = ROOT / "local.settings.json"
    return local if local.exists() else ROOT / "local.settings.sample.json"


def read_app_settings(
    command: str,
    settings: Path | None,
    *,
    emulator: Path | None = None,
    storage: Path | None = None,
) -> tuple[Any, Any]:
    """The app's settings and policies as a CLI command reads them: the environment first, then
    the local.settings.json file, then the endpoints of a local Azurite or stand-in. A problem
    ends the command with exit code 2 and one message naming it."""
    from shared.policies import load_policies
    from shared.settings import Settings, SettingsError

    try:
        for name, value in load_local_settings(settings or default_settings_file()).items():
            os.environ.setdefault(name, value)
        os.environ.update(endpoint_settings(storage, emulator))
        config = Settings.from_env()
        return config, load_policies(config.policies_path)
    except (SettingsError, ValueError, OSError) as e:
        print(f"lifeboat {command}: {e}", file=sys.stderr)
        raise typer.Exit(2) from None


APP_LOGGERS = ("function_app", "triggers", "shared")


def quiet_app_logs(verbose: bool) -> None:
    """One line per function run: the host's. The app's INFO lines (App Insights' in Azure) and
    the host's DEBUG lines show with --verbose."""
    if verbose:
        logging.getLogger().setLevel(logging.DEBUG)
        return
    for name in APP_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)


def host_command(
    settings: Annotated[
        Path | None,
        typer.Option(help="local.settings.json to load (default: it, else the sample)"),
    ] = None,
    storage_endpoints: Annotated[
        Path | None, typer.Option(help="Azurite endpoints file (sets AzureWebJobsStorage)")
    ] = None,
    emulator_endpoints: Annotated[
        Path | None, typer.Option(help="Azure stand-in endpoints file (ARM, identity, CA)")
    ] = None,
    clock: Annotated[
        str | None, typer.Option(help="fire timers by this clock URL (the stand-in's)")
    ] = None,
    host_overrides: Annotated[
        Path | None, typer.Option(help="JSON merged over host.json (e.g. short polling)")
    ] = None,
    app_module: Annotated[str, typer.Option("--app", help="module holding `app`")] = (
        "function_app"
    ),
    port: Annotated[int, typer.Option(help="HTTP port (0 = a free one)")] = 0,
    key: Annotated[str | None, typer.Option(help="system/master key (default: random)")] = None,
    once: Annotated[
        str | None, typer.Option(help="invoke this timer function once and exit")
    ] = None,
    no_timers: Annotated[
        bool, typer.Option("--no-timers", help="do not fire timers on schedule")
    ] = False,
    duplicate_deliveries: Annotated[
        bool, typer.Option(help="fault: deliver every queue message twice")
    ] = False,
    fail_after_return: Annotated[
        list[str] | None,
        typer.Option(help="fault: FUNCTION[:N] fails N invocations after the handler returned"),
    ] = None,
    verbose: Annotated[
        bool, typer.Option("--verbose", help="log everything (the app's lines, polls) at DEBUG")
    ] = False,
) -> None:
    """Run the app's functions locally, the way the Azure Functions host does.

    Logs one line per function run at INFO (WARNING when it failed); the app's own log lines,
    timers firing and tracebacks only with --verbose."""
    from shared.adapters.log_reporter import JsonLinesReporter
    from shared.services import override_services

    quiet_app_logs(verbose)
    try:
        for name, value in load_local_settings(settings or default_settings_file()).items():
            os.environ.setdefault(name, value)
        os.environ.update(endpoint_settings(storage_endpoints, emulator_endpoints))
        remote_clock = None
        if clock:
            remote_clock = RemoteClock(clock, ca_bundle=os.environ.get("REQUESTS_CA_BUNDLE"))
        override_services(reporter=JsonLinesReporter(sys.stderr), clock=remote_clock)
        faults = Faults(duplicate_deliveries=duplicate_deliveries, fail_after_return=Counter())
        for item in fail_after_return or []:
            function, _, count = item.partition(":")
            faults.fail_after_return[function] += int(count or 1)
        host = LocalHost(
            import_app(app_module),
            overrides=host_overrides,
            clock=remote_clock,
            key=key,
            port=port,
            faults=faults,
            run_timers=not no_timers and once is None,
        )
    except (HostError, OSError, ValueError, KeyError) as e:
        print(f"lifeboat host: {e}", file=sys.stderr)
        raise typer.Exit(2) from None

    if once is not None:
        try:
            ok = host.invoke_timer(once)
        except KeyError as e:
            print(f"lifeboat host: {e.args[0]}", file=sys.stderr)
            raise typer.Exit(2) from None
        raise typer.Exit(0 if ok else 1)

    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    host.start()
    for line in [*host.describe(), *host.endpoint_lines(), f"ready {host.base_url}"]:
        print(line, flush=True)
    try:
        stop.wait()
    finally:
        log.info("stopping the host")
        host.stop()
