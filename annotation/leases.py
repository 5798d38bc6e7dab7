"""The heartbeat that keeps a worker's lease on its job while it works.

A worker runs one task at a time (the jury's run `--pool=solo`) and a model call
can take minutes, so the lease is renewed from a small thread, every third of
AEGIS_JOB_LEASE_SECONDS, until the task ends; a worker killed with `kill -9`
renews nothing, and its lease runs out for the reaper to see.
"""

import logging
import os
import socket
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from types import TracebackType
from typing import Any

from django.db import connections, transaction
from django.db.models import Q
from django.utils import timezone

from annotation import enqueue
from annotation.models import AgreementReport, ExportSnapshot, ImportJob
from annotation.models.jobs import (
    JobStatus,
    Leased,
    lease_seconds,
    lost_text,
    max_attempts,
)

log = logging.getLogger(__name__)


def holder_name(worker: str = "") -> str:
    """Who holds a lease: the Celery worker's name (or the host) and the process."""
    return f"{worker or socket.gethostname()}:{os.getpid()}"


class Heartbeat:
    """`with Heartbeat(ImportJob, job_id, holder):` renews that row's lease (or
    those rows', given a list of ids) every third of the lease until the block
    ends. The lease is taken and released by the service that does the work; this
    only keeps it alive."""

    def __init__(
        self, model: type[Leased], pk: int | Sequence[int], holder: str
    ) -> None:
        self.model, self.holder = model, holder
        self.pks = [pk] if isinstance(pk, int) else list(pk)
        self.every = lease_seconds() / 3
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._beat, name=f"lease-{model.__name__}-{self.pks[0]}", daemon=True
        )

    def __enter__(self) -> "Heartbeat":
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join(timeout=self.every + 5)

    def _beat(self) -> None:
        try:
            while not self._stop.wait(self.every):
                try:
                    self.model.renew_lease(self.pks, self.holder)
                except Exception as exc:  # a broken beat is logged; the next retries
                    log.warning(
                        "lease of %s %s: %s", self.model.__name__, self.pks, exc
                    )
        finally:
            connections.close_all()  # this thread's own connections


@dataclass(frozen=True)
class Reaped:
    """What a reaper pass did: jobs queued again and jobs failed for good."""

    requeued: int = 0
    failed: int = 0

    def __add__(self, other: "Reaped") -> "Reaped":
        return Reaped(self.requeued + other.requeued, self.failed + other.failed)


@dataclass(frozen=True)
class LeasedKind:
    """A kind of work whose rows hold a lease, as the reaper needs it: the model,
    the task that does it (sent with `argument(row)`), and how a row is failed for
    good (`fail(row, error)`, in the reaper's transaction)."""

    model: type[Leased]
    task: str
    argument: Callable[[Any], int]
    fail: Callable[[Any, str], None]


def _fail_import(job: Any, text: str) -> None:
    error = {"file": job.original_name, "line": None, "field": "", "message": text}
    job.set_status(
        JobStatus.FAILED,
        lease_expires_at=None,
        errors=[error | {"text": text}],
        error_count=1,
        phase="",
    )


def _fail_export(job: Any, text: str) -> None:
    job.set_status(JobStatus.FAILED, lease_expires_at=None, error=text, phase="")


def _fail_report(report: Any, text: str) -> None:
    # A cache row, not a Job: a later request for the report schedules it again.
    AgreementReport.objects.filter(pk=report.pk).update(
        status=JobStatus.FAILED, error=text, lease_expires_at=None
    )


# Imports and exports start again from the top (all or nothing; a fresh folder);
# an agreement report is computed again (its row is written once, at the end).
# Jury and generation chunks have reapers of their own (jury.tasks).
KINDS = (
    LeasedKind(ImportJob, "annotation.run_import", lambda job: job.pk, _fail_import),
    LeasedKind(
        ExportSnapshot, "annotation.run_export", lambda job: job.pk, _fail_export
    ),
    LeasedKind(
        AgreementReport,
        "annotation.compute_agreement",
        lambda report: report.batch_id,
        _fail_report,
    ),
)


def reap_lost_jobs(*, now: datetime | None = None) -> Reaped:
    """Imports, exports and agreement reports whose worker was lost (running, its
    lease run out): each is queued again, up to AEGIS_JOB_MAX_ATTEMPTS starts, then
    failed with an error that says so. Each starts again from the top, so a late
    redelivery of the lost task by the broker finds the job finished, or leased
    by its new worker, and does nothing.
    """
    now = now or timezone.now()
    reaped = Reaped()
    for kind in KINDS:
        reaped += _reap(kind, now)
    return reaped


def _reap(kind: LeasedKind, now: datetime) -> Reaped:
    model: Any = kind.model
    expired = Q(status=JobStatus.RUNNING, lease_expires_at__lt=now)
    requeued = failed = 0
    for pk in model.objects.filter(expired).values_list("pk", flat=True):
        with transaction.atomic():
            # Locked rows are being written by a live worker: not lost.
            job = (
                model.objects.select_for_update(skip_locked=True)
                .filter(expired, pk=pk)
                .first()
            )
            if job is None:
                continue
            if job.attempts >= max_attempts():
                kind.fail(job, lost_text(job.lease_holder, job.attempts))
                failed += 1
                continue
            model.objects.filter(pk=pk).update(
                attempts=job.attempts + 1, lease_expires_at=None
            )
            enqueue.later(kind.task, kind.argument(job))
            requeued += 1
        log.warning("%s %s: its worker was lost; queued again", model.__name__, pk)
    return Reaped(requeued, failed)
