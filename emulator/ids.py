"""ARM resource ids: how they are built, compared and derived.

ARM ids are case-insensitive: state is keyed by `key(id)` and answers keep the casing a resource
was created with. Derived ids (`stable_uuid`) make one estate give the same ids on every run.
"""

from __future__ import annotations

import re
import uuid

_SUBSCRIPTION = re.compile(r"^/subscriptions/([^/]+)", re.IGNORECASE)


def group_id(subscription: str, group: str) -> str:
    return f"/subscriptions/{subscription}/resourceGroups/{group}"


def provider_id(subscription: str, group: str, namespace: str, kind: str, name: str) -> str:
    return f"{group_id(subscription, group)}/providers/{namespace}/{kind}/{name}"


def compute_id(subscription: str, group: str, kind: str, name: str) -> str:
    return provider_id(subscription, group, "Microsoft.Compute", kind, name)


def network_id(subscription: str, group: str, kind: str, name: str) -> str:
    return provider_id(subscription, group, "Microsoft.Network", kind, name)


def vault_id(subscription: str, group: str, name: str) -> str:
    """A Recovery Services vault's id as Azure writes it inside the vault's own answers (Backup
    and Site Recovery alike): with a capital `/Subscriptions/`, as the REST-spec examples show."""
    return (
        f"/Subscriptions/{subscription}/resourceGroups/{group}/providers/"
        f"Microsoft.RecoveryServices/vaults/{name}"
    )


def key(resource_id: str) -> str:
    return resource_id.rstrip("/").lower()


def in_scope(resource_id: str, scope: str) -> bool:
    r, s = key(resource_id), key(scope)
    return r == s or r.startswith(s + "/")


def subscription_of(path: str) -> str | None:
    match = _SUBSCRIPTION.match(path)
    return match.group(1).lower() if match else None


def new_uuid() -> str:
    return str(uuid.uuid4())


def stable_uuid(*parts: str) -> str:
    """Deterministic ids, so one estate gives the same uniqueIds (and snapshot names) each run."""
    return str(
        uuid.uuid5(uuid.NAMESPACE_URL, "lifeboat-stand-in:" + "|".join(p.lower() for p in parts))
    )
