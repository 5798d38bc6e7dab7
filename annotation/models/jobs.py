"""What every job has in common: imports, exports, jury and generation runs.

A job is a row that a worker writes as it goes and a page polls. Each kind keeps
its own columns and status values (`JobStatus` for imports and exports,
`jury.models.RunStatus` for runs); `Job` adds the lifecycle they share: a
transitions map that every status change goes through (`set_status`, or
`move_status` where two workers may race), the finished time that goes with it,
and the same read-only view of its progress (`done` of `total`, `percent`,
`phase`, `started`, `error_text`).

`Leased` is the lease a worker holds on the work it is doing (an import, an
export, a judge's chunks of a jury run, a generation run's chunks): renewed by a
heartbeat while it works (`annotation.leases.Heartbeat`), so a reaper can tell a
worker that was lost (killed, its machine gone) from one that is slow, and queue
the work again.
"""

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, ClassVar

from django.conf import settings
from django.db import models, transaction
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

    @property
    def lease_attempts(self) -> int:
        """How many times the work was started: a `Leased` job's `attempts`; 0 for
        a run, whose leases are on its chunks (its page's service counts them)."""
        return int(getattr(self, "attempts", 0) or 0)

    @property
    def requeued_text(self) -> str:
        """ "re-queued after a worker was lost (attempt 2 of 3)" while a job that a
        reaper queued again waits or runs; "" before, and once it has finished
        (a job lost too often says so in its error: `lost_text`)."""
        return "" if self.finished else requeued_text(self.lease_attempts)

    @property
    def worker_lost(self) -> bool:
        """Whether a reaper failed this job for good because its workers were lost
        (its error is `lost_text`'s), not because of what it was working on."""
        return (
            self.finished
            and self.status != self.SUCCEEDED
            and LOST_MARK in self.error_text
        )


def lease_seconds() -> int:
    """How long a lease lasts without renewal (AEGIS_JOB_LEASE_SECONDS)."""
    return int(settings.AEGIS_JOB_LEASE_SECONDS)


def max_attempts() -> int:
    """How many times work is started before a lost worker fails it for good."""
    return int(settings.AEGIS_JOB_MAX_ATTEMPTS)


def lease_until(now: datetime | None = None) -> datetime:
    return (now or timezone.now()) + timedelta(seconds=lease_seconds())


def requeued_text(attempts: int) -> str:
    """What a job's page says once a reaper queued it again ("" before)."""
    if attempts < 2:
        return ""
    return f"re-queued after a worker was lost (attempt {attempts} of {max_attempts()})"


# The words every lost-worker error has (`lost_text`), by which `Job.worker_lost`
# tells it from a job's own failure.
LOST_MARK = " was lost (killed or stopped) during attempt "


def lost_text(holder: str, attempts: int) -> str:
    """The error of work whose worker was lost once too often."""
    who = f" ({holder})" if holder else ""
    return (
        f"The worker{who}{LOST_MARK}{attempts} of "
        f"{max_attempts()}; not queued again. Start it again once the workers are "
        "healthy."
    )


class Leased(models.Model):
    """A worker's lease on the work in this row: who holds it, until when, and how
    many times the work was started (`attempts`: 1 once a worker took it, one more
    each time a reaper queued it again after its worker was lost).

    A worker takes the lease when it starts (`lease_fields`), renews it while it
    works (`renew_lease`, from a heartbeat thread) and releases it when it stops
    (`release_lease`); a lease that ran out means the worker is gone.
    """

    lease_expires_at = models.DateTimeField(null=True, blank=True, db_index=True)
    lease_holder = models.CharField(max_length=255, blank=True, default="")
    attempts = models.PositiveSmallIntegerField(default=0)

    class Meta:
        abstract = True

    @staticmethod
    def lease_fields(holder: str, *, attempts: int) -> dict[str, Any]:
        """The columns to write when `holder` takes the lease (with the status)."""
        return {
            "lease_expires_at": lease_until(),
            "lease_holder": holder[:255],
            "attempts": max(attempts, 1),
        }

    @classmethod
    def renew_lease(cls, pks: Sequence[int], holder: str) -> int:
        """Extend `holder`'s lease of the rows `pks`; how many were renewed. A row
        is left as it is when it is locked (its own worker writes it: the lease is
        renewed next time), gone, or no longer `holder`'s (released, or taken by
        another worker after a reaper's re-queue).

        SKIP LOCKED: the heartbeat thread never waits on the row lock the worker's
        own transaction may hold (PostgreSQL; SQLite locks the whole file)."""
        with transaction.atomic():
            free = list(
                cls._default_manager.select_for_update(skip_locked=True)
                .filter(pk__in=list(pks))
                .values_list("pk", flat=True)
            )
            return cls._default_manager.filter(
                pk__in=free, lease_holder=holder[:255], lease_expires_at__isnull=False
            ).update(lease_expires_at=lease_until())

    @classmethod
    def release_lease(cls, pk: int, holder: str) -> None:
        """Drop `holder`'s lease on row `pk` (another holder's is left alone)."""
        cls._default_manager.filter(pk=pk, lease_holder=holder[:255]).update(
            lease_expires_at=None
        )

    def lease_live(self, now: datetime | None = None) -> bool:
        expires = self.lease_expires_at
        return expires is not None and expires >= (now or timezone.now())
