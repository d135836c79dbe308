"""Throttling as ARM and Compute do it: token buckets with remaining-count headers and 429s.

ARM: per subscription (and principal) buckets for reads, writes and deletes, plus a
subscription-wide global bucket (15x). Compute: per subscription and region policies for
snapshot/disk writes and deletes, in a 3-minute and a 30-minute window. Buckets refill in real
time (throttling protects the service, not the stand-in's clock).
"""

from __future__ import annotations

import json
import math
import threading
import time
from dataclasses import dataclass, field

from emulator.errors import ArmError


@dataclass
class Bucket:
    capacity: float
    rate: float  # tokens per second
    tokens: float = -1.0
    stamp: float = field(default_factory=time.monotonic)

    def __post_init__(self) -> None:
        if self.tokens < 0:
            self.tokens = self.capacity

    def _refill(self, now: float) -> None:
        if now > self.stamp:
            self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
            self.stamp = now

    def peek(self, now: float) -> float:
        self._refill(now)
        return self.tokens

    def wait_seconds(self, now: float) -> float:
        self._refill(now)
        if self.tokens >= 1:
            return 0.0
        return (1 - self.tokens) / self.rate if self.rate > 0 else 3600.0

    def take(self, now: float) -> None:
        self._refill(now)
        self.tokens -= 1


@dataclass(frozen=True)
class ArmLimits:
    """(capacity, refill per second) per family; the global bucket is `global_factor` times it."""

    reads: tuple[float, float] = (250, 25)
    writes: tuple[float, float] = (200, 10)
    deletes: tuple[float, float] = (200, 10)
    global_factor: float = 15.0


@dataclass(frozen=True)
class ComputeLimits:
    """Snapshot/disk write and delete policies: capacity per 3-minute and 30-minute window."""

    writes_3min: float = 3000
    writes_30min: float = 25000
    deletes_3min: float = 3000
    deletes_30min: float = 24000
    others_scale: float = 1.0
    """Scales the read, operation-status and VM-update policies below (OTHER_POLICIES)."""


# Policies seen in recorded responses (x-ms-ratelimit-remaining-resource), per region. Disk RP:
# LowCostGet 15000/120000 and GetOperation 50000/400000; VM RP: LowCostGet 4000/32000,
# GetOperation 15000/30000, UpdateVM, PutVM and DeleteVM 240/1200. Capacities are for the 3-
# and 30-minute windows.
OTHER_POLICIES: dict[str, tuple[tuple[str, str], tuple[float, float]]] = {
    "disk-reads": (("LowCostGet3Min", "LowCostGet30Min"), (15000, 120000)),
    "disk-operations": (("GetOperation3Min", "GetOperation30Min"), (50000, 400000)),
    "vm-reads": (("LowCostGet3Min", "LowCostGet30Min"), (4000, 32000)),
    "vm-operations": (("GetOperation3Min", "GetOperation30Min"), (15000, 30000)),
    "vm-writes": (("UpdateVM3Min", "UpdateVM30Min"), (240, 1200)),
    "vm-puts": (("PutVM3Min", "PutVM30Min"), (240, 1200)),
    "vm-deletes": (("DeleteVM3Min", "DeleteVM30Min"), (240, 1200)),
}


class Throttler:
    def __init__(
        self,
        arm: ArmLimits | None = None,
        compute: ComputeLimits | None = None,
        *,
        retry_after_scale: float = 1.0,
        enabled: bool = True,
    ) -> None:
        self._lock = threading.Lock()
        self.configure(arm or ArmLimits(), compute or ComputeLimits())
        self.retry_after_scale = retry_after_scale
        self.enabled = enabled

    def configure(self, arm: ArmLimits, compute: ComputeLimits) -> None:
        with self._lock:
            self.arm = arm
            self.compute = compute
            self._buckets: dict[tuple[str, ...], Bucket] = {}

    def _bucket(self, bucket_key: tuple[str, ...], capacity: float, rate: float) -> Bucket:
        bucket = self._buckets.get(bucket_key)
        if bucket is None:
            bucket = self._buckets[bucket_key] = Bucket(capacity, rate)
        return bucket

    def retry_after(self, seconds: float) -> str:
        """ARM sends whole seconds (SDKs parse an int); the scale keeps tests fast."""
        return str(max(0, round(max(1, math.ceil(seconds)) * self.retry_after_scale)))

    def arm_check(self, subscription: str, principal: str, family: str) -> dict[str, str]:
        """Take one ARM token or raise 429. `family` is reads, writes or deletes."""
        if not self.enabled:
            return {}
        capacity, rate = getattr(self.arm, family)
        factor = self.arm.global_factor
        now = time.monotonic()
        with self._lock:
            mine = self._bucket(("arm", subscription, principal, family), capacity, rate)
            everyone = self._bucket(
                ("arm-global", subscription, family), capacity * factor, rate * factor
            )
            wait = max(mine.wait_seconds(now), everyone.wait_seconds(now))
            if wait > 0:
                after = self.retry_after(wait)
                verb = family[:-1]
                raise ArmError(
                    429,
                    "SubscriptionRequestsThrottled",
                    f"Number of '{verb}' requests for subscription '{subscription}' actor "
                    f"'{principal}' exceeded. Please try again after '{after}' seconds after "
                    "additional tokens are available. Refer to https://aka.ms/arm-throttling",
                    headers={
                        "Retry-After": after,
                        f"x-ms-ratelimit-remaining-subscription-{family}": "0",
                        f"x-ms-ratelimit-remaining-subscription-global-{family}": str(
                            int(everyone.peek(now))
                        ),
                    },
                )
            mine.take(now)
            everyone.take(now)
            return {
                f"x-ms-ratelimit-remaining-subscription-{family}": str(int(mine.peek(now))),
                f"x-ms-ratelimit-remaining-subscription-global-{family}": str(
                    int(everyone.peek(now))
                ),
            }

    def compute_check(self, subscription: str, region: str, kind: str) -> dict[str, str]:
        """Take one Compute policy token or raise 429.

        `kind`: writes or deletes (snapshots and disks), or one of OTHER_POLICIES.
        """
        if not self.enabled:
            return {}
        names: tuple[str, ...]
        caps: tuple[float, ...]
        if kind == "writes":
            names = ("CreateUpdateDisks3Min", "CreateUpdateDisks30Min")
            caps = (self.compute.writes_3min, self.compute.writes_30min)
        elif kind == "deletes":
            names = ("DeleteDisks3Min", "DeleteDisks30Min")
            caps = (self.compute.deletes_3min, self.compute.deletes_30min)
        else:
            names, raw_caps = OTHER_POLICIES[kind]
            caps = tuple(max(1.0, c * self.compute.others_scale) for c in raw_caps)
            # The disk and VM resource providers count separately under the same names.
            region = f"{region}/{kind.split('-')[0]}"
        windows = (180.0, 1800.0)
        now = time.monotonic()
        region = region.lower().replace(" ", "")
        with self._lock:
            buckets = [
                self._bucket(("compute", subscription, region, name), cap, cap / window)
                for name, cap, window in zip(names, caps, windows, strict=True)
            ]
            for name, bucket in zip(names, buckets, strict=True):
                wait = bucket.wait_seconds(now)
                if wait > 0:
                    after = self.retry_after(wait)
                    remaining = ",".join(
                        f"Microsoft.Compute/{n};{int(b.peek(now))}"
                        for n, b in zip(names, buckets, strict=True)
                    )
                    raise ArmError(
                        429,
                        "OperationNotAllowed",
                        "The server rejected the request because too many requests have been "
                        "received for this subscription.",
                        details=[
                            {
                                "code": "TooManyRequests",
                                "target": name,
                                "message": json.dumps(
                                    {
                                        "operationGroup": name,
                                        "startTime": "",
                                        "endTime": "",
                                        "allowedRequestCount": int(bucket.capacity),
                                        "measuredRequestCount": int(bucket.capacity) + 1,
                                    }
                                ),
                            }
                        ],
                        headers={
                            "Retry-After": after,
                            "x-ms-ratelimit-remaining-resource": remaining,
                        },
                    )
            for bucket in buckets:
                bucket.take(now)
            remaining = ",".join(
                f"Microsoft.Compute/{n};{int(b.peek(now))}"
                for n, b in zip(names, buckets, strict=True)
            )
            return {"x-ms-ratelimit-remaining-resource": remaining}
