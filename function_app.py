"""Lifeboat's function app: composition only. Nothing here reads settings or does I/O."""

import azure.functions as func

from triggers import (
    drills,
    onboarding,
    outcomes_retry,
    poison_drain,
    posture,
    rotation,
    verification,
    vm_events,
)

app = func.FunctionApp()

app.register_functions(vm_events.bp)
app.register_functions(onboarding.bp)
app.register_functions(poison_drain.bp)
app.register_functions(rotation.bp)
app.register_functions(outcomes_retry.bp)
app.register_functions(verification.bp)
app.register_functions(drills.bp)
app.register_functions(posture.bp)
