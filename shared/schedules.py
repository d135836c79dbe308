"""NCRONTAB schedules (6 fields, seconds first, UTC) as the Functions host reads them.

croniter is imported when a schedule is first used, not when a trigger module is indexed.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

FIELD_NAMES = ("second", "minute", "hour", "day", "month", "day-of-week")
FORM = "{second} {minute} {hour} {day} {month} {day-of-week}"

# The host's NCRONTAB grammar: `*`, numbers, three-letter names and ranges, each with an optional
# `/step`, in comma lists. croniter also takes L, W, #, ?, H, @daily and 5- or 7-field forms, which
# the host refuses, so those are kept out here; croniter checks every range.
_ITEM = r"(?:\*|[0-9]+(?:-[0-9]+)?|[A-Za-z]{3}(?:-[A-Za-z]{3})?)(?:/[0-9]+)?"
_FIELD = re.compile(rf"^{_ITEM}(?:,{_ITEM})*$")
_NAMES_ALLOWED = {"month", "day-of-week"}


def _croniter() -> Any:
    from croniter import croniter

    return croniter


def schedule_problem(schedule: str) -> str | None:
    """Why the Functions host would refuse `schedule` (one phrase), or None when it is valid."""
    fields = schedule.split()
    if len(fields) != len(FIELD_NAMES):
        return f"must be a 6-field NCRONTAB expression '{FORM}' in UTC"
    croniter = _croniter()
    for name, field in zip(FIELD_NAMES, fields, strict=True):
        if not _FIELD.match(field) or (name not in _NAMES_ALLOWED and re.search("[A-Za-z]", field)):
            return f"{name} field {field!r} is not NCRONTAB syntax"
        probe = ["*"] * len(FIELD_NAMES)
        probe[FIELD_NAMES.index(name)] = field
        if not croniter.is_valid(" ".join(probe), second_at_beginning=True):
            return f"{name} field {field!r} is out of range"
        # croniter reads day-of-week 7 as Sunday; the host's NCRONTAB allows 0-6 only.
        if name == "day-of-week" and "7" in re.findall(r"[0-9]+", field.split("/")[0]):
            return f"{name} field {field!r} is out of range (0-6, Sunday is 0)"
    if not croniter.is_valid(schedule, second_at_beginning=True):
        return "not a valid NCRONTAB expression"
    try:  # e.g. `0 0 0 30 2 *`: valid fields, but the timer would never fire
        croniter(schedule, datetime(2000, 1, 1, tzinfo=UTC), second_at_beginning=True).get_next()
    except ValueError:
        return "never occurs"
    return None


def check_schedule(schedule: str) -> str:
    """`schedule` unchanged when the Functions host would accept it; ValueError saying why not."""
    problem = schedule_problem(schedule)
    if problem is not None:
        raise ValueError(problem)
    return schedule


def latest_occurrence(schedule: str, now: datetime) -> datetime:
    """The scheduled occurrence at or before `now`: a late or retried timer run keeps its slot."""
    probe = now.astimezone(UTC) + timedelta(microseconds=1)
    previous: datetime = _croniter()(
        schedule, probe, second_at_beginning=True, ret_type=datetime, is_prev=True
    ).get_prev(datetime)
    return previous.astimezone(UTC)


def next_occurrence(schedule: str, now: datetime) -> datetime:
    """The first scheduled occurrence after `now`."""
    following: datetime = _croniter()(
        schedule, now.astimezone(UTC), second_at_beginning=True, ret_type=datetime
    ).get_next(datetime)
    return following.astimezone(UTC)
