"""Retention with restic's `forget` semantics: literal cases, then properties.

Literal expectations come from restic's documentation (doc/060_forget.rst) and its golden files
(internal/data/testdata/policy_keep_snapshots_N for the policies in snapshot_policy_test.go),
and from working restic's rules by hand for the edge cases it has no golden file for.
"""

from __future__ import annotations

import random
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta, timezone

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.retention import (
    UNLIMITED,
    Duration,
    EmptyPolicyError,
    RetentionPlan,
    RetentionPolicy,
    parse_duration,
    plan_retention,
)


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def kept(plan: RetentionPlan) -> list[tuple[str, list[str]]]:
    return [(k.time.strftime("%Y-%m-%d %H:%M:%S"), list(k.reasons)) for k in plan.keep]


def plan_of(texts: list[str], policy: RetentionPolicy) -> RetentionPlan:
    return plan_retention([utc(t) for t in texts], policy)


def kept_for(reason: str, *times: str) -> list[tuple[str, list[str]]]:
    """What `kept` gives when every snapshot at `times` is kept for the one `reason`."""
    return [(t, [reason]) for t in times]


# --- restic's own test set and golden results -------------------------------------------------

# The snapshot times of restic's TestApplyPolicy, in its (unsorted) order, equal times included.
RESTIC_TIMES = [
    *(
        f"2014-09-{d} 10:20:30"
        for d in ("01", "02", "05", "06", "08", "09", "10", "11", "20", "22")
    ),
    *(f"2014-08-{d} 10:20:30" for d in ("08", "10", "12", "13")),
    "2014-08-13 10:20:30.100000",
    *(f"2014-08-{d} 10:20:30" for d in ("15", "18", "20", "21", "22")),
    *(
        f"2014-10-{d} 10:20:30"
        for d in ("01", "02", "05", "06", "08", "09", "10", "11", "20", "22")
    ),
    *(f"2014-11-{d} 10:20:30" for d in ("08", "10", "12", "13")),
    "2014-11-13 10:20:30.100000",
    *(f"2014-11-{d} 10:20:30" for d in ("15", "18", "20", "21", "22")),
    *(
        f"2015-09-{d} 10:20:30"
        for d in ("01", "02", "05", "06", "08", "09", "10", "11", "20", "22")
    ),
    *(f"2015-08-{d} 10:20:30" for d in ("08", "10", "12", "13")),
    "2015-08-13 10:20:30.100000",
    *(f"2015-08-{d} 10:20:30" for d in ("15", "18", "20", "21", "22")),
    *(f"2015-10-{d} 10:20:30" for d in ("01", "02", "05", "06", "08", "09", "10", "11", "20")),
    *(["2015-10-22 10:20:30"] * 5),
    *(f"2015-11-{d} 10:20:30" for d in ("08", "10", "12", "13")),
    "2015-11-13 10:20:30.100000",
    *(f"2015-11-{d} 10:20:30" for d in ("15", "18", "20", "21", "22")),
    "2016-01-01 01:02:03",
    "2016-01-01 01:03:03",
    "2016-01-01 07:08:03",
    "2016-01-03 07:02:03",
    *(f"2016-01-04 {hm}:03" for hm in ("10:23", "11:23", "12:23", "12:24", "12:28", "12:30")),
    "2016-01-04 16:23:03",
    "2016-01-05 09:02:03",
    "2016-01-06 08:02:03",
    "2016-01-07 10:02:03",
    "2016-01-08 20:02:03",
    "2016-01-09 21:02:03",
    "2016-01-12 21:02:03",
    "2016-01-12 21:08:03",
    "2016-01-18 12:02:03",
]

MONTHLY_WITHIN = "monthly within 1y2m3d3h"
WEEKLY_WITHIN = "weekly within 1y2m3d3h"

RESTIC_GOLDEN = [
    pytest.param(
        RetentionPolicy(daily=2, weekly=2, monthly=6),
        [
            ("2016-01-18 12:02:03", ["daily snapshot", "weekly snapshot", "monthly snapshot"]),
            ("2016-01-12 21:08:03", ["daily snapshot", "weekly snapshot"]),
            ("2015-11-22 10:20:30", ["monthly snapshot"]),
            ("2015-10-22 10:20:30", ["monthly snapshot"]),
            ("2015-09-22 10:20:30", ["monthly snapshot"]),
            ("2015-08-22 10:20:30", ["monthly snapshot"]),
            ("2014-11-22 10:20:30", ["monthly snapshot"]),
        ],
        id="15-daily2-weekly2-monthly6",
    ),
    pytest.param(
        RetentionPolicy(yearly=10),
        [
            ("2016-01-18 12:02:03", ["yearly snapshot"]),
            ("2015-11-22 10:20:30", ["yearly snapshot"]),
            ("2014-11-22 10:20:30", ["yearly snapshot"]),
            ("2014-08-08 10:20:30", ["oldest yearly snapshot"]),
        ],
        id="16-yearly10-keeps-oldest",
    ),
    pytest.param(
        RetentionPolicy(within=Duration(days=13, hours=23)),
        kept_for(
            "within 13d23h",
            "2016-01-18 12:02:03",
            "2016-01-12 21:08:03",
            "2016-01-12 21:02:03",
            "2016-01-09 21:02:03",
            "2016-01-08 20:02:03",
            "2016-01-07 10:02:03",
            "2016-01-06 08:02:03",
            "2016-01-05 09:02:03",
            "2016-01-04 16:23:03",
        ),
        id="27-within-13d23h",
    ),
    pytest.param(
        RetentionPolicy(within_weekly=Duration(years=1, months=2, days=3, hours=3)),
        kept_for(
            WEEKLY_WITHIN,
            "2016-01-18 12:02:03",
            "2016-01-12 21:08:03",
            "2016-01-09 21:02:03",
            "2016-01-03 07:02:03",
            "2015-11-22 10:20:30",
            "2015-11-15 10:20:30",
            "2015-11-08 10:20:30",
            "2015-10-22 10:20:30",
            "2015-10-11 10:20:30",
            "2015-10-02 10:20:30",
            "2015-09-22 10:20:30",
            "2015-09-20 10:20:30",
            "2015-09-11 10:20:30",
            "2015-09-06 10:20:30",
            "2015-08-22 10:20:30",
            "2015-08-15 10:20:30",
            "2015-08-08 10:20:30",
            "2014-11-22 10:20:30",
            "2014-11-15 10:20:30",
        ),
        id="32-within-weekly",
    ),
    pytest.param(
        RetentionPolicy(within_monthly=Duration(years=1, months=2, days=3, hours=3)),
        kept_for(
            MONTHLY_WITHIN,
            "2016-01-18 12:02:03",
            "2015-11-22 10:20:30",
            "2015-10-22 10:20:30",
            "2015-09-22 10:20:30",
            "2015-08-22 10:20:30",
            "2014-11-22 10:20:30",
        ),
        id="33-within-monthly",
    ),
    pytest.param(
        RetentionPolicy(daily=3, weekly=2, monthly=UNLIMITED, yearly=UNLIMITED),
        [
            (
                "2016-01-18 12:02:03",
                ["daily snapshot", "weekly snapshot", "monthly snapshot", "yearly snapshot"],
            ),
            ("2016-01-12 21:08:03", ["daily snapshot", "weekly snapshot"]),
            ("2016-01-09 21:02:03", ["daily snapshot"]),
            ("2015-11-22 10:20:30", ["monthly snapshot", "yearly snapshot"]),
            ("2015-10-22 10:20:30", ["monthly snapshot"]),
            ("2015-09-22 10:20:30", ["monthly snapshot"]),
            ("2015-08-22 10:20:30", ["monthly snapshot"]),
            ("2014-11-22 10:20:30", ["monthly snapshot", "yearly snapshot"]),
            ("2014-10-22 10:20:30", ["monthly snapshot"]),
            ("2014-09-22 10:20:30", ["monthly snapshot"]),
            ("2014-08-22 10:20:30", ["monthly snapshot"]),
            ("2014-08-08 10:20:30", ["oldest monthly snapshot", "oldest yearly snapshot"]),
        ],
        id="39-unlimited-monthly-yearly-keeps-oldest",
    ),
]


@pytest.mark.parametrize(("policy", "expected"), RESTIC_GOLDEN)
def test_matches_restic_golden_results(
    policy: RetentionPolicy, expected: list[tuple[str, list[str]]]
) -> None:
    plan = plan_of(RESTIC_TIMES, policy)

    assert kept(plan) == expected
    assert len(plan.keep) + len(plan.remove) == len(RESTIC_TIMES)


def test_equal_times_keep_input_order_like_restics_stable_sort() -> None:
    # Five snapshots share 2015-10-22 10:20:30; restic keeps the first of them in input order.
    plan = plan_of(RESTIC_TIMES, RetentionPolicy(monthly=6))
    equal = [i for i, t in enumerate(RESTIC_TIMES) if t == "2015-10-22 10:20:30"]

    kept_equal = [k.index for k in plan.keep if k.index in equal]
    assert kept_equal == [equal[0]]
    removed_equal = [r.index for r in plan.remove if r.index in equal]
    assert removed_equal == equal[1:]


def test_restic_documentation_example_keep_daily_4() -> None:
    # doc/060_forget.rst: one backup every Sunday for 12 weeks, `forget --keep-daily 4`.
    sundays = [date(2019, 9, 1) + timedelta(weeks=w) for w in range(12)]
    plan = plan_of([f"{d} 11:00:00" for d in sundays], RetentionPolicy(daily=4))

    assert kept(plan) == [(f"{d} 11:00:00", ["daily snapshot"]) for d in reversed(sundays[-4:])]
    assert [r.time.date() for r in plan.remove] == list(reversed(sundays[:-4]))


# --- the oldest rule --------------------------------------------------------------------------


def test_oldest_is_kept_by_a_count_rule_with_room_left() -> None:
    plan = plan_of(
        ["2024-06-02 10:00:00", "2024-06-01 12:00:00", "2024-06-01 08:00:00"],
        RetentionPolicy(daily=5),
    )

    assert kept(plan) == [
        ("2024-06-02 10:00:00", ["daily snapshot"]),
        ("2024-06-01 12:00:00", ["daily snapshot"]),
        ("2024-06-01 08:00:00", ["oldest daily snapshot"]),
    ]


def test_oldest_is_not_kept_once_the_count_is_used_up() -> None:
    plan = plan_of(
        ["2024-06-02 10:00:00", "2024-06-01 12:00:00", "2024-06-01 08:00:00"],
        RetentionPolicy(daily=2),
    )

    assert [k.index for k in plan.keep] == [0, 1]
    assert [r.index for r in plan.remove] == [2]


def test_oldest_in_a_bucket_of_its_own_gets_the_plain_reason() -> None:
    plan = plan_of(["2024-06-02 10:00:00", "2024-06-01 08:00:00"], RetentionPolicy(daily=5))

    assert kept(plan)[-1] == ("2024-06-01 08:00:00", ["daily snapshot"])


def test_oldest_is_kept_by_each_rule_with_room_and_only_those() -> None:
    # daily 1 is used up by the newest; weekly 3 still has room when the oldest is reached.
    plan = plan_of(
        ["2024-06-05 10:00:00", "2024-06-04 10:00:00", "2024-06-03 10:00:00"],
        RetentionPolicy(daily=1, weekly=3),
    )

    assert kept(plan) == [
        ("2024-06-05 10:00:00", ["daily snapshot", "weekly snapshot"]),
        ("2024-06-03 10:00:00", ["oldest weekly snapshot"]),
    ]


def test_keep_last_has_no_oldest_reason_and_counts_each_snapshot() -> None:
    plan = plan_of(["2024-06-01 10:00:00"] * 3, RetentionPolicy(last=2))

    assert [(k.index, k.reasons) for k in plan.keep] == [
        (0, ("last snapshot",)),
        (1, ("last snapshot",)),
    ]
    assert [r.index for r in plan.remove] == [2]


def test_equal_times_share_a_bucket_and_the_last_one_is_the_oldest() -> None:
    plan = plan_of(["2024-06-01 10:00:00"] * 3, RetentionPolicy(daily=2))

    assert [(k.index, k.reasons) for k in plan.keep] == [
        (0, ("daily snapshot",)),
        (2, ("oldest daily snapshot",)),
    ]
    assert [r.index for r in plan.remove] == [1]


def test_oldest_is_kept_by_a_within_bucket_when_inside_its_window() -> None:
    policy = RetentionPolicy(within_daily=parse_duration("3m10d"))
    plan = plan_of(["2024-06-20 10:00:00", "2024-06-19 23:00:00", "2024-06-19 01:00:00"], policy)

    assert kept(plan) == [
        ("2024-06-20 10:00:00", ["daily within 3m10d"]),
        ("2024-06-19 23:00:00", ["daily within 3m10d"]),
        ("2024-06-19 01:00:00", ["oldest daily within 3m10d"]),
    ]


def test_oldest_outside_every_window_is_removed() -> None:
    policy = RetentionPolicy(within_daily=parse_duration("3m10d"))
    plan = plan_of(
        [
            "2024-06-20 10:00:00",
            "2024-06-19 23:00:00",
            "2024-06-19 01:00:00",
            "2024-03-10 09:59:59",
        ],
        policy,
    )

    # 2024-06-20 10:00 minus 3m10d is 2024-03-10 10:00: the last two fall out (one is no longer
    # the oldest, the other is outside the window).
    assert [k.index for k in plan.keep] == [0, 1]
    assert [r.index for r in plan.remove] == [2, 3]


def test_reasons_come_in_restics_order() -> None:
    policy = RetentionPolicy(
        last=1,
        daily=1,
        yearly=1,
        within=Duration(days=1),
        within_hourly=Duration(days=1),
        within_monthly=Duration(years=1),
    )
    plan = plan_of(["2024-06-20 10:00:00"], policy)

    assert kept(plan) == [
        (
            "2024-06-20 10:00:00",
            [
                "within 1d",
                "last snapshot",
                "daily snapshot",
                "yearly snapshot",
                "hourly within 1d",
                "monthly within 1y",
            ],
        )
    ]


# --- calendars: AddDate, ISO weeks, midnight UTC -------------------------------------------------


@pytest.mark.parametrize(
    ("newest", "duration", "start"),
    [
        ("2023-03-31 12:00:00", "1m", "2023-03-03 12:00:00"),  # Feb 31 -> Mar 3, no clamping
        ("2024-03-31 12:00:00", "1m", "2024-03-02 12:00:00"),  # leap year: Feb 31 -> Mar 2
        ("2024-02-29 06:00:00", "1y", "2023-03-01 06:00:00"),
        ("2024-01-31 00:00:00", "1m", "2023-12-31 00:00:00"),
        ("2024-01-15 00:00:00", "13m", "2022-12-15 00:00:00"),
        ("2024-03-01 00:30:00", "1h", "2024-02-29 23:30:00"),
        # Go's Date(2024, 2, 30) is 1 March; the hour then crosses back into February.
        ("2024-03-31 00:30:00", "1m1d1h", "2024-02-29 23:30:00"),
        ("2024-05-31 12:00:00", "3m10d", "2024-02-21 12:00:00"),  # Date(2024, 2, 21)
        ("2023-05-31 12:00:00", "3m", "2023-03-03 12:00:00"),  # Date(2023, 2, 31)
    ],
)
def test_durations_subtract_like_go_adddate(newest: str, duration: str, start: str) -> None:
    assert parse_duration(duration).before(utc(newest)) == utc(start)


def test_duration_reaching_before_year_one_covers_everything() -> None:
    assert Duration(years=5000).before(utc("2024-01-01 00:00:00")) is None
    plan = plan_of(
        ["2024-01-01 00:00:00", "0001-01-01 00:00:00"], RetentionPolicy(within=Duration(years=5000))
    )
    assert [k.index for k in plan.keep] == [0, 1]


def test_keep_within_1m_from_the_31st() -> None:
    # Window start is 2024-03-02 12:00 (Go normalises 31 February); strictly newer ones stay.
    plan = plan_of(
        [
            "2024-03-31 12:00:00",
            "2024-03-02 12:00:01",
            "2024-03-02 12:00:00",
            "2024-03-01 00:00:00",
            "2024-02-29 12:00:01",
        ],
        RetentionPolicy(within=parse_duration("1m")),
    )

    assert kept(plan) == [
        ("2024-03-31 12:00:00", ["within 1m"]),
        ("2024-03-02 12:00:01", ["within 1m"]),
    ]
    assert [r.index for r in plan.remove] == [2, 3, 4]


def test_iso_weeks_across_a_year_boundary() -> None:
    # 2024-12-30 (Mon) .. 2025-01-05 (Sun) is ISO week 2025-W01; 2024-12-29 is in 2024-W52.
    plan = plan_of(
        [
            "2025-01-01 08:00:00",
            "2024-12-30 00:00:00",
            "2024-12-29 23:59:59",
            "2024-12-23 00:00:00",
        ],
        RetentionPolicy(weekly=2),
    )

    assert kept(plan) == [
        ("2025-01-01 08:00:00", ["weekly snapshot"]),
        ("2024-12-29 23:59:59", ["weekly snapshot"]),
    ]


def test_iso_week_53_spans_new_year() -> None:
    # 2020-12-28 (Mon) .. 2021-01-03 (Sun) is ISO week 2020-W53.
    plan = plan_of(
        [
            "2021-01-04 00:00:00",
            "2021-01-03 23:59:59",
            "2020-12-31 12:00:00",
            "2020-12-28 00:00:00",
        ],
        RetentionPolicy(within_weekly=Duration(months=1)),
    )

    assert kept(plan) == [
        ("2021-01-04 00:00:00", ["weekly within 1m"]),
        ("2021-01-03 23:59:59", ["weekly within 1m"]),
        ("2020-12-28 00:00:00", ["oldest weekly within 1m"]),
    ]


def test_days_and_hours_split_at_midnight_utc_whatever_the_input_offset() -> None:
    times = [
        datetime(2024, 5, 2, 0, 10, tzinfo=UTC),
        # 2024-05-02 01:30 at +02:00 is 2024-05-01 23:30 UTC: the newest of 1 May, not of 2 May.
        datetime(2024, 5, 2, 1, 30, tzinfo=timezone(timedelta(hours=2))),
        datetime(2024, 5, 1, 23, 0, tzinfo=UTC),
        datetime(2024, 4, 30, 12, 0, tzinfo=UTC),
    ]
    plan = plan_retention(times, RetentionPolicy(daily=2, hourly=UNLIMITED))

    assert kept(plan) == [
        ("2024-05-02 00:10:00", ["hourly snapshot", "daily snapshot"]),
        ("2024-05-01 23:30:00", ["hourly snapshot", "daily snapshot"]),
        ("2024-04-30 12:00:00", ["hourly snapshot"]),
    ]
    assert plan.keep[1].time.tzinfo is UTC
    assert [r.index for r in plan.remove] == [2]


def test_unlimited_daily_keeps_one_per_day() -> None:
    times = [f"2024-01-{d:02d} {h:02d}:00:00" for d in range(1, 11) for h in (6, 18)]
    plan = plan_of(times, RetentionPolicy(daily=UNLIMITED))

    # Unlimited always has room, so the oldest snapshot stays as well.
    assert [k.time.hour for k in plan.keep] == [18] * 10 + [6]
    assert [k.reasons for k in plan.keep] == [("daily snapshot",)] * 10 + [
        ("oldest daily snapshot",)
    ]


# --- the reference time and the clock ---------------------------------------------------------


def test_snapshots_from_the_future_are_not_the_reference_when_now_is_given() -> None:
    now = utc("2024-06-10 12:00:00")
    times = [utc("2024-06-11 12:00:00"), utc("2024-06-10 11:00:00"), utc("2024-06-09 10:00:00")]
    policy = RetentionPolicy(within=Duration(days=1))

    with_now = plan_retention(times, policy, now=now)
    without_now = plan_retention(times, policy)

    assert [k.index for k in with_now.keep] == [0, 1]  # window starts 2024-06-09 11:00
    assert [k.index for k in without_now.keep] == [0]  # window starts 2024-06-10 12:00


def test_when_every_snapshot_is_in_the_future_every_window_covers_all() -> None:
    times = [utc("2030-01-01 00:00:00"), utc("2029-01-01 00:00:00")]
    plan = plan_retention(
        times, RetentionPolicy(within=Duration(days=1)), now=utc("2024-01-01 00:00:00")
    )

    assert [k.index for k in plan.keep] == [0, 1]


# --- inputs and policies ----------------------------------------------------------------------


def test_no_snapshots_plans_nothing() -> None:
    assert plan_retention([], RetentionPolicy(daily=7)) == RetentionPlan(keep=(), remove=())


@pytest.mark.parametrize(
    "policy",
    [
        RetentionPolicy(),
        RetentionPolicy(within=Duration(), within_daily=parse_duration("0d")),
    ],
)
def test_an_empty_policy_is_refused(policy: RetentionPolicy) -> None:
    assert policy.is_empty()
    with pytest.raises(EmptyPolicyError, match="no retention policy"):
        plan_retention([utc("2024-01-01 00:00:00")], policy)


@pytest.mark.parametrize(
    "policy",
    [
        RetentionPolicy(last=-1),
        RetentionPolicy(yearly=1),
        RetentionPolicy(within_hourly=Duration(hours=1)),
    ],
)
def test_any_single_rule_makes_a_policy(policy: RetentionPolicy) -> None:
    assert not policy.is_empty()


@pytest.mark.parametrize(
    ("field", "value"), [("daily", -2), ("last", True), ("weekly", 1.5), ("within", "1d")]
)
def test_policy_rejects_bad_values(field: str, value: object) -> None:
    with pytest.raises(ValueError, match=field):
        RetentionPolicy(**{field: value})  # type: ignore[arg-type]


def test_naive_times_are_rejected() -> None:
    policy = RetentionPolicy(daily=1)
    with pytest.raises(ValueError, match="snapshot time #1 must be a timezone-aware"):
        plan_retention([utc("2024-01-02 00:00:00"), datetime(2024, 1, 1)], policy)
    with pytest.raises(ValueError, match="snapshot time #0 must be"):
        plan_retention([date(2024, 1, 1)], policy)  # type: ignore[list-item]
    with pytest.raises(ValueError, match="now must be a timezone-aware"):
        plan_retention([utc("2024-01-02 00:00:00")], policy, now=datetime(2024, 1, 1))


def test_describe_names_every_rule() -> None:
    policy = RetentionPolicy(daily=7, monthly=UNLIMITED, within_weekly=parse_duration("1m"))
    assert policy.describe() == (
        "keep 7 daily, all monthly snapshots; keep weekly snapshots within 1m of the newest"
    )


@pytest.mark.parametrize(
    ("text", "expected", "printed"),
    [
        ("9h", Duration(hours=9), "9h"),
        ("4d2h", Duration(days=4, hours=2), "4d2h"),
        ("5d7m", Duration(months=7, days=5), "7m5d"),
        ("4h3d9m", Duration(months=9, days=3, hours=4), "9m3d4h"),
        ("1y1d1m", Duration(years=1, months=1, days=1), "1y1m1d"),
        (" 1y2m3d4h ", Duration(1, 2, 3, 4), "1y2m3d4h"),
        ("0d", Duration(), ""),
    ],
)
def test_parse_duration(text: str, expected: Duration, printed: str) -> None:
    assert parse_duration(text) == expected
    assert str(parse_duration(text)) == printed


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty duration"),
        ("5", "no unit after number 5"),
        ("2w", "unknown unit 'w'"),
        ("1y4m3w1d", "unknown unit 'w'"),
        ("5D", "unknown unit 'D'"),
        ("s", "expected a number"),
        ("-7m5d", "negative"),
        ("1d2d", "given twice"),
        ("\u07c0d", "expected a number"),  # NKO DIGIT ZERO: ASCII digits only
        ("1d 2h", "expected a number at ' 2h'"),
    ],
)
def test_parse_duration_errors(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_duration(text)


# --- properties -------------------------------------------------------------------------------

BASE = datetime(2024, 11, 1, tzinfo=UTC)  # windows of a few months cross 2024/2025


@st.composite
def snapshot_times(draw: st.DrawFn) -> list[datetime]:
    # Minutes over ~5 months; a small pool makes equal times and shared buckets common.
    span = draw(st.sampled_from([6 * 60, 3 * 24 * 60, 40 * 24 * 60, 150 * 24 * 60]))
    pool = draw(st.lists(st.integers(0, span), min_size=1, max_size=30))
    offsets = draw(st.lists(st.sampled_from(pool), max_size=30))
    return [BASE + timedelta(minutes=m) for m in offsets]


COUNTS = st.sampled_from([0, 0, 0, 1, 2, 3, 5, UNLIMITED])
DURATIONS = st.one_of(
    st.none(),
    st.builds(
        Duration,
        years=st.sampled_from([0, 0, 1]),
        months=st.integers(0, 3),
        days=st.integers(0, 40),
        hours=st.integers(0, 48),
    ),
)
POLICIES = st.builds(
    RetentionPolicy,
    last=COUNTS,
    hourly=COUNTS,
    daily=COUNTS,
    weekly=COUNTS,
    monthly=COUNTS,
    yearly=COUNTS,
    within=DURATIONS,
    within_hourly=DURATIONS,
    within_daily=DURATIONS,
    within_weekly=DURATIONS,
    within_monthly=DURATIONS,
    within_yearly=DURATIONS,
).filter(lambda p: not p.is_empty())

PROPERTY_SETTINGS = settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)

KINDS = ("hourly", "daily", "weekly", "monthly", "yearly")
# restic's bucket keys, spelled as restic spells them: YYYYMMDDHH, YYYYMMDD, ISO (year, week),
# YYYYMM, YYYY.
RESTIC_KEY = {
    "hourly": lambda t: t.strftime("%Y%m%d%H"),
    "daily": lambda t: t.strftime("%Y%m%d"),
    "weekly": lambda t: t.isocalendar()[:2],
    "monthly": lambda t: t.strftime("%Y%m"),
    "yearly": lambda t: t.year,
}


def window_start(newest: datetime, d: Duration) -> datetime | None:
    """Go's AddDate, written the long way: step whole months, then days, then hours."""
    year, month = newest.year - d.years, newest.month
    for _ in range(d.months):
        year, month = (year - 1, 12) if month == 1 else (year, month - 1)
    if year < 1:
        return None
    first = datetime(year, month, 1, newest.hour, newest.minute, newest.second, tzinfo=UTC)
    return first + timedelta(
        days=newest.day - 1 - d.days, hours=-d.hours, microseconds=newest.microsecond
    )


def model(times: list[datetime], policy: RetentionPolicy) -> dict[int, list[str]]:
    """restic's rules stated per bucket, not as one pass: index -> reasons, for kept ones."""
    order = sorted(range(len(times)), key=lambda i: (-times[i].timestamp(), i))
    reasons: dict[int, list[str]] = defaultdict(list)
    if not order:
        return {}
    oldest = order[-1]
    newest = times[order[0]]

    def inside(d: Duration | None) -> list[int]:
        if d is None or d.is_zero():
            return []
        start = window_start(newest, d)
        return [i for i in order if start is None or times[i] > start]

    for i in inside(policy.within):
        reasons[i].append(f"within {policy.within}")
    for i in order if policy.last == UNLIMITED else order[: policy.last]:
        reasons[i].append("last snapshot")
    for kind in KINDS:
        count = getattr(policy, kind)
        if not count:
            continue
        firsts: dict[object, int] = {}
        for i in order:
            firsts.setdefault(RESTIC_KEY[kind](times[i]), i)
        heads = list(firsts.values())
        chosen = heads if count == UNLIMITED else heads[:count]
        for i in chosen:
            reasons[i].append(f"{kind} snapshot")
        if oldest not in heads and (count == UNLIMITED or len(heads) < count):
            reasons[oldest].append(f"oldest {kind} snapshot")
    for kind in KINDS:
        d = getattr(policy, f"within_{kind}")
        window = inside(d)
        firsts = {}
        for i in window:
            firsts.setdefault(RESTIC_KEY[kind](times[i]), i)
        for i in firsts.values():
            reasons[i].append(f"{kind} within {d}")
        if oldest in window and oldest not in firsts.values():
            reasons[oldest].append(f"oldest {kind} within {d}")
    # Reasons per snapshot in restic's order: within, last, counts, within buckets.
    rank = {"within": 0, "last": 1, **{k: 2 + n for n, k in enumerate(KINDS)}}

    def order_key(reason: str) -> int:
        words = reason.removeprefix("oldest ").split()
        return rank[words[0]] + (10 if words[1] == "within" else 0)

    return {i: sorted(r, key=order_key) for i, r in reasons.items()}


@PROPERTY_SETTINGS
@given(snapshot_times(), POLICIES)
def test_plan_equals_restics_rules_stated_per_bucket(
    times: list[datetime], policy: RetentionPolicy
) -> None:
    plan = plan_retention(times, policy)

    assert {k.index: list(k.reasons) for k in plan.keep} == model(times, policy)


@PROPERTY_SETTINGS
@given(snapshot_times(), POLICIES)
def test_keep_and_remove_partition_the_input_newest_first(
    times: list[datetime], policy: RetentionPolicy
) -> None:
    plan = plan_retention(times, policy)
    entries = [(k.index, k.time) for k in plan.keep] + [(r.index, r.time) for r in plan.remove]

    assert sorted(i for i, _ in entries) == list(range(len(times)))
    for part in (plan.keep, plan.remove):
        keys = [(-p.time.timestamp(), p.index) for p in part]
        assert keys == sorted(keys)
    assert all(times[i] == t for i, t in entries)
    if times:
        newest = min(range(len(times)), key=lambda i: (-times[i].timestamp(), i))
        assert plan.keep[0].index == newest


@PROPERTY_SETTINGS
@given(snapshot_times(), POLICIES)
def test_counts_are_respected(times: list[datetime], policy: RetentionPolicy) -> None:
    plan = plan_retention(times, policy)
    used: dict[str, int] = defaultdict(int)
    for k in plan.keep:
        for reason in k.reasons:
            used[reason.removeprefix("oldest ")] += 1

    if policy.last > 0:
        assert used["last snapshot"] <= policy.last
    for kind in KINDS:
        count = getattr(policy, kind)
        if count >= 0:
            # The oldest rule only spends count that is left, so the total stays within it.
            assert used[f"{kind} snapshot"] <= count


@PROPERTY_SETTINGS
@given(snapshot_times(), POLICIES, st.randoms(use_true_random=False))
def test_input_order_does_not_change_what_is_kept(
    times: list[datetime], policy: RetentionPolicy, rnd: random.Random
) -> None:
    shuffled = list(times)
    rnd.shuffle(shuffled)

    def summary(ts: list[datetime]) -> list[tuple[datetime, tuple[str, ...]]]:
        return sorted((k.time, k.reasons) for k in plan_retention(ts, policy).keep)

    assert summary(shuffled) == summary(times)


@PROPERTY_SETTINGS
@given(snapshot_times(), POLICIES, st.booleans())
def test_the_keep_set_is_a_fixed_point(
    times: list[datetime], policy: RetentionPolicy, with_now: bool
) -> None:
    # Holds in general, oldest rule and within buckets included: every count rule picks the same
    # snapshots again (the first of each of its buckets survives, and buckets are contiguous in
    # time), the windows start at the same place (the newest survives), and whatever kept a
    # snapshot still applies. `now` in the middle puts some snapshots in the future.
    now = BASE + timedelta(days=20) if with_now else None
    first = plan_retention(times, policy, now=now)
    kept_indices = sorted(k.index for k in first.keep)  # input order: ties keep their order

    second = plan_retention([times[i] for i in kept_indices], policy, now=now)

    assert second.remove == ()
    assert len(second.keep) == len(first.keep)


@PROPERTY_SETTINGS
@given(snapshot_times(), POLICIES)
def test_reasons_are_a_fixed_point_except_the_new_oldest(
    times: list[datetime], policy: RetentionPolicy
) -> None:
    # The reasons are not a fixed point: when the first pass removed the oldest snapshot, the
    # oldest of the keep set is a different snapshot, and a within bucket whose window contains
    # it now also keeps it as `oldest <bucket> within <d>`. Count rules add nothing: the first
    # pass could only drop the oldest once every count rule was used up.
    first = plan_retention(times, policy)
    kept_indices = sorted(k.index for k in first.keep)
    second = plan_retention([times[i] for i in kept_indices], policy)
    before = {k.index: k.reasons for k in first.keep}
    after = {kept_indices[k.index]: k.reasons for k in second.keep}
    oldest_kept = first.keep[-1].index if first.keep else None

    for index, reasons in before.items():
        if index != oldest_kept:
            assert after[index] == reasons
        else:
            extra = [r for r in after[index] if r not in reasons]
            assert [r for r in after[index] if r in reasons] == list(reasons)
            assert all(r.startswith("oldest ") and " within " in r for r in extra)


def test_reasons_of_the_new_oldest_can_change() -> None:
    # The counterexample to a stronger fixed point: keep-last 3 keeps 10:00 of day 10 while the
    # real oldest goes; applied again, 10:00 is the oldest and inside the daily window.
    policy = RetentionPolicy(last=3, within_daily=Duration(days=7))
    times = [
        "2024-06-10 12:00:00",
        "2024-06-10 11:00:00",
        "2024-06-10 10:00:00",
        "2024-06-01 00:00:00",
    ]
    first = plan_of(times, policy)
    second = plan_of(times[:3], policy)

    assert kept(first) == [
        ("2024-06-10 12:00:00", ["last snapshot", "daily within 7d"]),
        ("2024-06-10 11:00:00", ["last snapshot"]),
        ("2024-06-10 10:00:00", ["last snapshot"]),
    ]
    assert kept(second)[-1] == ("2024-06-10 10:00:00", ["last snapshot", "oldest daily within 7d"])
