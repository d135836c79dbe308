"""The `lifeboat` exit codes and its plain failures: each code pinned by a command that ends so.

0 all good; 1 the command worked and found problems; 2 usage or configuration error; 3 cannot
reach Azure (or sign in), Azurite, the stand-in or the local host. A missing service is named in
one line within 5 seconds; a missing credential in at most ten lines; never a traceback.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.exits import Exit, Service, Unreachable, explain, require
from cli.main import app
from cli.processes import free_port
from tests.conftest import base_settings

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def _own_environ(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The commands run in this process set settings in os.environ: each test gets its own, and
    no developer credential beyond this machine's (never the managed identity endpoint)."""
    saved = dict(os.environ)
    monkeypatch.setenv("AZURE_TOKEN_CREDENTIALS", "dev")
    yield
    os.environ.clear()
    os.environ.update(saved)


def settings_file(tmp_path: Path, **values: str) -> Path:
    path = tmp_path / "local.settings.json"
    path.write_text(json.dumps({"Values": base_settings(**values)}))
    return path


def no_azurite(tmp_path: Path) -> Path:
    queue = f"http://127.0.0.1:{free_port()}/devstoreaccount1"
    return settings_file(
        tmp_path,
        AzureWebJobsStorage=f"DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;"
        f"AccountKey=a2V5;QueueEndpoint={queue};",
    )


@pytest.mark.parametrize("command", [["drill", "status"], ["drill", "start", "--vm", "/x"]])
def test_drill_commands_without_azurite_fail_in_seconds_with_one_line(
    tmp_path: Path, command: list[str]
) -> None:
    started = time.monotonic()
    result = CliRunner().invoke(app, [*command, "--settings", str(no_azurite(tmp_path))])

    assert time.monotonic() - started < 5
    assert result.exit_code == Exit.UNREACHABLE
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("lifeboat drill: Azurite (queues) does not answer at 127.0.0.1:")
    assert "npx azurite-queue" in line
    assert "Traceback" not in result.output


def test_a_closed_port_is_named_with_the_command_that_starts_it() -> None:
    port = free_port()
    with pytest.raises(Unreachable) as caught:
        require(None, Service("the local host", "127.0.0.1", port, "start it with `x`"))
    assert str(caught.value) == (
        f"the local host does not answer at 127.0.0.1:{port} (connection refused); "
        "start it with `x`"
    )


def test_an_error_chain_is_explained_by_its_cause() -> None:
    from azure.core.exceptions import ServiceRequestError

    try:
        try:
            raise ServiceRequestError("Connection refused to 127.0.0.1:10001")
        except ServiceRequestError as e:
            raise RuntimeError("listing queues failed") from e
    except RuntimeError as wrapped:
        code, text = explain("run", wrapped)
    assert code == Exit.UNREACHABLE
    assert text == (
        "lifeboat run: cannot reach a service it needs: Connection refused to 127.0.0.1:10001"
    )


def test_an_unexpected_error_is_one_line_without_a_traceback() -> None:
    code, text = explain("plan", KeyError("slot"))
    assert code == Exit.FOUND_PROBLEMS
    assert text == (
        "lifeboat plan: it broke: KeyError: 'slot' (run `lifeboat --debug ...` for the traceback)"
    )


def _lifeboat(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cli.main", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture
def no_credential_env(tmp_path: Path) -> dict[str, str]:
    """No Azure login: an empty home, no service principal, and only the developer credentials
    (so the managed identity endpoint, which is not on loopback, is never asked)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AZURE_", "IDENTITY_", "MSI_"))}
    env.update(HOME=str(tmp_path), AZURE_TOKEN_CREDENTIALS="dev", PATH="/usr/bin:/bin")
    return env


def test_plan_without_a_credential_says_what_to_do_in_at_most_ten_lines(
    tmp_path: Path, no_credential_env: dict[str, str]
) -> None:
    settings = settings_file(tmp_path)

    result = _lifeboat("plan", "--settings", str(settings), env=no_credential_env)

    assert result.returncode == Exit.UNREACHABLE, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) <= 10, result.stderr
    assert lines[0] == "lifeboat plan: cannot sign in to Azure: no credential in the chain worked."
    assert "AzureCliCredential" in lines[1]
    assert "az login" in result.stderr
    assert "AZURE_CLIENT_SECRET" in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


def test_debug_shows_the_traceback(tmp_path: Path, no_credential_env: dict[str, str]) -> None:
    settings = settings_file(tmp_path)

    result = _lifeboat("--debug", "plan", "--settings", str(settings), env=no_credential_env)

    assert result.returncode == 1
    assert "Traceback" in result.stderr
    assert "ClientAuthenticationError" in result.stderr


def test_a_usage_error_exits_2() -> None:
    result = CliRunner().invoke(app, ["status", "--no-such-flag"])
    assert result.exit_code == Exit.USAGE


def test_a_settings_error_exits_2(tmp_path: Path) -> None:
    settings = settings_file(tmp_path, ROTATION_SCHEDULE="every night")

    result = CliRunner().invoke(app, ["plan", "--settings", str(settings)])

    assert result.exit_code == Exit.USAGE
    assert "ROTATION_SCHEDULE" in result.stderr


def test_help_documents_the_exit_codes() -> None:
    for command in ([], ["status"], ["run"], ["drill"]):
        result = CliRunner().invoke(app, [*command, "--help"])
        text = " ".join(result.stdout.split())
        assert "Exit codes: 0 all good; 1 the command worked and found problems" in text, command


def test_boolean_flags_read_naturally() -> None:
    import re

    commands = [[c.name] for c in app.registered_commands] + [
        ["drill", "start"],
        ["drill", "status"],
        ["settings", "check"],
    ]
    for command in commands:
        result = CliRunner().invoke(app, [*command, "--help"], env={"COLUMNS": "200"})
        assert result.exit_code == 0, command
        assert not re.search(r"--no-no-", result.stdout), command
