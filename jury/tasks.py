"""Celery tasks of the jury: each loads ids and calls one service."""

from celery import shared_task
from kombu.exceptions import OperationalError as BrokerError

from jury.backends.base import BackendUnavailable
from jury.runs import judge_chunk


@shared_task(
    name="jury.judge_chunk",
    acks_late=True,
    reject_on_worker_lost=True,
    # Transport only: a model endpoint that is down, or the broker. A model's bad
    # answer is an invalid vote, never retried.
    autoretry_for=(BrokerError, BackendUnavailable),
    retry_backoff=True,
    max_retries=5,
)
def judge_chunk_task(run_id: int, judge_id: int, dialogue_ids: list[int]) -> int:
    """One judge, one chunk of a run; sent to the judge's queue (jury.<judge>)."""
    return judge_chunk(run_id=run_id, judge_id=judge_id, dialogue_ids=dialogue_ids)


# The worker imports this module only (Celery's autodiscovery looks for `tasks`):
# importing the generation task here registers it with every jury worker.
from jury.generation_tasks import generate_chunk_task  # noqa: E402

__all__ = ["generate_chunk_task", "judge_chunk_task"]
