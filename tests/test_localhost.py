"""The local host against Azurite: queue semantics, poison, faults, the webhook and timers."""

from __future__ import annotations

import base64
import contextlib
import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError
from azure.storage.queue import QueueClient, QueueServiceClient, TextBase64EncodePolicy

import function_app
from cli.azurite import Azurite
from cli.events import post_events, vm_write_event
from cli.localhost import Faults, HostError, LocalHost, load_host_config
from shared import dispatch, poison
from shared.names import Job
from shared.services import override_services, services
from shared.settings import Settings
from tests.apps import bad_queue_name, hostcheck
from tests.builders import vm
from tests.conftest import SUBSCRIPTION, base_settings
from tests.fakes import FakeCompute, FixedClock, MemoryReporter
from tests.test_messages import envelope_text

FAST = {
    "extensions": {
        "queues": {"maxPollingInterval": "00:00:00.200", "visibilityTimeout": "00:00:00"}
    }
}
MakeHost = Callable[..., LocalHost]


@pytest.fixture
def reporter() -> MemoryReporter:
    return MemoryReporter()


@pytest.fixture
def make_host(
    azurite: Azurite, queue_service: QueueServiceClient, reporter: MemoryReporter, tmp_path: Path
) -> Iterator[MakeHost]:
    hosts: list[LocalHost] = []
    hostcheck.reset()

    def make(
        app: Any = hostcheck.app,
        *,
        local: dict[str, str] | None = None,
        faults: Faults | None = None,
        clock: Any = None,
        run_timers: bool = False,
        **env: str,
    ) -> LocalHost:
        environ = base_settings(
            AzureWebJobsStorage=azurite.connection_string, TICK_SCHEDULE="0 0 * * * *", **env
        )
        overrides = dict(FAST, localHost=local or {})
        path = tmp_path / f"host.override.{len(hosts)}.json"
        path.write_text(json.dumps(overrides))
        fake = FakeCompute(FixedClock())
        fake.vms = [vm("vm1", "vm1-os", group="rg")]
        override_services(
            settings=Settings.from_env(environ), reporter=reporter, clock=clock, compute=fake
        )
        host = LocalHost(
            app, overrides=path, environ=environ, faults=faults, clock=clock, run_timers=run_timers
        )
        host.start()
        hosts.append(host)
        return host

    yield make
    for host in hosts:
        host.stop()


def sender(azurite: Azurite, queue: str, *, base64_text: bool = True) -> QueueClient:
    policy = TextBase64EncodePolicy() if base64_text else None
    client = QueueClient.from_connection_string(
        azurite.connection_string, queue, message_encode_policy=policy
    )
    with contextlib.suppress(ResourceExistsError):
        client.create_queue()
    return client


def peek_all(azurite: Azurite, queue: str) -> list[str]:
    client = QueueClient.from_connection_string(azurite.connection_string, queue)
    return [str(m.content) for m in client.peek_messages(max_messages=32)]


def b64decode(text: str) -> str:
    return base64.b64decode(text).decode()


# ------------------------------------------------------------------------------- poison paths


def test_bad_messages_are_poisoned_with_reasons_while_good_ones_flow(
    make_host: MakeHost, azurite: Azurite, reporter: MemoryReporter
) -> None:
    host = make_host(function_app.app)
    onboarding = sender(azurite, "onboarding")
    onboarding.send_message('{"type": "onboarding", "version": 1,')
    onboarding.send_message(envelope_text(type="rotation-vm"))
    onboarding.send_message(envelope_text(type="no-such-type"))
    onboarding.send_message(envelope_text(payload={"vmName": 1}))
    onboarding.send_message(envelope_text())
    host.wait_idle(timeout=30)

    poisoned = [json.loads(b64decode(m)) for m in peek_all(azurite, "onboarding-poison")]
    reasons = sorted(p["reason"].split(":")[0] for p in poisoned)
    assert reasons == [
        "message type 'no-such-type' does not belong on queue 'onboarding'",
        "message type 'rotation-vm' does not belong on queue 'onboarding'",
        "not JSON",
        "onboarding v1 payload schema",
    ]
    assert all(p["originalQueue"] == "onboarding" and p["dequeueCount"] == 1 for p in poisoned)
    assert sorted(reporter.operations()) == [
        ("poison", "refused"),
        ("poison", "refused"),
        ("poison", "refused"),
        ("poison", "refused"),
        ("vm-seen", "succeeded"),
    ]
    assert host.stats["onboarding"].failed == 0  # poisoned by the worker, completed normally


def test_transient_failures_are_retried_to_max_dequeue_then_reported_and_poisoned(
    make_host: MakeHost, azurite: Azurite, reporter: MemoryReporter
) -> None:
    host = make_host(AzureFunctionsJobHost__extensions__queues__maxDequeueCount="3")
    sent = envelope_text()
    sender(azurite, "flaky-work").send_message(sent)
    host.wait_idle(timeout=30)

    assert [count for name, _, count in hostcheck.seen if name == "flaky"] == [1, 2, 3]
    [failure] = reporter.outcomes
    assert failure.status.value == "failed"
    assert "failed on delivery 3 of 3" in (failure.reason or "")
    assert "ConnectionResetError" in (failure.reason or "")
    assert [b64decode(m) for m in peek_all(azurite, "flaky-work-poison")] == [sent]
    assert peek_all(azurite, "flaky-work") == []

    # The poison drain then reports the host's copy, content and all, and empties the queue.
    drained = poison.drain_poison_queues(
        dispatch.Context(services(), job=Job.MAINTENANCE, run_id="drain-1", key="drain-1")
    )
    assert drained == 1
    report = reporter.outcomes[-1]
    assert report.details["message"] == sent
    assert report.details["queue"] == "flaky-work"
    assert "after 3 attempts" in (report.reason or "")
    assert peek_all(azurite, "flaky-work-poison") == []


def test_undecodable_message_is_poisoned_without_invoking_the_function(
    make_host: MakeHost, azurite: Azurite
) -> None:
    host = make_host()
    sender(azurite, "steady-work", base64_text=False).send_message("%%% not base64 %%%")
    sender(azurite, "steady-work").send_message(envelope_text())
    host.wait_idle(timeout=30)
    assert hostcheck.calls["steady"] == 1
    assert host.stats["steady"].undecodable == 1
    assert peek_all(azurite, "steady-work-poison") == ["%%% not base64 %%%"]


@pytest.mark.parametrize(("renew", "deliveries"), [("00:00:00.300", 1), ("00:01:00", 2)])
def test_a_long_handler_is_not_delivered_twice_while_it_runs(
    make_host: MakeHost, azurite: Azurite, renew: str, deliveries: int
) -> None:
    """Renewal keeps the message hidden; without it (the control case) it comes back."""
    host = make_host(local={"fetchVisibility": "00:00:01", "renewInterval": renew})
    sender(azurite, "slow-work").send_message("2.5")
    if deliveries == 1:
        time.sleep(1)
        host.wait_idle(timeout=30)
        assert hostcheck.calls["slow"] == 1
    else:
        # Without renewal the message reappears after 1 s and runs again, concurrently.
        _wait(lambda: hostcheck.calls["slow"] >= 2, timeout=5)


# ----------------------------------------------------------------------------------- faults


def test_duplicate_delivery_fault_runs_the_handler_twice(
    make_host: MakeHost, azurite: Azurite, reporter: MemoryReporter
) -> None:
    host = make_host(faults=Faults(duplicate_deliveries=True))
    sender(azurite, "steady-work").send_message(envelope_text())
    host.wait_idle(timeout=30)
    assert [count for name, _, count in hostcheck.seen if name == "steady"] == [1, 2]
    assert peek_all(azurite, "steady-work") == []


def test_failure_after_return_fault_redelivers_the_message(
    make_host: MakeHost, azurite: Azurite
) -> None:
    faults = Faults()
    faults.fail_after_return["steady"] = 1
    host = make_host(faults=faults)
    sender(azurite, "steady-work").send_message(envelope_text())
    host.wait_idle(timeout=30)
    assert [count for name, _, count in hostcheck.seen if name == "steady"] == [1, 2]
    assert (host.stats["steady"].failed, host.stats["steady"].succeeded) == (1, 1)


# ---------------------------------------------------------------------------------- webhook


def test_webhook_answers_as_the_functions_host_does(make_host: MakeHost) -> None:
    host = make_host()
    url = f"{host.base_url}/runtime/webhooks/eventgrid?functionName=events&code={host.key}"
    handshake = [
        {
            "id": "v1",
            "eventType": "Microsoft.EventGrid.SubscriptionValidationEvent",
            "subject": "",
            "data": {"validationCode": "512d38b6-c7b8-40c8-89fe-f46f9e9622b6"},
            "eventTime": "2026-11-27T00:00:00Z",
            "dataVersion": "1",
        }
    ]
    status, body = post_events(url, handshake, kind="SubscriptionValidation")
    assert (status, json.loads(body)) == (
        200,
        {"validationResponse": "512d38b6-c7b8-40c8-89fe-f46f9e9622b6"},
    )

    good = [vm_write_event(SUBSCRIPTION, "rg", f"vm{i}") for i in range(3)]
    started = time.monotonic()
    assert post_events(url, good)[0] == 202
    assert time.monotonic() - started < 0.85, "the events of one POST run in parallel"

    mixed = [
        vm_write_event(SUBSCRIPTION, "rg", "vm-ok"),
        vm_write_event(SUBSCRIPTION, "rg", "fail"),
    ]
    assert post_events(url, mixed)[0] == 500
    assert post_events(url, good, kind=None)[0] == 400
    unknown = f"{host.base_url}/runtime/webhooks/eventgrid?functionName=nope&code={host.key}"
    assert post_events(unknown, good)[0] == 404
    assert post_events(url.replace(host.key, "wrong"), good)[0] == 401
    assert hostcheck.calls["events"] == 5


# ----------------------------------------------------------------------------- indexing, timers


def test_a_binding_the_host_would_reject_fails_here_too(azurite: Azurite) -> None:
    environ = base_settings(AzureWebJobsStorage=azurite.connection_string)
    with pytest.raises(HostError, match="invalid queue name 'Bad_Queue'"):
        LocalHost(bad_queue_name.app, environ=environ)
    with pytest.raises(HostError, match="'%TICK_SCHEDULE%' does not resolve"):
        LocalHost(hostcheck.app, environ=environ)


def test_timers_fire_by_the_clock_once_and_past_due_when_late(make_host: MakeHost) -> None:
    clock = FixedClock()  # 01:00:00
    clock.advance(minutes=59, seconds=59)
    make_host(clock=clock, run_timers=True)
    time.sleep(0.5)
    assert hostcheck.calls["tick"] == 0
    clock.advance(seconds=1)
    _wait(lambda: hostcheck.calls["tick"] == 1)
    clock.advance(hours=5, minutes=30)
    _wait(lambda: hostcheck.calls["tick"] == 2)
    time.sleep(0.6)
    assert [detail for name, detail, _ in hostcheck.seen if name == "tick"] == [
        "on_time",
        "past_due",
    ]


def test_host_json_values_and_overrides(tmp_path: Path) -> None:
    root = Path(__file__).resolve().parent.parent
    _, options = load_host_config(root / "host.json", environ={})
    assert (options.batch_size, options.new_batch_threshold, options.max_dequeue_count) == (
        16,
        8,
        5,
    )
    assert options.message_encoding == "base64"
    assert options.fetch_visibility == 600
    override = tmp_path / "o.json"
    override.write_text(json.dumps({"extensions": {"queues": {"visibilityTimeout": "00:00:02.5"}}}))
    _, options = load_host_config(
        root / "host.json",
        override,
        environ={"AzureFunctionsJobHost__extensions__queues__batchSize": "4"},
    )
    assert (options.visibility_timeout, options.batch_size) == (2.5, 4)


def _wait(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met")
        time.sleep(0.05)


# -------------------------------------------------------------- webhook: odd bodies and keys


def _post(url: str, body: bytes, kind: str = "Notification") -> tuple[int, bytes]:
    """POST raw bytes to the webhook; a dropped connection raises here and fails the test."""
    request = urllib.request.Request(
        url,
        data=body,
        headers={"Content-Type": "application/json", "aeg-event-type": kind},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def _validation(data: object) -> dict[str, object]:
    return {
        "id": "v1",
        "eventType": "Microsoft.EventGrid.SubscriptionValidationEvent",
        "subject": "",
        "data": data,
        "eventTime": "2026-11-27T00:00:00Z",
        "dataVersion": "1",
    }


def test_a_malformed_validation_gets_400_with_a_json_error(make_host: MakeHost) -> None:
    host = make_host()
    url = f"{host.base_url}/runtime/webhooks/eventgrid?functionName=events&code={host.key}"
    for body in (
        [_validation(None)],
        [_validation("512d38b6")],
        [_validation(["512d38b6"])],
        [_validation({"validationCode": None})],
        [None],
        ["text"],
        [],
        "text",
    ):
        status, reply = _post(url, json.dumps(body).encode(), kind="SubscriptionValidation")
        assert status == 400, body
        assert "error" in json.loads(reply), body
    assert hostcheck.calls["events"] == 0


ODD_NOTIFICATIONS = {
    "very long subject": {"subject": "/subscriptions/" + SUBSCRIPTION + "/x" * 3000},
    "long vm name": {"subject": str(vm_write_event(SUBSCRIPTION, "rg", "v" * 2000)["subject"])},
    "non-string subject": {"subject": 12345},
    "null data": {"data": None},
    "time without a zone": {"eventTime": "2026-11-27T01:00:00"},
    "no id": {"id": None},
}


@pytest.mark.parametrize("change", ODD_NOTIFICATIONS.values(), ids=ODD_NOTIFICATIONS.keys())
def test_an_odd_notification_reaches_the_function_and_gets_202(
    change: dict[str, object], make_host: MakeHost, azurite: Azurite, reporter: MemoryReporter
) -> None:
    host = make_host(function_app.app)
    url = f"{host.base_url}/runtime/webhooks/eventgrid?functionName=vm_events&code={host.key}"
    event = {**vm_write_event(SUBSCRIPTION, "rg", "vm1"), **change}
    status, _ = _post(url, json.dumps([event]).encode())
    assert status == 202
    assert host.stats["vm_events"].failed == 0
    [row] = reporter.outcomes
    assert (row.operation, row.status.value) == ("vm-event", "refused")
    assert row.reason
    assert len(row.reason) <= 1000
    assert len(row.resource_id or "") <= 1024
    sent: list[str] = []
    with contextlib.suppress(ResourceNotFoundError):  # the queue is made by its first send
        sent = peek_all(azurite, "onboarding")
    assert sent == []


def test_a_wrong_key_gets_401_before_routing(make_host: MakeHost) -> None:
    host = make_host()
    base = f"{host.base_url}/runtime/webhooks/eventgrid"
    good = json.dumps([vm_write_event(SUBSCRIPTION, "rg", "vm1")]).encode()
    for query in (
        "functionName=nope&code=wrong",
        "functionName=events&code=wrong",
        f"functionName=nope&code={host.key[:-1]}",
        f"functionName=events&code={host.key}x",
        "functionName=nope",
        "code=%C3%A9",
    ):
        assert _post(f"{base}?{query}", good)[0] == 401, query
        assert _post(f"{base}?{query}", b"{not json", kind="SubscriptionValidation")[0] == 401
    assert _post(f"{base}?functionName=nope&code={host.key}", good)[0] == 404
    assert hostcheck.calls["events"] == 0


# ------------------------------------------------------------------ webhook: CloudEvents 1.0


def _cloud(raw: dict[str, Any]) -> dict[str, Any]:
    """A VM write as Event Grid delivers it with the CloudEvents 1.0 schema."""
    return {
        "specversion": "1.0",
        "id": raw["id"],
        "source": raw["topic"],
        "type": raw["eventType"],
        "subject": raw["subject"],
        "time": raw["eventTime"],
        "data": raw["data"],
    }


def _post_cloud(url: str, body: object, content_type: str) -> tuple[int, bytes]:
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        headers={"Content-Type": content_type, "aeg-event-type": "Notification"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def _options(url: str, origin: str | None) -> tuple[int, str | None]:
    headers = {"WebHook-Request-Origin": origin} if origin is not None else {}
    request = urllib.request.Request(url, headers=headers, method="OPTIONS")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.headers.get("WebHook-Allowed-Origin")
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("WebHook-Allowed-Origin")


def test_cloud_events_single_batch_and_the_options_handshake(
    make_host: MakeHost, azurite: Azurite, reporter: MemoryReporter
) -> None:
    host = make_host(function_app.app)
    url = f"{host.base_url}/runtime/webhooks/eventgrid?functionName=vm_events&code={host.key}"
    # The handshake Event Grid makes before it delivers CloudEvents.
    assert _options(url, "eventgrid.azure.net") == (200, "eventgrid.azure.net")
    assert _options(url, "EventGrid.Azure.US") == (200, "eventgrid.azure.us")
    assert _options(url, "evil.example.com") == (200, "eventgrid.azure.net")
    assert _options(url, None) == (200, "eventgrid.azure.net")
    assert _options(url.replace(host.key, "wrong"), "eventgrid.azure.net") == (401, None)
    assert _options(url.replace("vm_events", "nope"), "eventgrid.azure.net") == (404, None)

    single = _cloud(vm_write_event(SUBSCRIPTION, "rg", "vm1", event_id="ce-1"))
    assert _post_cloud(url, single, "application/cloudevents+json")[0] == 202
    batch = [_cloud(vm_write_event(SUBSCRIPTION, "rg", f"vm{i}")) for i in (2, 3)]
    batch.append(_cloud(vm_write_event(SUBSCRIPTION, "rg", "vm1", event_id="ce-1")))  # again
    assert _post_cloud(url, batch, "application/cloudevents-batch+json")[0] == 202
    assert host.stats["vm_events"].invocations == 4
    assert host.stats["vm_events"].failed == 0
    # Each event became an onboarding message, which the host's onboarding function then ran.
    host.wait_idle(timeout=30)
    seen = [o for o in reporter.outcomes if o.operation == "vm-seen"]
    assert sorted(o.vm_name or "" for o in seen) == ["vm1", "vm1", "vm2", "vm3"]
    assert {o.details["eventId"] for o in seen if o.vm_name == "vm1"} == {"ce-1"}
    assert [o for o in reporter.outcomes if o.operation == "vm-event"] == []


CLOUD_ODD = {
    "null data": ({"data": None}, "refused"),
    "number type": ({"type": 7}, "refused"),
    "no id": ({"id": None}, "refused"),
    "subject not a vm": ({"subject": "/subscriptions/x/resourceGroups/rg"}, "refused"),
    "unhandled type": ({"type": "Microsoft.Resources.ResourceDeleteSuccess"}, "skipped"),
}


def test_odd_and_unhandled_cloud_events_get_rows_and_202(
    make_host: MakeHost, azurite: Azurite, reporter: MemoryReporter
) -> None:
    host = make_host(function_app.app)
    url = f"{host.base_url}/runtime/webhooks/eventgrid?functionName=vm_events&code={host.key}"
    base = _cloud(vm_write_event(SUBSCRIPTION, "rg", "vm1"))
    for name, (change, status) in CLOUD_ODD.items():
        reporter.outcomes.clear()
        event = {**base, "id": name, **change}
        assert _post_cloud(url, event, "application/cloudevents+json")[0] == 202, name
        [row] = reporter.outcomes
        assert (row.operation, row.status.value) == ("vm-event", status), name
        assert row.details["schema"] == "CloudEventSchemaV1_0"
        if status == "refused":
            assert 0 < len(row.details["excerpt"]) <= 200
        else:
            assert row.details["unhandled"] == {"Microsoft.Resources.ResourceDeleteSuccess": 1}
    assert host.stats["vm_events"].failed == 0
    host.wait_idle(timeout=30)
    assert [o for o in reporter.outcomes if o.operation != "vm-event"] == [], "nothing onboarded"
