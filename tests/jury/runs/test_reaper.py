"""The jury's leases and reaper without killing anything: a lost worker is a chunk
(or a generation run's targets) whose lease ran out; the judges talk to the scripted
chat-completions server. tests/jury/runs/test_lost_worker_e2e.py kills a real one."""

import io
import json
import os
import socket
from collections import Counter
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone

from annotation import enqueue
from annotation.models import ImportJob, Label
from jury.generation.services import reap_lost_generation
from jury.models import (
    Backend,
    GenerationKind,
    GenerationRun,
    GenerationTarget,
    Judge,
    JudgePhase,
    RunChunk,
    RunJudgeState,
    RunStatus,
    Scope,
)
from jury.runs import services
from jury.runs.services import (
    judge_chunk,
    reap_lost_chunks,
    run_progress,
    run_state,
    start_run,
)
from tests.factories import BatchFactory, DialogueFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> list[tuple[object, ...]]:
    found: list[tuple[object, ...]] = []
    monkeypatch.setattr(
        enqueue,
        "send",
        lambda name, *args, queue=None: found.append((name, *args, queue)),
    )
    return found


@pytest.fixture
def half_judged(endpoint):
    """A run of two judges over four responses in chunks of two: judge a is done,
    judge b voted on its first chunk, then its worker was lost mid-chunk."""
    batch = BatchFactory(name="reaped")
    for i in range(4):
        DialogueFactory(batch=batch, prompt=f"question {i}", response="an answer")
    a, b = (
        Judge.objects.create(
            name=name, backend=Backend.OPENAI, model="keyword", endpoint=endpoint
        )
        for name in ("reap-a", "reap-b")
    )
    run = start_run(
        batch=batch,
        judges=[a, b],
        scope=Scope.ALL_RESPONSES,
        chunk_size=2,
        enqueue=False,
    )
    ids = sorted(run.targets.values_list("dialogue_id", flat=True))
    judge_chunk(run_id=run.pk, judge_id=a.pk, dialogue_ids=ids[:2])
    judge_chunk(run_id=run.pk, judge_id=a.pk, dialogue_ids=ids[2:])
    judge_chunk(run_id=run.pk, judge_id=b.pk, dialogue_ids=ids[:2])
    RunChunk.objects.create(
        run=run,
        judge=b,
        key=RunChunk.key_of(b.pk, ids[2:]),
        dialogue_ids=ids[2:],
        attempts=1,
        lease_holder="jury@gone:4242",
        lease_expires_at=timezone.now() - timedelta(seconds=5),
    )
    return run, a, b, ids


def test_a_chunk_holds_a_lease_while_it_judges_and_drops_it_when_done(
    half_judged, monkeypatch
):
    # given judge b's lost chunk, and a spy on the votes being written
    run, _a, b, ids = half_judged
    seen = []
    record = services.record_model_votes

    def spy(**kwargs):
        seen.extend(RunChunk.objects.filter(run=run).values("attempts", "lease_holder"))
        return record(**kwargs)

    monkeypatch.setattr(services, "record_model_votes", spy)

    # when the chunk runs here (a re-queued copy)
    assert judge_chunk(run_id=run.pk, judge_id=b.pk, dialogue_ids=ids[2:]) == 2

    # then while it judged it held the chunk's lease (the same row: its attempt)
    assert seen == [
        {"attempts": 1, "lease_holder": f"{socket.gethostname()}:{os.getpid()}"}
    ]
    # and the row is gone once it is done
    assert not RunChunk.objects.exists()


def test_a_lost_judge_gets_only_its_missing_chunk_again_and_one_vote_each(
    half_judged, sent, django_capture_on_commit_callbacks
):
    # given judge b's worker lost mid-chunk (its lease ran out)
    run, a, b, ids = half_judged

    # when the reaper runs
    with django_capture_on_commit_callbacks(execute=True):
        assert reap_lost_chunks() == 1

    # then b's lost chunk is queued again on b's queue, as its second attempt
    assert sent == [("jury.judge_chunk", run.pk, b.pk, ids[2:], b.queue_name)]
    chunk = RunChunk.objects.get()
    assert (chunk.attempts, chunk.lease_expires_at) == (2, None)
    assert RunJudgeState.objects.get(run=run, judge=b).attempts == 2
    # and the run page says so
    page = run_state(run, run_progress(run))
    [line] = [j for j in page.judges if j.name == "reap-b"]
    assert line.text.endswith(" · re-queued after a worker was lost (attempt 2 of 3)")
    assert "reap-b re-queued after a worker was lost (attempt 2 of 3)" in page.detail
    # and a second pass queues nothing more
    assert reap_lost_chunks() == 0

    # when the queued chunk runs, and later the broker redelivers the lost one
    assert judge_chunk(run_id=run.pk, judge_id=b.pk, dialogue_ids=ids[2:]) == 2
    assert judge_chunk(run_id=run.pk, judge_id=b.pk, dialogue_ids=ids[2:]) == 0

    # then the run is done with exactly one vote per judge and dialogue
    run.refresh_from_db()
    assert run.status == RunStatus.DONE
    votes = Counter(
        Label.objects.filter(run_key=run.key).values_list("judge", "dialogue_id")
    )
    assert votes == Counter({(j.name, d): 1 for j in (a, b) for d in ids})


def test_a_judge_lost_on_its_last_attempt_fails_the_run_with_the_reason(
    half_judged, sent
):
    # given judge b's worker lost on its third attempt
    run, _a, b, _ids = half_judged
    RunChunk.objects.update(attempts=3)

    # when the reaper runs
    assert reap_lost_chunks() == 1

    # then the run failed, naming the judge and the lost worker; nothing was queued
    assert sent == []
    run.refresh_from_db()
    assert run.status == RunStatus.FAILED
    assert run.error == (
        "reap-b: The worker (jury@gone:4242) was lost (killed or stopped) during "
        "attempt 3 of 3; not queued again. Start it again once the workers are "
        "healthy."
    )
    assert RunJudgeState.objects.get(run=run, judge=b).phase == JudgePhase.FAILED
    assert not RunChunk.objects.exists()


def test_a_live_lease_or_a_finished_run_is_left_alone(half_judged, sent):
    run, _a, _b, _ids = half_judged
    RunChunk.objects.update(lease_expires_at=timezone.now() + timedelta(seconds=30))
    assert reap_lost_chunks() == 0
    RunChunk.objects.update(lease_expires_at=timezone.now() - timedelta(seconds=5))
    run.set_status(RunStatus.CANCELLED)
    assert reap_lost_chunks() == 0
    assert sent == []


def test_a_generation_chunk_whose_worker_was_lost_is_queued_again_then_failed(
    endpoint, sent, django_capture_on_commit_callbacks
):
    # given a running generation run whose chunk of two targets lost its worker
    batch = BatchFactory(name="generated")
    generator = Judge.objects.create(
        name="gen", backend=Backend.OPENAI, model="keyword", endpoint=endpoint
    )
    run = GenerationRun.objects.create(
        batch=batch,
        generator=generator,
        kind=GenerationKind.RESPONSES,
        prompt_version="v1",
    )
    lost = timezone.now() - timedelta(seconds=5)
    targets = [
        GenerationTarget.objects.create(
            run=run,
            dialogue=DialogueFactory(batch=batch, response=None),
            prompt_hash=f"h{i}",
            attempts=1,
            lease_holder="jury@gone:1",
            lease_expires_at=lost,
        )
        for i in range(2)
    ]
    ids = [t.pk for t in targets]

    # when the reaper runs: the chunk is queued again on the generator's queue
    with django_capture_on_commit_callbacks(execute=True):
        assert reap_lost_generation() == 1
    assert sent == [("jury.generate_chunk", run.pk, ids, generator.queue_name)]
    assert list(
        GenerationTarget.objects.order_by("pk").values_list(
            "attempts", "lease_expires_at"
        )
    ) == [(2, None), (2, None)]

    # when it is lost again on its last attempt
    GenerationTarget.objects.update(attempts=3, lease_expires_at=lost)
    assert reap_lost_generation() == 1

    # then the run failed with the reason, and nothing more was queued
    run.refresh_from_db()
    assert run.status == RunStatus.FAILED
    assert run.error_text.startswith("The worker (jury@gone:1) was lost")
    assert len(sent) == 1


def test_jobs_command_lists_every_kind_with_its_lease(half_judged):
    # given a run with a lost judge, and an import
    run, _a, b, _ids = half_judged
    RunJudgeState.objects.filter(run=run, judge=b).update(attempts=2)
    job = ImportJob.objects.create(
        batch_name="x", file_path="/nonexistent", original_name="x.jsonl"
    )

    # when the jobs are listed as JSON
    out = io.StringIO()
    call_command("jobs", "--json", stdout=out)
    rows = json.loads(out.getvalue())

    # then each kind is there with its progress and lease
    by_kind = {row["kind"]: row for row in rows}
    assert set(by_kind) == {"import", "jury_run"}
    assert by_kind["import"] | {"created_at": None} == {
        "kind": "import",
        "id": job.pk,
        "status": "pending",
        "phase": "",
        "done": 0,
        "total": 0,
        "attempts": 0,
        "lease_expires_at": None,
        "lease_holder": "",
        "error": "",
        "created_at": None,
        "finished_at": None,
    }
    jury = by_kind["jury_run"]
    assert (jury["id"], jury["status"], jury["done"], jury["total"]) == (
        run.pk,
        "running",
        6,
        8,
    )
    assert jury["attempts"] == 2
    assert jury["lease_holder"] == "jury@gone:4242"
    assert jury["lease_expires_at"] is not None

    # and the table says the same in words
    out = io.StringIO()
    call_command("jobs", stdout=out)
    lines = out.getvalue().splitlines()
    assert lines[0].split() == [
        "kind",
        "id",
        "status",
        "phase",
        "done",
        "total",
        "attempts",
        "lease",
    ]
    assert lines[1].split()[:7] == [
        "import",
        str(job.pk),
        "pending",
        "-",
        "0",
        "0",
        "0",
    ]
    assert lines[2].split()[:7] == [
        "jury_run",
        str(run.pk),
        "running",
        "-",
        "6",
        "8",
        "2",
    ]
