"""python manage.py jobs [--json] [--kind KIND] [--unfinished] [--limit N]

Every kind of job in one list: imports, exports, jury runs, generation runs, with
their leases (which worker holds one, until when, how many starts). In the jury
app because it sees them all (annotation never imports the jury)."""

import json
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from django.core.management.base import BaseCommand, CommandParser
from django.db.models import Max

from annotation.facade import ExportSnapshot, ImportJob, Job, JobStatus
from jury.models import (
    GenerationRun,
    GenerationTarget,
    JuryRun,
    RunChunk,
    RunJudgeState,
    RunStatus,
)

KINDS = ("import", "export", "jury_run", "generation_run")
UNFINISHED = (JobStatus.PENDING, JobStatus.RUNNING, RunStatus.RUNNING)
COLUMNS = ("kind", "id", "status", "phase", "done", "total", "attempts", "lease")


def _when(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def job_row(kind: str, job: Job, **lease: Any) -> dict[str, Any]:
    """One job as the command prints it; `lease` overrides the row's own lease
    columns (a jury run's lease is its judges')."""
    lease = {
        "attempts": getattr(job, "attempts", 0),
        "lease_expires_at": getattr(job, "lease_expires_at", None),
        "lease_holder": getattr(job, "lease_holder", ""),
    } | lease
    return {
        "kind": kind,
        "id": job.pk,
        "status": job.status,
        "phase": getattr(job, "phase", ""),
        "done": job.done,
        "total": job.total,
        "attempts": lease["attempts"],
        "lease_expires_at": _when(lease["lease_expires_at"]),
        "lease_holder": lease["lease_holder"],
        "error": job.error_text,
        "created_at": _when(job.created_at),
        "finished_at": _when(job.finished_at),
    }


def _run_rows(kind: str, runs: Any, leases: Any) -> Iterator[dict[str, Any]]:
    """Runs with the leases of their work (`leases`: the rows that hold them, a
    jury run's chunks or a generation run's targets, by run id) and, for a jury
    run, its judges' attempts."""
    for run in runs:
        rows = leases.filter(run=run)
        lease = rows.aggregate(
            attempts=Max("attempts"), lease_expires_at=Max("lease_expires_at")
        )
        attempts = lease["attempts"] or 0
        if kind == "jury_run":
            judged = RunJudgeState.objects.filter(run=run).aggregate(n=Max("attempts"))
            attempts = max(attempts, judged["n"] or 0)
        holders = rows.filter(lease_expires_at__isnull=False).values_list(
            "lease_holder", flat=True
        )
        yield job_row(
            kind,
            run,
            attempts=attempts,
            lease_expires_at=lease["lease_expires_at"],
            lease_holder=", ".join(sorted(set(holders))),
        )


def job_rows(
    *, kinds: tuple[str, ...] = KINDS, unfinished: bool = False, limit: int = 20
) -> list[dict[str, Any]]:
    """The newest `limit` jobs of each kind, newest first within a kind."""
    querysets: dict[str, Any] = {
        "import": ImportJob.objects.all(),
        "export": ExportSnapshot.objects.all(),
        "jury_run": JuryRun.objects.all(),
        "generation_run": GenerationRun.objects.all(),
    }
    rows: list[dict[str, Any]] = []
    for kind in kinds:
        jobs = querysets[kind]
        if unfinished:
            jobs = jobs.filter(status__in=UNFINISHED)
        jobs = jobs.order_by("-created_at", "-pk")[:limit]
        if kind == "jury_run":
            rows.extend(_run_rows(kind, jobs, RunChunk.objects.all()))
        elif kind == "generation_run":
            rows.extend(_run_rows(kind, jobs, GenerationTarget.objects.all()))
        else:
            rows.extend(job_row(kind, job) for job in jobs)
    return rows


def _cell(row: dict[str, Any], column: str) -> str:
    if column == "lease":
        expires = row["lease_expires_at"]
        return f"{row['lease_holder']} until {expires}" if expires else "-"
    return str(row[column] if row[column] not in (None, "") else "-")


class Command(BaseCommand):
    help = "List jobs of every kind: status, progress, attempts, lease and error."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--json", action="store_true", help="print a JSON list")
        parser.add_argument("--kind", action="append", choices=KINDS)
        parser.add_argument(
            "--unfinished", action="store_true", help="only pending or running jobs"
        )
        parser.add_argument(
            "--limit", type=int, default=20, help="newest N of each kind (20)"
        )

    def handle(self, *args: Any, **opts: Any) -> None:
        rows = job_rows(
            kinds=tuple(opts["kind"] or KINDS),
            unfinished=opts["unfinished"],
            limit=opts["limit"],
        )
        if opts["json"]:
            self.stdout.write(json.dumps(rows, ensure_ascii=False))
            return
        table = [list(COLUMNS)] + [[_cell(r, c) for c in COLUMNS] for r in rows]
        widths = [max(len(line[i]) for line in table) for i in range(len(COLUMNS))]
        for line in table:
            cells = zip(line, widths, strict=True)
            self.stdout.write("  ".join(v.ljust(w) for v, w in cells).rstrip())
        for row in rows:
            if row["error"]:
                self.stdout.write(f"{row['kind']} {row['id']}: {row['error']}")
