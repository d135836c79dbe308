"""The `lifeboat` command: local host, stand-ins, previews, drills and the demo. Never deployed."""

from __future__ import annotations

import logging
import sys

import typer

from cli.demo import demo_command
from cli.drill_cmd import drill_app
from cli.emulator_cmd import emulator_command
from cli.host_cmd import host_command
from cli.plan_cmd import plan_command, run_command
from cli.retention import retention_command
from cli.settings_cmd import settings_app
from cli.status_cmd import status_command
from cli.verify_cmd import verify_command

app = typer.Typer(
    name="lifeboat",
    help="Lifeboat: keeps Azure VMs recoverable, and proves it.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.command("host")(host_command)
app.command("demo")(demo_command)
app.command("emulator")(emulator_command)
app.command("retention")(retention_command)
app.command("plan")(plan_command)
app.command("run")(run_command)
app.command("status")(status_command)
app.command("verify")(verify_command)
app.add_typer(drill_app, name="drill")
app.add_typer(settings_app, name="settings")


def _configure_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    for noisy in ("azure", "urllib3", "httpx", "httpcore", "uvicorn.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def main() -> None:
    _configure_logging(verbose=False)
    app()


if __name__ == "__main__":
    main()
