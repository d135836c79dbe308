"""NCRONTAB schedules (6 fields, seconds first, UTC) as the Functions host reads them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from croniter import croniter


def latest_occurrence(schedule: str, now: datetime) -> datetime:
    """The scheduled occurrence at or before `now`: a late or retried timer run keeps its slot."""
    probe = now.astimezone(UTC) + timedelta(microseconds=1)
    previous: datetime = croniter(
        schedule, probe, second_at_beginning=True, ret_type=datetime, is_prev=True
    ).get_prev(datetime)
    return previous.astimezone(UTC)


def next_occurrence(schedule: str, now: datetime) -> datetime:
    """The first scheduled occurrence after `now`."""
    following: datetime = croniter(
        schedule, now.astimezone(UTC), second_at_beginning=True, ret_type=datetime
    ).get_next(datetime)
    return following.astimezone(UTC)
