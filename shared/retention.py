"""Grandfather-father-son retention with restic's `forget` semantics (restic 0.17 and later).

Pure: snapshot times and a policy in, which snapshots to keep (each with its reasons) and which
to remove out. No clock, no environment, no Azure.

How a policy is applied, newest snapshot first (equal times keep their input order):

- `last`, `hourly`, `daily`, `weekly`, `monthly`, `yearly` are counts (-1 = unlimited). Each
  calendar rule keeps the newest snapshot of each hour / day / ISO 8601 week / month / year that
  has one, until its count is used up; `last` keeps the newest `n` snapshots. Calendar
  boundaries are UTC.
- `within` keeps every snapshot strictly newer than the newest snapshot minus the duration;
  `within_hourly` ... `within_yearly` keep the newest snapshot of each hour ... year inside that
  window, with no count.
- The oldest snapshot is also kept by every count rule that still has count left when it is
  reached and by every within-bucket rule whose window contains it, even when a newer snapshot
  already represents its bucket (reason `oldest daily snapshot`, `oldest daily within 3m10d`).
  This keeps the longest history while a rule still has room.
- A duration `1y2m3d4h` is measured back with Go's `time.AddDate` normalisation (31 March minus
  one month is 3 March, not the last day of February), then the hours as exact hours.

An empty policy is refused: it would remove every snapshot.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from datetime import UTC, date, datetime, timedelta
from typing import NamedTuple

UNLIMITED = -1
"""A count that keeps every bucket (restic's `unlimited`)."""


class EmptyPolicyError(ValueError):
    """The policy keeps nothing by any rule; applying it would remove every snapshot."""


@dataclass(frozen=True, slots=True)
class Duration:
    """restic's calendar duration: years, months and days move the calendar, hours are exact."""

    years: int = 0
    months: int = 0
    days: int = 0
    hours: int = 0

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"duration {f.name} must be a non-negative integer, got {value!r}")

    def is_zero(self) -> bool:
        return not (self.years or self.months or self.days or self.hours)

    def __str__(self) -> str:
        # restic's form: units in y, m, d, h order, zero parts left out ("1y1d1m" prints "1y1m1d").
        parts = zip((self.years, self.months, self.days, self.hours), "ymdh", strict=True)
        return "".join(f"{value}{unit}" for value, unit in parts if value)

    def before(self, t: datetime) -> datetime | None:
        """`t` minus this duration the way Go's `t.AddDate(-y, -m, -d).Add(-h hours)` computes it.

        None when the result lies before year 1, i.e. before any time that can be given.
        """
        month0 = t.month - 1 - self.months
        year = t.year - self.years + month0 // 12
        if year < 1:
            return None
        # Go normalises an out-of-range day by counting on from the first of the month.
        ordinal = date(year, month0 % 12 + 1, 1).toordinal() + t.day - 1 - self.days
        if ordinal < 1:
            return None
        day = date.fromordinal(ordinal)
        shifted = t.replace(year=day.year, month=day.month, day=day.day)
        try:
            return shifted - timedelta(hours=self.hours)
        except OverflowError:
            return None


_DURATION_PART = re.compile(r"([0-9]+)(\D?)", re.ASCII)


def parse_duration(text: str) -> Duration:
    """Parse restic's duration form `1y2m3d4h`: any of the units y, m, d, h, each at most once.

    Units may come in any order, as in restic. Unlike restic, negative numbers (which restic's
    `forget` refuses anyway), repeated units and the empty string are errors.
    """
    s = text.strip()
    if not s:
        raise ValueError("empty duration; expected a form like 1y2m3d4h")
    values: dict[str, int] = {}
    pos = 0
    while pos < len(s):
        match = _DURATION_PART.match(s, pos)
        if match is None and s.startswith("-", pos):
            raise ValueError(f"invalid duration {text!r}: negative values are not allowed")
        if match is None:
            raise ValueError(
                f"invalid duration {text!r}: expected a number at {s[pos:]!r} "
                "(form: 1y2m3d4h, units y, m, d, h)"
            )
        number, unit = match.groups()
        if not unit:
            raise ValueError(f"invalid duration {text!r}: no unit after number {number}")
        if unit not in "ymdh":
            raise ValueError(
                f"invalid duration {text!r}: unknown unit {unit!r} after number {number} "
                "(units are y, m, d, h)"
            )
        if unit in values:
            raise ValueError(f"invalid duration {text!r}: unit {unit!r} given twice")
        values[unit] = int(number)
        pos = match.end()
    return Duration(
        years=values.get("y", 0),
        months=values.get("m", 0),
        days=values.get("d", 0),
        hours=values.get("h", 0),
    )


_COUNT_FIELDS = ("last", "hourly", "daily", "weekly", "monthly", "yearly")
_WITHIN_FIELDS = (
    "within",
    "within_hourly",
    "within_daily",
    "within_weekly",
    "within_monthly",
    "within_yearly",
)


@dataclass(frozen=True, slots=True)
class RetentionPolicy:
    """Counts (0 = rule off, -1 = unlimited) and within durations (None or zero = rule off)."""

    last: int = 0
    hourly: int = 0
    daily: int = 0
    weekly: int = 0
    monthly: int = 0
    yearly: int = 0
    within: Duration | None = None
    within_hourly: Duration | None = None
    within_daily: Duration | None = None
    within_weekly: Duration | None = None
    within_monthly: Duration | None = None
    within_yearly: Duration | None = None

    def __post_init__(self) -> None:
        for name in _COUNT_FIELDS:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < UNLIMITED:
                raise ValueError(f"{name} must be a count >= 0, or -1 for unlimited; got {value!r}")
        for name in _WITHIN_FIELDS:
            value = getattr(self, name)
            if value is not None and not isinstance(value, Duration):
                raise ValueError(f"{name} must be a Duration or None, got {value!r}")

    def is_empty(self) -> bool:
        """True when no rule is set: restic refuses to apply such a policy, and so do we."""
        if any(getattr(self, name) for name in _COUNT_FIELDS):
            return False
        durations: list[Duration | None] = [getattr(self, name) for name in _WITHIN_FIELDS]
        return all(d is None or d.is_zero() for d in durations)

    def describe(self) -> str:
        """One line for logs: `keep 7 daily, all monthly snapshots; keep weekly snapshots within 1m
        of the newest`."""
        counts = [
            f"{'all' if value == UNLIMITED else value} {name}"
            for name in _COUNT_FIELDS
            if (value := getattr(self, name))
        ]
        parts = [f"keep {', '.join(counts)} snapshots"] if counts else []
        for name in _WITHIN_FIELDS:
            value = getattr(self, name)
            if value is None or value.is_zero():
                continue
            kind = name.removeprefix("within").removeprefix("_")
            what = f"{kind} snapshots" if kind else "all snapshots"
            parts.append(f"keep {what} within {value} of the newest")
        return "; ".join(parts) if parts else "empty policy (nothing to keep by)"


@dataclass(frozen=True, slots=True)
class KeptSnapshot:
    """A snapshot the policy keeps: its position in the input, its time in UTC, and why."""

    index: int
    time: datetime
    reasons: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class RemovedSnapshot:
    """A snapshot the policy removes: its position in the input and its time in UTC."""

    index: int
    time: datetime


@dataclass(frozen=True, slots=True)
class RetentionPlan:
    """Keep and remove partition the input; both are newest first, ties in input order."""

    keep: tuple[KeptSnapshot, ...]
    remove: tuple[RemovedSnapshot, ...]


# Bucket keys. Only equality between consecutive snapshots matters, so any key that is equal
# exactly when restic's is will do: restic's YYYYMMDDHH, YYYYMMDD, ISO year*100+week, YYYYMM and
# YYYY. An ISO 8601 week runs Monday to Sunday, so the ordinal of its Monday names it.
def _hour_key(t: datetime) -> int:
    return t.toordinal() * 24 + t.hour


def _day_key(t: datetime) -> int:
    return t.toordinal()


def _iso_week_key(t: datetime) -> int:
    return t.toordinal() - t.weekday()


def _month_key(t: datetime) -> int:
    return t.year * 12 + t.month


def _year_key(t: datetime) -> int:
    return t.year


_Key = Callable[[datetime], int]
_BUCKETS: tuple[tuple[str, _Key], ...] = (
    ("hourly", _hour_key),
    ("daily", _day_key),
    ("weekly", _iso_week_key),
    ("monthly", _month_key),
    ("yearly", _year_key),
)


class _CountRule(NamedTuple):
    limit: int
    key: _Key
    reason: str
    oldest_reason: str


class _WithinRule(NamedTuple):
    duration: Duration
    key: _Key
    reason: str
    oldest_reason: str


class _Rules(NamedTuple):
    last: int
    counts: tuple[_CountRule, ...]
    within: Duration | None
    within_reason: str
    within_buckets: tuple[_WithinRule, ...]


@functools.lru_cache(maxsize=256)
def _compile(policy: RetentionPolicy) -> _Rules:
    counts: list[_CountRule] = []
    within_buckets: list[_WithinRule] = []
    for kind, key in _BUCKETS:
        count: int = getattr(policy, kind)
        if count:
            reason = f"{kind} snapshot"
            counts.append(_CountRule(count, key, reason, f"oldest {reason}"))
        duration: Duration | None = getattr(policy, f"within_{kind}")
        if duration is not None and not duration.is_zero():
            reason = f"{kind} within {duration}"
            within_buckets.append(_WithinRule(duration, key, reason, f"oldest {reason}"))
    within = policy.within if policy.within is not None and not policy.within.is_zero() else None
    return _Rules(
        last=policy.last,
        counts=tuple(counts),
        within=within,
        within_reason=f"within {within}" if within is not None else "",
        within_buckets=tuple(within_buckets),
    )


def _to_utc(t: datetime, index: int) -> datetime:
    if not isinstance(t, datetime) or t.utcoffset() is None:
        raise ValueError(f"snapshot time #{index} must be a timezone-aware datetime, got {t!r}")
    return t if t.tzinfo is UTC else t.astimezone(UTC)


def plan_retention(
    times: Sequence[datetime], policy: RetentionPolicy, *, now: datetime | None = None
) -> RetentionPlan:
    """Decide which of `times` to keep and which to remove under `policy`.

    `times` are aware datetimes in any order; equal times are distinct snapshots and keep their
    input order (the earlier one counts as newer). Results name snapshots by their index in
    `times`. Within windows are measured back from the newest time; given `now`, times at or
    after `now` are not taken as the newest, as restic ignores snapshots from the future (they
    are still kept by the within rules, being newer than any window's start).

    Raises EmptyPolicyError for a policy with no rule, ValueError for a time that is not an
    aware datetime.
    """
    if policy.is_empty():
        raise EmptyPolicyError(
            "no retention policy was given (every count is 0 and no within duration is set); "
            "refusing to remove every snapshot"
        )
    rules = _compile(policy)
    utc = [_to_utc(t, i) for i, t in enumerate(times)]
    # Newest first; sorted() keeps equal keys in input order even with reverse=True.
    order = sorted(range(len(utc)), key=utc.__getitem__, reverse=True)
    if not order:
        return RetentionPlan(keep=(), remove=())

    if now is None:
        newest: datetime | None = utc[order[0]]
    else:
        if now.utcoffset() is None:
            raise ValueError(f"now must be a timezone-aware datetime, got {now!r}")
        now_utc = now.astimezone(UTC)
        newest = next((utc[i] for i in order if utc[i] < now_utc), None)

    # None as a start means the window reaches before any time: everything is inside it.
    def window_start(duration: Duration) -> datetime | None:
        return None if newest is None else duration.before(newest)

    within_start = window_start(rules.within) if rules.within is not None else None
    last_left = rules.last
    count_left = [rule.limit for rule in rules.counts]
    count_seen: list[int | None] = [None] * len(rules.counts)
    within_starts = [window_start(rule.duration) for rule in rules.within_buckets]
    within_seen: list[int | None] = [None] * len(rules.within_buckets)

    keep: list[KeptSnapshot] = []
    remove: list[RemovedSnapshot] = []
    oldest = len(order) - 1
    for position, index in enumerate(order):
        t = utc[index]
        reasons: list[str] = []
        if rules.within is not None and (within_start is None or t > within_start):
            reasons.append(rules.within_reason)
        if last_left:
            # Every snapshot is a bucket of its own for `last`, so there is no "oldest last".
            reasons.append("last snapshot")
            if last_left > 0:
                last_left -= 1
        for r, rule in enumerate(rules.counts):
            if not count_left[r]:
                continue
            key = rule.key(t)
            if key != count_seen[r]:
                reasons.append(rule.reason)
            elif position == oldest:
                reasons.append(rule.oldest_reason)
            else:
                continue
            count_seen[r] = key
            if count_left[r] > 0:
                count_left[r] -= 1
        for r, wrule in enumerate(rules.within_buckets):
            start = within_starts[r]
            if start is not None and not t > start:
                continue
            key = wrule.key(t)
            if key != within_seen[r]:
                reasons.append(wrule.reason)
                within_seen[r] = key
            elif position == oldest:
                reasons.append(wrule.oldest_reason)
        if reasons:
            keep.append(KeptSnapshot(index, t, tuple(reasons)))
        else:
            remove.append(RemovedSnapshot(index, t))
    return RetentionPlan(keep=tuple(keep), remove=tuple(remove))
