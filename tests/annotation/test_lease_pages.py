"""What the import, export and generation pages say about a lease (one wording, in
annotation.models.jobs, shown by templates/_job_progress.html): "re-queued after a
worker was lost (attempt 2 of 3)" while a re-queued job waits or runs, and the
reaper's error once its workers were lost too often. Each job is made lost by a
real reaper pass over a lease that ran out; nothing is killed here."""

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from annotation import enqueue
from annotation.leases import reap_lost_jobs
from annotation.models import ExportSnapshot, ImportJob, JobStatus
from jury.generation.services import reap_lost_generation
from jury.models import (
    Backend,
    GenerationRun,
    GenerationTarget,
    Judge,
    RunStatus,
    TargetStatus,
)
from tests.factories import BatchFactory, DialogueFactory

REQUEUED = "re-queued after a worker was lost (attempt 2 of 3)"
LOST = (
    "The worker (default@gone:4242) was lost (killed or stopped) during attempt "
    "3 of 3; not queued again. Start it again once the workers are healthy."
)
HX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> list[tuple[object, ...]]:
    """The tasks the reaper sends (by name), instead of a broker."""
    found: list[tuple[object, ...]] = []
    monkeypatch.setattr(
        enqueue, "send", lambda name, *args, queue=None: found.append((name, *args))
    )
    return found


def expired() -> dict[str, object]:
    return {
        "status": JobStatus.RUNNING,
        "lease_holder": "default@gone:4242",
        "lease_expires_at": timezone.now() - timedelta(seconds=5),
    }


def lost_import(tmp_path: Path, *, attempts: int) -> ImportJob:
    path = tmp_path / "rows.jsonl"
    path.write_text('{"id": "a", "prompt": "p"}\n')
    return ImportJob.objects.create(
        batch_name="leased",
        file_path=str(path),
        original_name="rows.jsonl",
        options={"create_batch": True},
        phase="checking",
        started_at=timezone.now(),
        attempts=attempts,
        **expired(),
    )


def lost_export(*, attempts: int) -> ExportSnapshot:
    return ExportSnapshot.objects.create(
        batch_names=["demo"],
        ratios=[0.8, 0.1, 0.1],
        steps_total=6,
        steps_done=2,
        attempts=attempts,
        **expired(),
    )


def fragment(client: Client, url: str, target: str) -> str:
    response = client.get(url, **HX, HTTP_HX_TARGET=target)
    assert response.status_code == 200
    return response.content.decode()


# --- imports ---------------------------------------------------------------------


@pytest.mark.django_db
def test_a_requeued_import_says_so_while_it_waits_and_runs_and_not_once_done(
    lead_client: Client, tmp_path: Path, sent: list[tuple[object, ...]]
) -> None:
    # given an import whose worker was lost on its first attempt, queued again
    job = lost_import(tmp_path, attempts=1)
    reap_lost_jobs()
    url = reverse("annotation:import_detail", args=[job.pk])

    # when a lead's page polls it
    html = fragment(lead_client, url, "import-progress")

    # then it says it was re-queued, and still polls
    assert f"data-requeued>{REQUEUED}</span>" in html
    assert 'hx-trigger="every 1s"' in html
    assert "data-worker-lost" not in html

    # and once the second attempt succeeded the lease is history: not shown
    ImportJob.objects.filter(pk=job.pk).update(
        status=JobStatus.SUCCEEDED, lease_expires_at=None
    )
    assert REQUEUED not in fragment(lead_client, url, "import-progress")


@pytest.mark.django_db
def test_an_import_lost_too_often_shows_the_reapers_error_not_a_file_problem(
    lead_client: Client, tmp_path: Path, sent: list[tuple[object, ...]]
) -> None:
    # given an import whose worker was lost on its last attempt
    job = lost_import(tmp_path, attempts=3)
    reap_lost_jobs()

    # when a lead opens its page
    html = lead_client.get(reverse("annotation:import_detail", args=[job.pk]))
    text = html.content.decode()

    # then it failed with the reaper's words, not as a file to fix
    assert html.status_code == 200
    assert f'<p class="error-text" data-worker-lost>{LOST}</p>' in text
    assert "Nothing was written." in text
    assert "The file could not be imported" not in text
    assert "Fix the file" not in text
    assert REQUEUED not in text
    assert "hx-trigger" not in text
    assert sent == []


@pytest.mark.django_db
def test_a_file_problem_is_not_read_as_a_lost_worker(
    lead_client: Client, tmp_path: Path
) -> None:
    # given an import that failed on its file
    job = lost_import(tmp_path, attempts=1)
    error = {"file": "rows.jsonl", "line": None, "field": "", "message": "not JSON"}
    ImportJob.objects.filter(pk=job.pk).update(
        status=JobStatus.FAILED, errors=[error], error_count=1
    )

    # when a lead opens its page
    text = lead_client.get(reverse("annotation:import_detail", args=[job.pk]))

    # then it is a file to fix
    assert "The file could not be imported" in text.content.decode()
    assert "data-worker-lost" not in text.content.decode()


# --- exports ---------------------------------------------------------------------


@pytest.mark.django_db
def test_a_requeued_export_says_so_and_its_last_loss_says_why(
    lead_client: Client,
    sent: list[tuple[object, ...]],
    django_capture_on_commit_callbacks: Callable[..., Any],
) -> None:
    # given an export lost on its first attempt and one lost on its last
    again, lost = lost_export(attempts=1), lost_export(attempts=3)

    # when the reaper runs and a lead polls both pages
    with django_capture_on_commit_callbacks(execute=True):
        reaped = reap_lost_jobs()
    with CaptureQueriesContext(connection) as queries:
        again_html = fragment(lead_client, f"/exports/{again.pk}/", "export-progress")
    queried = len(queries)  # now: the next request clears the query log
    lost_html = fragment(lead_client, f"/exports/{lost.pk}/", "export-progress")

    # then the first is re-queued and says so; the second failed, saying why
    assert (reaped.requeued, reaped.failed) == (1, 1)
    assert sent == [("annotation.run_export", again.pk)]
    assert f"data-requeued>{REQUEUED}</span>" in again_html
    assert 'hx-trigger="every 1s"' in again_html
    assert f'<p class="error-text" data-worker-lost>{LOST}</p>' in lost_html
    assert "The export failed; nothing was written." in lost_html
    assert "data-requeued" not in lost_html
    # the lease costs the polled fragment no query (session, user, the snapshot)
    assert queried == 3


# --- generation runs -------------------------------------------------------------


def generation_run(*, attempts: int) -> GenerationRun:
    batch = BatchFactory()
    generator = Judge.objects.create(
        name="gen", backend=Backend.OPENAI, model="m", endpoint="http://127.0.0.1:9"
    )
    run = GenerationRun.objects.create(
        batch=batch, generator=generator, kind="responses", prompt_version="v1"
    )
    for i in range(2):
        GenerationTarget.objects.create(
            run=run,
            dialogue=DialogueFactory(batch=batch),
            prompt_hash=f"h{i}",
            attempts=attempts,
            lease_holder="default@gone:4242",
            lease_expires_at=timezone.now() - timedelta(seconds=5),
        )
    return run


@pytest.mark.django_db
def test_a_generation_run_with_a_requeued_chunk_says_so(
    lead_client: Client,
    sent: list[tuple[object, ...]],
    django_capture_on_commit_callbacks: Callable[..., Any],
) -> None:
    # given a generation run whose chunk's worker was lost, queued again
    run = generation_run(attempts=1)
    with django_capture_on_commit_callbacks(execute=True):
        reap_lost_generation()
    url = reverse("jury:generation_detail", args=[run.pk])

    # when a lead's page polls it
    html = fragment(lead_client, url, "generation-progress")

    # then it says so while the chunk is pending
    assert [name for name, *_ in sent] == ["jury.generate_chunk"]
    assert f"data-requeued>{REQUEUED}</span>" in html
    assert 'hx-trigger="every 2s"' in html

    # and not once every target is written
    GenerationTarget.objects.filter(run=run).update(status=TargetStatus.WRITTEN)
    assert REQUEUED not in fragment(lead_client, url, "generation-progress")


@pytest.mark.django_db
def test_a_generation_run_lost_too_often_shows_the_reapers_error(
    lead_client: Client, sent: list[tuple[object, ...]]
) -> None:
    # given a generation run whose chunk's worker was lost on its last attempt
    run = generation_run(attempts=3)
    reap_lost_generation()

    # when a lead opens its page
    text = lead_client.get(reverse("jury:generation_detail", args=[run.pk]))
    html = text.content.decode()

    # then the run failed, saying why, and nothing was queued
    run.refresh_from_db()
    assert run.status == RunStatus.FAILED
    assert sent == []
    assert f'<p class="error-text" data-worker-lost>{LOST}</p>' in html
    assert "data-requeued" not in html
