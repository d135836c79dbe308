"""The `lifeboat` command: local host, stand-ins, previews, drills, recovery and the demo. Never
deployed."""

from __future__ import annotations

import logging
import signal
import sys
from typing import Annotated

import typer

from cli.alerts_cmd import alerts_command
from cli.demo import demo_command
from cli.drill_cmd import drill_app
from cli.emulator_cmd import emulator_command
from cli.exits import EXIT_CODES_HELP, PlainFailures
from cli.host_cmd import host_command
from cli.plan_cmd import plan_command, run_command
from cli.recover_cmd import recover_command
from cli.retention import retention_command
from cli.settings_cmd import settings_app
from cli.status_cmd import status_command
from cli.verify_cmd import verify_command

app = typer.Typer(
    name="lifeboat",
    cls=PlainFailures,
    help="Lifeboat: keeps Azure VMs recoverable, and proves it.",
    epilog=EXIT_CODES_HELP,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
for name, command in (
    ("host", host_command),
    ("demo", demo_command),
    ("emulator", emulator_command),
    ("retention", retention_command),
    ("plan", plan_command),
    ("run", run_command),
    ("status", status_command),
    ("alerts", alerts_command),
    ("verify", verify_command),
    ("recover", recover_command),
):
    app.command(name, epilog=EXIT_CODES_HELP)(command)
app.add_typer(drill_app, name="drill", epilog=EXIT_CODES_HELP)
app.add_typer(settings_app, name="settings", epilog=EXIT_CODES_HELP)


@app.callback()
def _options(
    debug: Annotated[
        bool, typer.Option("--debug", help="show tracebacks and DEBUG logs on stderr")
    ] = False,
) -> None:
    if debug:
        _QuietCredentials.debug = True
        logging.getLogger().setLevel(logging.DEBUG)


class _QuietCredentials(logging.Filter):
    """azure.identity logs the whole failed credential chain as a WARNING; the command says it
    in a few lines instead (cli/exits.py), and `--debug` shows it all."""

    debug = False

    def filter(self, record: logging.LogRecord) -> bool:
        return self.debug or not record.name.startswith("azure.identity")


def _configure_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    for handler in logging.getLogger().handlers:
        handler.addFilter(_QuietCredentials())
    for noisy in ("azure", "urllib3", "httpx", "httpcore", "uvicorn.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def main() -> None:
    _configure_logging(verbose=False)
    # A terminated command unwinds like an interrupted one, so it stops what it started.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    app()


if __name__ == "__main__":
    main()
