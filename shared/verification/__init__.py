"""Azure Backup verification: every in-scope VM protected, its latest recovery point fresh.

assessment: the pure core (findings, their precedence and severity, RPO arithmetic, jobs, the
    on-demand rules, the packing of a region's VMs into one message), tested with literals
handlers: the timer's start, the queue handlers and onboarding's check of a new VM; they read
    through the ports, record rows through `ctx.out` and return what dispatch should send

Handlers decide and return; `shared/dispatch.py` sends, puts back and reports.
"""

from __future__ import annotations

from shared.dispatch import HandlerTable
from shared.messages import (
    FirstBackupCheckRequest,
    VerificationPlanRequest,
    VerificationVaultRequest,
)
from shared.names import Timer
from shared.verification.assessment import (
    FINDINGS,
    SEVERITY,
    Assessment,
    Finding,
    InScope,
    assess,
    jobs_of,
    latest_failed_job,
    on_demand_decision,
    pack_vms,
    precedence,
    remediations,
    rpo_target_seconds,
    unpack_vms,
)
from shared.verification.handlers import (
    check_first_backup,
    check_new_vm,
    enable_protection,
    plan_subscription,
    run_id_of,
    start_verification,
    verify_vault,
)

HANDLERS: HandlerTable = {
    VerificationPlanRequest: plan_subscription,
    VerificationVaultRequest: verify_vault,
    FirstBackupCheckRequest: check_first_backup,
}

TIMERS = {Timer.VERIFICATION: start_verification}

__all__ = [
    "FINDINGS",
    "HANDLERS",
    "SEVERITY",
    "TIMERS",
    "Assessment",
    "Finding",
    "InScope",
    "assess",
    "check_first_backup",
    "check_new_vm",
    "enable_protection",
    "jobs_of",
    "latest_failed_job",
    "on_demand_decision",
    "pack_vms",
    "plan_subscription",
    "precedence",
    "remediations",
    "rpo_target_seconds",
    "run_id_of",
    "start_verification",
    "unpack_vms",
    "verify_vault",
]
