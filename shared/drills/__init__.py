"""DR drills: restore a VM in isolation from a restore point, prove it boots, clean up.

timer -> `start_drills` (planning): one drill-plan message per target subscription
drill-plan -> `plan_drills` (planning): the VMs whose drill plan is due, one `prepare` each
drill-step -> `drill_step` (steps): one step of one drill; the message carries the whole drill
sweeper timer -> `sweep` (sweeper): teardown for whatever outlived its `lifeboat:expires`

What a drill restores from is a `DrillSource` (source): Lifeboat's snapshot sets today.
Handlers decide and return; `shared/dispatch.py` sends, puts back and reports.
"""

from __future__ import annotations

from shared.dispatch import HandlerTable
from shared.drills.planning import (
    WRITES_PER_DRILL,
    drill_id_of,
    is_due,
    new_drill,
    plan_drills,
    run_id_of,
    start_drill_now,
    start_drills,
)
from shared.drills.source import (
    DrillSource,
    NoRestorePoint,
    RestorePoint,
    SnapshotSets,
    choose_snapshot_set,
)
from shared.drills.steps import STEPS, TEARDOWN_LIMIT, drill_step, report_id, step_message
from shared.drills.sweeper import DRILL_ID_PATTERN, sweep
from shared.messages import DrillPlanRequest, DrillState
from shared.names import Timer

HANDLERS: HandlerTable = {DrillPlanRequest: plan_drills, DrillState: drill_step}

TIMERS = {Timer.DRILL: start_drills, Timer.SWEEPER: sweep}

__all__ = [
    "DRILL_ID_PATTERN",
    "HANDLERS",
    "STEPS",
    "TEARDOWN_LIMIT",
    "TIMERS",
    "WRITES_PER_DRILL",
    "DrillSource",
    "NoRestorePoint",
    "RestorePoint",
    "SnapshotSets",
    "choose_snapshot_set",
    "drill_id_of",
    "drill_step",
    "is_due",
    "new_drill",
    "plan_drills",
    "report_id",
    "run_id_of",
    "start_drill_now",
    "start_drills",
    "step_message",
    "sweep",
]
