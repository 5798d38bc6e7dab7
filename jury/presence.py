"""Which Celery workers are alive and the queues they consume, on every broker.

Each worker writes its own `WorkerPresence` row every `HEARTBEAT_SECONDS`
(`PresenceStep`, a worker bootstep registered in config/celery.py) and marks it
stopped on a warm shutdown. Remote control (`app.control.inspect()`) would need a
broadcast-capable broker, and the embedded SQLite broker of `make run` has none.

A worker *listens* on a queue when its row names the queue, is not stopped and was
written within `LISTENING_WITHIN`: a killed worker stops being listed after that.
"""

import logging
import os
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from celery import bootsteps
from django.db import IntegrityError, connections
from django.utils import timezone

from jury.models import WorkerPresence

logger = logging.getLogger(__name__)

HEARTBEAT_SECONDS = 10.0
# Three missed beats: a worker busy with a long chunk still beats (its own thread).
LISTENING_WITHIN = timedelta(seconds=3 * HEARTBEAT_SECONDS)
# Rows of workers gone this long are deleted by the next worker that starts.
FORGET_AFTER = timedelta(days=7)

# A prefork worker forks its pool's processes while the heartbeat thread may be in
# the middle of a beat. A child forked then would inherit a database library (SQLite
# above all) holding locks of a thread that does not exist in it, and hang on its
# first query; a child that inherits an open SQLite connection corrupts its locking.
# So a fork waits for the beat in progress to end, and a beat closes its connection
# before it lets go.
_beat = threading.Lock()
os.register_at_fork(
    before=_beat.acquire,
    after_in_parent=_beat.release,
    after_in_child=_beat.release,
)


@dataclass(frozen=True)
class Listener:
    """The worker seen on a queue: the listening one, else the one seen last."""

    hostname: str
    last_seen: datetime
    listening: bool
    stopped: bool


def record_presence(
    *, hostname: str, queues: Sequence[str], pid: int, started_at: datetime
) -> None:
    """Say that this worker is alive now (one UPDATE; an INSERT the first time)."""
    now = timezone.now()
    fields = {
        "queues": sorted(queues),
        "pid": pid,
        "started_at": started_at,
        "last_seen": now,
        "stopped_at": None,
    }
    if WorkerPresence.objects.filter(hostname=hostname).update(**fields):
        return
    try:
        WorkerPresence.objects.create(hostname=hostname, **fields)
    except IntegrityError:  # a worker of the same name wrote first
        WorkerPresence.objects.filter(hostname=hostname).update(**fields)


def record_stopped(*, hostname: str, pid: int) -> None:
    """A warm shutdown: the worker no longer takes tasks (its row stays, as when)."""
    now = timezone.now()
    WorkerPresence.objects.filter(hostname=hostname, pid=pid).update(
        stopped_at=now, last_seen=now
    )


def forget_old_workers() -> int:
    deleted, _ = WorkerPresence.objects.filter(
        last_seen__lt=timezone.now() - FORGET_AFTER
    ).delete()
    return deleted


def listener_for(
    queue: str, rows: Iterable[WorkerPresence], *, now: datetime
) -> Listener | None:
    """The worker to show for a queue (pure over the rows read)."""
    best: Listener | None = None
    for row in rows:
        if queue not in row.queues:
            continue
        found = Listener(
            hostname=row.hostname,
            last_seen=row.last_seen,
            listening=row.stopped_at is None
            and row.last_seen >= now - LISTENING_WITHIN,
            stopped=row.stopped_at is not None,
        )
        if best is None or (found.listening, found.last_seen) > (
            best.listening,
            best.last_seen,
        ):
            best = found
    return best


def queue_listeners(
    queues: Iterable[str], *, now: datetime | None = None
) -> dict[str, Listener | None]:
    """Each queue's worker, from one query (there are a few workers, not many)."""
    now = now or timezone.now()
    rows = list(WorkerPresence.objects.all())
    return {queue: listener_for(queue, rows, now=now) for queue in queues}


class Heartbeat:
    """A thread that records the worker's presence until the worker stops.

    A thread of its own, not the worker's timer: with `--pool=solo` the timer runs
    in the consumer's event loop, which a chunk blocks for minutes. Database errors
    are logged once (one line) and retried at the next beat; they never stop the
    worker.
    """

    def __init__(self, *, hostname: str, app: Any) -> None:
        self.hostname = hostname
        self.app = app
        self.pid = os.getpid()
        self.started_at = timezone.now()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._failing = False

    def queues(self) -> list[str]:
        # Read at every beat: a remote-control add_consumer changes the selection.
        return sorted(self.app.amqp.queues.consume_from)

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self._run, name="aegis-worker-presence", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2 * HEARTBEAT_SECONDS)

    def _run(self) -> None:
        try:
            self._safely("forget old workers", forget_old_workers)
            while True:
                self._safely(
                    "record presence",
                    lambda: record_presence(
                        hostname=self.hostname,
                        queues=self.queues(),
                        pid=self.pid,
                        started_at=self.started_at,
                    ),
                )
                if self._stop.wait(HEARTBEAT_SECONDS):
                    break
            self._safely(
                "record the stop",
                lambda: record_stopped(hostname=self.hostname, pid=self.pid),
            )
        finally:
            connections.close_all()  # this thread's connections only

    def _safely(self, what: str, step: Any) -> None:
        try:
            with _beat:  # no fork meanwhile (see `_beat`)
                try:
                    step()
                finally:
                    connections.close_all()  # this thread's only
        except Exception as exc:  # presence must never stop a worker
            if not self._failing:
                logger.warning("worker presence: could not %s: %s", what, exc)
            self._failing = True
        else:
            if self._failing:
                logger.info("worker presence: recorded again")
            self._failing = False


class PresenceStep(bootsteps.StartStopStep):
    """The worker bootstep that runs a `Heartbeat` (config/celery.py adds it)."""

    label = "presence"

    def create(self, parent: Any) -> Heartbeat:
        return Heartbeat(hostname=parent.hostname, app=parent.app)
