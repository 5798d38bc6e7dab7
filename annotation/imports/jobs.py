"""Imports run by a worker: queue an uploaded file, then run it with live progress."""

import logging
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.db import transaction
from django.utils import timezone
from django.utils.text import get_valid_filename

from accounts.models import User
from annotation import enqueue
from annotation.imports.formats import FormatOptions
from annotation.imports.readers import count_records, sniff
from annotation.imports.services import (
    UPLOAD_FORM,
    ImportFailed,
    ImportResult,
    import_dialogues,
    import_labels,
)
from annotation.leases import Heartbeat, holder_name
from annotation.models import Batch, ImportJob, ImportKind, JobStatus, Leased

log = logging.getLogger(__name__)


def upload_dir() -> Path:
    return Path(settings.MEDIA_ROOT) / "imports"


def queue_import_file(
    *,
    path: Path,
    kind: str,
    batch_name: str,
    fmt: str,
    options: dict[str, Any],
    by: User | None = None,
) -> ImportJob:
    """Queue the import of a file on this machine (the command's --background): a
    copy is stored like an upload and the same job as the upload page's is queued."""
    folder = upload_dir() / uuid.uuid4().hex
    folder.mkdir(parents=True, exist_ok=True)
    name = get_valid_filename(path.name) or "upload"
    shutil.copyfile(path, folder / name)
    return _queue(
        path=folder / name,
        name=name,
        kind=kind,
        batch_name=batch_name,
        fmt=fmt,
        options=options,
        by=by,
    )


def _queue(
    *,
    path: Path,
    name: str,
    kind: str,
    batch_name: str,
    fmt: str,
    options: dict[str, Any],
    by: User | None,
) -> ImportJob:
    with transaction.atomic():
        job = ImportJob.objects.create(
            kind=kind,
            batch_name=batch_name,
            batch=Batch.objects.filter(name=batch_name).first(),
            format=fmt,
            options=options,
            file_path=str(path),
            original_name=name,
            created_by=by,
        )
        enqueue.later("annotation.run_import", job.pk)
    return job


def start_import(
    *,
    upload: "UploadedFile[bytes]",
    kind: str,
    batch_name: str,
    fmt: str,
    options: dict[str, Any],
    by: User,
) -> ImportJob:
    """Store the upload and queue its import; the task is sent once this commits."""
    folder = upload_dir() / uuid.uuid4().hex
    folder.mkdir(parents=True, exist_ok=True)
    name = get_valid_filename(Path(upload.name or "upload").name) or "upload"
    path = folder / name
    with path.open("wb") as out:
        for chunk in upload.chunks():
            out.write(chunk)
    return _queue(
        path=path,
        name=name,
        kind=kind,
        batch_name=batch_name,
        fmt=fmt,
        options=options,
        by=by,
    )


def run_import_job(*, job_id: int, holder: str = "") -> ImportJob:
    """Run one queued import under a lease (`holder`: who runs it).

    A redelivered task for a finished job, or for one another worker holds a live
    lease on, does nothing. An import whose worker was lost starts again from the
    top: its transaction died with the worker, so nothing of it was written.

    Not atomic on purpose: progress is written as it goes so the page can show it;
    the import itself is one transaction inside `import_dialogues`/`import_labels`.
    """
    holder = holder or holder_name()
    with transaction.atomic():
        job = ImportJob.objects.select_for_update().get(pk=job_id)
        if job.finished or (job.lease_live() and job.lease_holder != holder):
            return job
        job.set_status(
            JobStatus.RUNNING,
            started_at=timezone.now(),
            phase="counting",
            rows_read=0,
            **Leased.lease_fields(holder, attempts=job.attempts),
        )
    try:
        with Heartbeat(ImportJob, job_id, holder):
            _run_leased(job)
    finally:
        ImportJob.release_lease(job_id, holder)
    return ImportJob.objects.get(pk=job_id)


def _run_leased(job: ImportJob) -> None:
    job_id = job.pk
    path = Path(job.file_path)

    def progress(rows: int, phase: str) -> None:
        ImportJob.objects.filter(pk=job_id).update(rows_read=rows, phase=phase)

    try:
        total = count_records(sniff(path, job.original_name))
        ImportJob.objects.filter(pk=job_id).update(rows_total=total, phase="reading")
        result = _run(job, path, progress)
    except ImportFailed as exc:
        _finish(
            job_id,
            status=JobStatus.FAILED,
            errors=[_file_error(job, str(exc))],
            count=1,
        )
    except Exception as exc:
        log.exception("import %s failed", job_id)
        message = f"The import stopped on an internal error: {exc}"
        _finish(
            job_id,
            status=JobStatus.FAILED,
            errors=[_file_error(job, message)],
            count=1,
        )
    else:
        _finish(
            job_id,
            status=JobStatus.SUCCEEDED
            if result.written or not result.error_count
            else JobStatus.FAILED,
            errors=[e.as_dict() | {"text": str(e)} for e in result.errors],
            count=result.error_count,
            result=result,
        )
    finally:
        if path.parent.parent == upload_dir():
            shutil.rmtree(path.parent, ignore_errors=True)


def _run(job: ImportJob, path: Path, progress: Any) -> ImportResult:
    opts = job.options or {}
    if job.kind == ImportKind.LABELS:
        return import_labels(
            path=path,
            batch_name=job.batch_name,
            create_annotators=bool(opts.get("create_annotators")),
            skip_invalid=bool(opts.get("skip_invalid")),
            display_name=job.original_name,
            progress=progress,
            surface=UPLOAD_FORM,
        )
    return import_dialogues(
        path=path,
        batch_name=job.batch_name,
        fmt=job.format or None,
        create_batch=bool(opts.get("create_batch")),
        skip_invalid=bool(opts.get("skip_invalid")),
        options=FormatOptions(
            hh_transcript=opts.get("transcript", "chosen"),
            hh_first_turn_only=bool(opts.get("first_turn_only")),
        ),
        display_name=job.original_name,
        by=job.created_by,
        job=job,
        progress=progress,
        surface=UPLOAD_FORM,
    )


def _file_error(job: ImportJob, message: str) -> dict[str, Any]:
    """A stored file-level error (no line: the file as a whole could not be read)."""
    return {
        "file": job.original_name,
        "line": None,
        "field": "",
        "message": message,
        "text": message,
    }


def _finish(
    job_id: int,
    *,
    status: str,
    errors: list[dict[str, Any]],
    count: int,
    result: ImportResult | None = None,
) -> None:
    fields: dict[str, Any] = {"errors": errors, "error_count": count, "phase": ""}
    if result is not None:
        fields |= {
            "imported": result.imported if result.written else 0,
            "skipped_duplicates": result.skipped_duplicates,
            "format": result.format if result.format != "labels" else "",
            "batch": Batch.objects.filter(name=result.batch).first(),
        }
    job = ImportJob.objects.get(pk=job_id)
    if job.rows_total:
        fields["rows_read"] = job.rows_total
    job.set_status(status, **fields)


@dataclass(frozen=True)
class ShownError:
    """One stored error of a job as a page shows it (its file is the job's);
    `line` None is file-level."""

    line: int | None
    field: str
    message: str


def shown_errors(job: ImportJob) -> tuple[list[ShownError], list[ShownError]]:
    """The job's errors split into file-level ones (said as a message) and row ones
    (a table with their lines). Errors stored with only a text (older jobs) are
    file-level: they came from an import that could not start."""
    file_level: list[ShownError] = []
    rows: list[ShownError] = []
    for e in job.errors or []:
        shown = ShownError(
            line=e.get("line"),
            field=e.get("field") or "",
            message=e.get("message") or e.get("text") or "",
        )
        (file_level if shown.line is None else rows).append(shown)
    return file_level, rows
