"""A replaying azure-core `HttpTransport` for adapter tests: the real SDK clients, recorded answers.

Each `Answer` is one HTTP response as Azure sends it: status, headers (a header named twice is
folded into one comma-joined value, as urllib3 does) and body (JSON, text or none). The transport
hands the answers out in order, checking each request's method and path against the answer it
is about to give; `requests` keeps what was sent and `sleeps` what the retry policy asked the
transport to sleep: azure-core policies sleep through `transport.sleep`, so nothing here sleeps.

Answers come from the recordings in `tests/data` (`Answer.recorded`) or are written in the
documented shapes of Azure's errors (`arm_error`, `compute_throttled`).
"""

from __future__ import annotations

import gzip
import json
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest
from azure.core.credentials import AccessToken, AccessTokenInfo
from azure.core.pipeline.transport import HttpTransport
from azure.core.rest._http_response_impl import HttpResponseImpl
from azure.core.utils import CaseInsensitiveDict

from shared.adapters.compute import AzureCompute
from shared.ports import ThrottledError

DATA = Path(__file__).parent / "data"
ARM = "https://management.azure.com"
SUB = "00000000-0000-0000-0000-000000000000"

REASONS = {
    200: "OK",
    201: "Created",
    202: "Accepted",
    204: "No Content",
    400: "Bad Request",
    403: "Forbidden",
    404: "Not Found",
    409: "Conflict",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
}


class Credential:
    """A token credential that never leaves the process."""

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        return AccessToken("token", 2**31)

    def get_token_info(self, *scopes: str, **kwargs: Any) -> AccessTokenInfo:
        return AccessTokenInfo("token", 2**31)


@dataclass
class Answer:
    status: int
    body: Any = None
    headers: list[tuple[str, str]] = field(default_factory=list)
    method: str | None = None  # checked against the request when set
    path: str | None = None  # checked: the request's decoded path ends with it (any casing)

    @classmethod
    def recorded(cls, entry: Mapping[str, Any], **changes: Any) -> Answer:
        """An entry of a `tests/data/recording_*.json` file, unchanged unless told."""
        headers: list[tuple[str, str]] = []
        for name, value in (entry.get("ResponseHeaders") or {}).items():
            for one in value if isinstance(value, list) else [value]:
                headers.append((name, str(one)))
        path = urlsplit(entry["RequestUri"]).path
        answer = cls(
            status=int(entry["StatusCode"]),
            body=entry.get("ResponseBody"),
            headers=headers,
            method=str(entry["RequestMethod"]),
            path=unquote(path),
        )
        for key, value in changes.items():
            setattr(answer, key, value)
        return answer

    def with_headers(self, *pairs: tuple[str, str]) -> Answer:
        self.headers = [*self.headers, *pairs]
        return self

    def content(self) -> bytes:
        if self.body is None or self.body == "":
            return b""
        if isinstance(self.body, bytes):
            return self.body
        if isinstance(self.body, str):
            return self.body.encode()
        return json.dumps(self.body).encode()


def arm_error(
    status: int, code: str, message: str = "", *headers: tuple[str, str], **where: Any
) -> Answer:
    """ARM's error answer: `{"error": {"code", "message"}}`."""
    body = {"error": {"code": code, "message": message or f"{code} (recorded shape)"}}
    return Answer(status, body, [("Content-Type", "application/json; charset=utf-8"), *headers])


def compute_throttled(retry_after: str, policy: str = "HighCostGet30Min") -> Answer:
    """Compute's own 429 (Troubleshooting API throttling errors, Microsoft Learn): the body is not
    wrapped in `error`, and each throttling policy comes in its own
    `x-ms-ratelimit-remaining-resource` header."""
    body = {
        "code": "OperationNotAllowed",
        "message": "The server rejected the request because too many requests have been received "
        "for this subscription.",
        "details": [
            {
                "code": "TooManyRequests",
                "target": policy,
                "message": json.dumps(
                    {
                        "operationGroup": policy,
                        "startTime": "2018-06-29T19:54:21.0914017+00:00",
                        "endTime": "2018-06-29T20:14:21.0914017+00:00",
                        "allowedRequestCount": 800,
                        "measuredRequestCount": 1238,
                    }
                ),
            }
        ],
        "innererror": {"internalErrorCode": "TooManyRequestsReceived"},
    }
    return Answer(
        429,
        body,
        [
            ("x-ms-ratelimit-remaining-resource", "Microsoft.Compute/HighCostGet3Min;0"),
            ("x-ms-ratelimit-remaining-resource", "Microsoft.Compute/HighCostGet30Min;159"),
            ("Retry-After", retry_after),
            ("Content-Type", "application/json; charset=utf-8"),
        ],
    )


def recording(name: str) -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = json.loads((DATA / f"{name}.json").read_text())["Entries"]
    return entries


def recorded_id(entry: dict[str, Any]) -> str:
    """The resource id a recorded request was sent to (its path, without the query)."""
    uri: str = entry["RequestUri"]
    return uri.split("?")[0].removeprefix(ARM)


def throttled(action: Callable[[], object]) -> tuple[ThrottledError, float]:
    """The ThrottledError `action` raises, and how many seconds it took to raise it."""
    started = time.monotonic()
    with pytest.raises(ThrottledError) as caught:
        action()
    return caught.value, time.monotonic() - started


def assert_put_back_at_once(action: Callable[[], object], transport: Replay) -> None:
    """A 429 with Retry-After 1200 is raised at once, after one request, with no retry or sleep."""
    error, elapsed = throttled(action)
    assert elapsed < 1.0
    assert error.retry_after == 1200
    assert len(transport.requests) == 1
    assert transport.sleeps == []


def spec_body(name: str) -> dict[str, Any]:
    """The 200 body of a `tests/data/spec_*.json` example (response-only files are the body)."""
    example: dict[str, Any] = json.loads((DATA / f"{name}.json").read_text())
    example.pop("source", None)
    if "responses" in example:
        body: dict[str, Any] = example["responses"]["200"]["body"]
        return body
    return example


@dataclass
class Sent:
    method: str
    url: str
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def path(self) -> str:
        return unquote(urlsplit(self.url).path)

    def json(self) -> Any:
        data = self.body
        if data[:2] == b"\x1f\x8b":
            data = gzip.decompress(data)
        return json.loads(data)


class _Closed:
    def close(self) -> None:
        pass


class Replay(HttpTransport):  # type: ignore[type-arg]
    """Answers requests in order from a script; records requests and asked-for sleeps."""

    def __init__(self, answers: Iterable[Answer] = ()) -> None:
        self.answers: list[Answer] = list(answers)
        self.requests: list[Sent] = []
        self.sleeps: list[float] = []
        self._threads = set(threading.enumerate())

    def add(self, *answers: Answer) -> Replay:
        self.answers.extend(answers)
        return self

    def settled(self) -> list[Sent]:
        """The requests sent, once threads started since this transport was made have ended:
        a write that polled after all (an SDK poller's thread) shows its polls here."""
        for thread in threading.enumerate():
            if thread not in self._threads and thread is not threading.current_thread():
                thread.join(timeout=2.0)
        return self.requests

    def __enter__(self) -> Replay:
        return self

    def __exit__(self, *args: object) -> None:
        pass

    def open(self) -> None:
        pass

    def close(self) -> None:
        pass

    def sleep(self, duration: float) -> None:
        self.sleeps.append(float(duration))

    def send(self, request: Any, **kwargs: Any) -> Any:
        body = request.content if hasattr(request, "content") else request.data
        if isinstance(body, str):
            body = body.encode()
        elif body is not None and not isinstance(body, bytes):
            body = json.dumps(body).encode()
        sent = Sent(request.method.upper(), request.url, body or b"", dict(request.headers))
        self.requests.append(sent)
        if not self.answers:
            raise AssertionError(f"unexpected request {sent.method} {sent.url}")
        answer = self.answers.pop(0)
        if answer.method is not None and answer.method.upper() != sent.method:
            raise AssertionError(f"expected {answer.method}, got {sent.method} {sent.url}")
        if answer.path is not None and not sent.path.lower().endswith(answer.path.lower()):
            raise AssertionError(f"expected a path ending {answer.path}, got {sent.path}")
        return self._response(request, answer)

    def _response(self, request: Any, answer: Answer) -> HttpResponseImpl:
        headers = CaseInsensitiveDict()
        for name, value in answer.headers:
            if name.lower() == "content-length":
                continue
            headers[name] = f"{headers[name]}, {value}" if name in headers else value
        content = answer.content()
        headers["Content-Length"] = str(len(content))
        if content and "Content-Type" not in headers:
            headers["Content-Type"] = "application/json; charset=utf-8"

        def chunks(**_: Any) -> Iterator[bytes]:
            yield content

        response = HttpResponseImpl(
            request=request,
            internal_response=_Closed(),
            status_code=answer.status,
            reason=REASONS.get(answer.status, "Unknown"),
            content_type=headers.get("Content-Type"),
            headers=headers,
            stream_download_generator=chunks,
        )
        response.read()
        return response


class Routes(Replay):
    """Answers every request with the 200 body routed by path suffix, in any order."""

    def __init__(self, routes: list[tuple[str, Any]]) -> None:
        super().__init__()
        self.routes = routes

    @property
    def urls(self) -> list[str]:
        return [r.url for r in self.requests]

    def send(self, request: Any, **kwargs: Any) -> Any:
        path = unquote(urlsplit(request.url).path)
        for suffix, body in self.routes:
            if path.endswith(suffix):
                self.answers = [Answer(200, body)]
                return super().send(request, **kwargs)
        raise AssertionError(f"no recording for {request.url}")


class ReplayedCompute(AzureCompute):
    """The Compute adapter as production builds it, its clients (and the drill adapter's, which
    take the same transport options) handed the replaying transport."""

    def __init__(self, transport: Replay) -> None:
        self.replay = transport
        super().__init__(
            Credential(), arm_endpoint=ARM, arm_audience="https://management.azure.com/.default"
        )

    def _transport_options(self) -> dict[str, Any]:
        return {"transport": self.replay}


def replayed_compute(*answers: Answer) -> tuple[ReplayedCompute, Replay]:
    """A Compute adapter answered by `answers` in order, and the transport that records it."""
    transport = Replay(answers)
    return ReplayedCompute(transport), transport
