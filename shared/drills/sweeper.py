"""The sweeper timer: tear down every drill whose resources outlived `lifeboat:expires`.

Whatever happened to a drill's messages (poisoned, lost, a teardown that gave up), its resources
carry its id and expiry as tags. Past the expiry the sweeper sends the drill, as the tags
describe it, to the teardown step, which deletes by tag inside the drill group and reports a
`sweep` row. A tag that is not a Lifeboat drill id is reported `blocked` and never deleted.

Azure Backup's restores make disks without tags: a recovery-point drill tags them as soon as its
job completes, but a job that ends after its drill gave up (or a drill that died between the two)
leaves them untagged. An untagged disk in a drill group older than the longest drill lifetime is
adopted (tagged with a drill id of its own, already expired) and torn down like any other.
Azure Backup's own `AzureBackupRG_*` groups are never looked at.

A restore also leaves a config blob in its staging account, in a container made for it. The
drill's report step removes them; where that was refused or the account did not answer, the
sweeper's pass over each staging account (RESTORE_STAGING_ACCOUNTS) finds containers named as a
restore names them and older than the longest drill lifetime, deletes the config blobs in them
(named as a restore names them) and then the container if nothing else is in it. Anything else
is never touched.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable
from datetime import datetime, timedelta

from shared.dispatch import Context, Done, Outgoing, Result, Send
from shared.drills.planning import drill_id_of
from shared.drills.steps import BACKUP_GROUP_PREFIX, step_message
from shared.messages import DrillState
from shared.model import DrillResource, format_time
from shared.names import Tag
from shared.planning import DRILL_ID_PATTERN as DRILL_ID_PATTERN
from shared.policies import tag_value
from shared.snapshots import slot_of

log = logging.getLogger(__name__)


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
    window = _drill_window(ctx)
    for subscription in sorted(subscriptions):
        for group in cloud.list_resource_groups(subscription):
            if group not in groups or group.lower().startswith(BACKUP_GROUP_PREFIX):
                continue
            out = ctx.out.bind(subscription_id=subscription, resource_group=group)
            listed = _adopted(ctx, cloud.list_drill_resources(subscription, group), now - window)
            for drill_id, resources in _by_drill(listed):
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
    from shared.drills.failover import forgotten_failovers  # test failovers left waiting

    for state in forgotten_failovers(ctx, window):
        found += 1
        teardowns.append(step_message(state, key=f"drill:{state.drill_id}:sweep:{slot_of(now)}"))
        ctx.out.planned("sweep", state.reason, resource_id=_plan_id(state), distinct=state.drill_id)
    containers = _sweep_staging(ctx, now - window)
    log.info("sweeper: %d expired drill(s), %d staging container(s)", found, containers)
    ctx.out.succeeded("run-end", count=found, details={"function": "sweeper"})
    return Send(*teardowns) if teardowns else Done(f"{found} expired drill(s) to tear down")


def _sweep_staging(ctx: Context, before: datetime) -> int:
    """Remove restores' staging containers last modified before `before`: their config blobs,
    then the container when it is empty. One `sweep` row per container (blocked when it holds
    anything else, failed when the account refused); the count of containers seen."""
    from shared.drills.restore import CONFIG_BLOB, STAGING_CONTAINER
    from shared.ports import StagingBlobsError

    seen = 0
    if not ctx.settings.staging_blobs_configured:
        return seen
    accounts = {entry.rstrip("/").rsplit("/", 1)[-1].lower(): entry for entry in _staging(ctx)}
    for account, account_id in sorted(accounts.items()):
        out = ctx.out.bind(resource_id=account_id)
        try:
            containers = ctx.rt.staging.list_containers(account, "vhd")
        except StagingBlobsError as e:
            out.failed("sweep", f"staging containers not swept: {e}", distinct=account)
            continue
        for container in containers:
            if (
                not STAGING_CONTAINER.fullmatch(container.name)
                or container.last_modified is None
                or container.last_modified >= before
            ):
                continue
            seen += 1
            row = {
                "distinct": f"{account}/{container.name}",
                "details": {"account": account, "container": container.name},
            }
            try:
                blobs = ctx.rt.staging.list_blobs(account, container.name)
                ours = [b for b in blobs if CONFIG_BLOB.fullmatch(b)]
                others = [b for b in blobs if not CONFIG_BLOB.fullmatch(b)]
                for blob in ours:
                    ctx.rt.staging.delete_blob(account, container.name, blob)
                if others:
                    out.blocked(
                        "sweep",
                        f"staging container {container.name} holds {len(others)} blob(s) no "
                        "restore names so: left as it is",
                        count=len(ours),
                        **row,
                    )
                    continue
                ctx.rt.staging.delete_container(account, container.name)
            except StagingBlobsError as e:
                out.failed("sweep", f"staging container {container.name} left: {e}", **row)
                continue
            out.succeeded(
                "sweep",
                f"swept: a restore's staging container {container.name} older than the drill "
                f"window ({len(ours)} config blob(s))",
                count=len(ours),
                **row,
            )
    return seen


def _staging(ctx: Context) -> list[str]:
    return [entry.partition("=")[2].strip() for entry in ctx.settings.restore_staging_accounts]


def _drill_window(ctx: Context) -> timedelta:
    """The longest a drill's resources may live: an untagged disk older than this is no
    running drill's."""
    lifetimes = [p.max_lifetime_seconds for p in ctx.policies.drill_plans.values()]
    return timedelta(seconds=max(lifetimes, default=4 * 3600))


def _adopted(ctx: Context, resources: list[DrillResource], before: datetime) -> list[DrillResource]:
    """`resources`, with every untagged disk created before `before` and attached to nothing
    tagged as a drill of its own that has expired (a restore's leftover)."""
    listed = []
    for resource in resources:
        if (
            resource.kind.lower() == "disks"
            and tag_value(resource.tags, Tag.DRILL) is None
            and resource.in_use_by is None
            and resource.time_created is not None
            and resource.time_created < before
        ):
            tags: dict[str, str] = {
                Tag.MANAGED: "true",
                Tag.DRILL: drill_id_of(resource.id, "untagged"),
                Tag.EXPIRES: format_time(before.replace(microsecond=0)),
            }
            log.warning("sweeper: adopting untagged disk %s (%s)", resource.name, tags[Tag.DRILL])
            ctx.compute.merge_tags(resource.id, tags)
            resource = dataclasses.replace(resource, tags={**resource.tags, **tags})
        listed.append(resource)
    return listed


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


def _plan_id(state: DrillState) -> str | None:
    return state.failover.plan_id if state.failover else None
