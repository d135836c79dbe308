"""The ARM core's and Compute's routes in one list, as `tests/test_infra_roles.py` reads them to
check every operation against the role table. The stand-in routes through `StandIn.providers()`;
this module only gathers data for that check (a follow-up can read the router there instead).
"""

from __future__ import annotations

from emulator import arm_core, compute
from emulator.routing import Route

ROUTES: list[Route] = [*arm_core.ROUTES, *compute.ROUTES]
