"""Fidelity: recordings are the oracle for flow, REST-spec examples for body shape.

tests/data/ORIGIN.md says where each file comes from.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from azure.core.pipeline import PipelineRequest, PipelineResponse
from azure.core.pipeline.policies import SansIOHTTPPolicy
from azure.identity import ManagedIdentityCredential
from azure.mgmt.compute import ComputeManagementClient

from emulator.process import Endpoints
from tests.emulator.conftest import SNAP_RG, disk_id, make_compute

DATA = Path(__file__).resolve().parents[1] / "data"
LRO_HEADERS = {"azure-asyncoperation", "location", "retry-after"}
GUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.IGNORECASE)


class Recorder(SansIOHTTPPolicy):  # type: ignore[type-arg]
    """Records every attempt the real SDK makes: what the recordings hold."""

    def __init__(self) -> None:
        self.responses: list[Any] = []

    def on_response(self, request: PipelineRequest, response: PipelineResponse) -> None:  # type: ignore[type-arg]
        self.responses.append(response.http_response)

    @property
    def calls(self) -> list[dict[str, Any]]:
        """Parsed after the SDK has read each body (initial LRO answers are streamed)."""
        out = []
        for http in self.responses:
            http.read()
            text = http.text()
            out.append(
                {
                    "method": http.request.method,
                    "url": http.request.url,
                    "status": http.status_code,
                    "headers": {k.lower(): v for k, v in http.headers.items()},
                    "body": json.loads(text) if text else None,
                }
            )
        return out


def kind(url: str) -> str:
    path = url.split("?")[0].lower()
    for marker in ("/diskoperations/", "/operations/", "/instanceview"):
        if marker in path:
            return marker.strip("/")
    return path.rsplit("/", 2)[-2]


def flow(calls: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    """What must match: method, resource kind, status, LRO header names, operation status."""
    out = []
    for c in calls:
        headers = {h.lower() for h in c["headers"]} & LRO_HEADERS
        body = c["body"]
        status = body.get("status") if isinstance(body, dict) else None
        out.append((c["method"], kind(c["url"]), c["status"], frozenset(headers), status))
    return out


def assert_same_ratelimit_headers(ours: list[dict[str, Any]], theirs: list[dict[str, Any]]) -> None:
    """Every x-ms-ratelimit-* header a recorded answer carries, ours carries too."""
    for mine, real in zip(ours, theirs, strict=True):
        wanted = {h for h in real["headers"] if h.startswith("x-ms-ratelimit-")}
        assert wanted <= set(mine["headers"]), (mine["method"], mine["url"])


def recorded(name: str) -> list[dict[str, Any]]:
    entries = json.loads((DATA / name).read_text())["Entries"]
    return [
        {
            "method": e["RequestMethod"],
            "url": e["RequestUri"],
            "status": e["StatusCode"],
            "headers": {k.lower(): v for k, v in e["ResponseHeaders"].items()},
            "body": e["ResponseBody"],
        }
        for e in entries
    ]


def template(url: str) -> str:
    path = url.split("?")[0]
    path = re.sub(r"^https://[^/]+", "", path)
    path = GUID.sub("{id}", path)
    return re.sub(r"/locations/[^/]+/", "/locations/{region}/", path)


@pytest.fixture
def recorded_compute(
    sdk_env: Endpoints, credential: ManagedIdentityCredential, admin: httpx.Client
) -> Iterator[tuple[ComputeManagementClient, Recorder]]:
    """The real SDK with a recorder, against operations that run 1.5 s.

    The SDK polls once at once (InProgress), then waits Retry-After (10 s in the recording, 3 s
    here) or, when an answer has none (deletes), its polling interval (2 s here): Succeeded, as
    recorded. The margins keep the sequence stable on a busy machine.
    """
    original = admin.get("/behaviour").json()
    admin.post(
        "/behaviour", json={"operationSeconds": 1.5, "retryAfterScale": 0.3}
    ).raise_for_status()
    recorder = Recorder()
    client = make_compute(sdk_env, credential, per_retry_policies=[recorder], polling_interval=2.0)
    yield client, recorder
    admin.post("/behaviour", json=original).raise_for_status()


def test_snapshot_create_get_delete_flow_matches_the_recording(recorded_compute: Any) -> None:
    compute, recorder = recorded_compute
    theirs = recorded("recording_snapshot_flow.json")
    # The recorded request, pointed at one of our disks (rg-app: no policy asks for DenyAll there).
    raw_put = json.loads((DATA / "recording_snapshot_flow.json").read_text())["Entries"][0]
    body = raw_put["RequestBody"]
    body["location"] = "westeurope"
    body["properties"]["creationData"]["sourceUri"] = disk_id("rg-data", "vm-db-02-osdisk")
    compute.snapshots.begin_create_or_update("rg-app", "t-flow", body).result()
    compute.snapshots.begin_delete("rg-app", "t-flow").result()
    ours = [c for c in recorder.calls if "/msi/" not in c["url"]]
    assert flow(ours) == flow(theirs)
    assert_same_ratelimit_headers(ours, theirs)
    for mine, real in zip(ours, theirs, strict=True):
        # The LRO links point at the same kind of resource, monitor=true on Location, as recorded.
        for header in ("azure-asyncoperation", "location"):
            if header in real["headers"]:
                assert template(mine["headers"][header]) == template(real["headers"][header])
                assert ("monitor=true" in mine["headers"][header]) == (
                    "monitor=true" in real["headers"][header]
                )
        # Bodies: present where recorded, with every recorded key (202 echo, InProgress status,
        # Succeeded status with the snapshot as output, final GET; DELETE has none).
        assert (mine["body"] is None) == (real["body"] is None)
        if real["body"] is not None:
            assert same_shape(real["body"], mine["body"]) == [], (mine["method"], mine["url"])
    # The 202 echoes what was sent (sourceUri); the finished snapshot names its source by id.
    assert set(ours[0]["body"]["properties"]["creationData"]) == {"createOption", "sourceUri"}
    finished = ours[2]["body"]["properties"]["output"]["properties"]["creationData"]
    assert finished["sourceResourceId"].endswith("/disks/vm-db-02-osdisk")
    assert set(finished) == set(
        theirs[2]["body"]["properties"]["output"]["properties"]["creationData"]
    )


def test_vm_get_and_instance_view_flow_matches_the_recording(recorded_compute: Any) -> None:
    compute, recorder = recorded_compute
    compute.virtual_machines.get("rg-app", "vm-cluster-01")
    compute.virtual_machines.instance_view("rg-app", "vm-cluster-01")
    ours = [c for c in recorder.calls if "/msi/" not in c["url"]]
    theirs = recorded("recording_vm_get_instance_view.json")
    assert flow(ours) == flow(theirs)
    assert_same_ratelimit_headers(ours, theirs)


def same_shape(example: Any, actual: Any, where: str = "$") -> list[str]:
    """Every key of the example is present in the answer with the same JSON type."""
    problems: list[str] = []

    def jtype(v: Any) -> str:
        if isinstance(v, bool):
            return "boolean"
        if isinstance(v, int | float):
            return "number"
        return type(v).__name__

    if jtype(example) != jtype(actual):
        return [f"{where}: {jtype(actual)} instead of {jtype(example)}"]
    if isinstance(example, dict) and where.endswith(".tags"):
        # A map of user-chosen names: its values are strings, its keys are not a schema.
        problems += [
            f"{where}.{k}: not a string" for k, v in actual.items() if not isinstance(v, str)
        ]
    elif isinstance(example, dict):
        for k, v in example.items():
            if k not in actual:
                problems.append(f"{where}.{k}: missing")
            else:
                problems += same_shape(v, actual[k], f"{where}.{k}")
    elif isinstance(example, list) and example and actual:
        # Items line up with the example's (statuses: provisioning, then power state).
        for i, item in enumerate(actual):
            problems += same_shape(example[min(i, len(example) - 1)], item, f"{where}[{i}]")
    return problems


def raw(pipeline_response: Any, _deserialized: Any, _headers: Any) -> Any:
    return pipeline_response.http_response.json()


def example(name: str) -> Any:
    return json.loads((DATA / name).read_text())["responses"]["200"]["body"]


def test_snapshot_body_has_the_spec_example_shape(compute: ComputeManagementClient) -> None:
    existing = compute.snapshots.get(
        SNAP_RG, "lb-4fpx7cgz2zw7slu7-202611200200", cls=raw
    )  # an OS disk
    assert same_shape(example("spec_snapshot_get_incremental.json"), existing) == []


def test_disk_body_has_the_spec_example_shape(compute: ComputeManagementClient) -> None:
    disk = compute.disks.get("rg-app", "vm-web-01-osdisk", cls=raw)
    assert same_shape(example("spec_disk_get.json"), disk) == []


def test_vm_body_has_the_spec_example_shape(compute: ComputeManagementClient) -> None:
    vm = compute.virtual_machines.get("rg-app", "vm-web-01", cls=raw)
    assert same_shape(example("spec_vm_get.json"), vm) == []


def test_instance_view_has_the_spec_example_shape(compute: ComputeManagementClient) -> None:
    view = compute.virtual_machines.instance_view("rg-app", "vm-web-01", cls=raw)
    assert same_shape(example("spec_vm_instance_view.json"), view) == []


def test_the_shape_check_can_fail() -> None:
    assert same_shape({"a": {"b": 1}}, {"a": {"b": "1"}}) == ["$.a.b: str instead of number"]
    assert same_shape({"a": [{"b": True}]}, {"a": [{}]}) == ["$.a[0].b: missing"]
