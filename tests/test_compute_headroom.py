"""The ARM headroom Lifeboat reads from response headers, and how a low reading ages."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from shared.adapters.compute import HEADROOM_REFILL_PER_SECOND, Headroom

SUB = "6F1C3A52-7D2E-4B8A-9C41-3E5D2A7B9F10"


class Ticker:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _answer(path: str, **headers: str) -> Any:
    return SimpleNamespace(
        http_request=SimpleNamespace(url=f"https://management.azure.com{path}?api-version=x"),
        http_response=SimpleNamespace(headers=headers),
    )


def test_a_low_reading_refills_at_arms_rate_so_waiting_work_is_never_held_for_good() -> None:
    clock = Ticker()
    headroom = Headroom(clock)
    assert headroom.estimate("deletes", SUB) is None  # nothing read yet: work goes
    delete = _answer(f"/subscriptions/{SUB}/resourceGroups/g/providers/x/snapshots/s")
    delete.http_response.headers["x-ms-ratelimit-remaining-subscription-deletes"] = "3"
    headroom(delete)
    assert headroom.estimate("deletes", SUB.lower()) == 3
    assert headroom.estimate("writes", SUB) is None  # one bucket does not tell of the other
    # Deferred prunes send nothing, so no new reading comes; the bucket refills all the same.
    clock.now += 2.0
    assert headroom.estimate("deletes", SUB) == 3 + int(2 * HEADROOM_REFILL_PER_SECOND["deletes"])


def test_only_subscription_answers_with_a_numeric_header_count() -> None:
    clock = Ticker()
    headroom = Headroom(clock)
    header = "x-ms-ratelimit-remaining-subscription-writes"
    headroom(_answer("/providers/Microsoft.Compute/operations", **{header: "1"}))
    headroom(_answer(f"/subscriptions/{SUB}/resourcegroups/g", **{header: "n/a"}))
    assert headroom.estimate("writes", SUB) is None
    headroom(_answer(f"/subscriptions/{SUB}/resourcegroups/g", **{header: "150"}))
    headroom(_answer(f"/subscriptions/{SUB}/resourcegroups/g"))  # a read: no writes header
    assert headroom.estimate("writes", SUB) == 150


def test_reads_are_read_from_both_header_shapes_and_refill_at_25_a_second() -> None:
    clock = Ticker()
    headroom = Headroom(clock)
    listing = f"/subscriptions/{SUB}/resourceGroups/g/providers/Microsoft.Compute/snapshots"
    # The older hourly counter (the 2024 recording: 11999), then the token bucket (249) beside
    # its subscription-wide global twin, which is never read.
    headroom(_answer(listing, **{"x-ms-ratelimit-remaining-subscription-reads": "11999"}))
    assert headroom.estimate("reads", SUB) == 11999
    token_bucket = {
        "x-ms-ratelimit-remaining-subscription-reads": "4",
        "x-ms-ratelimit-remaining-subscription-global-reads": "3749",
    }
    headroom(_answer(listing, **token_bucket))
    assert headroom.estimate("reads", SUB) == 4
    assert headroom.estimate("writes", SUB) is None
    clock.now += 2.0
    assert headroom.estimate("reads", SUB) == 4 + 50
