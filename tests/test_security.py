"""No Lifeboat code path can mint a SAS on a disk or a snapshot.

Lifeboat's role holds `Microsoft.Compute/disks/beginGetAccess/action` on served disks only because
Azure checks it (a linked check) when a snapshot of the disk is created. With it, anyone holding
the identity could mint a SAS and download a production disk, so no code may ask for one: the
SDK's `begin_grant_access` / `grant_access` and `GrantAccessData`, or the REST `beginGetAccess`.
The scan reads the syntax tree (names, attributes, imports with their aliases, keyword arguments,
`getattr` strings, URL text, string pieces joined with `+`), so renaming a client or importing a
method under another name does not hide a call. Docstrings and comments may name it.
"""

from __future__ import annotations

import ast
import fnmatch
import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.test_infra_bicep import INFRA, ROOT, Bicep, resource_body

SCANNED = [ROOT / "shared", ROOT / "triggers", ROOT / "cli", ROOT / "function_app.py"]

# Spellings folded to lower case without `_`: begin_grant_access, grant_access, GrantAccessData,
# beginGetAccess, get_access...
FORBIDDEN = ("grantaccess", "getaccess")

ROLES = INFRA / "app" / "roles.bicep"
ROLE_VARIABLES = {
    "subscriptionRole": "subscriptionActions",
    "snapshotRole": "snapshotGroupActions",
    "drillSubscriptionRole": "drillSubscriptionActions",
    "drillGroupRole": "drillGroupActions",
}
DISK_SAS = "Microsoft.Compute/disks/beginGetAccess/action"
SNAPSHOT_SAS = "Microsoft.Compute/snapshots/beginGetAccess/action"


def _python_files(roots: list[Path]) -> Iterator[Path]:
    for root in roots:
        if root.is_file():
            yield root
        else:
            yield from sorted(p for p in root.rglob("*.py") if "__pycache__" not in p.parts)


def _docstrings(tree: ast.AST) -> set[int]:
    """ids of the string constants that are docstrings (they may explain the rule)."""
    found: set[int] = set()
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
            and node.body
        ):
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                found.add(id(first.value))
    return found


def _folded(node: ast.AST) -> str | None:
    """The text of a string constant, or of string pieces joined with `+` (a URL built in parts)."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        left, right = _folded(node.left), _folded(node.right)
        if left is not None and right is not None:
            return left + right
    if isinstance(node, ast.JoinedStr):  # f"{base}/beginGetAccess": the literal parts, joined
        return "".join(_folded(v) or "" for v in node.values)
    return None


def _words(tree: ast.AST) -> Iterator[tuple[int, str]]:
    """(line, text) of every name, attribute, import, keyword and non-docstring string."""
    docstrings = _docstrings(tree)
    for node in ast.walk(tree):
        line = getattr(node, "lineno", 0)
        if isinstance(node, ast.Name):
            yield line, node.id
        elif isinstance(node, ast.Attribute):
            yield line, node.attr
        elif isinstance(node, ast.alias):
            yield line, node.name
            if node.asname:
                yield line, node.asname
        elif isinstance(node, ast.ImportFrom) and node.module:
            yield line, node.module
        elif isinstance(node, ast.keyword) and node.arg:
            yield line, node.arg
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            yield line, node.name
        elif isinstance(node, ast.BinOp | ast.JoinedStr | ast.Constant):
            if id(node) in docstrings:
                continue
            text = _folded(node)
            if text is not None:
                yield line, text


def sas_calls(roots: list[Path]) -> list[str]:
    """Every place under `roots` that names a way to get read access to a disk or snapshot."""
    found = []
    for path in _python_files(roots):
        tree = ast.parse(path.read_text(), filename=str(path))
        for line, text in _words(tree):
            folded = text.lower().replace("_", "")
            if any(word in folded for word in FORBIDDEN):
                where = path.relative_to(ROOT) if ROOT in path.parents else path.name
                found.append(f"{where}:{line}: {text[:80]}")
    return sorted(set(found))


def test_no_code_path_asks_for_a_sas_on_a_disk_or_snapshot() -> None:
    files = list(_python_files(SCANNED))
    assert len(files) > 20, "the scan reads the app's code"
    assert sas_calls(SCANNED) == []


@pytest.mark.parametrize(
    "source",
    [
        "client.disks.begin_grant_access(rg, name, data)",
        "compute.snapshots.begin_grant_access(rg, name, {'access': 'Read'})",
        "ops = client.disks\nsas = ops.begin_grant_access",
        "from azure.mgmt.compute.models import GrantAccessData as Data",
        "from azure.mgmt.compute.operations import DisksOperations\nDisksOperations.grant_access",
        "getattr(client.snapshots, 'begin_grant_access')(rg, name, data)",
        "getattr(client.disks, 'begin_' + 'grant_access')",
        "HttpRequest('POST', f'{disk_id}/beginGetAccess?api-version=2024-03-02')",
        "HttpRequest('POST', disk_id + '/begin' + 'GetAccess')",
        "url = '/providers/Microsoft.Compute/snapshots/%s/beginGetAccess' % name",
        "poller = begin(grant_access=True)",
    ],
)
def test_the_scan_finds_a_sas_request_however_it_is_spelt(tmp_path: Path, source: str) -> None:
    module = tmp_path / "pkg" / "adapter.py"
    module.parent.mkdir()
    module.write_text(f'"""An adapter."""\n\n{source}\n')
    assert sas_calls([module.parent]) != []


def test_the_scan_lets_docstrings_and_comments_explain_the_rule(tmp_path: Path) -> None:
    module = tmp_path / "pkg" / "adapter.py"
    module.parent.mkdir()
    module.write_text(
        '"""Never calls beginGetAccess."""\n\n\n'
        "def create(client):\n"
        '    """Creating a snapshot needs disks/beginGetAccess/action (a linked check)."""\n'
        "    # begin_grant_access would mint a SAS\n"
        "    return client.snapshots.begin_create_or_update('rg', 'name', {})\n"
    )
    assert sas_calls([module.parent]) == []


def _granted(action: str, patterns: list[str]) -> bool:
    return any(fnmatch.fnmatch(action.lower(), p.lower()) for p in patterns)


@pytest.mark.parametrize(
    ("tag_default_policy", "drills"), list(itertools.product([False, True], repeat=2))
)
def test_roles_grant_the_disk_linked_check_and_never_a_snapshot_sas(
    tag_default_policy: bool, drills: bool
) -> None:
    bicep = Bicep(ROLES, tagDefaultPolicy=tag_default_policy, drills=drills)
    granted: dict[str, list[str]] = {}
    for resource, variable in ROLE_VARIABLES.items():
        condition, _ = resource_body(bicep.tree["resources"][resource]["config"])
        if condition is None or bicep.evaluate(condition):
            granted[resource] = bicep.variable(variable)
    for resource, actions in granted.items():
        assert not _granted(SNAPSHOT_SAS, actions), f"{resource} can mint a SAS on a snapshot"
    # The linked check of a snapshot PUT on its source disk: without it every create fails
    # with LinkedAuthorizationFailed. Only the role on target subscriptions (the source disks).
    assert _granted(DISK_SAS, granted["subscriptionRole"])
