"""The sweeper timer: tear down every drill whose resources outlived `lifeboat:expires`.

Whatever happened to a drill's messages (poisoned, lost, a teardown that gave up), its resources
carry its id and expiry as tags. Past the expiry the sweeper sends the drill, as the tags
describe it, to the teardown step, which deletes by tag inside the drill group and reports a
`sweep` row. A tag that is not a Lifeboat drill id is reported `blocked` and never deleted.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from datetime import datetime

from shared.dispatch import Context, Done, Outgoing, Result, Send
from shared.drills.steps import step_message
from shared.messages import DrillState
from shared.model import DrillResource, format_time
from shared.names import Tag
from shared.policies import tag_value
from shared.snapshots import slot_of

log = logging.getLogger(__name__)

DRILL_ID_PATTERN = re.compile(r"lbd-[a-z2-7]{10}")  # as `drill_id_of` makes them (DrillState)


def sweep(ctx: Context, occurrence: datetime) -> Result:
    """One teardown message per expired drill in every drill group Lifeboat can see.

    `run-start` and `run-end` (with the count) are the sweeper's heartbeat: the dead man's switch
    (infra/alerts/heartbeat-missing.kql) fires when an hour and a grace pass without them.
    """
    ctx.out.succeeded("run-start", details={"function": "sweeper"})
    cloud = ctx.drills
    now = ctx.now()
    settings = ctx.settings
    groups = settings.drill_groups
    subscriptions = set(settings.subscriptions)
    if settings.drill_subscription is not None:
        subscriptions.add(str(settings.drill_subscription).lower())
    teardowns: list[Outgoing] = []
    found = 0
    for subscription in sorted(subscriptions):
        for group in cloud.list_resource_groups(subscription):
            if group not in groups:
                continue
            out = ctx.out.bind(subscription_id=subscription, resource_group=group)
            for drill_id, resources in _by_drill(cloud.list_drill_resources(subscription, group)):
                expires = _expiry(resources)
                if expires is not None and expires > now:
                    continue
                found += 1
                row = {
                    "distinct": drill_id,
                    "count": len(resources),
                    "details": {
                        "drillId": drill_id,
                        "resources": sorted(r.name for r in resources)[:64],
                    },
                }
                if not DRILL_ID_PATTERN.fullmatch(drill_id):
                    reason = f"tag {Tag.DRILL}={drill_id!r} is not a Lifeboat drill id: not deleted"
                    out.blocked("sweep", reason, **row)
                    continue
                why = (
                    f"past its expiry {format_time(expires)}"
                    if expires is not None
                    else f"no readable {Tag.EXPIRES} tag"
                )
                state = DrillState(
                    drillId=drill_id,
                    step="teardown",
                    startedAt=now,
                    expiresAt=expires or now,
                    drillSubscription=subscription,
                    drillGroup=group,
                    location=(resources[0].location or "unknown").lower(),
                    swept=True,
                    reason=f"swept: {why}",
                )
                teardowns.append(step_message(state, key=f"drill:{drill_id}:sweep:{slot_of(now)}"))
                out.planned("sweep", f"swept: {why}", **row)
    log.info("sweeper: %d expired drill(s)", found)
    ctx.out.succeeded("run-end", count=found, details={"function": "sweeper"})
    return Send(*teardowns) if teardowns else Done(f"{found} expired drill(s) to tear down")


def _by_drill(resources: Iterable[DrillResource]) -> list[tuple[str, list[DrillResource]]]:
    grouped: dict[str, list[DrillResource]] = {}
    for resource in resources:
        drill = tag_value(resource.tags, Tag.DRILL)
        if drill and (tag_value(resource.tags, Tag.MANAGED) or "").lower() == "true":
            grouped.setdefault(drill.strip().lower(), []).append(resource)
    return sorted(grouped.items())


def _expiry(resources: Iterable[DrillResource]) -> datetime | None:
    """The earliest `lifeboat:expires` of a drill's resources; None if none can be read."""
    times = []
    for resource in resources:
        value = tag_value(resource.tags, Tag.EXPIRES)
        try:
            times.append(datetime.fromisoformat((value or "").replace("Z", "+00:00")))
        except ValueError:
            return None
    aware = [t for t in times if t.tzinfo is not None]
    return min(aware) if len(aware) == len(times) and aware else None
