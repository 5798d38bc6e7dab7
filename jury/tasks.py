"""Celery tasks of the jury (judging chunks of runs, generating chunks of generation
runs): each loads ids and calls one service. Nothing imports this module: services
send the tasks by name (annotation.enqueue)."""

import logging
from typing import Any

from celery import Task, shared_task
from kombu.exceptions import OperationalError as BrokerError

from jury.backends.base import BackendUnavailable
from jury.generation.services import generate_chunk, reap_lost_generation
from jury.runs.services import (
    error_text,
    judge_chunk,
    record_failure,
)
from jury.runs.services import (
    reap_lost_chunks as reap_lost_jury_chunks,
)

logger = logging.getLogger(__name__)


class JudgeChunkTask(Task):
    """Records a chunk that failed for good on its run (retries do not come here)."""

    def on_failure(
        self,
        exc: Exception,
        task_id: str,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        einfo: Any,
    ) -> None:
        given = dict(zip(("run_id", "judge_id"), args, strict=False)) | kwargs
        try:
            record_failure(
                run_id=given["run_id"],
                judge_id=given["judge_id"],
                error=error_text(exc),
            )
        except Exception as failure:  # the task's own failure is logged by Celery
            logger.warning("jury chunk: could not record its failure: %s", failure)


@shared_task(
    base=JudgeChunkTask,
    bind=True,
    name="jury.judge_chunk",
    acks_late=True,
    reject_on_worker_lost=True,
    # Transport only: a model endpoint that is down, or the broker. A model's bad
    # answer is an invalid vote, never retried.
    autoretry_for=(BrokerError, BackendUnavailable),
    retry_backoff=True,
    max_retries=5,
)
def judge_chunk_task(
    self: Task, run_id: int, judge_id: int, dialogue_ids: list[int]
) -> int:
    """One judge, one chunk of a run; sent to the judge's queue (jury.<judge>)."""
    return judge_chunk(
        run_id=run_id,
        judge_id=judge_id,
        dialogue_ids=dialogue_ids,
        worker=self.request.hostname or "",
    )


@shared_task(
    bind=True,
    name="jury.generate_chunk",
    acks_late=True,
    reject_on_worker_lost=True,
    # Transport only: a model endpoint that is down, or the broker. A model's bad
    # or empty answer fails its target, never retried.
    autoretry_for=(BrokerError, BackendUnavailable),
    retry_backoff=True,
    max_retries=5,
)
def generate_chunk_task(self: Task, run_id: int, target_ids: list[int]) -> int:
    """One chunk of a generation run; sent to the generator's queue (jury.<judge>)."""
    return generate_chunk(
        run_id=run_id, target_ids=target_ids, worker=self.request.hostname or ""
    )


@shared_task(name="jury.reap_lost_chunks", ignore_result=True)
def reap_lost_chunks_task() -> dict[str, int]:
    """Celery beat's: jury chunks and generation runs whose worker was lost,
    their missing work queued again (or failed after the last attempt)."""
    return {
        "jury_chunks": reap_lost_jury_chunks(),
        "generation_runs": reap_lost_generation(),
    }
