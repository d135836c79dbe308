"""Azure Policy assignments as `PolicyClient.policy_assignments.list_for_resource_group` and
`list` (subscription) read them (api-version 2026-06-01 for azure-mgmt-resource-policy 1.0.0).

Without `$filter` the list holds every assignment that applies at the scope: those at the
subscription, at the group, and at resources inside the group (as the REST reference says).
`$filter=atScope()` drops the ones on resources inside; `atExactScope()` keeps only those at the
scope itself; `policyDefinitionId eq '{id}'` filters by definition. The estate's `policies:`
(deny and modify rules) are assignments too and are listed with their names.
"""

from __future__ import annotations

import re
from typing import Any

from emulator.arm_core import Arm
from emulator.errors import ArmError
from emulator.ids import in_scope, key
from emulator.model import PolicyAssignment
from emulator.routing import GROUP, SUBSCRIPTION, ArmRequest, Reply, Route, route

_PA = r"/providers/microsoft\.authorization/policyassignments"
_DEFINITION = re.compile(r"^policyDefinitionId\s+eq\s+'([^']+)'$", re.IGNORECASE)


class PolicyRP:
    def __init__(self, arm: Arm) -> None:
        self.arm = arm
        self.cloud = arm.cloud

    def routes(self) -> list[Route]:
        return ROUTES

    def assignments(self) -> list[PolicyAssignment]:
        """Declared assignments, then the estate's deny/modify rules as assignments."""
        out = list(self.cloud.policy_assignments)
        for rule in self.cloud.policies:
            out.append(
                PolicyAssignment(
                    name=rule.name,
                    scope=rule.scope,
                    display_name=rule.name,
                    policy_definition_id=f"/providers/Microsoft.Authorization/policyDefinitions/{rule.name}",
                )
            )
        return out

    def list_assignments(self, req: ArmRequest, args: tuple[str, ...]) -> Reply:
        sub = args[0].lower()
        scope = f"/subscriptions/{sub}"
        if len(args) > 1:  # a resource group's list
            scope = self.arm.need_group(sub, args[1]).id
        wanted = req.query.get("$filter", "").strip()
        definition = _DEFINITION.match(wanted)
        if wanted and not definition and wanted.lower() not in ("atscope()", "atexactscope()"):
            raise ArmError(
                400,
                "InvalidFilterInQueryString",
                f"The filter '{wanted}' is not valid. Supported: atScope(), atExactScope(), "
                "policyDefinitionId eq '{value}'.",
            )
        chosen: list[PolicyAssignment] = []
        for assignment in self.assignments():
            above = in_scope(scope, assignment.scope)  # at the scope or a containing one
            below = not above and in_scope(assignment.scope, scope)  # on something inside
            if wanted.lower() == "atexactscope()":
                keep = key(assignment.scope) == key(scope)
            elif wanted.lower() == "atscope()":
                keep = above
            else:
                keep = above or below
            if definition and key(assignment.policy_definition_id) != key(definition.group(1)):
                keep = False
            if keep and assignment.scope.lower().startswith(f"/subscriptions/{sub}"):
                chosen.append(assignment)
        return self.arm.page(req, chosen, _render)


def _render(assignment: Any) -> dict[str, Any]:
    body: dict[str, Any] = assignment.to_json()
    return body


_READ = "Microsoft.Authorization/policyAssignments/read"
ROUTES: list[Route] = [
    route("GET", GROUP + _PA, _READ, "list_assignments"),
    route("GET", SUBSCRIPTION + _PA, _READ, "list_assignments"),
]
