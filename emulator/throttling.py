"""Throttling as ARM and Compute do it: token buckets with remaining-count headers and 429s.

ARM: per subscription (and principal) buckets for reads, writes and deletes, plus a
subscription-wide global bucket (15x), or the older hourly counters (`ArmLimits.shape`).
Compute: per subscription and region policies (snapshot creates that copy data, disk writes,
deletes, reads, operation polls, VM writes), each in a 3-minute and a 30-minute window. Buckets
refill in real time (throttling protects the service, not the stand-in's clock).
"""

from __future__ import annotations

import json
import math
import threading
import time
from dataclasses import dataclass, field, replace
from typing import Any

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
    shape: str = "token-bucket"
    """`token-bucket` (2026 responses: writes 199 with a `-global-` twin) or `hourly` (the older
    per-hour counters of the 2024 snapshot recording: writes 1199, deletes 14999, reads 11999)."""
    hourly_reads: float = 12000
    hourly_writes: float = 1200
    hourly_deletes: float = 15000


ARM_SHAPES = ("token-bucket", "hourly")


HYDRATE = "HighCostSnapshotCreateHydrate"
CREATE_UPDATE = "CreateUpdateDisks"
SNAPSHOT_FAMILIES = (CREATE_UPDATE, HYDRATE)
# The disk resource provider's write, delete and copy policies, by their ComputeLimits field.
DISK_POLICIES = {"writes": CREATE_UPDATE, "deletes": "DeleteDisks", "hydrate": HYDRATE}
_DISK_FIELDS = {policy: name for name, policy in DISK_POLICIES.items()}
WINDOWS = ("3min", "30min")


@dataclass(frozen=True)
class ComputeLimits:
    """The DISK_POLICIES' capacities: (per 3-minute window, per 30-minute window)."""

    writes: tuple[float, float] = (3000, 25000)
    deletes: tuple[float, float] = (3000, 24000)
    hydrate: tuple[float, float] = (1000, 8000)
    """`HighCostSnapshotCreateHydrate3Min`: the 2024 recording's first create reports 999 left."""
    incremental_family: str = "CreateUpdateDisks"
    """The family an incremental snapshot create counts against: no recording shows it, so it
    is a setting (`CreateUpdateDisks` or `HighCostSnapshotCreateHydrate`). Full creates always
    count against `HighCostSnapshotCreateHydrate`, as recorded."""
    others_scale: float = 1.0
    """Scales the read, operation-status and VM-update policies below (OTHER_POLICIES)."""

    def caps(self, field_name: str) -> tuple[float, float]:
        """The capacities of one DISK_POLICIES field."""
        caps: tuple[float, float] = getattr(self, field_name)
        return caps

    def settings(self) -> dict[str, Any]:
        """As the admin API shows and takes them: one number a window (`writes_3min`, ...)."""
        flat: dict[str, Any] = {
            f"{name}_{window}": cap
            for name in DISK_POLICIES
            for window, cap in zip(WINDOWS, self.caps(name), strict=True)
        }
        return flat | {
            "incremental_family": self.incremental_family,
            "others_scale": self.others_scale,
        }

    def with_settings(self, flat: dict[str, Any]) -> ComputeLimits:
        """`settings()`, changed, back into limits."""
        changes: dict[str, Any] = {
            name: tuple(flat[f"{name}_{window}"] for window in WINDOWS) for name in DISK_POLICIES
        }
        changes["incremental_family"] = flat["incremental_family"]
        changes["others_scale"] = flat["others_scale"]
        return replace(self, **changes)

    def scaled(self, factor: float) -> ComputeLimits:
        """Every capacity times `factor` (at least 1), the other policies' scale `factor`."""
        changes: dict[str, Any] = {
            name: tuple(max(1.0, cap * factor) for cap in self.caps(name)) for name in DISK_POLICIES
        }
        return replace(self, **changes, others_scale=factor)


THROTTLED_MESSAGE = (
    "The server rejected the request because too many requests have been received for this "
    "subscription."
)


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
        if self.arm.shape == "hourly":
            return self._arm_hourly(subscription, principal, family)
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

    def _arm_hourly(self, subscription: str, principal: str, family: str) -> dict[str, str]:
        """The older model: a count per hour, subscription and principal, no global twin."""
        capacity = float(getattr(self.arm, f"hourly_{family}"))
        now = time.monotonic()
        with self._lock:
            bucket = self._bucket(
                ("arm-hourly", subscription, principal, family), capacity, capacity / 3600
            )
            wait = bucket.wait_seconds(now)
            if wait > 0:
                after = self.retry_after(wait)
                # As answered under the hourly model (kubernetes-sigs/azuredisk-csi-driver#773).
                raise ArmError(
                    429,
                    "SubscriptionRequestsThrottled",
                    f"Number of {family[:-1]} requests for subscription '{subscription}' exceeded "
                    f"the limit of '{int(capacity)}' for time interval '01:00:00'. Please try "
                    f"again after '{after}' seconds.",
                    headers={
                        "Retry-After": after,
                        f"x-ms-ratelimit-remaining-subscription-{family}": "0",
                    },
                )
            bucket.take(now)
            return {f"x-ms-ratelimit-remaining-subscription-{family}": str(int(bucket.peek(now)))}

    def allowed_30min(self, policy: str) -> int:
        """The 30-minute capacity of a Compute family, for throttling details (0: unknown)."""
        if policy in _DISK_FIELDS:
            return int(self.compute.caps(_DISK_FIELDS[policy])[1])
        for names, caps in OTHER_POLICIES.values():
            if names[1] == f"{policy}30Min":
                return int(caps[1] * self.compute.others_scale)
        return 0

    def snapshot_family(self, incremental: bool) -> str:
        """The Compute family a snapshot create counts against."""
        return self.compute.incremental_family if incremental else HYDRATE

    def compute_check(self, subscription: str, region: str, kind: str) -> dict[str, str]:
        """Take one Compute policy token or raise 429.

        `kind`: writes (disk and snapshot creates and updates: `CreateUpdateDisks`), hydrate
        (snapshot creates that copy data: `HighCostSnapshotCreateHydrate`), deletes, or one of
        OTHER_POLICIES.
        """
        if not self.enabled:
            return {}
        names: tuple[str, ...]
        caps: tuple[float, ...]
        field_name = _DISK_FIELDS.get(kind, kind)
        if field_name in DISK_POLICIES:
            policy = DISK_POLICIES[field_name]
            names = (f"{policy}3Min", f"{policy}30Min")
            caps = self.compute.caps(field_name)
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
                    raise compute_throttled(
                        [(n, int(b.peek(now))) for n, b in zip(names, buckets, strict=True)],
                        name,
                        int(bucket.capacity),
                        self.retry_after(wait),
                    )
            for bucket in buckets:
                bucket.take(now)
            remaining = ",".join(
                f"Microsoft.Compute/{n};{int(b.peek(now))}"
                for n, b in zip(names, buckets, strict=True)
            )
            return {"x-ms-ratelimit-remaining-resource": remaining}


def compute_throttled(
    remaining: list[tuple[str, int]],
    target: str,
    allowed: int,
    retry_after: str | None,
    start: str = "",
    end: str = "",
) -> ArmError:
    """Compute's own 429, as the Learn page "Troubleshooting API throttling errors" shows it: the
    body is not wrapped in `error`, each policy comes in its own `x-ms-ratelimit-remaining-resource`
    header, and `Retry-After` may be absent (`retry_after=None`)."""
    return ArmError(
        429,
        "OperationNotAllowed",
        THROTTLED_MESSAGE,
        details=[
            {
                "code": "TooManyRequests",
                "target": target,
                "message": json.dumps(
                    {
                        "operationGroup": target,
                        "startTime": start,
                        "endTime": end,
                        "allowedRequestCount": allowed,
                        "measuredRequestCount": allowed + 1,
                    }
                ),
            }
        ],
        inner_error={"internalErrorCode": "TooManyRequestsReceived"},
        headers={} if retry_after is None else {"Retry-After": retry_after},
        repeated_headers=[
            ("x-ms-ratelimit-remaining-resource", f"Microsoft.Compute/{name};{left}")
            for name, left in remaining
        ],
        unwrapped=True,
    )


def policy_for(method: str, path: str) -> str:
    """The Compute policy family a request counts against (for injected throttling)."""
    p = path.lower()
    method = method.upper()
    if "/operations/" in p or "/diskoperations/" in p:
        return "GetOperation"
    if "/virtualmachines/" in p:
        return {"PUT": "PutVM", "DELETE": "DeleteVM", "GET": "LowCostGet"}.get(method, "UpdateVM")
    if method == "DELETE":
        return "DeleteDisks"
    if method in ("PUT", "PATCH"):
        return HYDRATE if method == "PUT" and "/snapshots/" in p else CREATE_UPDATE
    last = p.rstrip("/").rsplit("/", 2)
    listing = len(last) >= 2 and last[-2] == "microsoft.compute"
    return "HighCostGet" if listing else "LowCostGet"
