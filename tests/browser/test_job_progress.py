"""One progress panel for every job (templates/_job_progress.html): the import,
export, jury run and generation pages show a job's status, phase, bar and error
the same way, in each state a lead meets them. Each panel is saved as a picture
(tests/artifacts/job-*.png) to look at."""

import pytest
from django.utils import timezone

from annotation.facade import ModelVoteIn, record_model_votes
from annotation.models import ExportSnapshot, ImportJob, JobStatus
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
from tests.browser.conftest import ARTIFACTS, log_in
from tests.factories import BatchFactory, DialogueFactory, LeadFactory

pytestmark = pytest.mark.browser


def panel(page, live_server, path: str, selector: str, name: str) -> dict[str, str]:
    """Open the page, save its progress panel as a picture, and read it: the
    badge's status and words, the bar's class and value."""
    page.goto(f"{live_server.url}{path}")
    section = page.locator(selector)
    ARTIFACTS.mkdir(exist_ok=True)
    section.screenshot(path=str(ARTIFACTS / f"job-{name}.png"))
    badge = section.locator("[data-status]").first
    bars = section.get_by_role("progressbar")
    bar = bars.first if bars.count() else None
    return {
        "status": badge.get_attribute("data-status") or "",
        "badge": badge.inner_text(),
        "bar": " ".join((bar.get_attribute("class") or "").split())
        if bar
        else "no bar",
        "value": (bar.get_attribute("aria-valuenow") or "none") if bar else "",
        "text": " ".join(section.inner_text().split()),
    }


def import_job(batch: str, **fields: object) -> ImportJob:
    return ImportJob.objects.create(
        batch_name=batch,
        file_path="/nonexistent",
        original_name="samples.jsonl",
        **fields,
    )


def test_the_import_and_export_pages_show_a_job_the_same_way(page, live_server):
    # given imports and exports waiting, running, done and failed
    LeadFactory(username="lena")
    BatchFactory(name="moderation")
    now = timezone.now()
    imports = {
        "waiting": import_job("moderation"),
        "counting": import_job("moderation", status="running", phase="counting"),
        "reading": import_job(
            "moderation",
            status="running",
            phase="reading",
            rows_total=1680,
            rows_read=840,
            started_at=now,
        ),
        "failed": import_job(
            "moderation",
            status="failed",
            errors=[{"line": None, "message": "Not JSON Lines: line 1 is `{`."}],
            error_count=1,
            finished_at=now,
        ),
    }
    exports = {
        "waiting": ExportSnapshot.objects.create(batch_names=["moderation"]),
        "writing": ExportSnapshot.objects.create(
            batch_names=["moderation"],
            status=JobStatus.RUNNING,
            phase="writing parquet",
            steps_done=3,
            steps_total=8,
            started_at=now,
        ),
        "failed": ExportSnapshot.objects.create(
            batch_names=["moderation"],
            status=JobStatus.FAILED,
            phase="reading final labels",
            error="no final labels: derive the batch first",
            finished_at=now,
        ),
    }
    log_in(page, live_server, "lena")

    # when the lead opens each, then each panel says where the job is
    seen = {
        f"import-{state}": panel(
            page,
            live_server,
            f"/imports/{job.pk}/",
            "#import-progress",
            f"import-{state}",
        )
        for state, job in imports.items()
    } | {
        f"export-{state}": panel(
            page,
            live_server,
            f"/exports/{snapshot.pk}/",
            "#export-progress",
            f"export-{state}",
        )
        for state, snapshot in exports.items()
    }
    assert {k: (v["status"], v["badge"]) for k, v in seen.items()} == {
        "import-waiting": ("pending", "Waiting for a worker"),
        "import-counting": ("running", "Running"),
        "import-reading": ("running", "Running"),
        "import-failed": ("failed", "Failed"),
        "export-waiting": ("pending", "Waiting for a worker"),
        "export-writing": ("running", "Running"),
        "export-failed": ("failed", "Failed"),
    }
    # the bar, one width everywhere: empty while waiting, moving while nothing is
    # counted yet, how far once it is, red when it failed (a failed import says why
    # instead)
    assert {k: (v["bar"], v["value"]) for k, v in seen.items()} == {
        "import-waiting": ("progress wide", "0"),
        "import-counting": ("progress wide indeterminate", "none"),
        "import-reading": ("progress wide", "50"),
        "import-failed": ("no bar", ""),
        "export-waiting": ("progress wide", "0"),
        "export-writing": ("progress wide", "37"),
        "export-failed": ("progress wide failed", "0"),
    }
    assert "counting…" in seen["import-counting"]["text"]
    assert "reading… into batch moderation" in seen["import-reading"]["text"]
    assert "Not JSON Lines: line 1 is {." in seen["import-failed"]["text"]
    assert "writing parquet… " in seen["export-writing"]["text"]
    assert "Step 3 of 8" in seen["export-writing"]["text"]
    assert "reading final labels" not in seen["export-failed"]["text"]
    assert "no final labels: derive the batch first" in seen["export-failed"]["text"]


def test_the_jury_and_generation_pages_show_a_run_the_same_way(page, live_server):
    # given a jury run two judges are half-way through, one that failed, and a
    # generation run that is running and one that was cancelled
    LeadFactory(username="lena")
    batch = BatchFactory(name="round-9")
    dialogues = DialogueFactory.create_batch(4, batch=batch)
    judges = [
        Judge.objects.create(name=n, backend="openai", model="m", endpoint="http://x")
        for n in ("a-judge", "b-judge")
    ]
    runs = {}
    for state in ("running", "failed"):
        run = JuryRun.objects.create(batch=batch, scope=Scope.ALL_RESPONSES)
        run.judges.set(judges)
        RunDialogue.objects.bulk_create(
            RunDialogue(run=run, dialogue=d) for d in dialogues
        )
        runs[state] = run
    for run in runs.values():
        record_model_votes(
            run_key=run.key,
            votes=[ModelVoteIn(d.pk, "a-judge", True, "safe") for d in dialogues],
        )
    JuryRun.objects.filter(pk=runs["failed"].pk).update(
        status=RunStatus.FAILED,
        error="b-judge: BackendError: connection refused",
        finished_at=timezone.now(),
    )
    generations = {}
    for state in ("running", "cancelled"):
        run = GenerationRun.objects.create(
            batch=batch,
            generator=judges[0],
            kind=GenerationKind.REFUSALS,
            prompt_version="v1",
            status=state,
        )
        GenerationTarget.objects.bulk_create(
            GenerationTarget(
                run=run,
                dialogue=d,
                prompt_hash=f"h{i}",
                status=TargetStatus.WRITTEN if i == 0 else TargetStatus.PENDING,
            )
            for i, d in enumerate(dialogues)
        )
        generations[state] = run
    log_in(page, live_server, "lena", lands_on=None)

    # when the lead opens each
    seen = {
        f"run-{state}": panel(
            page, live_server, f"/jury/runs/{run.pk}/", "#run-progress", f"run-{state}"
        )
        for state, run in runs.items()
    } | {
        f"generation-{state}": panel(
            page,
            live_server,
            f"/jury/generation/{run.pk}/",
            "#generation-progress",
            f"generation-{state}",
        )
        for state, run in generations.items()
    }

    # then each says its status, and its bar how many votes or texts are in
    assert {k: (v["status"], v["badge"]) for k, v in seen.items()} == {
        "run-running": ("running", "Running"),
        "run-failed": ("failed", "Failed"),
        "generation-running": ("running", "Running"),
        "generation-cancelled": ("cancelled", "Cancelled"),
    }
    assert {k: (v["bar"], v["value"]) for k, v in seen.items()} == {
        "run-running": ("progress wide", "50"),
        "run-failed": ("progress wide failed", "50"),
        "generation-running": ("progress wide", "25"),
        "generation-cancelled": ("progress wide", "25"),
    }
    assert "4 of 8 votes" in seen["run-running"]["text"]
    assert "b-judge: BackendError: connection refused" in seen["run-failed"]["text"]
    assert "1 / 4 finished" in seen["generation-running"]["text"]


def test_a_requeued_import_says_so_on_its_page_and_a_lost_one_says_why(
    page, live_server
):
    # given an import a reaper queued again after its worker was lost (a second
    # worker reads it now), and one lost on its last attempt
    from annotation.models.jobs import lost_text

    LeadFactory(username="lena")
    BatchFactory(name="moderation")
    requeued = import_job(
        "moderation",
        status="running",
        phase="reading",
        rows_total=30000,
        rows_read=12000,
        started_at=timezone.now(),
        attempts=2,
    )
    lost = import_job(
        "moderation",
        status="failed",
        attempts=3,
        errors=[{"line": None, "message": lost_text("default@gone:4242", 3)}],
        error_count=1,
        finished_at=timezone.now(),
    )
    log_in(page, live_server, "lena")

    # when the lead opens each
    again = panel(
        page, live_server, f"/imports/{requeued.pk}/", "#import-progress", "requeued"
    )
    gone = panel(
        page, live_server, f"/imports/{lost.pk}/", "#import-progress", "lost-worker"
    )

    # then the first says it was re-queued, next to its phase, and keeps its bar
    assert again["text"].startswith(
        "Running reading… re-queued after a worker was lost (attempt 2 of 3) · "
        "into batch moderation"
    )
    assert (again["bar"], again["value"]) == ("progress wide", "40")
    # and the second failed for the reaper's reason, not as a file to fix
    assert (
        "Nothing was written. The worker (default@gone:4242) was lost" in (gone["text"])
    )
    assert "Fix the file" not in gone["text"]
