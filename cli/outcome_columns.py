"""Generate `infra/app/outcome-columns.json` from the code's outcome schema (`OUTCOME_COLUMNS`).

The table and the DCR stream in `infra/app/monitor.bicep` load that file, so the columns are
defined once, in `shared/model.py`. `python -m cli.outcome_columns` rewrites it; `--check` exits 1
and names the differences when code and infra disagree (the drift test runs the same check).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from shared.model import OUTCOME_COLUMNS

ROOT = Path(__file__).resolve().parent.parent
COLUMNS_FILE = ROOT / "infra" / "app" / "outcome-columns.json"


def columns_document(columns: Sequence[tuple[str, str]] = OUTCOME_COLUMNS) -> list[dict[str, str]]:
    return [{"name": name, "type": kind} for name, kind in columns]


def render(columns: Sequence[tuple[str, str]] = OUTCOME_COLUMNS) -> str:
    return json.dumps(columns_document(columns), indent=2) + "\n"


def drift(
    columns: Sequence[tuple[str, str]] = OUTCOME_COLUMNS, path: Path = COLUMNS_FILE
) -> list[str]:
    """Differences between the code's columns and the infra's, in words (empty: none)."""
    try:
        infra: list[dict[str, Any]] = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return [f"{path} is missing: run `python -m cli.outcome_columns`"]
    code = [(name, kind) for name, kind in columns]
    declared = [(str(c.get("name")), str(c.get("type"))) for c in infra]
    problems = []
    for name, kind in code:
        match = [k for n, k in declared if n == name]
        if not match:
            problems.append(f"column {name} ({kind}) is in the code but not in {path.name}")
        elif match[0] != kind:
            problems.append(f"column {name} is {kind} in the code but {match[0]} in {path.name}")
    for name, kind in declared:
        if name not in dict(code):
            problems.append(f"column {name} ({kind}) is in {path.name} but not in the code")
    if not problems and code != declared:
        problems.append(f"the columns of {path.name} are not in the code's order")
    return problems


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if "--check" in args:
        problems = drift()
        for problem in problems:
            print(f"drift: {problem}", file=sys.stderr)
        return 1 if problems else 0
    COLUMNS_FILE.parent.mkdir(parents=True, exist_ok=True)
    COLUMNS_FILE.write_text(render(), encoding="utf-8")
    print(f"wrote {COLUMNS_FILE.relative_to(ROOT)} ({len(OUTCOME_COLUMNS)} columns)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
