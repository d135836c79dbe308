"""The outcome factory: rows built from the context they belong to, not from ten arguments.

A handler gets `ctx.out`, bound to its job, run and message; it binds more as it learns it
(`out = ctx.out.bind(vm=vm, policy=name)`) and records a row with one call per status:
`out.blocked("snapshot-create", reason, resource_id=disk_id)`. Rows are recorded into the
handler's context and dispatch reports them, even when the handler raises.

Every row gets a deterministic id from the message's idempotency key and what the row says
(operation, resource, status, finding), so a redelivered message reports the same rows again
with the same ids: queries count each id once, and no process needs to remember what it sent.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
from collections.abc import Callable
from datetime import datetime
from typing import Any

from shared.model import Outcome, Vm
from shared.names import Job, Status
from shared.ports import Clock

Sink = Callable[[Outcome], None]


def outcome_id(key: str, *parts: object) -> str:
    """A short, stable id: the idempotency key of the work plus what distinguishes the row."""
    text = "|".join([key, *("" if p is None else str(p) for p in parts)])
    digest = hashlib.sha256(text.encode("utf-8")).digest()
    return base64.b32encode(digest).decode("ascii")[:20].lower()


@dataclasses.dataclass(frozen=True, slots=True)
class Outcomes:
    """Builds and records outcome rows for one piece of work. Immutable: `bind` makes another."""

    sink: Sink
    clock: Clock
    job: Job
    run_id: str
    key: str
    dry_run: bool = False
    fields: dict[str, Any] = dataclasses.field(default_factory=dict)

    def bind(self, *, vm: Vm | None = None, job: Job | None = None, **fields: Any) -> Outcomes:
        """The same factory with more context: a VM fills subscription, region, group, id, name."""
        merged = dict(self.fields)
        if vm is not None:
            merged.update(
                subscription_id=vm.subscription_id,
                region=vm.location,
                resource_group=vm.resource_group,
                resource_id=vm.id,
                vm_name=vm.name,
                vm_key=vm.id,  # kept when a row names one of the VM's disks as its resource
            )
        if "details" in fields:  # details add up: a disk's row keeps its VM's slot and id
            fields = {**fields, "details": {**merged.get("details", {}), **fields["details"]}}
        merged.update(fields)
        return dataclasses.replace(self, fields=merged, job=job or self.job)

    def row(
        self, operation: str, status: Status, reason: str | None = None, **fields: Any
    ) -> Outcome:
        """Record one row and return it."""
        values = {**self.fields, **fields}
        details = {**self.fields.get("details", {}), **fields.get("details", {})}
        values["details"] = details
        if not values.get("vm_key") and isinstance(details.get("vmId"), str):
            values["vm_key"] = details["vmId"]  # a disk's row names its VM by id in details
        values.setdefault("dry_run", False)
        values["dry_run"] = bool(values["dry_run"]) or self.dry_run
        time: datetime = values.pop("time", None) or self.clock.now()
        distinct = values.pop("distinct", None)
        row_id = values.pop("id", None) or outcome_id(
            self.key, operation, values.get("resource_id"), status, values.get("finding"), distinct
        )
        outcome = Outcome(
            time=time,
            run_id=self.run_id,
            job=self.job,
            operation=operation,
            status=status,
            reason=reason,
            id=row_id,
            **values,
        )
        self.sink(outcome)
        return outcome

    def succeeded(self, operation: str, reason: str | None = None, **fields: Any) -> Outcome:
        return self.row(operation, Status.SUCCEEDED, reason, **fields)

    def failed(self, operation: str, reason: str | None = None, **fields: Any) -> Outcome:
        return self.row(operation, Status.FAILED, reason, **fields)

    def skipped(self, operation: str, reason: str | None = None, **fields: Any) -> Outcome:
        return self.row(operation, Status.SKIPPED, reason, **fields)

    def blocked(self, operation: str, reason: str | None = None, **fields: Any) -> Outcome:
        return self.row(operation, Status.BLOCKED, reason, **fields)

    def planned(self, operation: str, reason: str | None = None, **fields: Any) -> Outcome:
        return self.row(operation, Status.PLANNED, reason, **fields)

    def refused(self, operation: str, reason: str | None = None, **fields: Any) -> Outcome:
        return self.row(operation, Status.REFUSED, reason, **fields)

    def waiting(self, operation: str, reason: str | None = None, **fields: Any) -> Outcome:
        return self.row(operation, Status.WAITING, reason, **fields)

    def feature_off(self, operation: str, reason: str | None = None, **fields: Any) -> Outcome:
        return self.row(operation, Status.FEATURE_OFF, reason, **fields)
