"""Every name Lifeboat shares with Azure, its queues, its tables and its tests: declared once.

Queue names, message types (and the queue each travels on), tag keys, outcome jobs, outcome
statuses. This module imports only the standard library: triggers import it at app indexing,
so it must cost nothing at a cold start.
"""

from __future__ import annotations

import enum


class Queue(enum.StrEnum):
    """Storage queues; each also has a host-made `<name>-poison`."""

    ROTATION_PLAN = "rotation-plan"
    ROTATION_VM = "rotation-vm"
    ROTATION_PRUNE = "rotation-prune"
    VERIFICATION = "verification-vault"
    ONBOARDING = "onboarding"
    DRILL = "drill-step"
    OUTCOMES_RETRY = "outcomes-retry"

    @property
    def poison(self) -> str:
        return self.value + POISON_SUFFIX


POISON_SUFFIX = "-poison"
# The private blob container that keeps poisoned messages' full text, as `sha256/<hex>`
# (infra/app/storage.bicep creates it and deletes its blobs after 30 days).
POISON_CONTAINER = "lifeboat-poison"


class MessageType(enum.StrEnum):
    """The `type` of a queue message envelope: it selects the payload schema and the handler."""

    ONBOARDING = "onboarding"
    ROTATION_PLAN = "rotation-plan"
    ROTATION_CONFIRM = "rotation-confirm"
    ROTATION_CONFIRM_VM = "rotation-confirm-vm"
    ROTATION_VM = "rotation-vm"
    ROTATION_PRUNE = "rotation-prune"
    OUTCOMES_RETRY = "outcomes-retry"
    VERIFICATION_PLAN = "verification-plan"
    VERIFICATION_VAULT = "verification-vault"
    VERIFICATION_FIRST_BACKUP = "verification-first-backup"
    DRILL_PLAN = "drill-plan"
    DRILL_STEP = "drill-step"


# The queue each message type travels on (and so the queue function that handles it).
QUEUE_OF: dict[MessageType, Queue] = {
    MessageType.ONBOARDING: Queue.ONBOARDING,
    MessageType.ROTATION_PLAN: Queue.ROTATION_PLAN,
    MessageType.ROTATION_CONFIRM: Queue.ROTATION_PLAN,
    MessageType.ROTATION_CONFIRM_VM: Queue.ROTATION_PLAN,
    MessageType.ROTATION_VM: Queue.ROTATION_VM,
    MessageType.ROTATION_PRUNE: Queue.ROTATION_PRUNE,
    MessageType.OUTCOMES_RETRY: Queue.OUTCOMES_RETRY,
    MessageType.VERIFICATION_PLAN: Queue.VERIFICATION,
    MessageType.VERIFICATION_VAULT: Queue.VERIFICATION,
    MessageType.VERIFICATION_FIRST_BACKUP: Queue.VERIFICATION,
    MessageType.DRILL_PLAN: Queue.DRILL,
    MessageType.DRILL_STEP: Queue.DRILL,
}


class Job(enum.StrEnum):
    ROTATION = "rotation"
    VERIFICATION = "verification"
    DRILL = "drill"
    ONBOARDING = "onboarding"
    MAINTENANCE = "maintenance"
    POSTURE = "posture"
    RECOVERY = "recovery"  # `lifeboat recover`, run by an operator (never the app)


# The use case module whose HANDLERS table serves each queue (dispatch imports it on the queue's
# first message, so a cold start pays for none of them), and the job its rows belong to.
SERVED_BY: dict[Queue, tuple[str, Job]] = {
    Queue.ROTATION_PLAN: ("shared.rotation", Job.ROTATION),
    Queue.ROTATION_VM: ("shared.rotation", Job.ROTATION),
    Queue.ROTATION_PRUNE: ("shared.rotation", Job.ROTATION),
    Queue.VERIFICATION: ("shared.verification", Job.VERIFICATION),
    Queue.ONBOARDING: ("shared.onboarding", Job.ONBOARDING),
    Queue.DRILL: ("shared.drills", Job.DRILL),
    Queue.OUTCOMES_RETRY: ("shared.reporting", Job.MAINTENANCE),
}
HANDLERS_OF = {queue: module for queue, (module, _) in SERVED_BY.items()}
JOB_OF = {queue: job for queue, (_, job) in SERVED_BY.items()}


class Timer(enum.StrEnum):
    """Timer functions; the value starts each run's id (`rotation-202611270200`)."""

    ROTATION = "rotation"
    VERIFICATION = "verification"
    DRILL = "drill"
    SWEEPER = "sweep"
    POISON = "poison"
    POSTURE = "posture"


# Each timer: the app setting holding its NCRONTAB schedule (triggers bind it as `%SETTING%`),
# the use case module whose TIMERS table starts its run, and the run's job.
TIMER_SPECS: dict[Timer, tuple[str, str, Job]] = {
    Timer.ROTATION: ("ROTATION_SCHEDULE", "shared.rotation", Job.ROTATION),
    Timer.VERIFICATION: ("VERIFICATION_SCHEDULE", "shared.verification", Job.VERIFICATION),
    Timer.DRILL: ("DRILL_SCHEDULE", "shared.drills", Job.DRILL),
    Timer.SWEEPER: ("SWEEPER_SCHEDULE", "shared.drills", Job.DRILL),
    Timer.POISON: ("POISON_SCHEDULE", "shared.poison", Job.MAINTENANCE),
    Timer.POSTURE: ("POSTURE_SCHEDULE", "shared.posture", Job.POSTURE),
}


class Status(enum.StrEnum):
    """What an outcome row says happened (DESIGN.md, "Outcome record")."""

    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SKIPPED = "skipped"
    BLOCKED = "blocked"
    PLANNED = "planned"
    # A message refused on its first delivery: it can never succeed (poisoned with its reason).
    REFUSED = "refused"
    # A hold tag or a lock kept something Lifeboat would otherwise have changed.
    HELD = "held"
    # The write was accepted but its result could not be confirmed (yet).
    UNCONFIRMED = "unconfirmed"
    # The end state already held: an earlier delivery (or someone else) did it.
    ALREADY_TAKEN = "already-taken"
    # Work put back on its queue until Azure lets it go on (throttling, headroom, a window).
    WAITING = "waiting"
    # The feature's settings are absent: it is off, and says so once per run.
    FEATURE_OFF = "feature-off"


class Tag(enum.StrEnum):
    """Tag keys. Lifeboat reads POLICY, HOLD, RPO_HOURS, DRILL; it writes the others (and
    POLICY, DRILL). ARM tag keys are case-insensitive: compare them with `policies.tag_value`."""

    POLICY = "lifeboat:policy"
    HOLD = "lifeboat:hold"
    RPO_HOURS = "lifeboat:rpo-hours"
    DRILL = "lifeboat:drill"
    MANAGED = "lifeboat:managed"
    SLOT = "lifeboat:slot"
    SET = "lifeboat:set"
    RUN = "lifeboat:run"
    EXPIRES = "lifeboat:expires"
    # `lifeboat recover`: the marker on a VM while a recovery runs; on a recovered disk, the
    # disk it replaced; on a replaced disk, what replaced it and when; after a rollback.
    RECOVERY = "lifeboat:recovery"
    RECOVERED_FROM = "lifeboat:recovered-from"  # on what a recovery made: its id and the VM
    REPLACES = "lifeboat:replaces"
    REPLACED_BY = "lifeboat:replaced-by"
    REPLACED_AT = "lifeboat:replaced-at"
    ROLLED_BACK_AT = "lifeboat:rolled-back-at"
