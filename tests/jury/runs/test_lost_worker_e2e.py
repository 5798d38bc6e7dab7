"""Workers killed with `kill -9` mid-job: real worker processes (a jury worker, a
default worker for imports and the reaper), Celery beat, Redis and PostgreSQL; no
lead presses Resume, and the broker's visibility timeout (6 h) never comes into it.

The judges are `openai`-backend judges on the scripted chat-completions server (two
seconds an answer, so a chunk is long enough to kill in): what is under test is the
lease, the heartbeat, beat and the reaper, not a model. tests/jury/runs/
test_worker_e2e.py runs the real SmolLM2 judges.
"""

import json
import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.utils import timezone

from annotation.imports.jobs import queue_import_file
from annotation.models import Dialogue, ImportJob, Label, VoteKind
from jury.models import (
    Backend,
    Judge,
    JuryRun,
    RunChunk,
    RunJudgeState,
    RunStatus,
    Scope,
)
from jury.runs.services import start_run
from tests.factories import BatchFactory, DialogueFactory
from tests.jury.conftest import (
    LOG_TAIL,
    REPO_ROOT,
    Broker,
    WorkerProcess,
    broker_url,
    database_url,
)

pytestmark = pytest.mark.xdist_group("lost-worker")

LEASE = 6
REAPER = 2
LEASES = {"AEGIS_JOB_LEASE_SECONDS": str(LEASE), "AEGIS_REAPER_SECONDS": str(REAPER)}
# A worker's start (Django, the broker) on two busy cores, on top of lease + period.
START = 40


@pytest.fixture
def beat(transactional_db: None, tmp_path: Path) -> Iterator[WorkerProcess]:
    """`celery -A config beat` on this test's broker, sending the reapers."""
    log = tmp_path / "beat.log"
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DATABASE_URL": database_url(),
        "CELERY_BROKER_URL": broker_url(),
        "DJANGO_DEBUG": "1",
        **LEASES,
    }
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                *(sys.executable, "-m", "celery", "-A", "config", "beat"),
                *("-l", "INFO", "--schedule", str(tmp_path / "beat-schedule")),
            ],
            cwd=REPO_ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    found = WorkerProcess(process=process, log=log)
    yield found
    found.stop()
    print(f"--- beat.log ---\n{found.log_text()[-LOG_TAIL:]}")


def wait_for(condition: Callable[[], bool], *, what: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"no {what} after {timeout} s"
        time.sleep(0.1)


def test_a_run_whose_jury_worker_is_killed_finishes_by_itself_with_one_vote_each(
    endpoint: str,
    broker: Broker,
    beat: WorkerProcess,
    start_jury_worker: Callable[..., WorkerProcess],
) -> None:
    # given two judges over four responses in chunks of two, a default worker (the
    # reaper's) and beat, a 6 s lease and a reaper every 2 s
    batch = BatchFactory(name="lost-worker")
    for i in range(4):
        DialogueFactory(batch=batch, prompt=f"question {i}", response="an answer")
    judges = [
        Judge.objects.create(
            name=name, backend=Backend.OPENAI, model="slow-keyword", endpoint=endpoint
        )
        for name in ("lost-a", "lost-b")
    ]
    queues = [j.queue_name for j in judges]
    broker.purge([*queues, "default"])
    start_jury_worker(["default"], env=LEASES)
    first = start_jury_worker(queues, env=LEASES)
    run = start_run(batch=batch, judges=judges, scope=Scope.ALL_RESPONSES, chunk_size=2)

    def mid_chunk() -> bool:
        # Votes are in, and a chunk took its judge's lease less than a second ago.
        assert first.alive, first.log_text()[-LOG_TAIL:]
        if not Label.objects.filter(kind=VoteKind.MODEL, run_key=run.key).exists():
            return False
        recent = timezone.now() + timedelta(seconds=LEASE - 1)
        return RunChunk.objects.filter(run=run, lease_expires_at__gt=recent).exists()

    wait_for(mid_chunk, what="a chunk in progress after the first votes", timeout=120)

    # when the jury worker is killed mid-chunk and started again
    first.kill()
    killed_at = time.monotonic()
    [lost] = RunChunk.objects.filter(run=run)
    assert lost.attempts == 1
    assert JuryRun.objects.get(pk=run.pk).status == RunStatus.RUNNING
    second = start_jury_worker(queues, env=LEASES)

    # then the run finishes by itself within a lease and a reaper period (and the
    # new worker's start)
    wait_for(
        lambda: JuryRun.objects.get(pk=run.pk).status == RunStatus.DONE,
        what="finished run",
        timeout=LEASE + REAPER + START,
    )
    assert second.alive
    assert time.monotonic() - killed_at < LEASE + REAPER + START
    # with exactly one vote per judge and dialogue
    votes = Counter(
        Label.objects.filter(kind=VoteKind.MODEL, run_key=run.key).values_list(
            "judge", "dialogue_id"
        )
    )
    dialogues = run.targets.values_list("dialogue_id", flat=True)
    assert votes == Counter({(j.name, d): 1 for j in judges for d in dialogues})
    # and the lost chunk was queued again once, as its judge's second attempt
    assert not RunChunk.objects.filter(run=run).exists()
    state = RunJudgeState.objects.get(run=run, judge_id=lost.judge_id)
    assert state.attempts == 2
    # and the lost message itself still waits unacked for its visibility timeout:
    # the reaper, not the broker, recovered the run
    assert [m.args[:2] for m in broker.unacked(queues)] == [[run.pk, lost.judge_id]]


ROWS = 30_000


def test_an_import_whose_worker_is_killed_mid_read_starts_again_and_writes_once(
    broker: Broker,
    beat: WorkerProcess,
    start_jury_worker: Callable[..., WorkerProcess],
    tmp_path: Path,
    settings: Any,
) -> None:
    # given a file of many rows queued for import on a default worker, with beat
    settings.MEDIA_ROOT = str(tmp_path / "media")
    BatchFactory(name="lost-import")
    path = tmp_path / "many.jsonl"
    path.write_text(
        "".join(
            json.dumps({"id": f"row-{i}", "prompt": f"question {i}?", "response": "ok"})
            + "\n"
            for i in range(ROWS)
        )
    )
    broker.purge(["default"])
    first = start_jury_worker(["default"], env=LEASES)
    job = queue_import_file(
        path=path, kind="dialogues", batch_name="lost-import", fmt="", options={}
    )

    def reading() -> bool:
        assert first.alive, first.log_text()[-LOG_TAIL:]
        found = ImportJob.objects.get(pk=job.pk)
        assert not found.finished, "the import ended before it could be killed"
        return found.rows_read > 0

    wait_for(reading, what="an import reading its rows", timeout=120)

    # when its worker is killed mid-read and started again
    first.kill()
    killed = ImportJob.objects.get(pk=job.pk)
    assert (killed.status, killed.attempts) == ("running", 1)
    assert Dialogue.objects.filter(batch__name="lost-import").count() == 0
    start_jury_worker(["default"], env=LEASES)

    # then the import starts again by itself and writes every row once
    wait_for(
        lambda: ImportJob.objects.get(pk=job.pk).finished,
        what="finished import",
        timeout=LEASE + REAPER + START + 120,
    )
    done = ImportJob.objects.get(pk=job.pk)
    assert (done.status, done.attempts, done.imported) == ("succeeded", 2, ROWS)
    assert Dialogue.objects.filter(batch__name="lost-import").count() == ROWS
