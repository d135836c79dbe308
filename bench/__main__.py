"""`make bench`: runs every bench/bench_*.py module's `main()` in turn, or the ones named.

A name matches part of a module's name, with hyphens read as underscores
(`python -m bench cold-start` runs bench_cold_start).
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
from pathlib import Path


def main(argv: list[str]) -> int:
    here = Path(__file__).parent
    names = sorted(m.name for m in pkgutil.iter_modules([str(here)]) if m.name.startswith("bench_"))
    wanted = [n for n in names if not argv or any(a.replace("-", "_") in n for a in argv)]
    if not wanted:
        print(f"no benchmark matches {argv}; there are: {', '.join(names)}", file=sys.stderr)
        return 2
    for name in wanted:
        print(f"== {name}", flush=True)
        importlib.import_module(f"bench.{name}").main()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
