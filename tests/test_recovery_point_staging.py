"""What a recovery-point drill's restore leaves in the staging account, with in-memory ports: the
drill's report step deletes the blobs the job names and their container when it is a restore's
and empty, never anything else; a refusal leaves them, named with the reason, and the sweeper's
next pass removes what is a restore's and older than the drill window."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import timedelta

import pytest

from shared import dispatch
from shared.adapters.blobs import NoStagingBlobs
from shared.model import Outcome
from shared.names import Timer
from shared.ports import RestoreJob, StagingBlobs
from tests.drill_fakes import SimHost
from tests.fakes import MemoryStagingBlobs
from tests.test_recovery_point_drills import World

ACCOUNT = "stlbstageweu"  # the staging account's name in RESTORE_STAGING_ACCOUNTS (World)


class StagingWorld(World):
    """A World whose restore jobs name their config blob as the recorded job does, in a
    `vhd<32 hex>` container of `account`, which holds it (MemoryStagingBlobs)."""

    def __init__(self, staging: StagingBlobs | None = None, **settings: str) -> None:
        settings.setdefault("RESTORE_STAGING_BLOB_ENDPOINT", "https://{account}.blob.example")
        super().__init__(**settings)
        self.staging = MemoryStagingBlobs()
        self.rt = dataclasses.replace(self.rt, staging=staging or self.staging)
        self.host = SimHost(self.rt, self.queues)
        self.container = f"vhd{uuid.uuid4().hex}"
        self.account = ACCOUNT
        written: set[str] = set()
        get_job = self.backup.get_job

        def named(vault_id: str, job_id: str) -> RestoreJob | None:
            job = get_job(vault_id, job_id)
            if job is None or job.status != "Completed":
                return job
            blob = f"config{uuid.uuid5(uuid.NAMESPACE_URL, job_id)}.json"
            if blob not in written:
                written.add(blob)
                self.staging.put(self.account, self.container, blob, at=self.clock.now())
            bag = {
                "Job Type": "Recover disks",
                "Target Storage Account Name": self.account,
                "Config Blob Name": blob,
                "Config Blob Container Name": self.container,
                "Config Blob Uri": (
                    f"https://{self.account}.blob.core.windows.net/{self.container}/{blob}"
                ),
            }
            return dataclasses.replace(job, properties=bag)

        self.backup.get_job = named  # type: ignore[method-assign]

    def drill_row(self) -> Outcome:
        (row,) = self.outcomes()
        return row

    def sweep_rows(self) -> dict[str, Outcome]:
        """The sweeper's staging rows by container (the last of each)."""
        return {
            o.details["container"]: o
            for o in self.reporter.outcomes
            if o.operation == "sweep" and "container" in o.details
        }


def test_the_drill_removes_the_config_blob_and_the_restores_empty_container() -> None:
    world = StagingWorld()
    world.staging.put(ACCOUNT, "vhd" + "0" * 32, "configmine.json")  # another restore's: kept
    world.staging.put(ACCOUNT, "operator-files", "notes.txt")
    world.night()
    row = world.drill_row()
    assert row.status == "succeeded", row.reason
    uri = row.details["stagingRemoved"][0]
    assert uri.startswith(f"https://{ACCOUNT}.blob.core.windows.net/{world.container}/config")
    assert row.details["stagingRemoved"][1] == uri.rsplit("/", 1)[0]
    assert row.details["stagingLeft"] == []
    assert row.details["stagingLeftReason"] is None
    blob = uri.rsplit("/", 1)[1]
    assert world.staging.deleted == [
        f"{ACCOUNT}/{world.container}/{blob}",
        f"{ACCOUNT}/{world.container}",
    ]
    assert set(world.staging.accounts[ACCOUNT]) == {"vhd" + "0" * 32, "operator-files"}


def test_a_container_the_job_names_that_holds_anything_else_is_never_deleted() -> None:
    world = StagingWorld()
    world.staging.put(ACCOUNT, world.container, "someone-elses.vhd")
    world.night()
    row = world.drill_row()
    assert row.status == "succeeded", row.reason
    assert len(row.details["stagingRemoved"]) == 1  # the config blob only
    assert row.details["stagingLeft"] == [
        f"https://{ACCOUNT}.blob.core.windows.net/{world.container}"
    ]
    assert "holds 1 blob(s) the job did not name" in row.details["stagingLeftReason"]
    assert world.staging.accounts[ACCOUNT][world.container][1] == ["someone-elses.vhd"]


def test_a_blob_outside_the_staging_account_is_never_deleted() -> None:
    world = StagingWorld()
    world.account = "someoneelse"
    world.night()
    row = world.drill_row()
    assert row.status == "succeeded", row.reason
    assert row.details["stagingRemoved"] == []
    assert row.details["stagingLeft"][0].startswith("https://someoneelse.blob.core.windows.net/")
    assert "is not a blob of the staging account stlbstageweu" in row.details["stagingLeftReason"]
    assert world.staging.deleted == []


@pytest.mark.parametrize(
    "refusal",
    [
        "staging account stlbstageweu refused to delete (403 AuthorizationPermissionMismatch)",
        "staging account stlbstageweu did not answer to delete: ServiceRequestError",
    ],
    ids=["refused", "unreachable"],
)
def test_a_refused_delete_leaves_the_drill_as_it_was_and_the_sweeper_removes_it(
    refusal: str,
) -> None:
    world = StagingWorld()
    world.staging.refuse[ACCOUNT] = refusal
    world.night()
    row = world.drill_row()
    assert row.status == "succeeded", row.reason  # the drill on its own merits
    (uri,) = row.details["stagingLeft"]
    assert f"/{world.container}/config" in uri
    assert row.details["stagingLeftReason"] == refusal
    assert row.details["stagingRemoved"] == []
    # Besides it: a restore's container too young, one holding other blobs, one not a restore's.
    young = "vhd" + "1" * 32
    mixed = "vhd" + "2" * 32
    now = world.clock.now()
    world.staging.put(ACCOUNT, young, f"config{uuid.uuid4()}.json", at=now + timedelta(hours=3))
    world.staging.put(ACCOUNT, mixed, f"config{uuid.uuid4()}.json", "disk.vhd", at=now)
    world.staging.put(ACCOUNT, "vhdbackups", f"config{uuid.uuid4()}.json", at=now)
    # Still refused: the sweeper reports it and deletes nothing.
    world.clock.advance(hours=5)
    dispatch.fire(world.rt, Timer.SWEEPER)
    world.host.drain()
    [failed] = [
        o for o in world.reporter.outcomes if o.operation == "sweep" and o.status == "failed"
    ]
    assert refusal in (failed.reason or "")
    assert world.staging.deleted == []
    # The role granted: the next pass removes the restore's old container and nothing else.
    del world.staging.refuse[ACCOUNT]
    world.clock.advance(hours=1)
    dispatch.fire(world.rt, Timer.SWEEPER)
    world.host.drain()
    assert world.container not in world.staging.accounts[ACCOUNT]
    assert set(world.staging.accounts[ACCOUNT]) == {young, mixed, "vhdbackups"}
    assert world.staging.accounts[ACCOUNT][mixed][1] == ["disk.vhd"]
    rows = world.sweep_rows()
    assert rows[world.container].status == "succeeded"
    assert rows[mixed].status == "blocked"
    assert set(rows) == {world.container, mixed}


def test_without_a_staging_blob_endpoint_the_blob_is_reported_left_and_never_looked_for() -> None:
    world = StagingWorld(staging=NoStagingBlobs(), RESTORE_STAGING_BLOB_ENDPOINT="")
    world.night()
    row = world.drill_row()
    assert row.status == "succeeded", row.reason
    assert len(row.details["stagingLeft"]) == 1
    assert "RESTORE_STAGING_BLOB_ENDPOINT is unset" in row.details["stagingLeftReason"]
    world.sweep_after_expiry()
    assert world.sweep_rows() == {}
