"""Celery tasks of the annotation app: thin wrappers that load ids and call services."""

from celery import Task, shared_task
from kombu.exceptions import OperationalError as BrokerError

from annotation.imports.jobs import run_import_job
from annotation.leases import holder_name, reap_lost_jobs


@shared_task(
    bind=True,
    name="annotation.run_import",
    acks_late=True,
    autoretry_for=(BrokerError,),
    retry_backoff=True,
    max_retries=5,
)
def run_import(self: Task, job_id: int) -> str:
    job = run_import_job(job_id=job_id, holder=holder_name(self.request.hostname or ""))
    return job.status


@shared_task(name="annotation.reap_lost_jobs", ignore_result=True)
def reap_lost_jobs_task() -> dict[str, int]:
    """Celery beat's: imports, exports and agreement reports whose worker was lost,
    queued again."""
    reaped = reap_lost_jobs()
    return {"requeued": reaped.requeued, "failed": reaped.failed}


@shared_task(bind=True, name="annotation.compute_agreement", acks_late=True)
def compute_agreement(self: Task, batch_id: int) -> str:
    """A batch's agreement report, under a lease (idempotent: a current report is
    kept)."""
    from annotation.agreement.services import run_scheduled

    return run_scheduled(batch_id, holder=holder_name(self.request.hostname or ""))


@shared_task(
    name="annotation.recompute_final_label", acks_late=True, ignore_result=True
)
def recompute_final_label(dialogue_id: int) -> None:
    """One dialogue's final labels, after a vote changed (idempotent)."""
    from annotation.final_labels.services import recompute_dialogue

    recompute_dialogue(dialogue_id)


@shared_task(name="annotation.derive_final_labels", acks_late=True)
def derive_final_labels(batch_id: int) -> dict[str, int]:
    """Every final label of a batch (idempotent: unchanged rows are not written)."""
    from annotation.final_labels.services import derive_batch
    from annotation.models import Batch

    batch = Batch.objects.filter(pk=batch_id).first()
    return derive_batch(batch) if batch is not None else {}


@shared_task(
    bind=True,
    name="annotation.run_export",
    acks_late=True,
    autoretry_for=(BrokerError,),
    retry_backoff=True,
    max_retries=5,
)
def run_export(self: Task, snapshot_id: int) -> str:
    """Write an export snapshot's files and zip (idempotent: a finished one is kept)."""
    from annotation.export.services import run_snapshot

    holder = holder_name(self.request.hostname or "")
    return run_snapshot(snapshot_id, holder=holder).status
