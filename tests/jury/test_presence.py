"""Worker presence (jury.presence): each Celery worker records the queues it consumes
and when it was last seen, so the jury's pages can say whether anyone listens."""

import logging
import os
import threading
import time
from datetime import timedelta

import pytest
from celery.contrib.testing.worker import start_worker
from django.utils import timezone

from jury.models import WorkerPresence
from jury.presence import (
    LISTENING_WITHIN,
    Heartbeat,
    Listener,
    queue_listeners,
    record_presence,
    record_stopped,
)


def presence(hostname: str, queues: list[str], *, ago: timedelta, stopped=False):
    moment = timezone.now() - ago
    return WorkerPresence.objects.create(
        hostname=hostname,
        queues=queues,
        pid=1,
        started_at=moment,
        last_seen=moment,
        stopped_at=moment if stopped else None,
    )


@pytest.mark.django_db
def test_a_queue_is_listened_on_by_a_worker_seen_recently_and_not_stopped():
    # given a fresh worker on a, a stale one on b, a stopped one on c, one on a and b
    presence("fresh@h", ["jury.a"], ago=timedelta(seconds=5))
    presence("stale@h", ["jury.b"], ago=LISTENING_WITHIN + timedelta(seconds=1))
    presence("stopped@h", ["jury.c"], ago=timedelta(seconds=2), stopped=True)
    presence("old@h", ["jury.a", "jury.b"], ago=timedelta(hours=2))

    # when the pages ask who listens (one query)
    found = queue_listeners(["jury.a", "jury.b", "jury.c", "jury.d"])

    # then a is listened on by the fresh worker; b and c show the worker seen last
    assert {
        q: (f.hostname, f.listening, f.stopped) if f else None for q, f in found.items()
    } == {
        "jury.a": ("fresh@h", True, False),
        "jury.b": ("stale@h", False, False),
        "jury.c": ("stopped@h", False, True),
        "jury.d": None,
    }


@pytest.mark.django_db
def test_recording_presence_updates_one_row_per_worker():
    started = timezone.now() - timedelta(minutes=1)
    record_presence(
        hostname="w@h", queues=["jury.b", "jury.a"], pid=7, started_at=started
    )
    record_stopped(hostname="w@h", pid=7)
    # a worker of the same name starts again: the same row, no longer stopped
    record_presence(hostname="w@h", queues=["jury.a"], pid=8, started_at=started)

    [row] = WorkerPresence.objects.all()
    assert (row.hostname, row.queues, row.pid, row.stopped_at) == (
        "w@h",
        ["jury.a"],
        8,
        None,
    )
    # a stop recorded by an older process of that name does not touch the new one
    record_stopped(hostname="w@h", pid=7)
    row.refresh_from_db()
    assert row.stopped_at is None


def test_a_failing_beat_logs_one_line_and_never_raises(caplog):
    # given a heartbeat whose database writes fail
    beat = Heartbeat(hostname="w@h", app=None)

    def broken() -> None:
        raise RuntimeError("database is locked")

    # when three beats fail and the fourth succeeds
    with caplog.at_level(logging.INFO, logger="jury.presence"):
        for _ in range(3):
            beat._safely("record presence", broken)
        beat._safely("record presence", lambda: None)

    # then one warning line was logged for the three failures, one info for the fix
    assert [(r.levelname, r.getMessage()) for r in caplog.records] == [
        ("WARNING", "worker presence: could not record presence: database is locked"),
        ("INFO", "worker presence: recorded again"),
    ]


def wait_for_row(hostname: str, *, timeout: float = 10) -> WorkerPresence:
    deadline = time.monotonic() + timeout
    while True:
        row = WorkerPresence.objects.filter(hostname=hostname).first()
        if row is not None:
            return row
        assert time.monotonic() < deadline, f"{hostname} never recorded itself"
        time.sleep(0.1)


def test_a_real_worker_records_its_queues_while_it_runs_and_its_stop(
    transactional_db: None,
):
    """The bootstep runs in a real (in-thread) Celery worker on the test broker."""
    from config.celery import app

    # when a worker starts on a jury queue
    with start_worker(
        app,
        pool="solo",
        concurrency=1,
        perform_ping_check=False,
        queues=["jury.presence-test"],
        hostname="presence@test",
        loglevel="WARNING",
        shutdown_timeout=30,
    ):
        row = wait_for_row("presence@test")

        # then it recorded itself at once, with its queues and process
        assert (row.queues, row.pid, row.stopped_at) == (
            ["jury.presence-test"],
            os.getpid(),
            None,
        )
        [listener] = queue_listeners(["jury.presence-test"]).values()
        assert listener == Listener(
            hostname="presence@test",
            last_seen=row.last_seen,
            listening=True,
            stopped=False,
        )

    # when it has shut down, then its row says so and nobody listens any more
    row.refresh_from_db()
    assert row.stopped_at is not None
    [listener] = queue_listeners(["jury.presence-test"]).values()
    assert listener is not None
    assert (listener.listening, listener.stopped) == (False, True)


def test_a_fork_waits_for_the_beat_in_progress_and_finds_no_connection_open():
    # given a beat in progress (the heartbeat thread is inside a database step)
    heartbeat = Heartbeat(hostname="fork@host", app=None)
    inside = threading.Event()
    order: list[str] = []

    def slow_step() -> None:
        inside.set()
        time.sleep(0.5)
        order.append("beat done")

    beat = threading.Thread(target=heartbeat._safely, args=("beat", slow_step))
    beat.start()
    inside.wait(5)

    # when the worker forks a pool process meanwhile (billiard calls os.fork)
    child = os.fork()
    if child == 0:  # the pool process: nothing to do here
        os._exit(0)
    order.append("forked")
    os.waitpid(child, 0)
    beat.join(5)

    # then the fork happened only once the beat was over
    assert order == ["beat done", "forked"]
