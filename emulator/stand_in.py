"""One stand-in's state and providers, as plain objects: what the HTTP side serves and what
tests reach directly (`build_stand_in(...)`, then `.cloud`, `.network`, `.backup`, `.monitor`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from emulator.arm_core import Arm
from emulator.clock import Clock, format_instant
from emulator.compute import Compute
from emulator.config import Behaviour
from emulator.estate import apply_changes
from emulator.eventgrid import EventGrid
from emulator.faults import Faults, RequestLog
from emulator.identity import TokenAuthority
from emulator.ids import new_uuid
from emulator.model import Cloud, EstateChange
from emulator.monitor_state import Monitor, MonitorConfig
from emulator.network import NetworkRP
from emulator.policy import PolicyRP
from emulator.provisioning import Provisioning
from emulator.recoveryservices import RecoveryServices
from emulator.routing import Provider, Router
from emulator.siterecovery import SiteRecovery
from emulator.throttling import Throttler

# Who makes the estate's changes (a user of the estate, not Lifeboat): the request log's
# principal and the Event Grid caller of an added VM.
CHANGE_PRINCIPAL = "00000000-0000-0000-0000-0000000ec4a9"


@dataclass
class StandIn:
    """Everything the handlers share."""

    cloud: Cloud
    clock: Clock
    behaviour: Behaviour
    throttler: Throttler
    events: EventGrid
    faults: Faults
    log: RequestLog
    authority: TokenAuthority
    arm: Arm
    compute: Compute
    provisioning: Provisioning
    network: NetworkRP
    backup: RecoveryServices
    policy: PolicyRP
    monitor: Monitor
    site_recovery: SiteRecovery
    router: Router = field(init=False)

    def __post_init__(self) -> None:
        self.router = Router(self.providers())
        self.arm.before_request = self.catch_up

    def catch_up(self) -> list[EstateChange]:
        """Apply the estate's changes whose instant the clock has passed (ESTATE.md, "Changes
        between nights"). Runs before every ARM request and on the admin API's clock and state
        calls, so a change is in place for the first request after its instant. Each applied
        change is a request log entry (method CHANGE, operation `estate/<action>`); an added
        VM is also two Event Grid VM writes, a VM's new tags one, as a user's would be."""
        applied = apply_changes(self.cloud, self.clock.now())
        for change in applied:
            self.record(
                "CHANGE",
                f"/estate/{change.where}",
                f"estate/{change.action}",
                change.status,
                CHANGE_PRINCIPAL,
                [change.target] if change.target else [],
            )
            if change.status != 200 or not change.target:
                continue
            if change.action == "addVm":
                correlation = new_uuid()
                for _ in range(2):
                    self.events.resource_write(
                        change.target,
                        "Microsoft.Compute/virtualMachines/write",
                        CHANGE_PRINCIPAL,
                        correlation,
                        http_method="PUT-CREATE",
                    )
            elif change.action == "retag" and "/virtualmachines/" in change.target.lower():
                self.events.resource_write(
                    change.target, "Microsoft.Resources/tags/write", CHANGE_PRINCIPAL, new_uuid()
                )
        return applied

    def record(
        self,
        method: str,
        path: str,
        operation: str,
        status: int,
        principal: str | None = None,
        actions: list[str] | None = None,
        fault: int | None = None,
    ) -> None:
        """One request log entry, stamped with real time and the stand-in clock."""
        self.log.add(
            time=format_instant(datetime.now(UTC)),
            clock=format_instant(self.clock.now()),
            method=method,
            path=path,
            operation=operation,
            status=status,
            principal=principal,
            actions=list(actions or []),
            fault=fault,
        )

    def providers(self) -> list[Provider]:
        """The ARM resource providers, in the order their routes are tried: the one list."""
        return [
            self.arm,
            self.compute,
            self.provisioning,
            self.backup,
            self.network,
            self.policy,
            self.site_recovery,
        ]


def build_stand_in(
    cloud: Cloud,
    clock: Clock,
    behaviour: Behaviour,
    throttler: Throttler,
    events: EventGrid,
    seed: int | None = None,
) -> StandIn:
    arm = Arm(cloud, clock, behaviour, throttler, events)
    return StandIn(
        cloud=cloud,
        clock=clock,
        behaviour=behaviour,
        throttler=throttler,
        events=events,
        faults=Faults(seed),
        log=RequestLog(),
        authority=TokenAuthority(cloud.tenant_id),
        arm=arm,
        compute=Compute(arm),
        provisioning=Provisioning(arm),
        network=NetworkRP(arm),
        backup=RecoveryServices(cloud, clock, behaviour),
        policy=PolicyRP(arm),
        monitor=Monitor(MonitorConfig.from_estate(cloud.extra, cloud.tenant_id)),
        site_recovery=SiteRecovery(arm),
    )
