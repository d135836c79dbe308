"""The local Functions host: runs the app's own registered functions the way Azure's host does.

It reads the function metadata from the app itself (`app.get_functions()`), so a binding the real
host would reject fails here too, and it honours host.json:

- timers fire on their NCRONTAB schedule (`%SETTING%` resolved) by a clock (the system clock, or
  the Azure stand-in's with `clock_url`), one invocation at a time, `IsPastDue` when late; and on
  demand through `POST /admin/functions/{name}` or `LocalHost.invoke_timer()`;
- queue triggers poll Storage (Azurite) with batchSize and newBatchThreshold, fetch with a
  10-minute visibility renewed while the function runs, hide a failed message for
  visibilityTimeout, move it to `<queue>-poison` after maxDequeueCount deliveries, and send a
  message that does not base64-decode straight to poison without invoking the function;
- the Event Grid webhook at `/runtime/webhooks/eventgrid?functionName=NAME&code=KEY` answers the
  validation handshake, runs the events of one POST in parallel and answers 202 when all succeed,
  500 when any fails, 400 without `aeg-event-type` or for a body that is not events (JSON error
  body), 404 for an unknown function, 202 to `Unsubscribe`; the key is compared in constant time
  before routing (401). Both delivery schemas: an array is a batch (Event Grid schema, or
  CloudEvents `application/cloudevents-batch+json`), an object one event (CloudEvents
  `application/cloudevents+json`); the worker's converter makes each a `func.EventGridEvent` or
  a `func.CloudEvent`. The CloudEvents validation handshake is an OPTIONS request: answered 200
  with `WebHook-Allowed-Origin` (the `WebHook-Request-Origin` when it is one of Event Grid's
  clouds, else `eventgrid.azure.net`), as the host's Event Grid extension does.

Inputs are built with the azure.functions converters, exactly as the Python worker builds them.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import copy
import functools
import hmac
import importlib
import inspect
import json
import logging
import math
import os
import re
import secrets
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError
from azure.functions.eventgrid import EventGridEventInConverter
from azure.functions.meta import Datum
from azure.functions.queue import QueueMessageInConverter
from azure.functions.timer import TimerRequestConverter
from azure.storage.queue import QueueClient, QueueMessage, QueueServiceClient
from croniter import croniter

from shared.schedules import schedule_problem

log = logging.getLogger("lifeboat.host")

ROOT = Path(__file__).resolve().parent.parent
SUPPORTED_TRIGGERS = ("timerTrigger", "queueTrigger", "eventGridTrigger")
_QUEUE_NAME = re.compile(r"^(?=.{3,63}$)[a-z0-9]+(-[a-z0-9]+)*$")
_SETTING_REF = re.compile(r"%([^%]+)%")
_ENV_OVERRIDE = "AzureFunctionsJobHost__extensions__queues__"
_MIN_POLL_SECONDS = 0.1
EVENTGRID_PATH = "/runtime/webhooks/eventgrid"
# The origins the Functions host's Event Grid extension echoes back in the CloudEvents handshake.
EVENTGRID_ORIGINS = (
    "eventgrid.azure.net",
    "eventgrid.azure.us",
    "eventgrid.azure.eaglex.ic.gov",
    "eventgrid.azure.microsoft.scloud",
    "eventgrid.azure.cn",
)


class HostError(RuntimeError):
    """The host cannot start: a binding it would reject, a setting that does not resolve."""


# ---------------------------------------------------------------------------------- host.json


@dataclass(frozen=True)
class QueueOptions:
    batch_size: int = 16
    new_batch_threshold: int = 8
    max_dequeue_count: int = 5
    visibility_timeout: float = 0.0
    max_polling_interval: float = 60.0
    message_encoding: str = "base64"
    # Not host.json settings: the host's own fetch visibility and how often it renews it.
    fetch_visibility: float = 600.0
    renew_interval: float = 300.0


def parse_timespan(value: Any, *, key: str) -> float:
    """host.json timespans: "hh:mm:ss[.fff]", "d.hh:mm:ss", or a number of seconds."""
    if isinstance(value, int | float):
        return float(value)
    match = re.fullmatch(r"(?:(\d+)\.)?(\d{1,2}):(\d{2}):(\d{2}(?:\.\d+)?)", str(value))
    if not match:
        raise HostError(f"host.json {key}: {value!r} is not a timespan like '00:00:30'")
    days, hours, minutes, seconds = match.groups()
    return int(days or 0) * 86400 + int(hours) * 3600 + int(minutes) * 60 + float(seconds)


def load_host_config(
    host_json: Path, overrides: Path | None = None, environ: Mapping[str, str] | None = None
) -> tuple[dict[str, Any], QueueOptions]:
    config = json.loads(host_json.read_text(encoding="utf-8"))
    if overrides is not None:
        config = _deep_merge(config, json.loads(overrides.read_text(encoding="utf-8")))
    env = os.environ if environ is None else environ
    queues = dict(config.get("extensions", {}).get("queues", {}))
    for name, value in env.items():
        if name.startswith(_ENV_OVERRIDE):
            queues[name.removeprefix(_ENV_OVERRIDE)] = value
    local = config.get("localHost", {})
    batch_size = int(queues.get("batchSize", 16))
    if not 1 <= batch_size <= 32:
        raise HostError(f"host.json extensions.queues.batchSize must be 1-32, got {batch_size}")
    encoding = str(queues.get("messageEncoding", "base64")).lower()
    if encoding not in ("base64", "none"):
        raise HostError(f"host.json extensions.queues.messageEncoding: {encoding!r}")
    fetch = parse_timespan(local.get("fetchVisibility", "00:10:00"), key="fetchVisibility")
    options = QueueOptions(
        batch_size=batch_size,
        new_batch_threshold=int(queues.get("newBatchThreshold", batch_size // 2)),
        max_dequeue_count=int(queues.get("maxDequeueCount", 5)),
        visibility_timeout=parse_timespan(
            queues.get("visibilityTimeout", "00:00:00"), key="visibilityTimeout"
        ),
        max_polling_interval=parse_timespan(
            queues.get("maxPollingInterval", "00:01:00"), key="maxPollingInterval"
        ),
        message_encoding=encoding,
        fetch_visibility=fetch,
        renew_interval=parse_timespan(
            local.get("renewInterval", fetch / 2), key="localHost.renewInterval"
        ),
    )
    return config, options


def _deep_merge(base: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    merged = copy.deepcopy(base)
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


# ------------------------------------------------------------------------------ function specs


@dataclass
class FunctionSpec:
    name: str
    trigger_type: str
    arg_name: str
    binding: dict[str, Any]
    call: Callable[..., Any]
    queue_name: str | None = None
    schedule: str | None = None


def resolve_setting_refs(value: str, environ: Mapping[str, str], *, where: str) -> str:
    def lookup(match: re.Match[str]) -> str:
        name = match.group(1)
        resolved = environ.get(name)
        if not resolved:
            raise HostError(f"{where}: '%{name}%' does not resolve to a value (app setting {name})")
        return resolved

    return _SETTING_REF.sub(lookup, value)


_INDEX: dict[int, tuple[Any, list[Any]]] = {}


def index_app(app: Any) -> list[Any]:
    """`get_functions()` once per app object, as the worker indexes once per process.

    The library refuses a second call (it remembers the names it has seen), so everything that
    indexes an app in this process goes through here.
    """
    known = _INDEX.get(id(app))
    if known is None or known[0] is not app:
        known = (app, app.get_functions())
        _INDEX[id(app)] = known
    return known[1]


def load_functions(app: Any, environ: Mapping[str, str]) -> list[FunctionSpec]:
    """Index the app the way the host does, rejecting what the host would reject."""
    try:
        functions = index_app(app)
    except Exception as e:
        raise HostError(f"the app does not index: {e}") from e
    specs: list[FunctionSpec] = []
    for function in functions:
        name = function.get_function_name()
        metadata = json.loads(function.get_function_json())
        triggers = [b for b in metadata["bindings"] if str(b.get("type", "")).endswith("Trigger")]
        if len(triggers) != 1:
            raise HostError(f"function {name}: needs exactly one trigger, has {len(triggers)}")
        binding = triggers[0]
        kind = binding["type"]
        if kind not in SUPPORTED_TRIGGERS:
            raise HostError(
                f"function {name}: trigger {kind} is not one Lifeboat uses "
                f"({', '.join(SUPPORTED_TRIGGERS)})"
            )
        spec = FunctionSpec(
            name=name,
            trigger_type=kind,
            arg_name=binding["name"],
            binding=binding,
            call=function.get_user_function(),
        )
        if kind == "queueTrigger":
            queue = resolve_setting_refs(binding["queueName"], environ, where=f"function {name}")
            if not _QUEUE_NAME.match(queue):
                raise HostError(
                    f"function {name}: invalid queue name {queue!r} (3-63 lowercase letters, "
                    "digits and single hyphens)"
                )
            connection = binding.get("connection") or "AzureWebJobsStorage"
            if not (environ.get(connection) or environ.get(f"{connection}__queueServiceUri")):
                raise HostError(
                    f"function {name}: storage connection '{connection}' is not configured"
                )
            spec.queue_name = queue
        elif kind == "timerTrigger":
            schedule = resolve_setting_refs(binding["schedule"], environ, where=f"function {name}")
            problem = schedule_problem(schedule)
            if problem is not None:
                raise HostError(f"function {name}: schedule {schedule!r}: {problem}")
            spec.schedule = schedule
        specs.append(spec)
    return specs


def _call(spec: FunctionSpec, value: Any) -> None:
    result = spec.call(**{spec.arg_name: value})
    if inspect.iscoroutine(result):
        import asyncio

        asyncio.run(result)


# -------------------------------------------------------------------------------------- clocks


class SystemTime:
    def now(self) -> datetime:
        return datetime.now(UTC)


# ---------------------------------------------------------------------------------- the host


@dataclass
class Faults:
    """Test hooks: deliver every queue message twice, fail invocations after they returned."""

    duplicate_deliveries: bool = False
    fail_after_return: Counter[str] = field(default_factory=Counter)


@dataclass
class FunctionStats:
    invocations: int = 0
    succeeded: int = 0
    failed: int = 0
    poisoned: int = 0
    undecodable: int = 0


class LocalHost:
    def __init__(
        self,
        app: Any,
        *,
        host_json: Path = ROOT / "host.json",
        overrides: Path | None = None,
        environ: Mapping[str, str] | None = None,
        clock: Any = None,
        key: str | None = None,
        port: int = 0,
        faults: Faults | None = None,
        run_timers: bool = True,
    ) -> None:
        self.environ = dict(os.environ if environ is None else environ)
        self.config, self.queue_options = load_host_config(host_json, overrides, self.environ)
        self.functions = {s.name: s for s in load_functions(app, self.environ)}
        self.clock = clock or SystemTime()
        self.key = key or secrets.token_urlsafe(24)
        self.faults = faults or Faults()
        self.run_timers = run_timers
        self.stats: dict[str, FunctionStats] = {name: FunctionStats() for name in self.functions}
        self._stats_lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._listeners: list[QueueListener] = []
        self._timer_locks = {n: threading.Lock() for n in self.functions}
        self._webhook_pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="eventgrid")
        self._inflight_webhooks = 0
        self._server = ThreadingHTTPServer(("127.0.0.1", port), _handler_for(self))
        self._server.daemon_threads = True
        self._queue_service: QueueServiceClient | None = None

    # --- lifecycle

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def endpoint_lines(self) -> list[str]:
        lines = []
        for spec in self.functions.values():
            if spec.trigger_type == "eventGridTrigger":
                lines.append(
                    f"eventgrid {self.base_url}/runtime/webhooks/eventgrid"
                    f"?functionName={spec.name}&code={self.key}"
                )
        lines.append(f"admin {self.base_url}/admin")
        return lines

    def describe(self) -> list[str]:
        lines = []
        for spec in self.functions.values():
            extra = f" queue={spec.queue_name}" if spec.queue_name else ""
            extra += f" schedule='{spec.schedule}'" if spec.schedule else ""
            lines.append(f"function {spec.name}: {spec.trigger_type}{extra}")
        return lines

    def start(self) -> None:
        self._spawn("http", self._server.serve_forever)
        for spec in self.functions.values():
            if spec.trigger_type == "queueTrigger":
                listener = QueueListener(self, spec)
                self._listeners.append(listener)
                self._spawn(f"queue-{spec.name}", listener.run)
            elif spec.trigger_type == "timerTrigger" and self.run_timers:
                # The first occurrence is fixed before start() returns, by the clock as it is
                # now: a clock moved right after start() then fires it, as it would in Azure.
                assert spec.schedule is not None
                first = self._next_occurrence(spec.schedule, self._now_or_none())
                self._spawn(f"timer-{spec.name}", functools.partial(self._timer_loop, spec, first))

    def stop(self) -> None:
        self._stop.set()
        self._server.shutdown()
        self._server.server_close()
        for thread in self._threads:
            thread.join(timeout=30)
        for listener in self._listeners:
            listener.close()
        self._webhook_pool.shutdown(wait=True)

    def __enter__(self) -> LocalHost:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _spawn(self, name: str, target: Callable[[], None]) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def queue_service(self) -> QueueServiceClient:
        if self._queue_service is None:
            connection = self.environ.get("AzureWebJobsStorage")
            if not connection:
                raise HostError("AzureWebJobsStorage is not set: the host needs it for queues")
            self._queue_service = QueueServiceClient.from_connection_string(connection)
        return self._queue_service

    # --- bookkeeping

    def count(self, name: str, **deltas: int) -> None:
        with self._stats_lock:
            stats = self.stats[name]
            for attr, delta in deltas.items():
                setattr(stats, attr, getattr(stats, attr) + delta)

    def status(self) -> dict[str, Any]:
        with self._stats_lock:
            stats = {n: vars(s).copy() for n, s in self.stats.items()}
        return {"state": "Running", "idle": self.is_idle(), "functions": stats}

    def is_idle(self) -> bool:
        """No invocation running and every trigger queue empty (invisible messages included)."""
        if self._inflight_webhooks or any(lock.locked() for lock in self._timer_locks.values()):
            return False
        return all(listener.is_idle() for listener in self._listeners)

    def wait_idle(self, *, timeout: float = 60.0, settle: float = 0.3) -> None:
        deadline = time.monotonic() + timeout
        quiet_since: float | None = None
        while time.monotonic() < deadline:
            if self.is_idle():
                quiet_since = quiet_since or time.monotonic()
                if time.monotonic() - quiet_since >= settle:
                    return
            else:
                quiet_since = None
            time.sleep(0.05)
        raise TimeoutError(f"the host was not idle within {timeout:.0f} s: {self.status()}")

    # --- timers

    def invoke_timer(self, name: str, *, past_due: bool = False) -> bool:
        spec = self.functions.get(name)
        if spec is None or spec.trigger_type != "timerTrigger":
            raise KeyError(f"no timer function named {name!r}")
        with self._timer_locks[name]:
            now = self.clock.now()
            request = TimerRequestConverter.decode(
                Datum(
                    json.dumps(
                        {
                            "Schedule": {"AdjustForDST": False},
                            "ScheduleStatus": {"LastUpdated": now.isoformat()},
                            "IsPastDue": past_due,
                        }
                    ),
                    "json",
                ),
                trigger_metadata=None,
            )
            return self._invoke(spec, request)

    def _timer_loop(self, spec: FunctionSpec, next_fire: datetime | None) -> None:
        assert spec.schedule is not None
        while not self._stop.is_set():
            now = self._now_or_none()
            if now is not None and next_fire is None:
                next_fire = self._next_occurrence(spec.schedule, now)
            if now is not None and next_fire is not None and now >= next_fire:
                past_due = now - next_fire > timedelta(seconds=5)
                log.debug(
                    "timer %s fires for %s%s",
                    spec.name,
                    next_fire.isoformat(),
                    " (past due)" if past_due else "",
                )
                self.invoke_timer(spec.name, past_due=past_due)
                next_fire = self._next_occurrence(
                    spec.schedule, max(now, self._now_or_none() or now)
                )
            self._stop.wait(0.2)

    def _now_or_none(self) -> datetime | None:
        try:
            return self.clock.now()
        except Exception as e:
            log.warning("cannot read the clock: %s", e)
            return None

    @staticmethod
    def _next_occurrence(schedule: str, after: datetime | None) -> datetime | None:
        if after is None:
            return None
        return croniter(  # type: ignore[no-any-return]
            schedule, after, second_at_beginning=True, ret_type=datetime
        ).get_next(datetime)

    # --- invocations

    def _invoke(self, spec: FunctionSpec, value: Any) -> bool:
        """Run one invocation; log one line for it (INFO, WARNING when it failed)."""
        self.count(spec.name, invocations=1)
        started = time.monotonic()
        try:
            _call(spec, value)
        except Exception as e:
            log.warning(
                "function %s failed in %.2f s: %s: %s",
                spec.name,
                time.monotonic() - started,
                type(e).__name__,
                e,
            )
            log.debug("function %s failed", spec.name, exc_info=True)
            self.count(spec.name, failed=1)
            return False
        if self._take_injected_failure(spec.name):
            log.warning(
                "function %s returned in %.2f s, but the host fails the invocation (fault)",
                spec.name,
                time.monotonic() - started,
            )
            self.count(spec.name, failed=1)
            return False
        log.info("function %s succeeded in %.2f s", spec.name, time.monotonic() - started)
        self.count(spec.name, succeeded=1)
        return True

    def _take_injected_failure(self, name: str) -> bool:
        with self._stats_lock:
            if self.faults.fail_after_return[name] > 0:
                self.faults.fail_after_return[name] -= 1
                return True
            return False

    # --- Event Grid

    def handle_eventgrid(
        self, query: Mapping[str, list[str]], headers: Mapping[str, str], body: bytes
    ) -> tuple[int, dict[str, Any] | None]:
        """The webhook as the Functions host answers it; an odd body gets a status, never a
        dropped connection. The key is checked first, in constant time, whatever the function."""
        spec, problem = self._eventgrid_function(query)
        if spec is None:
            return problem
        kind = headers.get("aeg-event-type")
        if not kind:
            return HTTPStatus.BAD_REQUEST, {"error": "missing aeg-event-type header"}
        if kind.lower() == "unsubscribe":
            return HTTPStatus.ACCEPTED, None
        try:
            parsed = json.loads(body)
        except (ValueError, RecursionError):
            return HTTPStatus.BAD_REQUEST, {"error": "body is not JSON"}
        # An array is a batch (either schema), an object one event (CloudEvents' single mode).
        events = parsed if isinstance(parsed, list) else [parsed]
        if not events or not all(isinstance(e, dict) for e in events):
            return HTTPStatus.BAD_REQUEST, {"error": "body is not an event or an array of events"}
        if kind.lower() == "subscriptionvalidation":
            for event in events:
                code = _validation_code(event.get("data"))
                if code:
                    return HTTPStatus.OK, {"validationResponse": code}
            return HTTPStatus.BAD_REQUEST, {"error": "no validationCode in the handshake"}
        if kind.lower() != "notification":
            return HTTPStatus.BAD_REQUEST, {"error": f"unknown aeg-event-type {kind[:200]!r}"}
        with self._stats_lock:
            self._inflight_webhooks += 1
        try:
            futures = [self._webhook_pool.submit(self._invoke_event, spec, e) for e in events]
            results = [f.result() for f in futures]
        finally:
            with self._stats_lock:
                self._inflight_webhooks -= 1
        return (HTTPStatus.ACCEPTED if all(results) else HTTPStatus.INTERNAL_SERVER_ERROR), None

    def handle_eventgrid_options(
        self, query: Mapping[str, list[str]], headers: Mapping[str, str]
    ) -> tuple[int, dict[str, Any] | None, dict[str, str]]:
        """The CloudEvents webhook validation handshake (abuse protection): Event Grid sends
        OPTIONS with `WebHook-Request-Origin` before it delivers CloudEvents, and the host says
        which origin may deliver."""
        spec, (status, reply) = self._eventgrid_function(query)
        if spec is None:
            return status, reply, {}
        origin = headers.get("webhook-request-origin", "").strip().lower()
        allowed = origin if origin in EVENTGRID_ORIGINS else EVENTGRID_ORIGINS[0]
        log.debug("function %s: CloudEvents handshake from %r", spec.name, origin[:200])
        return HTTPStatus.OK, None, {"WebHook-Allowed-Origin": allowed}

    def _eventgrid_function(
        self, query: Mapping[str, list[str]]
    ) -> tuple[FunctionSpec | None, tuple[int, dict[str, Any] | None]]:
        """The key first (constant time, whatever the function), then the function."""
        given = (query.get("code") or [""])[0]
        if not hmac.compare_digest(given.encode("utf-8"), self.key.encode("utf-8")):
            return None, (HTTPStatus.UNAUTHORIZED, None)
        name = (query.get("functionName") or [""])[0]
        spec = self.functions.get(name)
        if spec is None or spec.trigger_type != "eventGridTrigger":
            return None, (
                HTTPStatus.NOT_FOUND,
                {"error": f"no Event Grid function named {name[:200]!r}"},
            )
        return spec, (HTTPStatus.OK, None)

    def _invoke_event(self, spec: FunctionSpec, event: Any) -> bool:
        try:
            value = EventGridEventInConverter.decode(
                Datum(json.dumps(event), "json"), trigger_metadata=None
            )
        except Exception:
            log.exception("function %s: cannot build the event input", spec.name)
            self.count(spec.name, invocations=1, failed=1)
            return False
        return self._invoke(spec, value)

    def handle_admin_invoke(self, name: str, headers: Mapping[str, str]) -> int:
        if headers.get("x-functions-key") != self.key:
            return HTTPStatus.UNAUTHORIZED
        spec = self.functions.get(name)
        if spec is None:
            return HTTPStatus.NOT_FOUND
        if spec.trigger_type != "timerTrigger":
            return HTTPStatus.BAD_REQUEST
        threading.Thread(target=self.invoke_timer, args=(name,), daemon=True).start()
        return HTTPStatus.ACCEPTED


def _validation_code(data: Any) -> str | None:
    """The handshake's validationCode: in `data`, or in `data` given as JSON text (a
    CloudEvents-schema validation event carries its data encoded twice)."""
    if isinstance(data, str):
        try:
            data = json.loads(data)
        except (ValueError, RecursionError):
            return None
    code = data.get("validationCode") if isinstance(data, dict) else None
    return code if isinstance(code, str) and code else None


# ------------------------------------------------------------------------------- queue trigger


class QueueListener:
    """One queue trigger: fetch in batches, run them in parallel, settle each as the host does."""

    def __init__(self, host: LocalHost, spec: FunctionSpec) -> None:
        assert spec.queue_name is not None
        self.host = host
        self.spec = spec
        self.queue = spec.queue_name
        self.options = host.queue_options
        service = host.queue_service()
        self.client: QueueClient = service.get_queue_client(self.queue)
        self.poison: QueueClient = service.get_queue_client(f"{self.queue}-poison")
        self._pool = ThreadPoolExecutor(
            max_workers=self.options.batch_size + self.options.new_batch_threshold,
            thread_name_prefix=f"q-{self.queue}",
        )
        self._inflight: set[Future[None]] = set()
        self._delivered_once: set[str] = set()
        self._lock = threading.Lock()

    def run(self) -> None:
        delay = _MIN_POLL_SECONDS
        while not self.host.stopping:
            with self._lock:
                self._inflight = {f for f in self._inflight if not f.done()}
                busy = len(self._inflight)
            if busy > self.options.new_batch_threshold:
                wait(set(self._inflight), timeout=0.1, return_when=FIRST_COMPLETED)
                continue
            batch = self._fetch()
            if not batch:
                self.host._stop.wait(delay)
                delay = min(delay * 2, max(self.options.max_polling_interval, _MIN_POLL_SECONDS))
                continue
            delay = _MIN_POLL_SECONDS
            with self._lock:
                for message in batch:
                    self._inflight.add(self._pool.submit(self._process, message))

    def close(self) -> None:
        self._pool.shutdown(wait=True)

    def is_idle(self) -> bool:
        with self._lock:
            if any(not f.done() for f in self._inflight):
                return False
        try:
            count = self.client.get_queue_properties().approximate_message_count
        except ResourceNotFoundError:
            return True
        return not count

    def _fetch(self) -> list[QueueMessage]:
        try:
            return list(
                self.client.receive_messages(
                    messages_per_page=self.options.batch_size,
                    max_messages=self.options.batch_size,
                    visibility_timeout=max(1, math.ceil(self.options.fetch_visibility)),
                )
            )
        except ResourceNotFoundError:
            return []
        except Exception as e:
            log.warning("queue %s: fetch failed: %s", self.queue, e)
            return []

    def _process(self, message: QueueMessage) -> None:
        try:
            self._settle(message)
        except Exception:
            # The message stays invisible until its visibility expires, then is redelivered.
            log.exception("queue %s: could not settle message %s", self.queue, message.id)

    def _settle(self, message: QueueMessage) -> None:
        raw = str(message.content)
        if self.options.message_encoding == "base64":
            try:
                body: bytes | str = base64.b64decode(raw, validate=True)
            except (binascii.Error, ValueError):
                log.warning(
                    "queue %s: message %s is not base64; moving it to %s-poison",
                    self.queue,
                    message.id,
                    self.queue,
                )
                self.host.count(self.spec.name, undecodable=1)
                self._move_to_poison(message, raw)
                return
        else:
            body = raw
        with _renewing(self, message) as receipt:
            value = QueueMessageInConverter.decode(
                Datum(body, "bytes" if isinstance(body, bytes) else "string"),
                trigger_metadata={
                    "Id": Datum(message.id, "string"),
                    "DequeueCount": Datum(str(message.dequeue_count), "string"),
                    "PopReceipt": Datum(str(message.pop_receipt), "string"),
                },
            )
            ok = self.host._invoke(self.spec, value)
        message.pop_receipt = receipt()
        if ok:
            if self.host.faults.duplicate_deliveries and message.id not in self._delivered_once:
                self._delivered_once.add(message.id)
                self.client.update_message(message, visibility_timeout=0)
                return
            self.client.delete_message(message)
        elif (message.dequeue_count or 0) >= self.options.max_dequeue_count:
            log.warning(
                "queue %s: message %s failed %d time(s); moving it to %s-poison",
                self.queue,
                message.id,
                message.dequeue_count,
                self.queue,
            )
            self._move_to_poison(message, raw)
        else:
            self.client.update_message(
                message, visibility_timeout=math.ceil(self.options.visibility_timeout)
            )

    def _move_to_poison(self, message: QueueMessage, raw: str) -> None:
        try:
            self.poison.send_message(raw)
        except ResourceNotFoundError:
            with contextlib.suppress(ResourceExistsError):
                self.poison.create_queue()
            self.poison.send_message(raw)
        self.client.delete_message(message)
        self.host.count(self.spec.name, poisoned=1)


@contextlib.contextmanager
def _renewing(listener: QueueListener, message: QueueMessage) -> Iterator[Callable[[], str]]:
    """Keep a running message invisible: renew its visibility every renew_interval seconds."""
    receipt = [str(message.pop_receipt)]
    lock = threading.Lock()
    done = threading.Event()
    options = listener.options

    def renew() -> None:
        while not done.wait(options.renew_interval):
            with lock:
                try:
                    updated = listener.client.update_message(
                        message.id,
                        pop_receipt=receipt[0],
                        visibility_timeout=max(1, math.ceil(options.fetch_visibility)),
                    )
                    receipt[0] = str(updated.pop_receipt)
                except Exception as e:
                    log.warning("queue %s: cannot renew %s: %s", listener.queue, message.id, e)

    thread = threading.Thread(target=renew, daemon=True, name=f"renew-{message.id}")
    thread.start()
    try:
        yield lambda: receipt[0]
    finally:
        done.set()
        thread.join()


# ------------------------------------------------------------------------------------- HTTP


def _handler_for(host: LocalHost) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            log.debug("http: %s", format % args)

        def _reply(
            self,
            status: int,
            body: dict[str, Any] | None = None,
            headers: Mapping[str, str] | None = None,
        ) -> None:
            data = json.dumps(body).encode() if body is not None else b""
            self.send_response(status)
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            if data:
                self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _body(self) -> bytes:
            length = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(length) if length else b""

        def do_POST(self) -> None:
            url = urlsplit(self.path)
            body = self._body()
            headers = {k.lower(): v for k, v in self.headers.items()}
            if url.path.rstrip("/") == EVENTGRID_PATH:
                try:
                    status, reply = host.handle_eventgrid(parse_qs(url.query), headers, body)
                except Exception as e:  # the host answers; it never drops the connection
                    log.exception("eventgrid webhook failed")
                    status, reply = HTTPStatus.INTERNAL_SERVER_ERROR, {"error": type(e).__name__}
                self._reply(status, reply)
            elif url.path.startswith("/admin/functions/"):
                name = url.path.removeprefix("/admin/functions/").strip("/")
                self._reply(host.handle_admin_invoke(name, headers))
            else:
                self._reply(HTTPStatus.NOT_FOUND)

        def do_OPTIONS(self) -> None:
            url = urlsplit(self.path)
            self._body()
            headers = {k.lower(): v for k, v in self.headers.items()}
            if url.path.rstrip("/") == EVENTGRID_PATH:
                status, reply, extra = host.handle_eventgrid_options(parse_qs(url.query), headers)
                self._reply(status, reply, extra)
            else:
                self._reply(HTTPStatus.NOT_FOUND)

        def do_GET(self) -> None:
            url = urlsplit(self.path)
            if url.path.rstrip("/") == "/admin/host/status":
                self._reply(HTTPStatus.OK, host.status())
            else:
                self._reply(HTTPStatus.NOT_FOUND)

    return Handler


def import_app(module: str = "function_app") -> Any:
    return importlib.import_module(module).app
