"""The one composition root: settings, credential and clients, built once per worker process.

The Azure SDK adapters are imported when first built, not when the app is indexed: the
management SDKs are large, and a cold start should not pay for them before the first invocation.

Triggers call `services()`. Tests and the local host replace parts through `override_services()`
(this is the only seam); the CLI builds its own runtime with `build_runtime()`. Nothing else in
product code knows whether it runs in Azure.
"""

from __future__ import annotations

import inspect
import logging
import threading
from typing import Any

from shared.adapters.clock import SystemClock
from shared.adapters.log_reporter import JsonLinesReporter
from shared.pacing import Pace
from shared.policies import PolicySet, load_policies
from shared.ports import (
    Backup,
    BlobStore,
    Clock,
    Compute,
    DrillCloud,
    Queues,
    Reporter,
    Runtime,
    SiteRecovery,
    StagingBlobs,
)
from shared.settings import Settings

_lock = threading.Lock()
_runtime: Runtime | None = None
_overrides: dict[str, Any] = {}


def services() -> Runtime:
    global _runtime
    runtime = _runtime
    if runtime is not None:
        return runtime
    with _lock:
        if _runtime is None:
            _runtime = _build()
        return _runtime


def override_services(*, settings: Settings | None = None, **ports: Any) -> None:
    """Bind some ports to something else (the local host's clock, a test's fakes).

    Takes the keywords of `build_runtime` (clock, reporter, queues, compute, policies, backup,
    drills, blobs, staging); None leaves a port as it is.
    """
    global _runtime
    unknown = set(ports) - set(inspect.signature(build_runtime).parameters)
    if unknown:
        raise TypeError(f"no such port: {', '.join(sorted(unknown))}")
    with _lock:
        if settings is not None:
            _overrides["settings"] = settings
        _overrides.update({name: port for name, port in ports.items() if port is not None})
        _runtime = None


def reset_services() -> None:
    global _runtime
    with _lock:
        _overrides.clear()
        _credentials.clear()
        _runtime = None


def _build() -> Runtime:
    settings: Settings = _overrides.get("settings") or Settings.from_env()
    return build_runtime(settings, **{k: v for k, v in _overrides.items() if k != "settings"})


def build_runtime(
    settings: Settings,
    *,
    clock: Clock | None = None,
    reporter: Reporter | None = None,
    queues: Queues | None = None,
    compute: Compute | None = None,
    policies: PolicySet | None = None,
    backup: Backup | None = None,
    drills: DrillCloud | None = None,
    blobs: BlobStore | None = None,
    site_recovery: SiteRecovery | None = None,
    staging: StagingBlobs | None = None,
    pace: Pace | None = None,
) -> Runtime:
    """Every port for these settings; what is given is used instead of the Azure adapter.

    Building does no I/O: SDK clients connect on first use. The CLI, the local host and
    `services()` all build their runtime here.
    """
    # Azure SDK loggers at WARNING: their per-request INFO lines would drown the one INFO line
    # per invocation (App Insights samples traces; audit records go to the outcomes table).
    for name in ("azure", "azure.core.pipeline.policies.http_logging_policy", "azure.identity"):
        logging.getLogger(name).setLevel(logging.WARNING)
    queues = queues or build_queues(settings)
    compute = compute or build_compute(settings)
    clock = clock or SystemClock()
    runtime: list[Runtime] = []
    built = Runtime(
        settings=settings,
        clock=clock,
        reporter=_build_reporter(settings, reporter, runtime),
        queues=queues,
        compute=compute,
        policies=policies or load_policies(settings.policies_path),
        backup=backup or build_backup(settings),
        drills=drills or build_drills(settings, compute),
        blobs=blobs or build_blobs(settings),
        site_recovery=site_recovery or build_site_recovery(settings),
        staging=staging or build_staging(settings),
        pace=pace or Pace(),
    )
    runtime.append(built)
    return built


def build_compute(settings: Settings) -> Compute:
    """The Compute adapter for these settings (also used by `lifeboat plan`)."""
    from shared.adapters.compute import AzureCompute

    return AzureCompute(
        _credential(settings),
        arm_endpoint=settings.arm_endpoint,
        arm_audience=settings.arm_audience,
    )


def build_drills(settings: Settings, compute: Compute | None = None) -> DrillCloud:
    """Networks, disks and VMs for drills; shares the Compute adapter's clients when it can."""
    from shared.adapters.compute import AzureCompute
    from shared.adapters.drills import AzureDrills

    if not isinstance(compute, AzureCompute):
        compute = build_compute(settings)
    assert isinstance(compute, AzureCompute)
    return AzureDrills(compute)


def _build_reporter(
    settings: Settings, override: Reporter | None, runtime: list[Runtime]
) -> Reporter:
    """Azure Monitor when configured; an override (the local host's JSON lines, a test's memory)
    is reported to as well, never instead. Without Monitor: the override, else JSON lines.

    Records Azure Monitor does not take wait on the outcomes-retry queue; dispatch sends them
    there (`runtime` holds the runtime once it is built)."""
    from shared.adapters.monitor import MonitorReporter, TeeReporter

    if not settings.monitor_configured:
        return override or JsonLinesReporter()
    assert settings.monitor_ingestion_endpoint is not None
    assert settings.monitor_dcr_immutable_id is not None

    def park(records: list[dict[str, Any]]) -> None:
        from shared.dispatch import park_outcomes

        park_outcomes(runtime[0], records)

    monitor = MonitorReporter.build(
        _credential(settings),
        endpoint=settings.monitor_ingestion_endpoint,
        rule_id=settings.monitor_dcr_immutable_id,
        stream=settings.monitor_stream,
        audience=settings.monitor_audience,
        park=park,
        max_retry_seconds=settings.monitor_max_retry_seconds,
    )
    return TeeReporter(monitor, override) if override is not None else monitor


def build_queues(settings: Settings) -> Queues:
    from shared.adapters.queues import StorageQueues

    if settings.storage_queue_uri:
        credential = _credential(settings, settings.storage_client_id)
        return StorageQueues.from_identity(settings.storage_queue_uri, credential)
    assert settings.storage_connection is not None  # Settings.from_env guarantees one of the two
    return StorageQueues.from_connection_string(settings.storage_connection)


def build_blobs(settings: Settings) -> BlobStore:
    """The private container for poisoned messages' full text, in the queues' storage account."""
    from shared.adapters.blobs import StorageBlobs
    from shared.names import POISON_CONTAINER

    if settings.storage_queue_uri:
        if not settings.storage_blob_uri:
            raise ValueError(
                "AzureWebJobsStorage__blobServiceUri: missing (required with "
                "AzureWebJobsStorage__queueServiceUri: poisoned messages are kept as blobs)"
            )
        credential = _credential(settings, settings.storage_client_id)
        return StorageBlobs.from_identity(settings.storage_blob_uri, credential, POISON_CONTAINER)
    assert settings.storage_connection is not None  # Settings.from_env guarantees one of the two
    return StorageBlobs.from_connection_string(settings.storage_connection, POISON_CONTAINER)


def build_staging(settings: Settings) -> StagingBlobs:
    """The restore staging accounts' blobs: each at RESTORE_STAGING_BLOB_ENDPOINT with Lifeboat's
    identity, or all in the one blob service of RESTORE_STAGING_CONNECTION (Azurite, locally);
    with neither, every call says so (the drill reports its staging blobs left)."""
    from shared.adapters.blobs import NoStagingBlobs, StorageStagingBlobs

    if settings.restore_staging_connection:
        return StorageStagingBlobs.from_connection_string(settings.restore_staging_connection)
    if settings.restore_staging_blob_endpoint:
        return StorageStagingBlobs.from_identity(
            settings.restore_staging_blob_endpoint, _credential(settings)
        )
    return NoStagingBlobs()


_credentials: dict[str | None, Any] = {}


def _credential(settings: Settings, client_id: str | None = None) -> Any:
    """The user-assigned managed identity in Azure; DefaultAzureCredential on a laptop."""
    from azure.identity import DefaultAzureCredential, ManagedIdentityCredential

    client_id = client_id or settings.managed_identity_client_id
    if client_id not in _credentials:
        _credentials[client_id] = (
            ManagedIdentityCredential(client_id=client_id)
            if client_id
            else DefaultAzureCredential()
        )
    return _credentials[client_id]


def build_backup(settings: Settings) -> Backup:
    """Azure Backup; enabling protection uses its own identity (it needs VM write)."""
    from shared.adapters.backup import AzureBackup

    writer = (
        _credential(settings, settings.backup_writer_client_id)
        if settings.backup_writer_client_id
        else None
    )
    return AzureBackup(
        _credential(settings),
        arm_endpoint=settings.arm_endpoint,
        arm_audience=settings.arm_audience,
        writer_credential=writer,
    )


def build_site_recovery(settings: Settings) -> SiteRecovery:
    """Azure Site Recovery, read-only (verification of replicated VMs)."""
    from shared.adapters.siterecovery import AzureSiteRecovery

    return AzureSiteRecovery(
        _credential(settings),
        arm_endpoint=settings.arm_endpoint,
        arm_audience=settings.arm_audience,
    )


def build_outcome_reader(settings: Settings) -> Any:
    """The outcomes workspace through the Log Analytics query API (the posture timer reads it)."""
    from shared.posture import LogAnalyticsReader

    if not settings.log_analytics_workspace_id:
        raise ValueError("LOG_ANALYTICS_WORKSPACE_ID: missing (the posture timer reads from it)")
    return LogAnalyticsReader(
        _credential(settings),
        settings.log_analytics_workspace_id,
        endpoint=settings.log_analytics_endpoint,
        audience=settings.log_analytics_audience,
    )
