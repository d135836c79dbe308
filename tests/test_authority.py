"""Authority at the point of action as properties: a queue message is a request, Azure the truth.

A small estate runs five nights, then the sixth night's planner writes its messages: the
rotation-vm sets (already acted on once) and the prunes (not yet). Hypothesis then changes Azure
between plan and act (a hold tag or a lock added, a snapshot deleted or re-tagged, a VM untagged,
a disk detached or deleted, the subscription no longer served, the clock jumped), picks a message
of any type (the planner's own, or one with a field swapped for a hostile value, or one a
stranger signed with no key or the wrong one) and delivers it once, twice or as a redelivery
through the real dispatch.

What must hold, whatever was drawn:
- no write that the never-rules below forbid. They are written here, from the issue's words,
  and call nothing in `shared/rules.py`: if the rules module drifts, they disagree;
- no exception escapes dispatch;
- a message refused (poisoned) on its first delivery has a `refused` row that names it; an
  unsigned or altered one is refused before any read.

How duplicates arise in Lifeboat, and so what is generated: a message is delivered again by the
queue (a redelivery: the dequeue count says so), or sent again by a redelivered sender (the
planner marks those `recheck`), or comes from another event (onboarding sets always recheck).
The first delivery of a planner's unmarked message exists once per plan, minutes after the plan
listed the group and saw no snapshot of that name: it may PUT without reading.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import json
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from shared import dispatch, messages
from shared.messages import (
    PAYLOADS,
    DrillState,
    OnboardingRequest,
    RotationPruneRequest,
    RotationVmRequest,
)
from shared.model import Disk, Snapshot, Vm
from shared.names import QUEUE_OF, MessageType, Queue, Status, Timer
from shared.policies import parse_policies
from shared.ports import LimitReachedError, RefusedError
from shared.signing import SigningKeys
from shared.snapshots import snapshot_name
from tests.builders import GROUP, SUB, disk, night, snapshot_of, vm
from tests.conftest import OTHER_SUBSCRIPTION, TEST_SIGNING_KEYS, base_settings
from tests.fakes import FakeCompute, FakeWorld, FixedClock, MemoryQueues, Throttled

POLICIES = parse_policies({"version": 1, "policies": {"daily": {"retention": {"daily": 3}}}})
QUEUES = (Queue.ROTATION_PLAN, Queue.ROTATION_VM, Queue.ROTATION_PRUNE)
STRANGER_KEYS = SigningKeys.parse("stranger=" + "Q" * 43)
DRILL_GROUP = "rg-lifeboat-drill-westeurope"
HOLD = "lifeboat:hold"
FRESH_MINUTES = 30
STALE_HOURS = 36


# ------------------------------------------------------------------------- the never-rules


@dataclasses.dataclass
class Act:
    """What the never-rules know of the delivery in progress."""

    served: frozenset[str]
    now: datetime
    created: datetime  # when the message was sent
    redelivery: bool
    recheck: bool
    slot: str | None  # the message's slot (prunes)
    # Disks with Azure's 500 snapshots in Lifeboat's group when the delivery began (lower ids).
    full: frozenset[str] = frozenset()


def held(tags: dict[str, str]) -> bool:
    return any(k.strip().lower() == HOLD for k in tags)


def lifeboats(snap: Snapshot) -> bool:
    """Ownership as the platform wrote it: the name is the hash of the source disk's id and
    unique id, with the slot the name ends in."""
    slot = snap.name.rsplit("-", 1)[-1]
    if not (snap.source_resource_id and snap.source_unique_id):
        return False
    return snap.name == snapshot_name(snap.source_resource_id, snap.source_unique_id, slot)


def parts_of(resource_id: str) -> list[str]:
    return resource_id.strip("/").lower().split("/")


class Azure(FakeCompute):
    """Compute as Azure behaves: a PUT on an existing snapshot replaces its tags, a locked one
    refuses DELETE with ScopeLocked. Every write is checked against the never-rules first."""

    def __init__(self, clock: FixedClock) -> None:
        super().__init__(clock)
        self.locked: set[str] = set()
        self.act: Act | None = None
        self.broken: list[str] = []

    def begin_create_snapshot(self, request) -> None:  # type: ignore[no-untyped-def]
        sid = (
            f"/subscriptions/{request.subscription_id}/resourceGroups/{request.resource_group}"
            f"/providers/Microsoft.Compute/snapshots/{request.name}"
        ).lower()
        self.broken += [f"create {request.name}: {w}" for w in self.create_forbidden(request, sid)]
        existing = self.snapshots.get(sid)
        super().begin_create_snapshot(request)
        if existing is not None:  # an ARM PUT replaces every tag, a user's hold included
            self.snapshots[sid] = dataclasses.replace(existing, tags=dict(request.tags))

    def read_headroom(self, subscription_id: str) -> int | None:
        return None

    def begin_delete_snapshot(self, snapshot_id: str) -> None:
        if snapshot_id.lower() in self.locked:
            raise RefusedError("ScopeLocked", "the scope is locked: CanNotDelete")
        self.broken += [f"delete {snapshot_id}: {w}" for w in self.delete_forbidden(snapshot_id)]
        super().begin_delete_snapshot(snapshot_id)

    def create_forbidden(self, request: Any, sid: str) -> list[str]:
        act = self.act
        assert act is not None
        why = []
        if request.subscription_id.lower() not in act.served:
            why.append("subscription not served")
        source = parts_of(request.source_disk_id)
        if len(source) != 8 or source[1] != request.subscription_id.lower():
            why.append("disk outside the subscription")
        elif source[3] == DRILL_GROUP.lower():
            why.append("a drill group's disk")
        existing = self.snapshots.get(sid)
        if existing is not None and held(existing.tags):
            why.append("PUT over a held snapshot")
        if existing is not None and (act.redelivery or act.recheck):
            why.append("PUT over an existing snapshot by a delivery that may repeat")
        if act.now - act.created > timedelta(minutes=FRESH_MINUTES):
            owner = next(
                (v for v in self.vms if request.source_disk_id.lower() in attached(v)), None
            )
            if owner is None:
                why.append("an old message for a disk attached to no VM now")
            elif not in_scope(owner):
                why.append("an old message for a VM out of scope now")
        return why

    def delete_forbidden(self, snapshot_id: str) -> list[str]:
        act = self.act
        assert act is not None
        snap = self.snapshots.get(snapshot_id.lower())
        if snap is None:
            return []  # nothing there to lose
        why = []
        where = parts_of(snapshot_id)
        if where[1] not in act.served:
            why.append("subscription not served")
        if where[3] != GROUP.lower():
            why.append("outside Lifeboat's snapshot group")
        if held(snap.tags):
            why.append("held by tag")
        if not lifeboats(snap):
            why.append("not Lifeboat's by creationData")
        if act.slot is not None:
            slot_time = datetime.strptime(act.slot, "%Y%m%d%H%M").replace(tzinfo=act.now.tzinfo)
            if act.now - slot_time > timedelta(hours=STALE_HOURS):
                why.append("a stale plan")
        disk_there = (snap.source_resource_id or "").lower() in self.disks
        newer_good = [
            s
            for s in self.snapshots.values()
            if s is not snap
            and (s.source_resource_id or "").lower() == (snap.source_resource_id or "").lower()
            and s.resource_group.lower() == GROUP.lower()
            and s.provisioning_state == "Succeeded"
            and lifeboats(s)
            and s.time_created is not None
            and snap.time_created is not None
            and s.time_created > snap.time_created
        ]
        if disk_there and not newer_good:
            why.append("the disk's newest good snapshot")
        disk = self.disks.get((snap.source_resource_id or "").lower())
        if disk is not None and act.slot is not None:
            tonight = snapshot_name(disk.id, disk.unique_id, act.slot)
            there = [s for s in self.snapshots.values() if s.name == tonight]
            # Azure refuses a disk's create at 500 of its snapshots: then (counted when the
            # delivery began), and only while the night's snapshot is not there at all, the
            # surplus may go without it.
            at_500 = not there and disk.id.lower() in act.full
            if not at_500 and not any(s.provisioning_state == "Succeeded" for s in there):
                why.append("the night's snapshot is not there and good")
        return why


def attached(v: Vm) -> set[str]:
    return {a.disk_id.lower() for a in v.attachments if a.disk_id}


def in_scope(v: Vm) -> bool:
    policy = next(
        (val for k, val in v.tags.items() if k.strip().lower() == "lifeboat:policy"), None
    )
    return policy is not None and policy.strip().lower() in POLICIES.policies


# --------------------------------------------------------------------------- the estate


class World(FakeWorld):
    def __init__(self, served: str = SUB, **extra: str) -> None:
        values = base_settings(
            TARGET_SUBSCRIPTIONS=served,
            DRILL_RESOURCE_GROUPS=f"westeurope={DRILL_GROUP}",
            MESSAGE_FRESHNESS_MINUTES=str(FRESH_MINUTES),
            STALE_SLOT_HOURS=str(STALE_HOURS),
            **extra,
        )
        super().__init__(
            FixedClock(night(20)),
            MemoryQueues(),
            values,
            POLICIES,
            backup=Throttled(60),
            drills=Throttled(60),
        )
        self.compute = Azure(self.clock)
        self.rt = dataclasses.replace(self.rt, compute=self.compute)

    def deliver_all(self, *, keep: Callable[[str], bool] = lambda t: False) -> list[str]:
        """Deliver everything queued (and what that sends) but the messages `keep` picks."""
        kept = []
        while any(self.queues.sent.get(q) for q in QUEUES):
            for queue in QUEUES:
                pending, self.queues.sent[queue] = self.queues.sent.get(queue, []), []
                for text in pending:
                    if keep(text):
                        kept.append(text)
                        continue
                    self.compute.act = act_for(self, text, redelivery=False)
                    dispatch.deliver(self.rt, queue, text)
        return kept


def type_of(text: str) -> str:
    return str(json.loads(text).get("type"))


def act_for(world: World, text: str, *, redelivery: bool) -> Act:
    raw = json.loads(text)
    payload = raw.get("payload") if isinstance(raw.get("payload"), dict) else {}
    created = datetime.fromisoformat(raw["created"]) if "created" in raw else world.clock.now()
    counts: dict[str, int] = {}
    for s in world.compute.snapshots.values():
        if s.resource_group.lower() == GROUP.lower() and s.source_resource_id:
            key = s.source_resource_id.lower()
            counts[key] = counts.get(key, 0) + 1
    return Act(
        served=world.rt.settings.subscriptions,
        now=world.clock.now(),
        created=created,
        redelivery=redelivery,
        recheck=bool(payload.get("recheck")) or raw.get("type") == "onboarding",
        slot=payload.get("slot") if raw.get("type") == "rotation-prune" else None,
        full=frozenset(k for k, n in counts.items() if n >= 500),
    )


@dataclasses.dataclass(frozen=True)
class Base:
    vms: list[Vm]
    disks: dict[str, Disk]
    snapshots: dict[str, Snapshot]
    now: datetime
    vm_texts: list[str]  # night 25's sets, each already delivered once
    prune_texts: list[str]  # night 25's prunes, not yet delivered


@functools.cache
def base() -> Base:
    w = World()
    disks = [disk("web-os"), disk("web-data"), disk("db-os"), disk("app-os")]
    for d in disks:
        w.compute.disks[d.id.lower()] = d
    w.compute.vms = [vm("web", "web-os", (0, "web-data")), vm("db", "db-os"), vm("app", "app-os")]
    w.compute.act = Act(frozenset({SUB}), night(20), night(20), False, False, None)
    for day in range(20, 25):
        w.clock.current = night(day)
        dispatch.fire(w.rt, Timer.ROTATION)
        w.clock.advance(minutes=1)
        w.deliver_all()
    assert not w.compute.broken
    # Snapshots a user made or holds: a held old one, a lookalike, one in another group.
    web_os = disks[0]
    w.compute.snapshots.update(
        {
            s.id.lower(): s
            for s in (
                snapshot_of(web_os, night(10), tags={"LifeBoat:Hold": "audit"}),
                snapshot_of(web_os, night(11), source=disks[2].id),
                snapshot_of(web_os, night(12), group="rg-user-snapshots"),
            )
        }
    )
    w.clock.current = night(25)
    dispatch.fire(w.rt, Timer.ROTATION)
    w.clock.advance(minutes=1)
    vm_texts: list[str] = []

    def keep(text: str) -> bool:
        if type_of(text) == "rotation-vm":
            vm_texts.append(text)
            return False
        return type_of(text) == "rotation-prune"

    prune_texts = w.deliver_all(keep=keep)
    assert prune_texts
    assert vm_texts
    return Base(
        list(w.compute.vms),
        dict(w.compute.disks),
        dict(w.compute.snapshots),
        w.clock.now(),
        vm_texts,
        prune_texts,
    )


# ------------------------------------------------------------------------ Azure changes


def snapshot_ids() -> list[str]:
    return sorted(base().snapshots)


def targets(which: str) -> list[str]:
    """Snapshot ids (lowercase) a change may hit: tonight's, the prunes' victims, or any."""
    b = base()
    if which == "tonight":
        names = {d["snapshotName"] for t in b.vm_texts for d in json.loads(t)["payload"]["disks"]}
        return sorted(k for k, s in b.snapshots.items() if s.name in names)
    if which == "victim":
        return sorted(
            i.lower() for t in b.prune_texts for i in victims_in(json.loads(t)["payload"])
        )
    return sorted(b.snapshots)


def victims_in(payload: dict[str, Any]) -> list[str]:
    """The snapshot ids a prune payload names, disk by disk."""
    return [i for d in payload["disks"] for i in d["snapshotIds"]]


def apply_change(w: World, change: tuple[str, str, int]) -> None:
    kind, which, index = change
    snaps = w.compute.snapshots
    ids = [i for i in targets(which) if i in snaps] or sorted(snaps)
    sid = ids[index % len(ids)]
    vms = w.compute.vms
    v = vms[index % len(vms)]
    if kind == "hold":
        key = ("lifeboat:hold", "LIFEBOAT:HOLD", "Lifeboat:Hold")[index % 3]
        snaps[sid] = dataclasses.replace(snaps[sid], tags={**snaps[sid].tags, key: "user"})
    elif kind == "lock":
        w.compute.locked.add(sid)
    elif kind == "delete":
        del snaps[sid]
    elif kind == "retag":
        snaps[sid] = dataclasses.replace(snaps[sid], tags={})
    elif kind == "untag-vm":
        vms[vms.index(v)] = dataclasses.replace(v, tags={})
    elif kind == "opt-out":
        vms[vms.index(v)] = dataclasses.replace(v, tags={"lifeboat:policy": "none"})
    elif kind == "detach":
        vms[vms.index(v)] = dataclasses.replace(v, data_disks=())
    elif kind == "delete-disk":
        w.compute.disks.pop(sorted(w.compute.disks)[index % len(w.compute.disks)])
    elif kind == "clock-jump":
        w.clock.advance(hours=(1, 40, 200)[index % 3])
    elif kind == "half-hour":
        w.clock.advance(minutes=45)


CHANGES = st.lists(
    st.tuples(
        st.sampled_from(
            [
                "hold",
                "hold",
                "lock",
                "delete",
                "retag",
                "untag-vm",
                "opt-out",
                "detach",
                "delete-disk",
                "clock-jump",
                "clock-jump",
                "half-hour",
            ]
        ),
        st.sampled_from(["tonight", "victim", "victim", "any"]),
        st.integers(0, 50),
    ),
    max_size=4,
)


# ------------------------------------------------------------------------------ messages

HOSTILE_VALUES: list[Any] = [
    None,
    "",
    "x" * 5000,
    -1,
    10**15,
    1e308,
    [],
    {},
    "2026-11-25T02:00:00",  # no zone
    "202613450200",  # no such date
    "not/an/id",
    "/subscriptions/x",
    f"/subscriptions/{OTHER_SUBSCRIPTION}/resourceGroups/{GROUP}/providers/Microsoft.Compute/"
    "snapshots/lb-aaaaaaaaaaaaaaaa-202611200200",
    f"/subscriptions/{SUB}/resourceGroups/{DRILL_GROUP}/providers/Microsoft.Compute/disks/d",
    f"subscriptions/{SUB}/resourceGroups/rg-app/providers/Microsoft.Compute/disks/db-os",
    OTHER_SUBSCRIPTION,
]


def sample_texts() -> list[str]:
    """A valid message of every payload type: the planner's, and the dispatch tests' samples."""
    from tests.test_dispatch import SAMPLES

    b = base()
    texts = list(b.vm_texts) + list(b.prune_texts)
    for payload_type in PAYLOADS:
        if payload_type not in (RotationVmRequest, RotationPruneRequest):
            texts.append(text_of(SAMPLES[payload_type], created=b.now))
    return texts


def text_of(payload: Any, *, created: datetime) -> str:
    envelope = messages.make_envelope(payload, run_id="r", idempotency_key="k", created=created)
    return messages.encode(envelope)


@st.composite
def requests(draw: st.DrawFn) -> tuple[str, str]:
    """(the message text, unsigned; how it is signed: lifeboat, none, stranger or altered)."""
    # The prunes drawn more often: one message carries every disk's deletes of the night.
    texts = sample_texts() + 3 * list(base().prune_texts)
    raw = json.loads(draw(st.sampled_from(texts)))
    raw.pop("sig", None)  # signed below, as drawn
    payload = raw["payload"]
    how = draw(st.sampled_from(["as-sent", "as-sent", "field", "ids", "ids", "recheck"]))
    if how == "field" and raw["type"] == "rotation-prune" and draw(st.booleans()):
        entry = draw(st.sampled_from(payload["disks"]))
        field = draw(st.sampled_from(["sourceId", "snapshotIds", "policy", "orphan"]))
        entry[field] = draw(st.sampled_from(HOSTILE_VALUES))
    elif how == "field" and payload:
        field = draw(st.sampled_from(sorted(payload)))
        payload[field] = draw(st.sampled_from(HOSTILE_VALUES))
    elif how == "ids" and raw["type"] == "rotation-prune":
        # Any disks' entries, any victims under any disk, a disk twice, the single-disk form.
        ids = sorted(s.id for s in base().snapshots.values())
        sources = sorted(d.id for d in base().disks.values())
        entries = payload["disks"]
        for entry in draw(st.lists(st.sampled_from(entries), min_size=0, max_size=2)):
            entries.append(copy.deepcopy(entry))  # a disk named twice in one message
        for entry in entries:
            if draw(st.booleans()):
                entry["snapshotIds"] = draw(st.lists(st.sampled_from(ids), min_size=1, max_size=4))
            if draw(st.booleans()):
                entry["sourceId"] = draw(st.sampled_from(sources))
        if len(entries) == 1 and draw(st.booleans()):
            raw["payload"] = {k: v for k, v in payload.items() if k != "disks"} | entries[0]
    elif how == "ids" and raw["type"] == "rotation-vm":
        disks = sorted(d.id for d in base().disks.values())
        for entry in payload["disks"]:
            entry["diskId"] = draw(st.sampled_from([*disks, HOSTILE_VALUES[13]]))
    elif how == "recheck" and raw["type"] in ("rotation-vm", "rotation-prune"):
        payload["recheck"] = True
    signing = draw(
        st.sampled_from(["lifeboat", "lifeboat", "lifeboat", "none", "stranger", "altered"])
    )
    return json.dumps(raw), signing


def signed(text: str, signing: str) -> str:
    if signing == "none":
        return text
    keys = STRANGER_KEYS if signing == "stranger" else SigningKeys.parse(TEST_SIGNING_KEYS)
    out = keys.sign(text)
    if signing == "altered":
        raw = json.loads(out)
        raw["runId"] = "altered-" + str(raw.get("runId"))
        out = json.dumps(raw)
    return out


def queue_of(text: str) -> Queue:
    try:
        return QUEUE_OF[MessageType(json.loads(text)["type"])]
    except (KeyError, ValueError):
        return Queue.ROTATION_PRUNE


# ------------------------------------------------------------------------------ the property


def fresh_world(served: str) -> World:
    b = base()
    w = World(served=served)
    w.clock.current = b.now
    w.compute.vms = list(b.vms)
    w.compute.disks = dict(b.disks)
    w.compute.snapshots = copy.copy(b.snapshots)
    return w


@settings(
    max_examples=600,
    deadline=None,
    derandomize=True,  # the same 600 cases on every run: CI never flakes on a rare draw
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    changes=CHANGES,
    request=requests(),
    delivery=st.sampled_from(["first", "redelivery", "twice"]),
    unserved=st.sampled_from([False] * 5 + [True]),
)
def test_no_message_and_no_change_in_azure_leads_to_a_forbidden_write(
    changes: list[tuple[str, str, int]],
    request: tuple[str, str],
    delivery: str,
    unserved: bool,
) -> None:
    text, signing = request
    w = fresh_world(OTHER_SUBSCRIPTION if unserved else SUB)
    for change in changes:
        apply_change(w, change)
    body = signed(text, signing)
    queue = queue_of(text)
    counts = [1, 2] if delivery == "twice" else [2 if delivery == "redelivery" else 1]
    raw = json.loads(text)
    if raw.get("type") == "rotation-vm" and not raw["payload"].get("recheck"):
        # Night 25's sets were delivered once already: the queue can only deliver them again.
        counts = [c + 1 for c in counts]
    for dequeue_count in counts:
        before_rows = len(w.reporter.outcomes)
        before_poison = len(w.queues.sent.get(queue.poison, []))
        w.compute.act = act_for(w, body, redelivery=dequeue_count > 1)
        w.compute.reads.clear()
        dispatch.deliver(
            w.rt, queue, body, message_id=f"m{dequeue_count}", dequeue_count=dequeue_count
        )
        poisoned = len(w.queues.sent.get(queue.poison, [])) > before_poison
        rows = w.reporter.outcomes[before_rows:]
        if signing != "lifeboat":
            assert poisoned, "a message Lifeboat did not sign must be refused"
            assert not w.compute.reads, "refused before any read"
        if poisoned:
            refused = [o for o in rows if o.status == Status.REFUSED]
            assert refused, "a refusal is reported on the delivery that refuses"
            assert refused[0].reason
            break  # a poisoned message is off its queue: never delivered again
    event(f"{type_of(text)}: {'wrote' if w.compute.writes else 'no write'}")
    assert not w.compute.broken, w.compute.broken


# ------------------------------------------------------------------- a disk at Azure's 500


@dataclasses.dataclass(frozen=True)
class AtLimit:
    snapshots: dict[str, Snapshot]
    now: datetime
    prune_texts: list[str]
    db: Disk


@functools.cache
def at_limit() -> AtLimit:
    """db-os holds Azure's 500 snapshots; night 25's create of it is refused for the limit and
    the confirm plans the oldest surplus without the night's snapshot."""
    w = World()
    db = disk("db-os")
    w.compute.disks[db.id.lower()] = db
    w.compute.vms = [vm("db", "db-os")]
    for i in range(500):
        s = snapshot_of(db, night(25) - timedelta(days=500 - i))
        w.compute.snapshots[s.id.lower()] = s
    w.compute.errors[db.id.lower()] = [
        LimitReachedError("SnapshotsLimitReached", "at 500", "snapshot limit: 500 per disk")
    ]
    w.clock.current = night(25)
    dispatch.fire(w.rt, Timer.ROTATION)
    w.clock.advance(minutes=1)
    prunes = w.deliver_all(keep=lambda text: type_of(text) == "rotation-prune")
    assert len(prunes) == 1
    return AtLimit(dict(w.compute.snapshots), w.clock.now(), prunes, db)


AT_LIMIT_CHANGES = st.lists(
    st.sampled_from(["delete-oldest", "delete-newest", "hold-oldest", "tonight-pending", "none"]),
    max_size=3,
)


@settings(max_examples=25, deadline=None, derandomize=True)
@given(
    changes=AT_LIMIT_CHANGES,
    victim=st.sampled_from(["planned", "newest", "second-newest"]),
    redelivery=st.booleans(),
)
def test_at_500_a_prune_without_the_nights_snapshot_breaks_no_never_rule(
    changes: list[str], victim: str, redelivery: bool
) -> None:
    """Whatever Azure changed since the confirm (some snapshots gone, so the disk is under 500;
    a hold; the night's snapshot showing up; the newest deleted) and whatever the prune names
    (the planner's victims, or the disk's newest snapshots), no forbidden delete."""
    a = at_limit()
    w = World()
    w.clock.current = a.now
    w.compute.disks[a.db.id.lower()] = a.db
    w.compute.vms = [vm("db", "db-os")]
    w.compute.snapshots = copy.copy(a.snapshots)

    def ordered() -> list[Snapshot]:
        return sorted(w.compute.snapshots.values(), key=lambda s: (s.time_created, s.name))

    for change in changes:
        if change == "delete-oldest":
            w.compute.snapshots.pop(ordered()[0].id.lower())
        elif change == "delete-newest":
            w.compute.snapshots.pop(ordered()[-1].id.lower())
        elif change == "hold-oldest":
            first = ordered()[0]
            w.compute.snapshots[first.id.lower()] = dataclasses.replace(
                first, tags={**first.tags, HOLD: "x"}
            )
        elif change == "tonight-pending":
            s = snapshot_of(a.db, night(25), state="Creating")
            w.compute.snapshots[s.id.lower()] = s
    text = a.prune_texts[0]
    if victim != "planned":
        raw = json.loads(text)
        newest = ordered()[-1 if victim == "newest" else -2]
        [entry] = raw["payload"]["disks"]
        entry["snapshotIds"] = [newest.id, *entry["snapshotIds"][:3]]
        text = json.dumps(raw)
    body = signed(text, "lifeboat")
    w.compute.act = act_for(w, body, redelivery=redelivery)
    dispatch.deliver(w.rt, Queue.ROTATION_PRUNE, body, dequeue_count=2 if redelivery else 1)
    assert not w.compute.broken, w.compute.broken
    event(f"{victim}: {len(w.compute.writes)} delete(s)")


def test_at_500_the_planners_prune_deletes_the_oldest_surplus() -> None:
    """The property above is not vacuous: untouched, the planner's prune deletes 100."""
    a = at_limit()
    w = World()
    w.clock.current = a.now
    w.compute.disks[a.db.id.lower()] = a.db
    w.compute.snapshots = copy.copy(a.snapshots)
    body = signed(a.prune_texts[0], "lifeboat")
    w.compute.act = act_for(w, body, redelivery=False)
    dispatch.deliver(w.rt, Queue.ROTATION_PRUNE, body)
    assert len(w.compute.writes) == 100
    assert not w.compute.broken


# --------------------------------------------------------------- the hold survives duplicates


def _tonight(w: World) -> Snapshot:
    b = base()
    request = RotationVmRequest.model_validate(json.loads(b.vm_texts[0])["payload"])
    name = request.disks[0].snapshot_name
    return next(s for s in w.compute.snapshots.values() if s.name == name)


@pytest.mark.parametrize("duplicate", ["redelivered rotation-vm", "re-sent rotation-vm", "event"])
def test_a_users_hold_on_tonights_snapshot_survives_a_duplicate(duplicate: str) -> None:
    w = fresh_world(SUB)
    tonight = _tonight(w)
    w.compute.snapshots[tonight.id.lower()] = dataclasses.replace(
        tonight, tags={**tonight.tags, "lifeboat:hold": "incident-42"}
    )
    text = base().vm_texts[0]
    keys = SigningKeys.parse(TEST_SIGNING_KEYS)
    if duplicate == "redelivered rotation-vm":
        dispatch.deliver(w.rt, Queue.ROTATION_VM, keys.sign(text), dequeue_count=2)
    elif duplicate == "re-sent rotation-vm":
        raw = json.loads(text)
        raw["payload"]["recheck"] = True
        dispatch.deliver(w.rt, Queue.ROTATION_VM, keys.sign(json.dumps(raw)))
    else:
        request = RotationVmRequest.model_validate(json.loads(text)["payload"])
        event = OnboardingRequest(
            resourceId=request.vm_id,
            subscriptionId=SUB,
            resourceGroup=request.resource_group,
            vmName=request.vm_name,
            eventId="write-2",
        )
        w.compute.act = act_for(w, text_of(event, created=w.clock.now()), redelivery=False)
        dispatch.deliver(w.rt, Queue.ONBOARDING, keys.sign(text_of(event, created=w.clock.now())))
        w.deliver_all()
    after = w.compute.snapshots[tonight.id.lower()]
    assert after.tags.get("lifeboat:hold") == "incident-42"
    assert not w.compute.broken


def test_the_never_rules_here_catch_what_they_guard() -> None:
    """The independent check is not vacuous: a prune with no re-check at all, delivered after
    a hold is put on its victim, is caught."""
    w = fresh_world(SUB)
    prune = RotationPruneRequest.model_validate(json.loads(base().prune_texts[0])["payload"])
    victim = prune.snapshot_ids[0].lower()
    w.compute.snapshots[victim] = dataclasses.replace(
        w.compute.snapshots[victim], tags={"lifeboat:hold": "x"}
    )
    w.compute.act = act_for(w, base().prune_texts[0], redelivery=False)
    w.compute.begin_delete_snapshot(prune.snapshot_ids[0])  # what an obedient worker would do
    assert any("held by tag" in b for b in w.compute.broken)


def test_every_payload_type_is_among_the_generated_messages() -> None:
    types = {json.loads(t)["type"] for t in sample_texts()}
    assert types == {p.TYPE.value for p in PAYLOADS}
    assert DrillState.TYPE.value in types
