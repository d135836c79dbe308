"""The local host logs one line per function run at INFO (WARNING when it failed); timers firing
and tracebacks at DEBUG; the app's own INFO lines only with `lifeboat host --verbose`."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from cli.host_cmd import APP_LOGGERS, quiet_app_logs
from cli.localhost import Faults, LocalHost
from tests.apps import hostcheck
from tests.conftest import base_settings


@pytest.fixture
def host() -> Iterator[LocalHost]:
    hostcheck.reset()
    environ = base_settings(
        AzureWebJobsStorage="UseDevelopmentStorage=true", TICK_SCHEDULE="0 0 * * * *"
    )
    built = LocalHost(hostcheck.app, environ=environ, faults=Faults(), run_timers=False)
    yield built
    built._server.server_close()  # never started: nothing else to stop
    built._webhook_pool.shutdown()


def host_lines(caplog: pytest.LogCaptureFixture, level: int) -> list[str]:
    return [
        r.getMessage() for r in caplog.records if r.name == "lifeboat.host" and r.levelno >= level
    ]


def test_a_run_is_one_info_line(host: LocalHost, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG, logger="lifeboat.host"):
        assert host.invoke_timer("tick")

    (line,) = host_lines(caplog, logging.INFO)
    assert line.startswith("function tick succeeded in ")


def test_a_failed_run_is_one_warning_line_and_its_traceback_is_debug(
    host: LocalHost, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(timer: object) -> None:
        raise RuntimeError("the disk is gone")

    host.functions["tick"].call = broken
    with caplog.at_level(logging.DEBUG, logger="lifeboat.host"):
        assert not host.invoke_timer("tick")

    (line,) = host_lines(caplog, logging.INFO)
    assert line.startswith("function tick failed in ")
    assert line.endswith("RuntimeError: the disk is gone")
    (debug,) = [r for r in caplog.records if r.levelno == logging.DEBUG and r.exc_info]
    assert debug.getMessage() == "function tick failed"


def test_the_apps_info_lines_show_only_when_verbose() -> None:
    saved = {name: logging.getLogger(name).level for name in APP_LOGGERS}
    try:
        quiet_app_logs(verbose=False)
        assert all(logging.getLogger(n).getEffectiveLevel() == logging.WARNING for n in APP_LOGGERS)
    finally:
        for name, level in saved.items():
            logging.getLogger(name).setLevel(level)
