"""`lifeboat retention`: preview a retention policy on snapshots read from stdin.

Flags are restic's `forget` flags; the decision is `shared.retention.plan_retention`, the same
function the rotation job prunes with. Each input line is a timestamp, optionally followed by the
snapshot's name. stdout carries a table (snapshot, time, keep or forget, reasons), or with
`--json` exactly one JSON document; logs and errors go to stderr.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime
from typing import Annotated, Any, TextIO

import typer
from rich.console import Console
from rich.table import Table

from shared.retention import (
    UNLIMITED,
    Duration,
    RetentionPolicy,
    parse_duration,
    plan_retention,
)

log = logging.getLogger(__name__)

# RFC 3339 date-time: full date, "T" (or a space, or "t", which it allows), full time with optional
# fraction, and a mandatory offset. fromisoformat alone would also take dates without a time,
# basic-format and week dates, and times without an offset.
_RFC3339 = re.compile(
    r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})",
    re.ASCII,
)


# typer hands a parser the option's default as well as command-line text.
def _parse_count(text: str | int) -> int:
    if isinstance(text, int):
        value = text
    elif text.strip().lower() == "unlimited":
        return UNLIMITED
    else:
        try:
            value = int(text)
        except ValueError:
            raise typer.BadParameter(
                f"{text!r} is not a count (a whole number, -1 or 'unlimited')"
            ) from None
    if value < UNLIMITED:
        raise typer.BadParameter(
            f"{value} is not allowed: use -1 or 'unlimited' to keep all, 0 to switch the rule off"
        )
    return value


def _parse_duration(text: str | Duration) -> Duration:
    if isinstance(text, Duration):
        return text
    try:
        return parse_duration(text)
    except ValueError as e:
        raise typer.BadParameter(str(e)) from None


def parse_rfc3339(text: str) -> datetime:
    """One RFC 3339 timestamp with an offset, as an aware datetime in UTC."""
    if not _RFC3339.fullmatch(text):
        raise ValueError("expected an RFC 3339 timestamp such as 2024-05-01T02:00:00Z")
    normalised = text[:10] + "T" + text[11:]
    if normalised[-1] in "Zz":
        normalised = normalised[:-1] + "+00:00"
    # Raises ValueError for a date or time that does not exist (month 13, 25:00, leap second).
    return datetime.fromisoformat(normalised).astimezone(UTC)


def read_timestamps(stream: TextIO) -> list[datetime]:
    """Timestamps, one per line; blank lines are skipped. ValueError names the bad line."""
    return [time for time, _ in read_snapshots(stream)]


def read_snapshots(stream: TextIO) -> list[tuple[datetime, str]]:
    """(time, name) per line: a timestamp, then optionally whitespace and the snapshot's name.

    Blank lines are skipped; ValueError names the bad line. A space inside the timestamp (RFC 3339
    allows one between date and time) is read as part of it."""
    snapshots: list[tuple[datetime, str]] = []
    for number, line in enumerate(stream, start=1):
        text = line.strip()
        if not text:
            continue
        stamp, name = _split_name(text)
        try:
            snapshots.append((parse_rfc3339(stamp), name))
        except ValueError as e:
            raise ValueError(f"line {number}: {stamp!r} is not a valid timestamp: {e}") from None
    return snapshots


def _split_name(text: str) -> tuple[str, str]:
    match = _RFC3339.match(text)
    if match and (match.end() == len(text) or text[match.end()].isspace()):
        return text[: match.end()], text[match.end() :].strip()
    stamp, _, name = text.partition(" ")
    return stamp, name.strip()


def _format(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


_COUNT_HELP = "keep the last N {} (-1 or 'unlimited' keeps all)"
_WITHIN_HELP = "keep {} newer than DURATION (e.g. 1y5m7d2h) before the newest snapshot"


def _count_option(long: str, short: str, what: str) -> Any:
    """A `--keep-*` count, as restic spells it."""
    return typer.Option(
        long, short, parser=_parse_count, metavar="N", help=_COUNT_HELP.format(what)
    )


def retention_command(
    keep_last: Annotated[int, _count_option("--keep-last", "-l", "snapshots")] = 0,
    keep_hourly: Annotated[int, _count_option("--keep-hourly", "-H", "hourly snapshots")] = 0,
    keep_daily: Annotated[int, _count_option("--keep-daily", "-d", "daily snapshots")] = 0,
    keep_weekly: Annotated[
        int, _count_option("--keep-weekly", "-w", "weekly (ISO 8601 week) snapshots")
    ] = 0,
    keep_monthly: Annotated[int, _count_option("--keep-monthly", "-m", "monthly snapshots")] = 0,
    keep_yearly: Annotated[int, _count_option("--keep-yearly", "-y", "yearly snapshots")] = 0,
    keep_within: Annotated[
        Duration | None,
        typer.Option(
            "--keep-within",
            parser=_parse_duration,
            metavar="DURATION",
            help=_WITHIN_HELP.format("all snapshots"),
        ),
    ] = None,
    keep_within_hourly: Annotated[
        Duration | None,
        typer.Option(
            "--keep-within-hourly",
            parser=_parse_duration,
            metavar="DURATION",
            help=_WITHIN_HELP.format("hourly snapshots"),
        ),
    ] = None,
    keep_within_daily: Annotated[
        Duration | None,
        typer.Option(
            "--keep-within-daily",
            parser=_parse_duration,
            metavar="DURATION",
            help=_WITHIN_HELP.format("daily snapshots"),
        ),
    ] = None,
    keep_within_weekly: Annotated[
        Duration | None,
        typer.Option(
            "--keep-within-weekly",
            parser=_parse_duration,
            metavar="DURATION",
            help=_WITHIN_HELP.format("weekly snapshots"),
        ),
    ] = None,
    keep_within_monthly: Annotated[
        Duration | None,
        typer.Option(
            "--keep-within-monthly",
            parser=_parse_duration,
            metavar="DURATION",
            help=_WITHIN_HELP.format("monthly snapshots"),
        ),
    ] = None,
    keep_within_yearly: Annotated[
        Duration | None,
        typer.Option(
            "--keep-within-yearly",
            parser=_parse_duration,
            metavar="DURATION",
            help=_WITHIN_HELP.format("yearly snapshots"),
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="one JSON document on stdout")] = False,
) -> None:
    """Preview a retention policy (restic `forget` semantics) on snapshots from stdin.

    Reads one RFC 3339 timestamp per line, optionally followed by the snapshot's name, and prints
    a table: snapshot, time, keep or forget, and the reasons it is kept. With --json, one JSON
    document: {"keep": [...], "remove": [...], "reasons": {"<timestamp>": [...]}}, newest first,
    times in UTC to the second; snapshots sharing a printed timestamp share its reasons entry.
    """
    policy = RetentionPolicy(
        last=keep_last,
        hourly=keep_hourly,
        daily=keep_daily,
        weekly=keep_weekly,
        monthly=keep_monthly,
        yearly=keep_yearly,
        within=keep_within,
        within_hourly=keep_within_hourly,
        within_daily=keep_within_daily,
        within_weekly=keep_within_weekly,
        within_monthly=keep_within_monthly,
        within_yearly=keep_within_yearly,
    )
    if policy.is_empty():
        typer.echo(
            "error: no policy was given, so there is nothing to keep by; refusing to remove "
            "every snapshot. Give at least one --keep-* option (e.g. --keep-daily 7).",
            err=True,
        )
        raise typer.Exit(2)
    try:
        snapshots = read_snapshots(sys.stdin)
    except ValueError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from None
    log.info("applying policy to %d snapshots: %s", len(snapshots), policy.describe())
    plan = plan_retention([time for time, _ in snapshots], policy)

    reasons: dict[str, list[str]] = {}
    for kept in plan.keep:
        entry = reasons.setdefault(_format(kept.time), [])
        entry.extend(r for r in kept.reasons if r not in entry)
    document = {
        "keep": [_format(k.time) for k in plan.keep],
        "remove": [_format(r.time) for r in plan.remove],
        "reasons": reasons,
    }
    log.info("keep %d, remove %d", len(plan.keep), len(plan.remove))
    if as_json:
        typer.echo(json.dumps(document))
    else:
        _print(Console(), snapshots, plan, policy)


def _print(
    console: Console, snapshots: list[tuple[datetime, str]], plan: Any, policy: RetentionPolicy
) -> None:
    rows = [(k.index, "keep", ", ".join(k.reasons)) for k in plan.keep]
    rows += [(r.index, "forget", "") for r in plan.remove]
    rows.sort(key=lambda row: (-snapshots[row[0]][0].timestamp(), row[0]))
    table = Table(title=f"Retention: {policy.describe()}")
    table.add_column("snapshot", overflow="fold")
    table.add_column("time (UTC)")
    table.add_column("decision")
    table.add_column("reasons", overflow="fold")
    for index, decision, reasons in rows:
        time, name = snapshots[index]
        colour = "green" if decision == "keep" else "red"
        table.add_row(name or "-", _format(time), f"[{colour}]{decision}[/]", reasons)
    console.print(table)
    console.print(f"keep {len(plan.keep)}, forget {len(plan.remove)}")
