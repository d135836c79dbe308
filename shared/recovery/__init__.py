"""`lifeboat recover`: bring a VM back from one of Lifeboat's snapshot sets or an Azure Backup
recovery point, in one command.

    sources (sets of a VM) | points (a recovery point, its restore)  ->  planning (decide, pure)
    run (gather the reads; execute the plan through the RecoveryCloud port; time each step)
    report (the `recover` outcome row and who ran it)

The same pieces as a drill (disks from a snapshot set, a VM from disks by LUN, waiting for the
VM agent), without isolation and teardown, run by an operator with their own credential.
"""

from __future__ import annotations

from shared.recovery.model import MODES, Action, Mode, Plan, PointRestore, Refusal, Result
from shared.recovery.planning import Facts, Request, decide
from shared.recovery.points import LATEST, RestoreFailedError, choose_point, find_item
from shared.recovery.ports import PreconditionFailedError, RecoveryCloud
from shared.recovery.report import caller_of, record, recovery_id_of
from shared.recovery.run import RecoveryFailedError, Waiter, execute, prepare
from shared.recovery.sources import NoSetError, choose_set, parse_time, snapshot_sets

__all__ = [
    "LATEST",
    "MODES",
    "Action",
    "Facts",
    "Mode",
    "NoSetError",
    "Plan",
    "PointRestore",
    "PreconditionFailedError",
    "RecoveryCloud",
    "RecoveryFailedError",
    "Refusal",
    "Request",
    "RestoreFailedError",
    "Result",
    "Waiter",
    "caller_of",
    "choose_point",
    "choose_set",
    "decide",
    "execute",
    "find_item",
    "parse_time",
    "prepare",
    "record",
    "recovery_id_of",
    "snapshot_sets",
]
