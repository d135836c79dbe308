"""A cold start pays for azure.functions and `shared/names.py` only (issue 16, item 9).

Indexing the app imports `function_app` in a fresh worker process; the use cases, pydantic, the
Azure SDKs and the policy loader are imported on a function's first invocation instead.
`bench/bench_cold_start.py` measures what this costs.
"""

from __future__ import annotations

import json

from tests.conftest import run_in_bare_python

# Packages a cold start must not import: exact names, or prefixes ending in "*".
NOT_AT_COLD_START = (
    "pydantic",
    "yaml",
    "croniter",
    "azure.core",
    "azure.identity",
    "azure.mgmt*",
    "azure.storage*",
    "azure.monitor*",
)
SHARED_AT_COLD_START = {"shared", "shared.names"}


def _modules_after(code: str) -> set[str]:
    """`sys.modules` of a fresh interpreter (no app settings at all) after running `code`."""
    script = f"{code}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"
    return set(json.loads(run_in_bare_python(script).strip().splitlines()[-1]))


def _matches(module: str, pattern: str) -> bool:
    if pattern.endswith("*"):
        return module.startswith(pattern[:-1])
    return module == pattern or module.startswith(pattern + ".")


def test_importing_the_app_loads_no_sdk_no_pydantic_and_no_use_case() -> None:
    modules = _modules_after("import function_app")
    assert "function_app" in modules
    assert "azure.functions" in modules
    loaded = sorted(m for m in modules if any(_matches(m, p) for p in NOT_AT_COLD_START))
    assert loaded == []
    assert {m for m in modules if _matches(m, "shared")} == SHARED_AT_COLD_START


def test_the_check_sees_what_an_invocation_imports() -> None:
    """The same check after what every first invocation imports (`triggers/invoke.py`)."""
    modules = _modules_after("import function_app\nimport shared.dispatch, shared.services")
    for pattern in ("pydantic", "yaml"):
        assert any(_matches(m, pattern) for m in modules), pattern
    assert {"shared.dispatch", "shared.services"} <= modules
