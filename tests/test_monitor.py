"""Azure Monitor: the stand-in's ingestion and query APIs, driven by the real SDKs; the reporter.

azure-monitor-ingestion uploads through `MonitorReporter`; azure-monitor-query reads back with
`LogsQueryClient`. The stand-in checks tokens, DCR, stream and columns, answers 413 over 1 MB,
pins `now()` to its clock and applies the timespan. A reporting outage parks records on the
outcomes-retry queue; the retry worker sends them later; nothing is lost.
"""

from __future__ import annotations

import gzip
import json
import ssl
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from azure.core.exceptions import HttpResponseError
from azure.identity import ManagedIdentityCredential
from azure.monitor.query import LogsQueryClient, LogsQueryPartialResult, LogsQueryStatus

from emulator.process import DEMO_ESTATE, Endpoints, running_emulator
from shared import dispatch
from shared.adapters.monitor import MonitorReporter, Park, TeeReporter
from shared.model import Job, Outcome, Status
from shared.names import Queue
from shared.ports import Runtime
from shared.settings import Settings
from tests.conftest import base_settings
from tests.e2e_env import fail_ingestion
from tests.fakes import FixedClock, MemoryQueues, MemoryReporter, deliver, patched_environ, runtime

RETRY_QUEUE = Queue.OUTCOMES_RETRY

CLOCK_START = "2026-11-27T03:00:00Z"
NOW = datetime(2026, 11, 27, 3, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def stand_in() -> Iterator[Endpoints]:
    with (
        running_emulator(DEMO_ESTATE, "--clock-start", CLOCK_START, "--clock-rate", "0") as ep,
        patched_environ(ep.environment()),
    ):
        yield ep


@pytest.fixture
def admin(stand_in: Endpoints) -> Iterator[httpx.Client]:
    client = httpx.Client(
        base_url=stand_in.admin,
        verify=ssl.create_default_context(cafile=stand_in.ca_bundle),
        timeout=30,
    )
    client.delete("/monitor").raise_for_status()
    client.delete("/faults").raise_for_status()
    yield client
    client.delete("/faults")
    client.close()


def _credential(ep: Endpoints) -> ManagedIdentityCredential:
    return ManagedIdentityCredential(client_id=ep.client_id)


def _reporter(ep: Endpoints, park: Park | None = None, **kw: Any) -> MonitorReporter:
    return MonitorReporter.build(
        _credential(ep),
        endpoint=ep.raw["ingestionEndpoint"],
        rule_id=ep.raw["dcrImmutableId"],
        stream=ep.raw["stream"],
        audience=ep.raw["monitorAudience"] + "/.default",
        park=park,
        **kw,
    )


def _query_client(ep: Endpoints) -> LogsQueryClient:
    return LogsQueryClient(
        _credential(ep),
        endpoint=ep.raw["logAnalyticsEndpoint"],
        audience=ep.raw["logAnalyticsAudience"],
    )


def _outcome(minutes_ago: float, **kw: Any) -> Outcome:
    values: dict[str, Any] = {
        "time": NOW - timedelta(minutes=minutes_ago),
        "run_id": "rotation-202611270200",
        "job": Job.ROTATION,
        "operation": "snapshot-create",
        "status": Status.SUCCEEDED,
        "vm_name": "vm-web-01",
        "details": {"slot": "202611270200", "lun": None},
        "count": 2,
    }
    values.update(kw)
    return Outcome(**values)


def _token(ep: Endpoints, resource: str) -> str:
    reply = httpx.get(
        ep.identity_endpoint,
        params={"api-version": "2019-08-01", "resource": resource, "client_id": ep.client_id},
        headers={"X-IDENTITY-HEADER": ep.identity_header},
        verify=ssl.create_default_context(cafile=ep.ca_bundle),
    )
    reply.raise_for_status()
    return str(reply.json()["access_token"])


def _post_rows(
    ep: Endpoints,
    body: bytes,
    *,
    dcr: str | None = None,
    stream: str | None = None,
    resource: str = "https://monitor.azure.com/",
    gzip_it: bool = True,
) -> httpx.Response:
    url = (
        f"{ep.raw['ingestionEndpoint']}/dataCollectionRules/{dcr or ep.raw['dcrImmutableId']}"
        f"/streams/{stream or ep.raw['stream']}"
    )
    headers = {
        "Authorization": f"Bearer {_token(ep, resource)}",
        "Content-Type": "application/json",
    }
    if gzip_it:
        body = gzip.compress(body)
        headers["Content-Encoding"] = "gzip"
    return httpx.post(
        url,
        params={"api-version": "2023-01-01"},
        content=body,
        headers=headers,
        verify=ssl.create_default_context(cafile=ep.ca_bundle),
    )


def test_outcomes_go_in_with_the_ingestion_sdk_and_come_back_with_the_query_sdk(
    stand_in: Endpoints, admin: httpx.Client
) -> None:
    reporter = _reporter(stand_in)
    reporter.report([_outcome(30), _outcome(90, status=Status.FAILED, vm_name="vm-db-01")])
    assert admin.get("/monitor").json()["rows"] == {"LifeboatOutcomes_CL": 2}
    client = _query_client(stand_in)
    result = client.query_workspace(
        stand_in.raw["workspaceId"],
        "LifeboatOutcomes_CL | where TimeGenerated > ago(1h) "
        "| project TimeGenerated, VmName, Status, Details, Count, DryRun,"
        " Age = now() - TimeGenerated",
        timespan=timedelta(days=1),
    )
    assert result.status == LogsQueryStatus.SUCCESS
    table = result.tables[0]
    assert table.columns == [
        "TimeGenerated",
        "VmName",
        "Status",
        "Details",
        "Count",
        "DryRun",
        "Age",
    ]
    assert len(table.rows) == 1
    row = table.rows[0]
    assert row["VmName"] == "vm-web-01"
    assert row["TimeGenerated"] == NOW - timedelta(minutes=30)
    assert json.loads(row["Details"]) == {"slot": "202611270200", "lun": None}
    assert row["Count"] == 2
    assert row["DryRun"] is False
    assert row["Age"].startswith("00:30:00")


def test_the_request_timespan_filters_time_generated(
    stand_in: Endpoints, admin: httpx.Client
) -> None:
    _reporter(stand_in).report([_outcome(30), _outcome(60 * 5), _outcome(60 * 30)])
    client = _query_client(stand_in)
    count = "LifeboatOutcomes_CL | summarize n = count()"
    ws = stand_in.raw["workspaceId"]
    assert client.query_workspace(ws, count, timespan=timedelta(hours=1)).tables[0].rows[0][0] == 1
    assert client.query_workspace(ws, count, timespan=timedelta(hours=6)).tables[0].rows[0][0] == 2
    window = (NOW - timedelta(hours=31), NOW - timedelta(hours=4))
    assert client.query_workspace(ws, count, timespan=window).tables[0].rows[0][0] == 2
    assert client.query_workspace(ws, count, timespan=None).tables[0].rows[0][0] == 3


def test_a_query_it_cannot_run_is_a_400_with_the_api_error_body(
    stand_in: Endpoints, admin: httpx.Client
) -> None:
    client = _query_client(stand_in)
    with pytest.raises(HttpResponseError) as caught:
        client.query_workspace(
            stand_in.raw["workspaceId"], "LifeboatOutcomes_CL | wherex", timespan=None
        )
    assert caught.value.status_code == 400
    error = caught.value.response.json()["error"]
    assert error["code"] == "BadArgumentError"
    assert error["innererror"]["code"] == "SyntaxError"


def test_results_past_the_row_limit_are_a_partial_error(
    stand_in: Endpoints, admin: httpx.Client
) -> None:
    _reporter(stand_in).report([_outcome(m) for m in range(5)])
    admin.post("/monitor", json={"queryRowLimit": 3}).raise_for_status()
    try:
        result = _query_client(stand_in).query_workspace(
            stand_in.raw["workspaceId"], "LifeboatOutcomes_CL", timespan=None
        )
    finally:
        admin.post("/monitor", json={"queryRowLimit": 500000})
    assert isinstance(result, LogsQueryPartialResult)
    assert len(result.partial_data[0].rows) == 3
    assert result.partial_error.code == "PartialError"


def test_ingestion_checks_rule_stream_columns_size_and_audience(
    stand_in: Endpoints, admin: httpx.Client
) -> None:
    good = json.dumps([_outcome(1).to_record()]).encode()
    assert _post_rows(stand_in, good).status_code == 204
    assert _post_rows(stand_in, good, gzip_it=False).status_code == 204
    unknown_dcr = _post_rows(stand_in, good, dcr="dcr-00000000000000000000000000000000")
    assert unknown_dcr.status_code == 404
    assert _post_rows(stand_in, good, stream="Custom-Other_CL").status_code == 400
    extra = json.dumps([{**_outcome(1).to_record(), "Surprise": 1}]).encode()
    refused = _post_rows(stand_in, extra)
    assert refused.status_code == 400
    assert "Surprise" in refused.json()["error"]["message"]
    wrong_type = json.dumps([{**_outcome(1).to_record(), "Count": "two"}]).encode()
    assert _post_rows(stand_in, wrong_type).status_code == 400
    big = json.dumps([{**_outcome(1).to_record(), "Reason": "x" * 60_000}] * 20).encode()
    assert len(big) > 1024 * 1024
    assert _post_rows(stand_in, big).status_code == 413
    wrong_audience = _post_rows(stand_in, good, resource="https://management.azure.com/")
    assert wrong_audience.status_code == 401
    assert admin.get("/monitor").json()["rows"] == {"LifeboatOutcomes_CL": 2}


def test_a_large_batch_is_sent_in_chunks_under_one_megabyte(
    stand_in: Endpoints, admin: httpx.Client
) -> None:
    outcomes = [_outcome(1, reason="r" * 20_000) for _ in range(120)]  # ~2.4 MB of records
    _reporter(stand_in).report(outcomes)
    state = admin.get("/monitor").json()
    assert state["rows"] == {"LifeboatOutcomes_CL": 120}
    assert state["ingestCalls"] >= 3


def _runtime(queues: MemoryQueues, reporter: Any) -> Runtime:
    return runtime(Settings.from_env(base_settings()), FixedClock(NOW), reporter, queues)


def test_an_ingestion_outage_parks_outcomes_and_the_retry_worker_sends_them_later(
    stand_in: Endpoints, admin: httpx.Client
) -> None:
    queues = MemoryQueues()
    echo = MemoryReporter()
    parked_at: list[Runtime] = []
    monitor = _reporter(
        stand_in, park=lambda r: dispatch.park_outcomes(parked_at[0], r), max_retry_seconds=1.0
    )
    reporter = TeeReporter(monitor, echo)
    rt = _runtime(queues, reporter)
    parked_at.append(rt)
    fail_ingestion(admin)

    def night(ctx: dispatch.Context) -> dispatch.Result:
        ctx.out.succeeded("run-start")
        reporter.report([_outcome(1), _outcome(2)])
        ctx.out.succeeded("run-end", count=2)
        return dispatch.Done()

    dispatch.start(rt, Job.MAINTENANCE, "run-1", "run-1", night)
    assert [o.operation for o in echo.outcomes] == [
        "snapshot-create",
        "snapshot-create",
        "run-start",
        "run-end",
    ]
    parked = queues.sent[RETRY_QUEUE]
    assert sum(len(json.loads(m)["payload"]["records"]) for m in parked) == 4
    assert admin.get("/monitor").json()["rows"] == {"LifeboatOutcomes_CL": 0}

    # Still down: the worker puts them back (later, through dispatch), loses none.
    before = len(queues.sent[RETRY_QUEUE])
    deliver(rt, parked.pop(0))
    sent = [json.loads(m) for m in queues.sent[RETRY_QUEUE][before - 1 :]]
    [again] = [m for m in sent if m["putBacks"] == 1]
    delay = queues.visibility[RETRY_QUEUE][before + sent.index(again)]
    assert delay >= rt.settings.monitor_retry_delay_seconds

    admin.delete("/faults").raise_for_status()
    while queues.sent[RETRY_QUEUE]:
        deliver(rt, queues.sent[RETRY_QUEUE].pop(0))
    result = _query_client(stand_in).query_workspace(
        stand_in.raw["workspaceId"],
        "LifeboatOutcomes_CL | where Status != 'waiting' "
        "| summarize n = count() by Operation | order by Operation asc",
        timespan=None,
    )
    assert [tuple(r) for r in result.tables[0].rows] == [
        ("run-end", 1),
        ("run-start", 1),
        ("snapshot-create", 2),
    ]


def test_services_choose_azure_monitor_only_when_it_is_configured() -> None:
    from shared.adapters.log_reporter import JsonLinesReporter
    from shared.services import override_services, reset_services, services

    client = "11111111-2222-3333-4444-555555555555"  # a managed identity: never DefaultAzure...
    plain = Settings.from_env(base_settings(AZURE_CLIENT_ID=client))
    override_services(settings=plain, queues=MemoryQueues(), compute=object(), policies=object())  # type: ignore[arg-type]
    assert isinstance(services().reporter, JsonLinesReporter)
    reset_services()
    monitored = Settings.from_env(
        base_settings(
            AZURE_CLIENT_ID=client,
            MONITOR_INGESTION_ENDPOINT="https://dce.westeurope-1.ingest.monitor.azure.com",
            MONITOR_DCR_IMMUTABLE_ID="dcr-0123456789abcdef0123456789abcdef",
        )
    )
    memory = MemoryReporter()
    override_services(
        settings=monitored,
        queues=MemoryQueues(),
        reporter=memory,
        compute=object(),  # type: ignore[arg-type]
        policies=object(),  # type: ignore[arg-type]
    )
    reporter = services().reporter
    assert isinstance(reporter, TeeReporter)
    assert reporter.also is memory
    reset_services()
    override_services(
        settings=monitored, queues=MemoryQueues(), compute=object(), policies=object()
    )  # type: ignore[arg-type]
    assert isinstance(services().reporter, MonitorReporter)


def test_a_timer_run_that_raises_reports_a_failed_run_end_and_still_raises() -> None:
    from shared.names import Timer

    class Broken(MemoryQueues):
        def list_queues(self, *, suffix: str = "") -> list[str]:
            raise RuntimeError("boom")

    memory = MemoryReporter()
    rt = _runtime(Broken(), memory)
    with pytest.raises(RuntimeError, match="boom"):
        dispatch.fire(rt, Timer.POISON)
    start, end = [o for o in memory.outcomes if o.operation.startswith("run-")]
    assert (start.operation, start.status) == ("run-start", Status.SUCCEEDED)
    assert (end.operation, end.status) == ("run-end", Status.FAILED)
    assert end.reason == "RuntimeError: boom"


def test_the_rows_of_one_invocation_go_in_one_upload(
    stand_in: Endpoints, admin: httpx.Client
) -> None:
    rt = _runtime(MemoryQueues(), _reporter(stand_in))

    def five_rows(ctx: dispatch.Context) -> dispatch.Result:
        for minutes in range(5):
            ctx.out.succeeded("snapshot-create", resource_id=f"disk-{minutes}")
        assert admin.get("/monitor").json()["rows"] == {"LifeboatOutcomes_CL": 0}
        return dispatch.Done()

    dispatch.start(rt, Job.ROTATION, "run-3", "run-3", five_rows)
    state = admin.get("/monitor").json()
    assert state["rows"] == {"LifeboatOutcomes_CL": 5}
    assert state["ingestCalls"] == 1
