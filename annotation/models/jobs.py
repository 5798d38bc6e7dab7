"""What every job has in common: imports, exports, jury and generation runs.

A job is a row that a worker writes as it goes and a page polls. Each kind keeps
its own columns and status values (`JobStatus` for imports and exports,
`jury.models.RunStatus` for runs); `Job` adds the lifecycle they share: a
transitions map that every status change goes through (`set_status`, or
`move_status` where two workers may race), the finished time that goes with it,
and the same read-only view of its progress (`done` of `total`, `percent`,
`phase`, `started`, `error_text`).
"""

from datetime import datetime
from typing import Any, ClassVar

from django.db import models
from django.utils import timezone

from accounts.refusals import Conflict


class JobStatus(models.TextChoices):
    PENDING = "pending", "Waiting for a worker"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Done"
    FAILED = "failed", "Failed"


# An import's or an export's moves: a worker takes it (again, when the one that had
# it died and the task came back), then it succeeds or fails for good.
JOB_TRANSITIONS: dict[str, frozenset[str]] = {
    JobStatus.PENDING: frozenset({JobStatus.RUNNING}),
    JobStatus.RUNNING: frozenset(
        {JobStatus.RUNNING, JobStatus.SUCCEEDED, JobStatus.FAILED}
    ),
    JobStatus.SUCCEEDED: frozenset(),
    JobStatus.FAILED: frozenset(),
}


class JobRefused(Conflict):
    """A job status change that its transitions map does not allow."""

    code = "job_status_refused"

    def __init__(self, job: "Job", status: str) -> None:
        allowed = ", ".join(sorted(job.TRANSITIONS.get(job.status, ()))) or "nothing"
        super().__init__(
            f"{job} is {job.status}; it can go to {allowed}, not {status}."
        )
        self.current = job.status
        self.requested = status


class Job(models.Model):
    """The lifecycle an import, an export, a jury run and a generation run share.

    Abstract and without columns of its own: every table stays as it was. A
    subclass has `status`, `created_at` and `finished_at` columns, says its moves
    (`TRANSITIONS`), the statuses at which its work has ended (`FINISHED`, which
    set `finished_at`; any other status clears it) and the one that means success,
    and says what `done` and `total` count.
    """

    TRANSITIONS: ClassVar[dict[str, frozenset[str]]] = JOB_TRANSITIONS
    FINISHED: ClassVar[frozenset[str]] = frozenset(
        {JobStatus.SUCCEEDED, JobStatus.FAILED}
    )
    SUCCEEDED: ClassVar[str] = JobStatus.SUCCEEDED

    # The columns every subclass declares (annotations only: no field here).
    status: str
    created_at: datetime
    finished_at: datetime | None

    class Meta:
        abstract = True

    def set_status(self, status: str, **fields: Any) -> None:
        """The one way to change this job's status; raises JobRefused.

        Writes the status, `finished_at` and `fields` (other columns that change
        with it: an error, counts) in one UPDATE of this row.
        """
        if status not in self.TRANSITIONS.get(self.status, frozenset()):
            raise JobRefused(self, status)
        fields = self._with_finished_at(status, fields)
        for name, value in fields.items():
            setattr(self, name, value)
        self.save(update_fields=list(fields))

    @classmethod
    def move_status(cls, pk: int, status: str, **fields: Any) -> bool:
        """Move the row `pk` to `status` if the map allows it from where it is now.

        One conditional UPDATE, so two workers finishing or failing at once cannot
        both move it; False when the row was elsewhere (nothing written).
        """
        sources = [s for s, targets in cls.TRANSITIONS.items() if status in targets]
        fields = cls._with_finished_at(status, fields)
        # A Q, not keywords: Job itself has no `status` field for the checker to see.
        guard = models.Q(pk=pk, status__in=sources)
        return bool(cls._default_manager.filter(guard).update(**fields))

    @classmethod
    def _with_finished_at(cls, status: str, fields: dict[str, Any]) -> dict[str, Any]:
        finished_at = timezone.now() if status in cls.FINISHED else None
        return {"status": status, "finished_at": finished_at} | fields

    @property
    def done(self) -> int:
        """How many of `total` are done (rows read, steps, votes, texts)."""
        raise NotImplementedError

    @property
    def total(self) -> int:
        """How many there are to do; 0 while not known yet."""
        raise NotImplementedError

    @property
    def percent(self) -> int:
        """0 to 100; 100 only once the job succeeded, whatever the counts say."""
        if self.status == self.SUCCEEDED:
            return 100
        if not self.total:
            return 0
        return min(99, int(100 * self.done / self.total))

    @property
    def finished(self) -> bool:
        return self.status in self.FINISHED

    @property
    def started(self) -> datetime:
        """When the work started: `started_at` where the job has one, else when it
        was asked for."""
        started_at: datetime | None = getattr(self, "started_at", None)
        return started_at or self.created_at

    @property
    def error_text(self) -> str:
        """Why the job failed, in words ("" when it did not)."""
        error: str = getattr(self, "error", "")
        return error
