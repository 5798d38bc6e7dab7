"""Celery tasks of the annotation app: thin wrappers that load ids and call services."""

from celery import shared_task
from kombu.exceptions import OperationalError as BrokerError

from annotation.jobs import run_import_job


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
    from annotation.agreement import run_scheduled

    return run_scheduled(batch_id)
