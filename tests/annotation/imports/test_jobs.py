"""Uploads run as Celery tasks on a real worker; the page and the API show progress."""

import json
import time
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from annotation.imports.jobs import run_import_job
from annotation.models import Batch, Dialogue, ImportJob, JobStatus
from tests.conftest import login
from tests.factories import BatchFactory, LeadFactory


def wait_for(job_id: int, timeout: float = 60) -> ImportJob:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = ImportJob.objects.get(pk=job_id)
        if job.finished:
            return job
        time.sleep(0.2)
    raise AssertionError(f"import {job_id} did not finish in {timeout}s: {job.status}")


def jsonl(rows: list[dict]) -> bytes:
    return "".join(json.dumps(r) + "\n" for r in rows).encode()


def test_upload_page_imports_in_the_worker_and_shows_the_result(
    client, celery_worker, data_dir: Path
):
    # given a lead on the upload page
    lead = LeadFactory(username="lena")
    login(client, lead)
    content = (
        data_dir / "simple-safety-tests" / "simple_safety_tests.csv"
    ).read_bytes()

    # when they upload SimpleSafetyTests into a new batch
    response = client.post(
        "/imports/new/",
        {
            "file": SimpleUploadedFile("sst.csv", content, content_type="text/csv"),
            "kind": "dialogues",
            "batch": "sst",
            "create_batch": "on",
            "transcript": "chosen",
        },
    )

    # then they are sent to the import's page, and the worker imports the file
    job = ImportJob.objects.get()
    assert response.status_code == 302
    assert response["Location"] == f"/imports/{job.pk}/"
    job = wait_for(job.pk)
    assert job.status == JobStatus.SUCCEEDED
    assert (job.imported, job.skipped_duplicates, job.error_count) == (100, 0, 0)
    assert job.format == "simple-safety-tests"
    assert job.created_by == lead
    assert Dialogue.objects.filter(batch__name="sst").count() == 100
    page = client.get(f"/imports/{job.pk}/").content.decode()
    assert 'data-status="succeeded"' in page
    assert 'aria-valuenow="100"' in page
    # and the uploaded copy is removed once imported
    assert not Path(job.file_path).exists()


# htmx polling the progress fragment: hx-target="#import-progress"
HX_PROGRESS = {"HTTP_HX_REQUEST": "true", "HTTP_HX_TARGET": "import-progress"}


def test_progress_partial_polls_until_the_job_is_finished(lead_client):
    # given a queued import that no worker has taken yet
    job = ImportJob.objects.create(
        batch_name="x", file_path="/nonexistent", original_name="x.jsonl", rows_total=10
    )

    # when htmx asks for the progress fragment
    fragment = lead_client.get(f"/imports/{job.pk}/", **HX_PROGRESS)

    # then only the fragment comes back, and it keeps polling
    html = fragment.content.decode()
    assert html.lstrip().startswith('<section id="import-progress"')
    assert 'hx-trigger="every 1s"' in html
    assert "<html" not in html
    # and once the job is finished it stops polling
    ImportJob.objects.filter(pk=job.pk).update(status=JobStatus.SUCCEEDED)
    done = lead_client.get(f"/imports/{job.pk}/", **HX_PROGRESS).content.decode()
    assert "hx-trigger" not in done


def test_bad_upload_fails_with_line_and_field_and_writes_nothing(client, celery_worker):
    # given an existing batch and a file whose third line has no prompt
    lead = LeadFactory(username="lena")
    login(client, lead)
    batch = BatchFactory(name="target")
    rows = [{"id": "a", "prompt": "hello"}, {"id": "b", "prompt": "hi"}, {"id": "c"}]

    # when it is uploaded
    client.post(
        "/imports/new/",
        {
            "file": SimpleUploadedFile("bad.jsonl", jsonl(rows)),
            "kind": "dialogues",
            "batch": "target",
            "transcript": "chosen",
        },
    )

    # then the job fails with an error naming the line and the field
    job = wait_for(ImportJob.objects.get().pk)
    assert job.status == JobStatus.FAILED
    assert job.error_count == 1
    assert (job.errors[0]["line"], job.errors[0]["field"]) == (3, "prompt")
    assert Dialogue.objects.filter(batch=batch).count() == 0
    page = client.get(f"/imports/{job.pk}/").content.decode()
    assert "1 row has an error; nothing was written." in page
    assert "bad.jsonl" in page


def test_form_errors_rerender_the_fragment_without_starting_a_job(lead_client):
    # when a lead uploads into a batch that does not exist, without creating it
    response = lead_client.post(
        "/imports/new/",
        {
            "file": SimpleUploadedFile("a.jsonl", jsonl([{"prompt": "x"}])),
            "kind": "dialogues",
            "batch": "nope",
            "transcript": "chosen",
        },
        HTTP_HX_REQUEST="true",
    )

    # then the form comes back with the error and no job was queued
    html = response.content.decode()
    assert response.status_code == 200
    assert html.lstrip().startswith('<form id="import-form"')
    assert "No batch named “nope”" in html
    assert ImportJob.objects.count() == 0
    assert Batch.objects.filter(name="nope").count() == 0


def test_api_starts_an_import_and_reports_it(celery_worker, data_dir: Path):
    # given a lead with an API token
    lead = LeadFactory(username="lena")
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=lead).key}")
    content = (data_dir / "xstest" / "xstest_prompts.csv").read_bytes()

    # when they post a file to /api/v1/imports
    response = api.post(
        "/api/v1/imports",
        {
            "file": SimpleUploadedFile("xstest_prompts.csv", content),
            "batch": "xs",
            "create_batch": True,
        },
        format="multipart",
    )

    # then it is accepted and can be polled until done
    assert response.status_code == 202
    job_id = response.json()["id"]
    wait_for(job_id)
    body = api.get(f"/api/v1/imports/{job_id}").json()
    assert (body["status"], body["imported"], body["format"]) == (
        "succeeded",
        450,
        "xstest",
    )
    assert body["percent"] == 100


@pytest.mark.django_db
def test_api_refuses_imports_from_annotators(annotator):
    api = APIClient()
    api.credentials(
        HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=annotator).key}"
    )
    response = api.post(
        "/api/v1/imports",
        {"file": SimpleUploadedFile("a.jsonl", jsonl([{"prompt": "x"}])), "batch": "b"},
        format="multipart",
    )
    assert response.status_code == 403
    assert ImportJob.objects.count() == 0


@pytest.mark.django_db
def test_running_a_finished_job_again_changes_nothing(tmp_path: Path):
    # given a job that has already been imported (a redelivered task)
    path = tmp_path / "rows.jsonl"
    path.write_bytes(jsonl([{"id": f"r{i}", "prompt": f"p{i}"} for i in range(12)]))
    BatchFactory(name="redo")
    job = ImportJob.objects.create(
        batch_name="redo", file_path=str(path), original_name="rows.jsonl"
    )
    first = run_import_job(job_id=job.pk)
    assert (first.status, first.imported, first.rows_read, first.rows_total) == (
        JobStatus.SUCCEEDED,
        12,
        12,
        12,
    )

    # when the same task runs again
    second = run_import_job(job_id=job.pk)

    # then nothing is imported twice
    assert second.finished_at == first.finished_at
    assert Dialogue.objects.filter(batch__name="redo").count() == 12
