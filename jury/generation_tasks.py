"""Celery task of generation runs: loads ids and calls one service."""

from celery import shared_task
from kombu.exceptions import OperationalError as BrokerError

from jury.backends.base import BackendUnavailable
from jury.generation import generate_chunk


@shared_task(
    name="jury.generate_chunk",
    acks_late=True,
    reject_on_worker_lost=True,
    # Transport only: a model endpoint that is down, or the broker. A model's bad
    # or empty answer fails its target, never retried.
    autoretry_for=(BrokerError, BackendUnavailable),
    retry_backoff=True,
    max_retries=5,
)
def generate_chunk_task(run_id: int, target_ids: list[int]) -> int:
    """One chunk of a generation run; sent to the generator's queue (jury.<judge>)."""
    return generate_chunk(run_id=run_id, target_ids=target_ids)
