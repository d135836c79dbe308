"""`lifeboat alerts`: what Lifeboat's alert rules say now, with what to do about each.

Each rule of `infra/alerts/` (its query in `<rule>.kql`, its severity, dimensions and runbook in
`rules.json`, exactly as `infra/app/monitor.bicep` deploys them) is run against
`LifeboatOutcomes_CL` with azure-monitor-query, the way Azure Monitor evaluates it. A rule fires
when its query returns rows: one alert per combination of its dimensions. The command prints each
firing alert as it reaches the ops team (the rule, its dimensions, the results and the runbook:
what happened, what to check, the command to run). Exit code 0 when no rule fires, 1 when one
does, 2 usage, 3 unreachable.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape

from cli.exits import Exit, require, stand_in_of
from cli.status_cmd import LOG_ANALYTICS, credential_of, workspace_source
from shared import posture

ALERTS = Path(__file__).resolve().parent.parent / "infra" / "alerts"
# Rows of one alert shown to a person; the JSON keeps them all.
SHOWN_ROWS = 5


@dataclass(frozen=True)
class Rule:
    name: str
    query: str
    severity: int
    dimensions: tuple[str, ...]
    stateful: bool
    runbook: Mapping[str, str]


def load_rules(folder: Path = ALERTS) -> list[Rule]:
    """The deployed rules: `rules.json` entries with their `.kql` query, in file order."""
    spec = json.loads((folder / "rules.json").read_text(encoding="utf-8"))
    return [
        Rule(
            name=name,
            query=(folder / f"{name}.kql").read_text(encoding="utf-8"),
            severity=int(entry["severity"]),
            dimensions=tuple(entry.get("dimensions") or ()),
            stateful=bool(entry.get("stateful", False)),
            runbook=entry["runbook"],
        )
        for name, entry in spec.items()
    ]


def fired(rule: Rule, rows: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One alert per combination of the rule's dimensions, each with its result rows."""
    alerts: dict[tuple[str, ...], dict[str, Any]] = {}
    for row in rows:
        key = tuple(str(row.get(d, "")) for d in rule.dimensions)
        alert = alerts.setdefault(
            key,
            {
                "rule": rule.name,
                "severity": rule.severity,
                "dimensions": dict(zip(rule.dimensions, key, strict=True)),
                "rows": [],
            },
        )
        alert["rows"].append({k: _plain(v) for k, v in row.items()})
    return list(alerts.values())


def _plain(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


def alerts_command(
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON document")] = False,
    rule: Annotated[
        list[str] | None, typer.Option("--rule", help="run only this rule (repeatable)")
    ] = None,
    workspace_id: Annotated[
        str | None,
        typer.Option(envvar="LOG_ANALYTICS_WORKSPACE_ID", help="Log Analytics workspace id"),
    ] = None,
    endpoint: Annotated[str, typer.Option(help="Log Analytics query endpoint")] = LOG_ANALYTICS,
    emulator_endpoints: Annotated[
        Path | None,
        typer.Option(help="read from the Azure stand-in of this endpoints file instead of Azure"),
    ] = None,
) -> None:
    """Run Lifeboat's alert rules now and show each alert that fires, with its runbook."""
    rules = load_rules()
    unknown = sorted(set(rule or ()) - {r.name for r in rules})
    if unknown:
        known = ", ".join(r.name for r in rules)
        print(f"lifeboat alerts: no rule {', '.join(unknown)}; rules: {known}", file=sys.stderr)
        raise typer.Exit(Exit.USAGE)
    if rule:
        rules = [r for r in rules if r.name in rule]
    require(stand_in_of(emulator_endpoints))
    try:
        source = workspace_source(workspace_id, endpoint, None, emulator_endpoints)
    except (ValueError, OSError, KeyError) as e:
        print(f"lifeboat alerts: {e}", file=sys.stderr)
        raise typer.Exit(Exit.USAGE) from None
    reader = posture.LogAnalyticsReader(
        credential_of(source),
        source.workspace_id,
        endpoint=source.endpoint,
        audience=source.audience,
    )
    alerts: list[dict[str, Any]] = []
    partial: list[str] = []
    for r in rules:
        # Each query bounds its own window (`ago(...)`); the timespan only has to cover it.
        rows, problem = reader.query(r.query, days=posture.DEFAULT_DAYS)
        if problem is not None:
            partial.append(f"{r.name}: {problem}")
        alerts.extend(fired(r, rows))
    runbooks = {r.name: dict(r.runbook) for r in rules}
    if as_json:
        document = {"alerts": alerts, "runbooks": runbooks, "partial": partial}
        sys.stdout.write(json.dumps(document, indent=2, sort_keys=True, default=str) + "\n")
    else:
        show(Console(), alerts, runbooks, partial, rules=len(rules))
    raise typer.Exit(Exit.FOUND_PROBLEMS if alerts or partial else Exit.OK)


def show(
    console: Console,
    alerts: list[dict[str, Any]],
    runbooks: Mapping[str, Mapping[str, str]],
    partial: list[str],
    *,
    rules: int,
) -> None:
    for problem in partial:
        console.print(f"[red]partial answer[/] {escape(problem)}")
    if not alerts:
        console.print(f"No alert fires ({rules} rules run).")
        return
    for alert in alerts:
        where = ", ".join(f"{k}={v}" for k, v in alert["dimensions"].items()) or "(no dimension)"
        console.print(
            f"[bold]Sev{alert['severity']} {escape(alert['rule'])}[/] {escape(where)}",
            highlight=False,
        )
        for row in alert["rows"][:SHOWN_ROWS]:
            shown = {k: v for k, v in row.items() if k not in alert["dimensions"]}
            console.print(f"  {escape(json.dumps(shown, default=str))}", highlight=False)
        if len(alert["rows"]) > SHOWN_ROWS:
            console.print(f"  ... {len(alert['rows']) - SHOWN_ROWS} more rows (--json)")
        runbook = runbooks[alert["rule"]]
        for label in ("what", "check", "run"):
            if runbook.get(label):
                console.print(f"  {label}: {escape(runbook[label])}", highlight=False)
    console.print(f"{len(alerts)} alert(s) from {rules} rules.")
