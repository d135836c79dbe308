"""Snapshot policies: the operator's config, validated, and how a VM is matched to one.

Policies live in a versioned YAML file shipped with the app (`policies.yaml`). VM owners choose
among them with the `lifeboat:policy` tag; they cannot define their own. Every error names the
policy and the field.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from shared.retention import UNLIMITED, Duration, RetentionPolicy, parse_duration

POLICY_TAG = "lifeboat:policy"
DRILL_TAG = "lifeboat:drill"
OPT_OUT = "none"
Night = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
NIGHTS: tuple[Night, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
SUPPORTED_VERSIONS = (1,)


class PolicyError(ValueError):
    """The policy file is invalid; the message names every policy and field at fault."""


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


Count = Annotated[int, Field(ge=UNLIMITED)]


class RetentionSpec(_Strict):
    """restic's `forget` flags without `keep-`: counts (-1 = unlimited) and durations (1y2m3d4h)."""

    last: Count = 0
    hourly: Count = 0
    daily: Count = 0
    weekly: Count = 0
    monthly: Count = 0
    yearly: Count = 0
    within: str | None = None
    within_hourly: str | None = Field(default=None, alias="within-hourly")
    within_daily: str | None = Field(default=None, alias="within-daily")
    within_weekly: str | None = Field(default=None, alias="within-weekly")
    within_monthly: str | None = Field(default=None, alias="within-monthly")
    within_yearly: str | None = Field(default=None, alias="within-yearly")

    @field_validator(
        "within",
        "within_hourly",
        "within_daily",
        "within_weekly",
        "within_monthly",
        "within_yearly",
    )
    @classmethod
    def _duration(cls, value: str | None) -> str | None:
        if value is not None:
            parse_duration(value)
        return value

    def to_policy(self) -> RetentionPolicy:
        def duration(value: str | None) -> Duration | None:
            return parse_duration(value) if value else None

        policy = RetentionPolicy(
            last=self.last,
            hourly=self.hourly,
            daily=self.daily,
            weekly=self.weekly,
            monthly=self.monthly,
            yearly=self.yearly,
            within=duration(self.within),
            within_hourly=duration(self.within_hourly),
            within_daily=duration(self.within_daily),
            within_weekly=duration(self.within_weekly),
            within_monthly=duration(self.within_monthly),
            within_yearly=duration(self.within_yearly),
        )
        if policy.is_empty():
            raise ValueError("keeps nothing: set at least one count or within duration")
        return policy


class DiskSelection(_Strict):
    os: bool = True
    luns: list[Annotated[int, Field(ge=0, le=63)]] | Literal["all"] = "all"

    def includes(self, lun: int | None) -> bool:
        if lun is None:
            return self.os
        return self.luns == "all" or lun in self.luns


class OrphanSpec(_Strict):
    """What happens to Lifeboat's snapshots whose source disk no longer exists."""

    retention: RetentionSpec
    remove_newest: bool = Field(default=False, alias="removeNewest")


class PolicySpec(_Strict):
    description: str = ""
    nights: list[Night] = Field(default_factory=lambda: list(NIGHTS), min_length=1)
    retention: RetentionSpec
    disks: Literal["all", "os"] | DiskSelection = "all"
    orphans: OrphanSpec | None = None
    snapshot_on_create: bool = Field(default=False, alias="snapshotOnCreate")
    rpo_hours: Annotated[float, Field(gt=0)] = Field(default=26, alias="rpoHours")
    adopt_unowned: bool = Field(default=False, alias="adoptUnowned")
    drill_plan: str | None = Field(default=None, alias="drillPlan")
    # Azure Site Recovery: a replicated VM's last successful test failover may be this old.
    test_failover_days: Annotated[int, Field(ge=1, le=3650)] = Field(
        default=180, alias="testFailoverDays"
    )


_SUBNET_ID = (
    r"^/subscriptions/[0-9a-fA-F-]{36}/resourceGroups/[-\w.()]+/providers/"
    r"Microsoft\.Network/virtualNetworks/[-\w.]+/subnets/[-\w.]+$"
)


class DrillNetworkSpec(_Strict):
    """An operator-provided isolated subnet; without one, each drill gets a network of its own."""

    subnet_id: str = Field(alias="subnetId", pattern=_SUBNET_ID)


class RecoveryPointSpec(_Strict):
    """A recovery-point drill: which Azure Backup point of the VM it restores (issue 20)."""

    choose: Literal["latest", "random"] = "latest"
    window_days: Annotated[int, Field(ge=1, le=3650)] = Field(default=30, alias="windowDays")
    app_consistent_only: bool = Field(default=False, alias="appConsistentOnly")
    tier: Literal["snapshot", "vault"] | None = None
    restore_timeout_minutes: Annotated[float, Field(gt=0, le=72 * 60)] = Field(
        default=120, alias="restoreTimeoutMinutes"
    )
    rpo_target_hours: Annotated[float, Field(gt=0, le=24 * 3650)] | None = Field(
        default=None, alias="rpoTargetHours"
    )


class DrillPlanSpec(_Strict):
    description: str = ""
    # What the plan's drills restore from: Lifeboat's snapshot sets (default) or Azure Backup.
    source: Literal["snapshots", "recovery-point"] = "snapshots"
    recovery_point: RecoveryPointSpec | None = Field(default=None, alias="recoveryPoint")
    every_days: Annotated[int, Field(ge=1, le=366)] = Field(default=7, alias="everyDays")
    rto_target_minutes: Annotated[float, Field(gt=0, le=7 * 24 * 60)] = Field(
        default=60, alias="rtoTargetMinutes"
    )
    max_lifetime_hours: Annotated[float, Field(gt=0, le=72)] = Field(
        default=4, alias="maxLifetimeHours"
    )
    boot_timeout_minutes: Annotated[float, Field(gt=0, le=24 * 60)] = Field(
        default=20, alias="bootTimeoutMinutes"
    )
    network: DrillNetworkSpec | None = None
    vm_size: str | None = Field(default=None, alias="vmSize", pattern=r"^[A-Za-z0-9_-]{1,64}$")


_NAME = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9-]{0,62}$")]


class SiteRecoverySpec(_Strict):
    """How verification judges replicated VMs beyond each policy's test-failover period."""

    agent_expiry_days: Annotated[int, Field(ge=1, le=365)] = Field(
        default=30, alias="agentExpiryDays"
    )
    test_failover_max_hours: Annotated[float, Field(gt=0, le=24 * 30)] = Field(
        default=8, alias="testFailoverMaxHours"
    )


class PolicyFile(_Strict):
    version: int
    default_policy: str | None = Field(default=None, alias="defaultPolicy")
    policies: dict[_NAME, PolicySpec]
    drill_plans: dict[_NAME, DrillPlanSpec] = Field(default_factory=dict, alias="drillPlans")
    site_recovery: SiteRecoverySpec = Field(default_factory=SiteRecoverySpec, alias="siteRecovery")

    @field_validator("version")
    @classmethod
    def _known_version(cls, value: int) -> int:
        if value not in SUPPORTED_VERSIONS:
            raise ValueError(f"unsupported version {value} (supported: {SUPPORTED_VERSIONS})")
        return value


@dataclass(frozen=True, slots=True)
class Policy:
    """A validated policy, ready for the planner."""

    name: str
    nights: frozenset[int]  # weekday numbers, Monday = 0
    retention: RetentionPolicy
    disks: DiskSelection
    orphan_retention: RetentionPolicy | None
    orphan_remove_newest: bool
    snapshot_on_create: bool
    rpo_hours: float
    adopt_unowned: bool
    drill_plan: str | None = None
    test_failover_days: int = 180  # Azure Site Recovery: the longest time between test failovers


@dataclass(frozen=True, slots=True)
class SiteRecoveryOptions:
    """Verification of replicated VMs: an agent expiring within `agent_expiry_days` is a
    finding, and so is a test failover not cleaned up after `test_failover_max_hours`."""

    agent_expiry_days: int = 30
    test_failover_max_hours: float = 8


@dataclass(frozen=True, slots=True)
class DrillPlan:
    """A validated drill plan: how often, how fast, how long drill resources may live, where."""

    name: str
    every_days: int
    rto_target_seconds: int
    max_lifetime_seconds: int
    boot_timeout_seconds: int
    subnet_id: str | None = None
    vm_size: str | None = None
    source: str = "snapshots"  # or "recovery-point"
    recovery_point: RecoveryPointSpec | None = None  # how a recovery-point drill chooses


@dataclass(frozen=True, slots=True)
class PolicySet:
    policies: Mapping[str, Policy]
    default: str | None
    drill_plans: Mapping[str, DrillPlan] = field(default_factory=dict)
    site_recovery: SiteRecoveryOptions = field(default_factory=SiteRecoveryOptions)

    def drill_plan_for(self, tags: Mapping[str, str]) -> tuple[DrillPlan | None, str]:
        """The drill plan a VM is in: its `lifeboat:drill` tag, else its policy's plan."""
        chosen = _tag(tags, DRILL_TAG)
        if chosen is not None:
            name = policy_name(chosen)
            if name == OPT_OUT:
                return None, "opted out of drills (lifeboat:drill=none)"
            plan = self.drill_plans.get(name)
            if plan is None:
                return None, f"lifeboat:drill names unknown drill plan {chosen!r}"
            return plan, f"tagged lifeboat:drill={name}"
        policy, why = self.for_tags(tags)
        if policy is None:
            return None, why
        if policy.drill_plan is None:
            return None, f"policy {policy.name!r} has no drill plan"
        return self.drill_plans[policy.drill_plan], f"policy {policy.name!r}"

    def for_tags(self, tags: Mapping[str, str]) -> tuple[Policy | None, str]:
        """The policy a VM's tags select, or None with the reason it has none."""
        mistake = self.tag_mistake(tags)
        if mistake is not None:
            return None, mistake.reason
        chosen = _tag(tags, POLICY_TAG)
        if chosen is None:
            if self.default is None:
                return None, "no lifeboat:policy tag and no default policy"
            return self.policies[self.default], f"default policy {self.default!r}"
        name = policy_name(chosen)
        if name == OPT_OUT:
            return None, "opted out (lifeboat:policy=none)"
        return self.policies[name], f"tagged lifeboat:policy={name}"

    def tag_mistake(self, tags: Mapping[str, str]) -> TagMistake | None:
        """A tag that shows what its owner meant but does not say it: a policy tag key within
        two edits of `lifeboat:policy` (and no exact one), or a policy name that is not defined.

        Such a VM is not given the default policy: its owner chose something, and Lifeboat does
        not guess what (the row says what to fix).
        """
        chosen = _tag(tags, POLICY_TAG)
        if chosen is None:
            for key in sorted(tags):
                if 0 < edit_distance(normal_key(key), POLICY_TAG) <= MAX_TAG_EDITS:
                    return TagMistake(TAG_TYPO, f'tag "{key.strip()}" looks like "{POLICY_TAG}"')
            return None
        name = policy_name(chosen)
        if name == OPT_OUT or name in self.policies:
            return None
        known = ", ".join(sorted(self.policies))
        return TagMistake(UNKNOWN_POLICY, f"unknown policy {name or '(empty)'}; known: {known}")


# Kinds of tag mistakes: stable words for `Details.skip` of the rows (digests group by them).
TAG_TYPO = "tag-typo"
UNKNOWN_POLICY = "unknown-policy"
MAX_TAG_EDITS = 2


@dataclass(frozen=True, slots=True)
class TagMistake:
    kind: str  # TAG_TYPO or UNKNOWN_POLICY
    reason: str


def normal_key(key: str) -> str:
    """How Lifeboat compares tag keys: trimmed, any casing (ARM keys are case-insensitive)."""
    return key.strip().lower()


def policy_name(value: str) -> str:
    """How Lifeboat reads a policy (or drill plan) name from a tag value: trimmed, any casing."""
    return value.strip().lower()


def edit_distance(a: str, b: str) -> int:
    """Damerau-Levenshtein distance (optimal string alignment): a swap of two neighbours is one
    edit, so `lifebaot:policy` is one edit from `lifeboat:policy`."""
    previous2: list[int] = []
    previous = list(range(len(b) + 1))
    for i in range(1, len(a) + 1):
        current = [i] + [0] * len(b)
        for j in range(1, len(b) + 1):
            cost = a[i - 1] != b[j - 1]
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + cost)
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                current[j] = min(current[j], previous2[j - 2] + 1)
        previous2, previous = previous, current
    return previous[-1]


def _tag(tags: Mapping[str, str], key: str) -> str | None:
    """Tag keys are case-insensitive in ARM; Lifeboat also ignores spaces around them."""
    for k, v in tags.items():
        if normal_key(k) == key:
            return v
    return None


def has_tag(tags: Mapping[str, str], key: str) -> bool:
    return _tag(tags, key) is not None


def tag_value(tags: Mapping[str, str], key: str) -> str | None:
    return _tag(tags, key)


def load_policies(path: Path) -> PolicySet:
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise PolicyError(f"cannot read policy file {path}: {e}") from e
    except yaml.YAMLError as e:
        raise PolicyError(f"{path}: not valid YAML: {e}") from e
    return parse_policies(document, source=str(path))


def parse_policies(document: Any, *, source: str = "policies") -> PolicySet:
    if not isinstance(document, dict):
        raise PolicyError(f"{source}: expected a mapping with version and policies")
    try:
        parsed = PolicyFile.model_validate(document)
    except ValidationError as e:
        raise PolicyError(f"{source}: " + "; ".join(_describe(e))) from None
    problems: list[str] = []
    policies: dict[str, Policy] = {}
    for name, spec in parsed.policies.items():
        try:
            policies[name] = _build(name, spec)
        except ValueError as e:
            problems.append(str(e))
    if parsed.default_policy is not None and parsed.default_policy not in parsed.policies:
        problems.append(f"defaultPolicy: {parsed.default_policy!r} is not a defined policy")
    for name, spec in parsed.policies.items():
        if spec.drill_plan is not None and spec.drill_plan not in parsed.drill_plans:
            problems.append(f"policy {name!r}: drillPlan {spec.drill_plan!r} is not a drill plan")
    for name, plan in parsed.drill_plans.items():
        if plan.boot_timeout_minutes * 60 >= plan.max_lifetime_hours * 3600:
            problems.append(
                f"drill plan {name!r}: bootTimeoutMinutes must be shorter than maxLifetimeHours "
                "(teardown needs time before the resources expire)"
            )
        point = plan.recovery_point
        if (
            point is not None
            and point.restore_timeout_minutes * 60 >= plan.max_lifetime_hours * 3600
        ):
            problems.append(
                f"drill plan {name!r}: recoveryPoint.restoreTimeoutMinutes must be shorter than "
                "maxLifetimeHours (the VM is made after the restore)"
            )
    if problems:
        raise PolicyError(f"{source}: " + "; ".join(problems))
    plans = {name: _build_plan(name, spec) for name, spec in parsed.drill_plans.items()}
    site_recovery = SiteRecoveryOptions(
        agent_expiry_days=parsed.site_recovery.agent_expiry_days,
        test_failover_max_hours=parsed.site_recovery.test_failover_max_hours,
    )
    return PolicySet(
        policies=policies,
        default=parsed.default_policy,
        drill_plans=plans,
        site_recovery=site_recovery,
    )


def _build_plan(name: str, spec: DrillPlanSpec) -> DrillPlan:
    return DrillPlan(
        name=name,
        every_days=spec.every_days,
        rto_target_seconds=round(spec.rto_target_minutes * 60),
        max_lifetime_seconds=round(spec.max_lifetime_hours * 3600),
        boot_timeout_seconds=round(spec.boot_timeout_minutes * 60),
        subnet_id=spec.network.subnet_id if spec.network else None,
        vm_size=spec.vm_size,
        source=spec.source,
        recovery_point=spec.recovery_point or RecoveryPointSpec()
        if spec.source == "recovery-point"
        else spec.recovery_point,
    )


def _build(name: str, spec: PolicySpec) -> Policy:
    try:
        retention = spec.retention.to_policy()
    except ValueError as e:
        raise ValueError(f"policy {name!r}: retention {e}") from None
    orphan_retention = None
    if spec.orphans is not None:
        try:
            orphan_retention = spec.orphans.retention.to_policy()
        except ValueError as e:
            raise ValueError(f"policy {name!r}: orphans.retention {e}") from None
    disks = spec.disks
    if disks == "all":
        selection = DiskSelection()
    elif disks == "os":
        selection = DiskSelection(os=True, luns=[])
    else:
        selection = disks
    return Policy(
        name=name,
        nights=frozenset(NIGHTS.index(n) for n in spec.nights),
        retention=retention,
        disks=selection,
        orphan_retention=orphan_retention,
        orphan_remove_newest=spec.orphans.remove_newest if spec.orphans else False,
        snapshot_on_create=spec.snapshot_on_create,
        rpo_hours=spec.rpo_hours,
        adopt_unowned=spec.adopt_unowned,
        drill_plan=spec.drill_plan,
        test_failover_days=spec.test_failover_days,
    )


def _describe(error: ValidationError) -> list[str]:
    problems = []
    for item in error.errors():
        loc = [str(p) for p in item["loc"]]
        if len(loc) >= 2 and loc[0] == "policies":
            where = f"policy {loc[1]!r}: " + (".".join(loc[2:]) or "(policy)")
        elif len(loc) >= 2 and loc[0] == "drillPlans":
            where = f"drill plan {loc[1]!r}: " + (".".join(loc[2:]) or "(plan)")
        else:
            where = ".".join(loc) or "(file)"
        problems.append(f"{where}: {str(item['msg']).removeprefix('Value error, ')}")
    return problems
