"""Leases on imports and exports, and the reaper that queues again what a lost worker
left: no worker is killed here (tests/jury/runs/test_lost_worker_e2e.py kills one);
a lost worker is a running job whose lease ran out."""

import json
import time
from datetime import timedelta
from pathlib import Path

import pytest
from django.core.management import call_command
from django.utils import timezone

from annotation import enqueue
from annotation.export.params import ExportParams
from annotation.export.services import run_snapshot, start_export
from annotation.imports.jobs import run_import_job
from annotation.leases import Heartbeat, reap_lost_jobs
from annotation.models import Dialogue, ExportSnapshot, ImportJob, JobStatus
from tests.annotation.export.data import labelled_batch
from tests.factories import BatchFactory


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> list[tuple[object, ...]]:
    """The tasks services send (by name), instead of a broker."""
    found: list[tuple[object, ...]] = []
    monkeypatch.setattr(
        enqueue, "send", lambda name, *args, queue=None: found.append((name, *args))
    )
    return found


def jsonl_file(folder: Path, n: int) -> Path:
    path = folder / "upload" / "rows.jsonl"
    path.parent.mkdir(parents=True)
    rows = [
        {"id": f"r{i}", "prompt": f"prompt {i}", "response": "ok"} for i in range(n)
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def lost_import(path: Path, *, attempts: int) -> ImportJob:
    """An import whose worker died mid-run: running, its lease 5 s out of date."""
    return ImportJob.objects.create(
        batch_name="leased",
        file_path=str(path),
        original_name=path.name,
        options={"create_batch": True},
        status=JobStatus.RUNNING,
        phase="checking",
        started_at=timezone.now(),
        attempts=attempts,
        lease_holder="default@gone:4242",
        lease_expires_at=timezone.now() - timedelta(seconds=5),
    )


@pytest.mark.django_db
def test_an_import_whose_lease_ran_out_is_queued_again_and_runs_from_the_top(
    tmp_path, sent, django_capture_on_commit_callbacks
):
    # given an import whose worker was lost during its first attempt
    job = lost_import(jsonl_file(tmp_path, 3), attempts=1)

    # when the reaper runs
    with django_capture_on_commit_callbacks(execute=True):
        reaped = reap_lost_jobs()

    # then the import is queued again as its second attempt, its lease dropped
    assert (reaped.requeued, reaped.failed) == (1, 0)
    assert sent == [("annotation.run_import", job.pk)]
    job.refresh_from_db()
    assert (job.status, job.attempts, job.lease_expires_at) == ("running", 2, None)
    assert job.requeued_text == ("re-queued after a worker was lost (attempt 2 of 3)")
    # and a second pass finds nothing more to do
    assert reap_lost_jobs().requeued == 0

    # when a worker takes the queued task: it imports everything, once
    done = run_import_job(job_id=job.pk, holder="default@new:1")
    assert (done.status, done.imported, done.attempts) == ("succeeded", 3, 2)
    assert done.lease_expires_at is None
    assert Dialogue.objects.filter(batch__name="leased").count() == 3


@pytest.mark.django_db
def test_an_import_lost_on_its_last_attempt_fails_with_an_error_a_lead_can_read(
    tmp_path, sent
):
    # given an import whose worker was lost on the third of three attempts
    job = lost_import(jsonl_file(tmp_path, 3), attempts=3)

    # when the reaper runs
    reaped = reap_lost_jobs()

    # then it failed for good, saying why, and nothing was queued or written
    assert (reaped.requeued, reaped.failed) == (0, 1)
    assert sent == []
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED
    assert job.finished_at is not None
    [error] = job.errors
    assert error["message"] == (
        "The worker (default@gone:4242) was lost (killed or stopped) during attempt "
        "3 of 3; not queued again. Start it again once the workers are healthy."
    )
    assert job.error_count == 1
    assert Dialogue.objects.count() == 0


@pytest.mark.django_db
def test_a_live_lease_is_left_alone_and_a_redelivered_task_does_nothing(tmp_path, sent):
    # given an import a worker is running now (its lease is live)
    job = lost_import(jsonl_file(tmp_path, 3), attempts=1)
    ImportJob.objects.filter(pk=job.pk).update(
        lease_expires_at=timezone.now() + timedelta(seconds=30)
    )

    # when the reaper runs, and the broker delivers the same task to another worker
    reaped = reap_lost_jobs()
    again = run_import_job(job_id=job.pk, holder="default@other:2")

    # then neither touches it
    assert (reaped.requeued, reaped.failed, sent) == (0, 0, [])
    assert (again.status, again.phase, again.attempts) == ("running", "checking", 1)
    assert again.lease_holder == "default@gone:4242"
    assert Dialogue.objects.count() == 0


@pytest.mark.django_db
def test_an_export_lost_mid_write_starts_again_in_a_fresh_folder(
    tmp_path, settings, sent, django_capture_on_commit_callbacks
):
    # given an export whose worker died while writing its temporary folder
    settings.MEDIA_ROOT = str(tmp_path / "media")
    labelled_batch("leased", 12)
    with django_capture_on_commit_callbacks(execute=False):
        snapshot = start_export(params=ExportParams(batches=("leased",)), user=None)
    ExportSnapshot.objects.filter(pk=snapshot.pk).update(
        status=JobStatus.RUNNING,
        attempts=1,
        lease_holder="default@gone:4242",
        lease_expires_at=timezone.now() - timedelta(seconds=1),
    )
    root = tmp_path / "media" / "exports"
    half = root / f".export-{snapshot.pk:05d}-deadbeef" / f"export-{snapshot.pk:05d}"
    half.mkdir(parents=True)
    (half / "train.json").write_text('[{"half": ')

    # when the reaper queues it again and a worker runs it
    with django_capture_on_commit_callbacks(execute=True):
        assert reap_lost_jobs().requeued == 1
    assert sent == [("annotation.run_export", snapshot.pk)]
    done = run_snapshot(snapshot.pk, holder="default@new:1")

    # then it succeeded as attempt 2, and only the whole folder and zip are left
    assert (done.status, done.attempts, done.error) == ("succeeded", 2, "")
    assert sorted(p.name for p in root.iterdir()) == [
        f"export-{snapshot.pk:05d}",
        f"export-{snapshot.pk:05d}.zip",
    ]


@pytest.mark.django_db(transaction=True)
def test_the_heartbeat_renews_its_own_lease_and_no_one_elses(settings, tmp_path):
    # given two running imports, a 3 s lease (renewed every second)
    settings.AEGIS_JOB_LEASE_SECONDS = 3
    soon = timezone.now() + timedelta(seconds=3)
    mine, theirs = (
        ImportJob.objects.create(
            batch_name="b",
            file_path="/nonexistent",
            original_name="x.jsonl",
            status=JobStatus.RUNNING,
            lease_holder=holder,
            lease_expires_at=soon,
        )
        for holder in ("me:1", "them:2")
    )

    # when my heartbeat beats for two and a half seconds
    with Heartbeat(ImportJob, mine.pk, "me:1"):
        time.sleep(2.5)

    # then my lease was pushed on, theirs was not
    mine.refresh_from_db()
    theirs.refresh_from_db()
    assert mine.lease_expires_at is not None
    assert mine.lease_expires_at > soon
    assert theirs.lease_expires_at == soon


@pytest.mark.django_db
def test_import_dialogues_background_queues_the_upload_pages_job(
    tmp_path, sent, capsys, django_capture_on_commit_callbacks
):
    # given a file and an existing batch
    BatchFactory(name="later")
    path = jsonl_file(tmp_path, 2)

    # when it is imported in the background
    with django_capture_on_commit_callbacks(execute=True):
        call_command("import_dialogues", str(path), "--batch", "later", "--background")

    # then one pending job holds a copy of the file and its task was sent
    job = ImportJob.objects.get()
    assert capsys.readouterr().out.strip() == f"import job {job.pk} queued (rows.jsonl)"
    assert (job.status, job.batch_name, job.original_name) == (
        "pending",
        "later",
        "rows.jsonl",
    )
    assert Path(job.file_path).read_bytes() == path.read_bytes()
    assert Path(job.file_path) != path
    assert sent == [("annotation.run_import", job.pk)]
    assert Dialogue.objects.count() == 0
