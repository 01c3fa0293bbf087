"""The queue's exceptions."""

from __future__ import annotations


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
