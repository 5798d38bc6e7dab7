"""Celery tasks of the annotation app: thin wrappers that load ids and call services."""

from celery import shared_task
from kombu.exceptions import OperationalError as BrokerError

from annotation.imports.jobs import run_import_job


@shared_task(
    name="annotation.run_import",
    acks_late=True,
    autoretry_for=(BrokerError,),
    retry_backoff=True,
    max_retries=5,
)
def run_import(job_id: int) -> str:
    job = run_import_job(job_id=job_id)
    return job.status


@shared_task(name="annotation.compute_agreement", acks_late=True)
def compute_agreement(batch_id: int) -> str:
    from annotation.agreement.services import run_scheduled

    return run_scheduled(batch_id)


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
    name="annotation.run_export",
    acks_late=True,
    autoretry_for=(BrokerError,),
    retry_backoff=True,
    max_retries=5,
)
def run_export(snapshot_id: int) -> str:
    """Write an export snapshot's files and zip (idempotent: a finished one is kept)."""
    from annotation.export.services import run_snapshot

    return run_snapshot(snapshot_id).status
