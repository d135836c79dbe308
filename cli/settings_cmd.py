"""`lifeboat settings check`: the settings the app would run with, and where each value came from.

The settings are read as the other commands read them: a local.settings.json file's Values under
the process environment (a variable already set wins, as with `lifeboat host`), then validated by
the app's own `Settings`. Secrets are masked. Exit status: 0 valid, 2 configuration error.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from cli.host_cmd import default_settings_file, load_local_settings
from cli.localhost import HostError

settings_app = typer.Typer(
    help="App settings: check them as the app will read them.", no_args_is_help=True
)


@settings_app.command("check")
def check_command(
    settings: Annotated[
        Path | None,
        typer.Option(help="local.settings.json to read (default: it, else the sample)"),
    ] = None,
    env_only: Annotated[
        bool, typer.Option("--env-only", help="read the environment only, no settings file")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON instead of a table")] = False,
) -> None:
    """Validate every setting and print its effective value and where it came from."""
    from shared.settings import SettingsError, effective_settings

    environ = dict(os.environ)
    sources: dict[str, str] = {}
    if not env_only:
        path = settings or default_settings_file()
        try:
            values = load_local_settings(path)
        except HostError as e:
            print(f"lifeboat settings check: {e}", file=sys.stderr)
            raise typer.Exit(2) from None
        for name, value in values.items():
            if name not in environ:
                environ[name] = value
                sources[name] = path.name
    try:
        rows = effective_settings(environ, sources)
    except SettingsError as e:
        print(str(e), file=sys.stderr)
        raise typer.Exit(2) from None
    if as_json:
        print(json.dumps([{"name": r.name, "value": r.value, "source": r.source} for r in rows]))
        return
    name_width = max(len(r.name) for r in rows)
    source_width = max(len(r.source) for r in rows)
    print(f"{'SETTING':<{name_width}}  {'SOURCE':<{source_width}}  VALUE")
    for row in rows:
        print(f"{row.name:<{name_width}}  {row.source:<{source_width}}  {row.value}")
    print(f"\n{len(rows)} settings, all valid.")
