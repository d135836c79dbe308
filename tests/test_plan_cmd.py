"""`lifeboat plan` lists every shape: tag mistakes, skips, held and lookalike snapshots, what
waits past the cap, and limit warnings labelled "seen by Lifeboat"; lookalikes do not make the
plan exit 1 (they are not blocked work)."""

from __future__ import annotations

import io
from datetime import timedelta

from rich.console import Console

from cli.plan_cmd import _describe, _print, summarise
from shared.planning import PlannedDisk, RotationConfig, plan_night, plan_prunes
from shared.policies import parse_policies
from tests.builders import GROUP, disk, night, snapshot_of, vm

POLICIES = parse_policies(
    {
        "version": 1,
        "policies": {"daily": {"retention": {"daily": 3}}, "weekly": {"retention": {"weekly": 4}}},
    }
)
CONFIG = RotationConfig(snapshot_group=GROUP)


def test_the_plan_lists_every_shape_with_its_reason() -> None:
    web, typo, loose, other = (
        disk("web-os"),
        disk("typo-os"),
        disk("loose", tags={"lifeboat:policy": "daily"}),
        disk("other-os"),
    )
    disks = {d.id.lower(): d for d in (web, typo, loose, other)}
    snaps = [snapshot_of(web, night(27) - timedelta(hours=i)) for i in range(1, 460)]
    held = snapshot_of(web, night(1), tags={"lifeboat:hold": "incident-9"})
    lookalike = snapshot_of(other, night(2), name=snapshot_of(web, night(2)).name)
    snaps += [held, lookalike]
    vms = [
        vm("web", "web-os"),
        vm("typo", "typo-os", tags={"lifebaot:policy": "daily"}),
        vm("gold", None, tags={"lifeboat:policy": "gold-plus"}),
        vm("vhd", None),
    ]
    plan = plan_night(vms, disks, snaps, POLICIES, CONFIG, night(27))
    tonight = snapshot_of(web, night(27))
    prunes = plan_prunes(
        [PlannedDisk(web, POLICIES.policies["daily"])],
        disks,
        [*snaps, tonight],
        POLICIES,
        CONFIG,
        "202611270200",
    )
    document = {"slot": "202611270200", "subscriptions": {"sub": _describe(plan, prunes)}}
    part = document["subscriptions"]["sub"]
    assert [m["reason"] for m in part["tagMistakes"]] == [
        "unknown policy gold-plus; known: daily, weekly",
        'tag "lifebaot:policy" looks like "lifeboat:policy"',
    ]
    assert {s["skip"] for s in part["skips"]} >= {"not-attached", "unmanaged-disk"}
    assert [h["reason"] for h in part["held"]] == [
        "held by tag lifeboat:hold=incident-9: kept whatever retention says"
    ]
    assert [n["snapshot"] for n in part["notLifeboats"]] == [lookalike.id]
    assert part["blocks"] == []  # a lookalike is not blocked work: the plan exits 0 for it
    assert list(part["remaining"]) == [web.id]
    assert part["remaining"][web.id] > 0
    [warning] = part["warnings"]
    assert (warning["kind"], warning["seenByLifeboat"]) == ("disk-near-limit", 460)

    console = Console(file=io.StringIO(), width=240)
    _print(console, document)
    text = console.file.getvalue()  # type: ignore[attr-defined]
    for title in (
        "Tag mistakes (fix the tag)",
        "Skipped",
        "Held",
        "Not Lifeboat's (never deleted)",
    ):
        assert title in text
    assert "460 snapshots seen by Lifeboat, of Azure's 500 per disk" in text
    assert "its name's hash is not that of the disk its creationData names" in text
    assert "past tonight's cap wait for the next nights" in text


def test_the_night_counts_each_disk_once_by_how_it_ended() -> None:
    """`blocked` then the confirm's `unconfirmed` is blocked, never failed; a duplicate row (same
    OutcomeId) counts once; skipped and waiting are counted apart."""

    def row(disk: str, status: str, outcome: str) -> dict[str, object]:
        return {
            "Operation": "snapshot-create",
            "Status": status,
            "ResourceId": f"/subscriptions/s/resourceGroups/rg/providers/Compute/disks/{disk}",
            "OutcomeId": outcome,
        }

    outcomes = [
        row("a", "succeeded", "1"),
        row("a", "succeeded", "1"),  # delivered twice
        row("B", "blocked", "2"),
        row("b", "unconfirmed", "3"),
        row("c", "failed", "4"),
        row("d", "skipped", "5"),
        row("e", "waiting", "6"),
        row("e", "unconfirmed", "7"),
        {"Operation": "run-end", "Status": "succeeded", "OutcomeId": "8"},
    ]
    assert summarise(outcomes, 1.0)["disks"] == {
        "succeeded": 1,
        "blocked": 1,
        "failed": 1,
        "skipped": 1,
        "waiting": 1,
    }
