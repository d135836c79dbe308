"""The `recover` outcome row, and who ran the recovery.

A recovery is recorded like every piece of Lifeboat's work (job `recovery`, operation `recover`),
best effort: the row goes to the reporter the command was given, and a recovery never fails
because its row could not be sent (the command says so instead).
"""

from __future__ import annotations

import base64
import json
import logging
from typing import Any

from shared.names import Job, Status
from shared.outcomes import Outcomes, outcome_id
from shared.ports import Clock, Reporter
from shared.recovery.model import Plan, Result

log = logging.getLogger(__name__)
OPERATION = "recover"


def caller_of(token: str) -> str:
    """Who a bearer token is: its `upn` (or `unique_name`, `email`) and `oid`, unverified.

    Only for the record: ARM checks the token; this reads its payload for the outcome row."""
    parts = token.split(".")
    if len(parts) < 2:
        return "unknown"
    payload = parts[1] + "=" * (-len(parts[1]) % 4)
    try:
        claims: dict[str, Any] = json.loads(base64.urlsafe_b64decode(payload))
    except ValueError:
        return "unknown"
    name = claims.get("upn") or claims.get("unique_name") or claims.get("email")
    oid = claims.get("oid")
    if name and oid:
        return f"{name} ({oid})"
    return str(name or oid or claims.get("appid") or "unknown")


def recovery_id_of(vm_id: str, stamp: str) -> str:
    return outcome_id(vm_id.lower(), "recover", stamp)[:12]


def record(
    reporter: Reporter,
    clock: Clock,
    result: Result,
    *,
    vm_id: str,
    mode: str,
    recovery_id: str,
    stamp: str,
) -> str | None:
    """Send the row; None when it went, else why it did not (never raises)."""
    plan: Plan | None = result.plan
    sent: list[Any] = []
    out = Outcomes(sent.append, clock, Job.RECOVERY, f"recover-{stamp}", recovery_id)
    parts = vm_id.strip("/").split("/")
    details: dict[str, Any] = {
        "recoveryId": recovery_id,
        "mode": mode,
        "source": plan.source if plan else None,
        "caller": result.caller,
        "steps": result.steps,
        "created": result.created,
    }
    if plan is not None and plan.new_vm_id:
        details["newVmId"] = plan.new_vm_id
    if plan is not None and plan.restore is not None:
        details["pointId"] = plan.restore.point.id
        details["restoreJobId"] = result.restore_job
    try:
        out.row(
            OPERATION,
            Status(result.status),
            result.reason,
            subscription_id=parts[1] if len(parts) > 1 else None,
            resource_group=parts[3] if len(parts) > 3 else None,
            region=plan.vm.location if plan else None,
            resource_id=vm_id,
            vm_name=parts[-1],
            rto_seconds=None if result.rto_seconds is None else round(result.rto_seconds),
            rpo_seconds=None if result.rpo_seconds is None else round(result.rpo_seconds),
            details=details,
        )
        reporter.report(sent)
    except Exception as e:  # best effort: the recovery's result stands
        log.warning("the recover row of %s was not sent: %s", vm_id, e)
        return f"{type(e).__name__}: {e}"[:300]
    return None
