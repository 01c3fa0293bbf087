"""The queue's exceptions."""

from __future__ import annotations

from storage.errors import LabError


class JobNotFound(LookupError):
    """No job row with that id."""


class StaleClaim(RuntimeError):
    """A write for a claim that no longer holds the job: the job is not running any more, or
    it was re-queued and claimed again (its `attempts` moved on). The row was left alone; the
    writer must discard its work (its partial folder) and move on."""

    def __init__(self, job_id: int, attempt: int | None):
        super().__init__(f"job {job_id}: attempt {attempt} no longer holds the job (it was "
                         f"re-queued or finished by another worker); its work is discarded")
        self.job_id, self.attempt = job_id, attempt


class QueueFull(LabError):
    """One owner already has the most queued jobs LAB_MAX_QUEUED_PER_OWNER allows."""

    def __init__(self, owner: str, cap: int):
        super().__init__(f"{owner} already has {cap} jobs waiting in the queue, the most one "
                         f"person may have (LAB_MAX_QUEUED_PER_OWNER={cap}); wait for some to "
                         f"start, or cancel some")
        self.owner, self.cap = owner, cap
