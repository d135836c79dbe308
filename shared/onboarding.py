"""Onboarding a VM that was just written. For now: record that Lifeboat saw it.

The rotation and verification issues give this its work (first snapshot set, default policy tag,
backup finding).
"""

from __future__ import annotations

import logging

from shared.messages import Envelope, OnboardingRequest, Payload, expect
from shared.model import Job, Outcome, Status
from shared.ports import Runtime

log = logging.getLogger(__name__)


def onboard_vm(rt: Runtime, envelope: Envelope, payload: Payload) -> None:
    request = expect(payload, OnboardingRequest)
    rt.reporter.report(
        [
            Outcome(
                time=rt.clock.now(),
                run_id=envelope.run_id,
                job=Job.ONBOARDING,
                operation="vm-seen",
                status=Status.SUCCEEDED,
                subscription_id=request.subscription_id,
                resource_group=request.resource_group,
                resource_id=request.resource_id,
                vm_name=request.vm_name,
                details={
                    "eventId": request.event_id,
                    "correlationId": request.correlation_id,
                    "messageId": envelope.id,
                },
            )
        ]
    )
    log.info("onboarding saw %s", request.resource_id)
