"""Cold start: a fresh interpreter importing `function_app`, against one importing azure.functions.

What the worker pays before it can index the app. Both are timed in the same run, alternating
(which goes first alternates too), each a whole `python -c "import ..."` process, so the
interpreter's own start-up is in both; one untimed run of each first writes the bytecode caches.
The target (issue 16, item 9) is a ratio of medians of at most 1.2. Then one `-X importtime`
run lists the slowest modules `function_app` imports beyond azure.functions.

`BENCH_COLD_RUNS` sets the number of runs of each (default 15).
"""

from __future__ import annotations

import os
import statistics
import subprocess
import time

TARGET_RATIO = 1.2
SUBJECTS = ("azure.functions", "function_app")


def _run(code: str, *flags: str) -> subprocess.CompletedProcess[str]:
    # No app settings, as on a fresh worker: importing the app must not need any.
    from tests.fakes import run_python

    return run_python(*flags, "-c", code, check=True)


def time_import(module: str) -> float:
    began = time.perf_counter()
    _run(f"import {module}")
    return time.perf_counter() - began


def measure(runs: int) -> dict[str, list[float]]:
    for module in SUBJECTS:
        _run(f"import {module}")  # bytecode caches written, untimed
    times: dict[str, list[float]] = {module: [] for module in SUBJECTS}
    for i in range(runs):
        for module in SUBJECTS if i % 2 == 0 else reversed(SUBJECTS):
            times[module].append(time_import(module))
    return times


def import_times(module: str) -> dict[str, tuple[int, int]]:
    """`-X importtime` of one fresh import: module -> (self µs, cumulative µs)."""
    result = _run(f"import {module}", "-X", "importtime")
    found: dict[str, tuple[int, int]] = {}
    for line in result.stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        own, cumulative, name = line.removeprefix("import time:").split("|")
        found[name.strip()] = (int(own), int(cumulative))
    return found


def main() -> None:
    runs = int(os.environ.get("BENCH_COLD_RUNS", "15"))
    times = measure(runs)
    print(f"{runs} fresh interpreters each, alternating; seconds per process")
    print(f"{'import':<18} {'min':>7} {'median':>7} {'max':>7}")
    for module, values in times.items():
        print(
            f"{module:<18} {min(values):>7.3f} {statistics.median(values):>7.3f}"
            f" {max(values):>7.3f}"
        )
    ratio = statistics.median(times["function_app"]) / statistics.median(times["azure.functions"])
    verdict = "within" if ratio <= TARGET_RATIO else "ABOVE"
    print(
        f"ratio of medians (function_app / azure.functions): {ratio:.2f} ({verdict} {TARGET_RATIO})"
    )

    alone = import_times("azure.functions")
    app = import_times("function_app")
    extra = {name: t for name, t in app.items() if name not in alone}
    own = sum(t[0] for t in extra.values())
    print(
        f"function_app imports {len(extra)} module(s) beyond azure.functions, {own / 1000:.1f} ms"
    )
    print("(self time, one -X importtime run); the slowest:")
    for name, (self_us, cumulative_us) in sorted(extra.items(), key=lambda kv: -kv[1][0])[:8]:
        print(f"  {name:<40} {self_us / 1000:>6.1f} ms self {cumulative_us / 1000:>6.1f} ms cum")


if __name__ == "__main__":
    main()
