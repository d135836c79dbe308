"""The ARM core: resource groups, paging, long-running operations, the Tags API and the rules
every write meets (deny assignments, locks, Azure Policy refusals).

The resource providers (`compute.py`, `provisioning.py`, `network.py`, `recoveryservices.py`,
`policy.py`) build on this; it knows none of them. Answers keep the casing resources were created
with.
"""

from __future__ import annotations

import base64
import bisect
import json
import re
from collections.abc import Callable
from datetime import datetime
from typing import Any
from urllib.parse import quote

from emulator.clock import Clock
from emulator.config import Behaviour
from emulator.errors import ArmError, group_not_found, subscription_not_found
from emulator.eventgrid import EventGrid
from emulator.ids import in_scope, key, new_uuid
from emulator.model import Cloud, Operation, PolicyRule, ResourceGroup
from emulator.routing import GROUP, SUBSCRIPTION, ArmRequest, Reply, Route, route
from emulator.throttling import Throttler

NAME_RULE = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9_.-]{0,78}[A-Za-z0-9_])?$")
RESERVED_TAG_PREFIXES = ("microsoft", "azure", "windows")
MAX_TAGS, MAX_TAG_KEY, MAX_TAG_VALUE = 50, 512, 256
LRO_PARTITION = "c4c8ae5b-9b5e-4e30-a2b0-2f8d0e6a4f11"


def family_of(method: str) -> str:
    if method in ("GET", "HEAD"):
        return "reads"
    if method == "DELETE":
        return "deletes"
    return "writes"


class Arm:
    def __init__(
        self,
        cloud: Cloud,
        clock: Clock,
        behaviour: Behaviour,
        throttler: Throttler,
        events: EventGrid,
    ) -> None:
        self.cloud = cloud
        self.clock = clock
        self.behaviour = behaviour
        self.throttler = throttler
        self.events = events
        # What must happen before any ARM request is answered: the stand-in applies the
        # estate's changes whose instant has passed (`StandIn.catch_up`), so no thread waits.
        self.before_request: Callable[[], object] = lambda: None

    def routes(self) -> list[Route]:
        return ROUTES

    def check_subscription(self, subscription: str) -> None:
        """The first thing every ARM request meets (after its token): catch up, then check."""
        self.before_request()
        if subscription.lower() not in self.cloud.subscriptions:
            raise subscription_not_found(subscription)

    def need_group(self, subscription: str, group: str) -> ResourceGroup:
        rg = self.cloud.group(subscription, group)
        if rg is None:
            raise group_not_found(group)
        return rg

    # ---- lists ---------------------------------------------------------------------------
    def members(self, store: dict[str, Any], args: tuple[str, ...]) -> list[Any]:
        """The resources of `store` in the subscription (and group, when the path names one)."""
        sub = args[0].lower()
        group = args[1].lower() if len(args) > 1 else None
        if group is not None:
            self.need_group(sub, group)
        return [
            r
            for r in store.values()
            if r.subscription.lower() == sub and (group is None or r.group.lower() == group)
        ]

    def page(
        self, req: ArmRequest, items: list[Any], render: Callable[[Any], dict[str, Any]]
    ) -> Reply:
        """One page of a list, in id order, rendering only that page; `nextLink` carries a
        `$skiptoken` naming the last id served, so a resource created or deleted while a client
        pages neither hides another nor comes twice (an offset would shift under it)."""
        size = self.behaviour.page_size
        ordered = sorted(items, key=_list_key)
        start = 0
        token = req.query.get("$skiptoken")
        if token is not None:
            try:
                after = base64.urlsafe_b64decode(token.encode("ascii")).decode("utf-8")
            except (ValueError, UnicodeError):
                raise ArmError(400, "InvalidSkipToken", "The skip token is invalid.") from None
            start = bisect.bisect_right(ordered, after, key=_list_key)
        chunk = ordered[start : start + size]
        body: dict[str, Any] = {"value": [render(item) for item in chunk]}
        if start + size < len(ordered):
            # The link carries the query it continues (statusOnly, $filter, ...), as ARM's do.
            kept = {k: v for k, v in req.query.items() if k != "$skiptoken"}
            kept["$skiptoken"] = base64.urlsafe_b64encode(_list_key(chunk[-1]).encode()).decode()
            body["nextLink"] = f"{req.base_url}{req.path}?{query_string(kept)}"
        return Reply(200, body)

    # ---- resource groups -----------------------------------------------------------------
    def list_groups(self, req: ArmRequest, args: tuple[str, ...]) -> Reply:
        sub = self.cloud.subscriptions[args[0].lower()]
        return self.page(req, list(sub.groups.values()), lambda g: g.to_json())

    def get_group(self, req: ArmRequest, args: tuple[str, ...]) -> Reply:
        return Reply(200, self.need_group(args[0], args[1]).to_json())

    def get_subscription(self, req: ArmRequest, args: tuple[str, ...]) -> Reply:
        return Reply(200, self.cloud.subscriptions[args[0].lower()].to_json())

    # ---- operations ----------------------------------------------------------------------
    def new_operation(
        self, sub: str, location: str, kind: str, now: datetime, resource_id: str, method: str
    ) -> Operation:
        op = Operation(
            id=new_uuid(),
            subscription=sub.lower(),
            location=location.lower().replace(" ", ""),
            kind=kind,
            start=now,
            end=now,
            resource_key=key(resource_id),
            method=method,
        )
        self.cloud.operations[op.id] = op
        return op

    def lro_headers(
        self, req: ArmRequest, op: Operation, *, retry_after: bool, location: bool = True
    ) -> dict[str, str]:
        api = req.query.get("api-version", "")
        url = (
            f"{req.base_url}/subscriptions/{op.subscription}/providers/Microsoft.Compute/"
            f"locations/{op.location}/{op.kind}/{op.id}?p={LRO_PARTITION}&api-version={api}"
        )
        headers = {"Azure-AsyncOperation": url}
        if location:
            headers["Location"] = url.replace("&api-version=", "&monitor=true&api-version=")
        if retry_after:
            headers["Retry-After"] = self.behaviour.scaled(self.behaviour.lro_initial_retry_after)
        return headers

    def copy_accepted(
        self,
        req: ArmRequest,
        sub: str,
        location: str,
        now: datetime,
        resource_id: str,
        ready_at: datetime | None,
        body: dict[str, Any],
    ) -> Reply:
        """The 202 to a disk or snapshot PUT: a `DiskOperations` record that ends when the
        resource is ready (a repeated PUT ends with the first one; None: never)."""
        op = self.new_operation(sub, location, "DiskOperations", now, resource_id, "PUT")
        op.end = None if ready_at is None else max(now, ready_at)
        return Reply(202, body, self.lro_headers(req, op, retry_after=True))

    # ---- tags API ------------------------------------------------------------------------
    def tag_target(self, scope: str) -> tuple[Any, str]:
        """The object whose tags live at `scope`, and its canonical id."""
        k = key(scope)
        for store in (self.cloud.vms, self.cloud.disks):
            found = store.get(k)
            if found is not None:
                return found, found.id
        snap = self.cloud.live_snapshot(k, self.clock.now())
        if snap is not None:
            return snap, snap.id
        match = re.match(r"^/subscriptions/([^/]+)/resourcegroups/([^/]+)$", k)
        if match:
            rg = self.cloud.group(match.group(1), match.group(2))
            if rg is not None:
                return rg, rg.id
            raise group_not_found(match.group(2))
        raise ArmError(404, "ResourceNotFound", f"The Resource '{scope}' was not found.")

    def tags_body(self, target_id: str, tags: dict[str, str]) -> dict[str, Any]:
        return {
            "id": f"{target_id}/providers/Microsoft.Resources/tags/default",
            "name": "default",
            "type": "Microsoft.Resources/tags",
            "properties": {"tags": dict(tags)},
        }

    def get_tags(self, req: ArmRequest, args: tuple[str, ...]) -> Reply:
        with self.cloud.lock:
            target, target_id = self.tag_target(args[0])
            return Reply(200, self.tags_body(target_id, target.tags))

    def write_tags(self, req: ArmRequest, args: tuple[str, ...]) -> Reply:
        body = req.body if isinstance(req.body, dict) else {}
        incoming = (body.get("properties") or {}).get("tags")
        if not isinstance(incoming, dict):
            raise ArmError(
                400, "InvalidRequestContent", "The request content must contain properties.tags."
            )
        operation = "Replace" if req.method == "PUT" else str(body.get("operation", ""))
        if operation.lower() not in ("merge", "replace", "delete"):
            raise ArmError(
                400,
                "InvalidTagOperation",
                f"The tag operation '{operation}' is invalid. Allowed: Merge, Replace, Delete.",
            )
        with self.cloud.lock:
            target, target_id = self.tag_target(args[0])
            self.authorize(req, "Microsoft.Resources/tags/write", target_id)
            self.check_locks(target_id, "write")
            tags: dict[str, str] = dict(target.tags)
            op = operation.lower()
            if op == "replace":
                tags = {}
                for k, v in incoming.items():
                    merge_tag(tags, str(k), str(v))
            elif op == "merge":
                for k, v in incoming.items():
                    merge_tag(tags, str(k), str(v))
            else:
                for k, v in incoming.items():
                    for existing in list(tags):
                        if existing.lower() == str(k).lower() and (
                            v in (None, "") or tags[existing] == v
                        ):
                            del tags[existing]
            check_tags(tags)
            target.tags = tags
            if key(target_id) in self.cloud.vms:
                self.events.resource_write(
                    target_id,
                    "Microsoft.Resources/tags/write",
                    req.caller.object_id,
                    req.correlation_id,
                    http_method=req.method,
                    url=f"{req.base_url}{req.path}",
                )
            return Reply(200, self.tags_body(target_id, tags))

    # ---- rules ---------------------------------------------------------------------------
    def denial(self, req: ArmRequest, action: str, scope: str) -> str | None:
        """Records the action in the request log; the name of the first deny assignment that
        refuses it at the scope, if any does."""
        if action not in req.actions:
            req.actions.append(action)
        for deny in self.cloud.deny_assignments:
            if in_scope(scope, deny.scope) and deny.denies(action, req.caller.object_id):
                return deny.name
        return None

    def authorize(self, req: ArmRequest, action: str, scope: str) -> None:
        deny = self.denial(req, action, scope)
        if deny is not None:
            who = req.caller.object_id
            raise ArmError(
                403,
                "AuthorizationFailed",
                f"The client '{who}' with object id '{who}' does not have authorization to "
                f"perform action '{action}' over scope '{scope}' or the scope is invalid. "
                f"(deny assignment '{deny}')",
            )

    def linked_check(
        self, req: ArmRequest, action: str, linked_scope: str, target_action: str, target: str
    ) -> None:
        """A linked access check: recorded in the request log, refused by deny assignments."""
        if self.denial(req, action, linked_scope) is not None:
            who = req.caller.object_id
            raise ArmError(
                403,
                "LinkedAuthorizationFailed",
                f"The client '{who}' with object id '{who}' has permission to perform action "
                f"'{target_action}' on scope '{target}'; however, it does not have permission to "
                f"perform action(s) '{action}' on the linked scope(s) '{linked_scope}' "
                "(respectively) or the linked scope(s) are invalid.",
            )

    def put_basics(
        self, req: ArmRequest, args: tuple[str, ...], kind: str
    ) -> tuple[ResourceGroup, dict[str, Any], dict[str, Any], str]:
        """A PUT's name checked, its group, body, properties and location."""
        check_name(args[2], kind)
        group = self.need_group(args[0], args[1])
        body = req.body if isinstance(req.body, dict) else {}
        return group, body, body.get("properties") or {}, body_location(body)

    def check_delete(self, req: ArmRequest, resource_type: str, resource_id: str) -> None:
        """What ARM checks before any DELETE: the caller's right to delete, then locks."""
        self.authorize(req, f"{resource_type}/delete", resource_id)
        self.check_locks(resource_id, "delete")

    def check_locks(self, resource_id: str, verb: str) -> None:
        locked = [
            lock
            for lock in self.cloud.locks
            if in_scope(resource_id, lock.scope) and (verb == "delete" or lock.level == "ReadOnly")
        ]
        if locked:
            scopes = ",".join(f"'{lock.scope}'" for lock in locked)
            raise ArmError(
                409,
                "ScopeLocked",
                f"The scope '{resource_id}' cannot perform {verb} operation because following "
                f"scope(s) are locked: {scopes}. Please remove the lock and try again.",
            )

    def matching_policies(
        self, resource_type: str, resource_id: str, effect: str
    ) -> list[PolicyRule]:
        return [
            rule
            for rule in self.cloud.policies
            if rule.effect == effect
            and in_scope(resource_id, rule.scope)
            and (rule.resource_type is None or rule.resource_type.lower() == resource_type.lower())
        ]

    def add_policy_tags(self, resource_type: str, resource_id: str, tags: dict[str, Any]) -> None:
        """Azure Policy modify rules: the tags they add, merged into `tags`."""
        for rule in self.matching_policies(resource_type, resource_id, "modify"):
            for k, v in rule.add_tags.items():
                merge_tag(tags, k, v)

    def check_write(
        self,
        req: ArmRequest,
        resource_type: str,
        resource_id: str,
        location: str,
        body: dict[str, Any],
        tags: dict[str, Any],
    ) -> None:
        """What ARM checks before any PUT: the caller's right to write, locks, then Azure Policy
        deny rules."""
        self.authorize(req, f"{resource_type}/write", resource_id)
        self.check_locks(resource_id, "write")
        for rule in self.matching_policies(resource_type, resource_id, "deny"):
            reasons = []
            lower_tags = {str(k).lower() for k in tags}
            for tag in rule.require_tags:
                if tag.lower() not in lower_tags:
                    reasons.append(f"tag '{tag}' is required")
            if rule.allowed_locations and location.lower() not in rule.allowed_locations:
                reasons.append(f"location '{location}' is not allowed")
            for path, expected in rule.property_equals.items():
                if dig(body, path) != expected:
                    reasons.append(f"'{path}' must be '{expected}'")
            if reasons:
                ident = json.dumps(
                    [
                        {
                            "policyAssignment": {"name": rule.name, "id": rule.assignment_id},
                            "policyDefinition": {
                                "name": rule.name,
                                "id": "/providers/Microsoft.Authorization/"
                                f"policyDefinitions/{rule.name}",
                            },
                        }
                    ],
                    separators=(",", ":"),
                )
                name = resource_id.rsplit("/", 1)[-1]
                raise ArmError(
                    403,
                    "RequestDisallowedByPolicy",
                    f"Resource '{name}' was disallowed by policy. Reasons: {'; '.join(reasons)}. "
                    f"Policy identifiers: '{ident}'.",
                    target=name,
                    additional_info=[
                        {
                            "type": "PolicyViolation",
                            "info": {
                                "policyAssignmentName": rule.name,
                                "policyAssignmentId": rule.assignment_id,
                                "policyAssignmentScope": rule.scope,
                                "policyDefinitionEffect": "deny",
                            },
                        }
                    ],
                )


def query_string(query: dict[str, str]) -> str:
    return "&".join(f"{k}={quote(v, safe='')}" for k, v in query.items())


def dig(body: dict[str, Any], path: str) -> Any:
    value: Any = body
    for part in path.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def body_location(body: dict[str, Any]) -> str:
    """A PUT body's location, folded as ARM compares it; refused when missing."""
    location = str(body.get("location", "")).lower().replace(" ", "")
    if not location:
        raise ArmError(
            400, "LocationRequired", "The location property is required for this definition."
        )
    return location


def check_same_location(location: str, other: str, message: str, target: str) -> None:
    if location != other.lower().replace(" ", ""):
        raise ArmError(400, "InvalidParameter", message, target=target)


def copy_source(creation: dict[str, Any], kind: str, advice: str, *, uri_too: bool = False) -> str:
    """The source a Copy create names (the stand-in creates disks and snapshots by copy only)."""
    option = str(creation.get("createOption", ""))
    if option.lower() != "copy":
        raise ArmError(
            400,
            "InvalidParameter",
            f"Create option '{option}' is not supported by the stand-in for {kind}; {advice}",
            target="creationData.createOption",
        )
    source = creation.get("sourceResourceId") or (creation.get("sourceUri") if uri_too else None)
    if not source:
        raise ArmError(
            400,
            "InvalidParameter",
            "Required parameter 'sourceResourceId' is missing (null).",
            target="sourceResourceId",
        )
    return str(source)


def check_name(name: str, kind: str) -> None:
    if not NAME_RULE.match(name):
        raise ArmError(
            400,
            "InvalidResourceName",
            f"Resource name {name} is invalid. The name can be up to 80 characters long. It must "
            "begin with a word character, and it must end with a word character or with '_'. The "
            "name may contain word characters or '.', '-', '_'.",
            target=kind,
        )


def merge_tag(tags: dict[str, Any], name: str, value: Any) -> None:
    """ARM tag keys are case-insensitive: a write keeps the casing first written."""
    for existing in tags:
        if existing.lower() == name.lower():
            tags[existing] = value
            return
    tags[name] = value


def body_tags(body: dict[str, Any]) -> dict[str, Any]:
    """A PUT body's tags, checked against ARM's tag rules."""
    tags = body.get("tags") or {}
    check_tags(tags)
    return tags


def check_tags(tags: dict[str, Any]) -> None:
    if not isinstance(tags, dict):
        raise ArmError(400, "InvalidRequestContent", "Tags must be an object of string values.")
    if len(tags) > MAX_TAGS:
        raise ArmError(
            400,
            "InvalidTagCount",
            f"The number of tags on a resource ({len(tags)}) exceeds the limit of {MAX_TAGS}.",
        )
    for name, value in tags.items():
        if len(str(name)) > MAX_TAG_KEY:
            raise ArmError(
                400,
                "InvalidTagNameLength",
                f"The tag name '{str(name)[:40]}...' exceeds the maximum length of "
                f"{MAX_TAG_KEY} characters.",
            )
        if len(str(value)) > MAX_TAG_VALUE:
            raise ArmError(
                400,
                "InvalidTagValueLength",
                f"The value of tag '{name}' exceeds the maximum length of {MAX_TAG_VALUE} "
                "characters.",
            )
        if str(name).lower().startswith(RESERVED_TAG_PREFIXES):
            raise ArmError(
                400,
                "InvalidTagName",
                f"The tag name '{name}' uses a reserved prefix (microsoft, azure, windows).",
            )
        if any(c in str(name) for c in "<>%&\\?/"):
            raise ArmError(
                400, "InvalidTagNameCharacters", f"The tag name '{name}' has invalid characters."
            )


_TAGS = r"^(/subscriptions/.+)/providers/microsoft\.resources/tags/default"
ROUTES: list[Route] = [
    route("GET", SUBSCRIPTION, "Microsoft.Resources/subscriptions/read", "get_subscription"),
    route(
        "GET",
        SUBSCRIPTION + r"/resourcegroups",
        "Microsoft.Resources/subscriptions/resourceGroups/read",
        "list_groups",
    ),
    route("GET", GROUP, "Microsoft.Resources/subscriptions/resourceGroups/read", "get_group"),
    route("GET", _TAGS, "Microsoft.Resources/tags/read", "get_tags"),
    route("PATCH", _TAGS, "Microsoft.Resources/tags/write", "write_tags"),
    route("PUT", _TAGS, "Microsoft.Resources/tags/write", "write_tags"),
]


def _list_key(item: Any) -> str:
    """Where a resource sorts in a list: its id, whatever its casing."""
    return str(item.id).lower()
