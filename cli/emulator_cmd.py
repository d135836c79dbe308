"""`lifeboat emulator`: run the Azure stand-in in place of this process (signals reach it)."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer


def emulator_args(
    estate: Path,
    port: int = 0,
    endpoints: Path | None = None,
    state_dir: Path | None = None,
    event_grid_webhook: str | None = None,
    clock_start: str | None = None,
    clock_rate: float | None = None,
    retry_after_scale: float | None = None,
    throttle_scale: float | None = None,
    page_size: int | None = None,
    operation_seconds: float | None = None,
    extra: list[str] | None = None,
    *,
    hydration_seconds: float | None = None,
    event_grid_duplicates: float | None = None,
    event_grid_reorder: float | None = None,
    seed: int | None = None,
    no_throttle: bool = False,
) -> list[str]:
    """The `python -m emulator` command line for these options."""
    argv = [sys.executable, "-m", "emulator", "--estate", str(estate), "--port", str(port)]
    optional: list[tuple[str, object]] = [
        ("--endpoints", endpoints),
        ("--state-dir", state_dir),
        ("--event-grid-webhook", event_grid_webhook),
        ("--clock-start", clock_start),
        ("--clock-rate", clock_rate),
        ("--retry-after-scale", retry_after_scale),
        ("--throttle-scale", throttle_scale),
        ("--page-size", page_size),
        ("--operation-seconds", operation_seconds),
        ("--hydration-seconds", hydration_seconds),
        ("--event-grid-duplicates", event_grid_duplicates),
        ("--event-grid-reorder", event_grid_reorder),
        ("--seed", seed),
    ]
    for flag, value in optional:
        if value is not None:
            argv += [flag, str(value)]
    if no_throttle:
        argv.append("--no-throttle")
    return argv + list(extra or [])


def emulator_command(
    estate: Annotated[Path, typer.Option(help="Estate YAML (e.g. emulator/estates/demo.yaml).")],
    port: Annotated[int, typer.Option(help="Port on 127.0.0.1; 0 picks a free one.")] = 0,
    endpoints: Annotated[
        Path | None, typer.Option(help="Where to write the endpoints JSON.")
    ] = None,
    state_dir: Annotated[
        Path | None, typer.Option(help="Directory for CA, certificate, endpoints.")
    ] = None,
    event_grid_webhook: Annotated[
        str | None, typer.Option(help="Webhook URL receiving VM write events.")
    ] = None,
    clock_start: Annotated[
        str | None, typer.Option(help="RFC 3339 instant the clock starts at.")
    ] = None,
    clock_rate: Annotated[
        float | None, typer.Option(help="Stand-in seconds per real second.")
    ] = None,
    retry_after_scale: Annotated[
        float | None, typer.Option(help="Multiplies every Retry-After.")
    ] = None,
    throttle_scale: Annotated[
        float | None, typer.Option(help="Multiplies throttling bucket sizes and rates.")
    ] = None,
    page_size: Annotated[int | None, typer.Option(help="Items per list page.")] = None,
    operation_seconds: Annotated[
        float | None, typer.Option(help="Stand-in seconds a snapshot operation runs.")
    ] = None,
    hydration_seconds: Annotated[
        float | None, typer.Option(help="Premium SSD v2/Ultra background copy time.")
    ] = None,
    event_grid_duplicates: Annotated[
        float | None, typer.Option(help="Probability an event is delivered twice.")
    ] = None,
    event_grid_reorder: Annotated[
        float | None, typer.Option(help="Random delay up to N s per delivery (reorders).")
    ] = None,
    seed: Annotated[int | None, typer.Option(help="Seed for faults, duplicates, order.")] = None,
    no_throttle: Annotated[
        bool, typer.Option("--no-throttle", help="Turn throttling off.")
    ] = False,
) -> None:
    """Run the Azure stand-in (HTTPS on 127.0.0.1) until interrupted; see emulator/README.md."""
    argv = emulator_args(
        estate,
        port,
        endpoints,
        state_dir,
        event_grid_webhook,
        clock_start,
        clock_rate,
        retry_after_scale,
        throttle_scale,
        page_size,
        operation_seconds,
        hydration_seconds=hydration_seconds,
        event_grid_duplicates=event_grid_duplicates,
        event_grid_reorder=event_grid_reorder,
        seed=seed,
        no_throttle=no_throttle,
    )
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, argv)
