"""Send a Celery task by its name: how services start background work.

Services never import the task modules (those import the services: a cycle); they
name the task (`"annotation.run_export"`) and send it once their transaction
commits. This module imports no app code.
"""

from collections.abc import Callable
from typing import Any

from celery import current_app
from celery.result import AsyncResult
from django.db import transaction


def send(name: str, *args: Any, queue: str | None = None) -> AsyncResult:
    """Send the task now. A task registered in this process is called through its
    own object, so its options and the eager mode of tests and benchmarks apply;
    otherwise (a worker elsewhere owns it) it is sent by name."""
    task = current_app.tasks.get(name)
    if task is None:
        return current_app.send_task(name, args, **({"queue": queue} if queue else {}))
    if queue:
        return task.apply_async(args, queue=queue)
    return task.delay(*args)


def later(
    name: str,
    *args: Any,
    queue: str | None = None,
    robust: bool = False,
    then: Callable[[AsyncResult], object] | None = None,
) -> None:
    """Send the task once the current transaction commits (at once outside one), so
    a worker never looks for rows that are not committed yet. `robust`: a broker
    that is down is logged, not raised (the work is put right later, e.g. by a
    derivation); `then` receives the sent task's result handle."""

    def sending() -> None:
        result = send(name, *args, queue=queue)
        if then is not None:
            then(result)

    transaction.on_commit(sending, robust=robust)
