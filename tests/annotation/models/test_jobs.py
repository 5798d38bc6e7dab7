"""The job lifecycle (annotation.models.jobs.Job) is the same for imports, exports,
jury runs and generation runs: moves only as its map allows, a finished time that
goes with the status, and the same view of its progress."""

from collections.abc import Callable
from datetime import timedelta

import pytest
from django.utils import timezone

from annotation.models import (
    ExportSnapshot,
    ImportJob,
    Job,
    JobRefused,
    JobStatus,
    Label,
    VoteKind,
)
from jury.models import (
    GenerationKind,
    GenerationRun,
    GenerationTarget,
    Judge,
    JuryRun,
    RunDialogue,
    RunStatus,
    Scope,
    TargetStatus,
)
from tests.factories import BatchFactory, DialogueFactory

pytestmark = pytest.mark.django_db


def import_job(**fields: object) -> ImportJob:
    return ImportJob.objects.create(
        batch_name="b", file_path="/nowhere/x.csv", original_name="x.csv", **fields
    )


def export_snapshot(**fields: object) -> ExportSnapshot:
    return ExportSnapshot.objects.create(batch_names=["b"], **fields)


def judge(name: str = "a-judge") -> Judge:
    return Judge.objects.create(name=name, backend="openai", model="m")


def jury_run(**fields: object) -> JuryRun:
    return JuryRun.objects.create(
        batch=BatchFactory(), scope=Scope.ALL_RESPONSES, **fields
    )


def generation_run(**fields: object) -> GenerationRun:
    return GenerationRun.objects.create(
        batch=BatchFactory(),
        generator=judge("a-generator"),
        kind=GenerationKind.REFUSALS,
        prompt_version="v1",
        **fields,
    )


# Each kind: how to make one, a status it starts in, one it may go to and finish
# at, and one it may never reach from there.
KINDS: dict[str, tuple[Callable[..., Job], str, str, str]] = {
    "import": (import_job, JobStatus.RUNNING, JobStatus.SUCCEEDED, JobStatus.PENDING),
    "export": (export_snapshot, JobStatus.RUNNING, JobStatus.FAILED, JobStatus.PENDING),
    "jury run": (jury_run, RunStatus.RUNNING, RunStatus.DONE, RunStatus.RUNNING),
    "generation run": (
        generation_run,
        RunStatus.RUNNING,
        RunStatus.DONE,
        RunStatus.CANCELLED,
    ),
}


@pytest.mark.parametrize("kind", KINDS)
def test_a_move_the_map_allows_writes_the_status_and_the_finished_time(kind: str):
    make, start, finish, _ = KINDS[kind]
    job = make(status=start)
    assert (job.finished, job.finished_at) == (False, None)

    job.set_status(finish)

    job.refresh_from_db()
    assert job.status == finish
    assert job.finished
    assert job.finished_at is not None
    assert timezone.now() - job.finished_at < timedelta(minutes=1)


@pytest.mark.parametrize("kind", KINDS)
def test_a_move_the_map_does_not_allow_is_refused_with_a_conflict(kind: str):
    # given a finished job
    make, start, finish, never = KINDS[kind]
    job = make(status=start)
    job.set_status(finish)
    finished_at = job.finished_at

    # when it is asked to move where its map does not go from there
    with pytest.raises(JobRefused) as refused:
        job.set_status(never)

    # then it is refused as a conflict, and nothing changed, in memory or stored
    assert (refused.value.status, refused.value.code) == (409, "job_status_refused")
    assert refused.value.body()["code"] == "job_status_refused"
    assert f"is {finish}; it can go to nothing, not {never}" in str(refused.value)
    assert (refused.value.current, refused.value.requested) == (finish, never)
    assert (job.status, job.finished_at) == (finish, finished_at)
    job.refresh_from_db()
    assert (job.status, job.finished_at) == (finish, finished_at)


def test_move_status_moves_only_a_row_that_is_where_the_map_allows():
    # given a jury run that a worker failed
    run = jury_run()
    assert JuryRun.move_status(run.pk, RunStatus.FAILED, error="boom") is True
    run.refresh_from_db()
    assert (run.status, run.error) == ("failed", "boom")
    assert run.finished_at is not None

    # when another worker tries to finish it, nothing is written
    assert JuryRun.move_status(run.pk, RunStatus.DONE) is False
    run.refresh_from_db()
    assert run.status == "failed"

    # and resuming it clears the finished time (a running run has none)
    assert JuryRun.move_status(run.pk, RunStatus.RUNNING, error="") is True
    run.refresh_from_db()
    assert (run.status, run.error, run.finished_at) == ("running", "", None)


def test_a_cancelled_run_is_stopped_not_finished():
    run = generation_run()

    run.set_status(RunStatus.CANCELLED)

    run.refresh_from_db()
    assert (run.status, run.finished, run.finished_at) == ("cancelled", False, None)


def test_an_imports_progress_is_its_rows_and_full_only_once_it_succeeded():
    job = import_job(status=JobStatus.RUNNING, rows_read=5, rows_total=10)
    unknown = import_job(status=JobStatus.RUNNING, rows_read=7)
    read_all = import_job(status=JobStatus.RUNNING, rows_read=10, rows_total=10)

    assert (job.done, job.total, job.percent) == (5, 10, 50)
    assert (unknown.done, unknown.total, unknown.percent) == (7, 0, 0)
    assert read_all.percent == 99
    read_all.set_status(JobStatus.SUCCEEDED)
    assert read_all.percent == 100


def test_an_exports_progress_is_its_steps():
    snapshot = export_snapshot(status=JobStatus.RUNNING, steps_done=1, steps_total=3)

    assert (snapshot.done, snapshot.total, snapshot.percent) == (1, 3, 33)


def test_a_jury_runs_progress_is_its_votes_of_dialogues_times_judges():
    # given a run of two judges over three dialogues, with three votes in
    run = jury_run()
    run.judges.set([judge("a-judge"), judge("b-judge")])
    dialogues = DialogueFactory.create_batch(3, batch=run.batch)
    RunDialogue.objects.bulk_create(RunDialogue(run=run, dialogue=d) for d in dialogues)
    Label.objects.bulk_create(
        Label(
            dialogue=d,
            kind=VoteKind.MODEL,
            judge="a-judge",
            run_key=run.key,
            label="safe",
        )
        for d in dialogues
    )

    # then it is half way, counted once when asked
    assert (run.done, run.total, run.percent) == (3, 6, 50)
    assert run.counts == (3, 6)


def test_a_generation_runs_progress_is_its_finished_targets():
    run = generation_run()
    dialogues = DialogueFactory.create_batch(4, batch=run.batch)
    GenerationTarget.objects.bulk_create(
        GenerationTarget(
            run=run,
            dialogue=d,
            prompt_hash=f"h{i}",
            status=TargetStatus.WRITTEN if i == 0 else TargetStatus.PENDING,
        )
        for i, d in enumerate(dialogues)
    )

    assert (run.done, run.total, run.percent) == (1, 4, 25)


def test_a_run_with_every_vote_in_is_full_before_it_is_marked_done():
    run = jury_run()
    run.counts = (6, 6)

    assert (run.status, run.percent) == ("running", 100)


def test_started_is_when_the_work_started_or_else_when_it_was_asked_for():
    waiting = import_job()
    started_at = timezone.now() - timedelta(minutes=5)
    running = export_snapshot(status=JobStatus.RUNNING, started_at=started_at)
    run = jury_run()

    assert waiting.started == waiting.created_at
    assert running.started == started_at
    assert run.started == run.created_at


def test_error_text_says_why_a_job_failed():
    bad_file = import_job(
        status=JobStatus.FAILED,
        errors=[{"line": None, "message": "Not a CSV file."}],
        error_count=1,
    )
    bad_rows = import_job(
        status=JobStatus.FAILED,
        errors=[{"line": 2, "message": "no prompt"}, {"line": 3, "message": "x"}],
        error_count=2,
    )
    skipped = import_job(
        status=JobStatus.SUCCEEDED, errors=[{"line": 2, "message": "x"}], error_count=1
    )
    export = export_snapshot(status=JobStatus.FAILED, error="no final labels")
    run = jury_run(status=RunStatus.FAILED, error="a-judge: timeout")

    assert bad_file.error_text == "Not a CSV file."
    assert bad_rows.error_text == "2 rows have errors; nothing was written."
    assert skipped.error_text == ""
    assert export.error_text == "no final labels"
    assert run.error_text == "a-judge: timeout"
    assert generation_run().error_text == ""


def test_a_run_has_no_stored_phase_and_an_import_has_its_own():
    assert jury_run().phase == generation_run().phase == ""
    assert import_job(phase="reading").phase == "reading"
