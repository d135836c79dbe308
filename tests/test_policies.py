from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from shared.policies import (
    TAG_TYPO,
    UNKNOWN_POLICY,
    PolicyError,
    edit_distance,
    load_policies,
    parse_policies,
)
from shared.retention import Duration

ROOT = Path(__file__).resolve().parent.parent


def document(**policy: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {"retention": {"daily": 7}}
    spec.update(policy)
    return {"version": 1, "policies": {"daily": spec}}


def test_the_shipped_policy_file_is_valid() -> None:
    policies = load_policies(ROOT / "policies.yaml")
    daily = policies.policies["daily"]
    assert daily.retention.daily == 7
    assert daily.orphan_retention is not None
    assert daily.orphan_retention.within == Duration(days=30)
    assert daily.snapshot_on_create
    weekdays = policies.policies["weekdays-os"]
    assert weekdays.nights == frozenset(range(5))
    assert weekdays.disks.includes(None)
    assert not weekdays.disks.includes(0)


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ({"version": 2, "policies": {}}, "version: Value error, unsupported version 2"),
        (document(retention={"daily": -2}), "policy 'daily': retention.daily"),
        (document(retention={"within": "3w"}), "policy 'daily': retention.within"),
        (document(retention={}), "policy 'daily': retention keeps nothing"),
        (document(rpoHours=0), "policy 'daily': rpoHours"),
        (document(nights=["funday"]), "policy 'daily': nights.0"),
        (document(snapshot_on_crate=True), "policy 'daily': snapshot_on_crate: Extra inputs"),
        ({"version": 1, "defaultPolicy": "gold", "policies": {}}, "'gold' is not a defined policy"),
        (
            {"version": 1, "policies": {"Bad Name": {"retention": {"last": 1}}}},
            "policy 'Bad Name': [key]: String should match",
        ),
    ],
)
def test_every_error_names_the_policy_and_field(doc: dict[str, Any], message: str) -> None:
    with pytest.raises(PolicyError) as caught:
        parse_policies(doc)
    assert message.replace("Value error, ", "") in str(caught.value).replace("Value error, ", "")


def test_tags_choose_a_policy_case_insensitively() -> None:
    policies = parse_policies({**document(), "defaultPolicy": "daily"})
    policy, why = policies.for_tags({"LifeBoat:Policy": "DAILY"})
    assert policy is not None
    assert policy.name == "daily"
    assert why == "tagged lifeboat:policy=daily"
    assert policies.for_tags({})[1] == "default policy 'daily'"
    assert policies.for_tags({"lifeboat:policy": "none"}) == (
        None,
        "opted out (lifeboat:policy=none)",
    )
    assert policies.for_tags({"lifeboat:policy": "gold"})[0] is None


@pytest.mark.parametrize(
    "tags",
    [
        {"lifeboat:policy": "daily"},
        {"Lifeboat:Policy": "Daily"},
        {"LIFEBOAT:POLICY": "DAILY"},
        {" lifeboat:policy ": " daily "},
        {"lifeboat:policy\t": "Daily\n"},
    ],
)
def test_tag_keys_and_policy_names_match_in_any_casing_after_trimming(
    tags: dict[str, str],
) -> None:
    policies = parse_policies({**document(), "defaultPolicy": None})
    policy, why = policies.for_tags(tags)
    assert policy is not None
    assert policy.name == "daily"
    assert why == "tagged lifeboat:policy=daily"
    assert policies.tag_mistake(tags) is None


def two_policies() -> Any:
    return parse_policies(
        {
            "version": 1,
            "defaultPolicy": "daily",
            "policies": {
                "daily": {"retention": {"daily": 7}},
                "weekly": {"retention": {"weekly": 4}},
            },
        }
    )


@pytest.mark.parametrize(
    ("key", "typo"),
    [
        ("lifebaot:policy", True),  # two letters swapped: one edit
        ("lifeboat:polcy", True),
        ("lifeboat-policy", True),
        ("Lifeboat:Polisy ", True),
        ("lifeboat_pol1cy", True),  # two edits
        ("lifeboat:pol", False),  # three edits
        ("lifeboat:hold", False),
        ("owner", False),
    ],
)
def test_a_policy_tag_key_within_two_edits_is_a_mistake_not_the_default(
    key: str, typo: bool
) -> None:
    policies = two_policies()
    policy, why = policies.for_tags({key: "weekly"})
    mistake = policies.tag_mistake({key: "weekly"})
    if typo:
        assert policy is None
        assert mistake is not None
        assert mistake.kind == TAG_TYPO
        assert why == f'tag "{key.strip()}" looks like "lifeboat:policy"'
    else:
        assert mistake is None
        assert policy is not None
        assert policy.name == "daily"


def test_an_unknown_policy_name_is_a_mistake_that_lists_the_known_ones() -> None:
    policies = two_policies()
    policy, why = policies.for_tags({"lifeboat:policy": " Gold-Plus "})
    assert policy is None
    assert why == "unknown policy gold-plus; known: daily, weekly"
    mistake = policies.tag_mistake({"lifeboat:policy": "gold-plus"})
    assert mistake is not None
    assert mistake.kind == UNKNOWN_POLICY
    # With the right key present, a near-miss key beside it is not a mistake.
    assert policies.tag_mistake({"lifeboat:policy": "weekly", "lifebaot:policy": "x"}) is None
    assert policies.tag_mistake({"lifeboat:policy": "NONE"}) is None


def test_edit_distance_counts_a_swap_as_one_edit() -> None:
    assert edit_distance("lifebaot:policy", "lifeboat:policy") == 1
    assert edit_distance("abc", "abc") == 0
    assert edit_distance("", "abc") == 3
    assert edit_distance("kitten", "sitting") == 3


def test_untagged_vms_are_out_without_a_default() -> None:
    policy, why = parse_policies(document()).for_tags({"env": "prod"})
    assert policy is None
    assert why == "no lifeboat:policy tag and no default policy"


def test_drill_plans_are_validated_with_the_plan_and_field_named() -> None:
    document = {
        "version": 1,
        "policies": {"daily": {"retention": {"daily": 7}, "drillPlan": "monthly"}},
        "drillPlans": {
            "weekly": {"everyDays": 0, "network": {"subnetId": "not-a-subnet"}},
            "quick": {"maxLifetimeHours": 0.25, "bootTimeoutMinutes": 30},
        },
    }
    with pytest.raises(PolicyError) as caught:
        parse_policies(document)
    message = str(caught.value)
    assert "drill plan 'weekly': everyDays" in message
    assert "drill plan 'weekly': network.subnetId" in message
    document["drillPlans"] = {"quick": {"maxLifetimeHours": 0.25, "bootTimeoutMinutes": 30}}
    with pytest.raises(PolicyError) as caught:
        parse_policies(document)
    message = str(caught.value)
    assert "policy 'daily': drillPlan 'monthly' is not a drill plan" in message
    assert "drill plan 'quick': bootTimeoutMinutes must be shorter than maxLifetimeHours" in message


def test_a_vm_is_in_a_drill_plan_by_tag_or_by_its_policy() -> None:
    policies = parse_policies(
        {
            "version": 1,
            "defaultPolicy": "daily",
            "policies": {
                "daily": {"retention": {"daily": 7}, "drillPlan": "weekly"},
                "plain": {"retention": {"daily": 7}},
            },
            "drillPlans": {"weekly": {}, "nightly": {"everyDays": 1, "rtoTargetMinutes": 15}},
        }
    )
    plan, why = policies.drill_plan_for({})
    assert plan is not None
    assert (plan.name, why) == ("weekly", "policy 'daily'")
    plan, why = policies.drill_plan_for({"Lifeboat:Drill": "Nightly"})
    assert plan is not None
    assert (plan.name, plan.rto_target_seconds) == ("nightly", 900)
    assert policies.drill_plan_for({"lifeboat:drill": "none"}) == (
        None,
        "opted out of drills (lifeboat:drill=none)",
    )
    assert policies.drill_plan_for({"lifeboat:drill": "hourly"})[1] == (
        "lifeboat:drill names unknown drill plan 'hourly'"
    )
    assert policies.drill_plan_for({"lifeboat:policy": "plain"}) == (
        None,
        "policy 'plain' has no drill plan",
    )
