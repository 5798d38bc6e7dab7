"""python manage.py import_dialogues PATH --batch NAME [--format F] [--create-batch] ..."""

import json
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from annotation.imports.formats import FORMATS, FormatOptions
from annotation.imports.jobs import queue_import_file
from annotation.imports.services import ImportFailed, ImportResult, import_dialogues
from annotation.models import ImportKind


def report(command: BaseCommand, result: ImportResult, as_json: bool) -> None:
    """Print the result; errors go to stderr, one line each, file and line first."""
    for error in result.errors:
        command.stderr.write(str(error))
    if result.error_count > len(result.errors):
        command.stderr.write(f"... and {result.error_count - len(result.errors)} more")
    if as_json:
        command.stdout.write(json.dumps(result.as_dict(), ensure_ascii=False))
        return
    verb = "would import" if result.dry_run else "imported"
    command.stdout.write(
        f"{result.batch}: {verb} {result.imported}, skipped {result.skipped_duplicates} "
        f"duplicates, {result.labels} labels, {result.error_count} errors"
        + (" (nothing written)" if result.error_count and not result.written else "")
    )


class Command(BaseCommand):
    help = "Import dialogues from a dataset file into a batch (all or nothing)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("path", type=Path)
        parser.add_argument("--batch", required=True, help="name of the batch")
        parser.add_argument(
            "--format", choices=FORMATS, help="the file's format (detected if omitted)"
        )
        parser.add_argument(
            "--create-batch",
            action="store_true",
            help="create the batch (on the current Aegis 2.0 taxonomy) if missing",
        )
        parser.add_argument(
            "--dry-run", action="store_true", help="check everything, write nothing"
        )
        parser.add_argument(
            "--skip-invalid",
            action="store_true",
            help="keep the good rows and report the bad ones",
        )
        parser.add_argument(
            "--transcript",
            choices=("chosen", "rejected"),
            default="chosen",
            help="hh-rlhf: which transcript becomes the dialogue",
        )
        parser.add_argument(
            "--first-turn-only",
            action="store_true",
            help="hh-rlhf: keep only the first human turn (as Aegis did)",
        )
        parser.add_argument("--json", action="store_true", help="print one JSON object")
        parser.add_argument(
            "--background",
            action="store_true",
            help="queue the import on the worker (the upload page's job) and print "
            "its id; `manage.py jobs` follows it",
        )

    def handle(self, *args: Any, **opts: Any) -> None:
        path: Path = opts["path"]
        if not path.is_file():
            raise CommandError(f"{path}: no such file")
        if opts["background"]:
            self.queue(path, opts)
            return
        try:
            result = import_dialogues(
                path=path,
                batch_name=opts["batch"],
                fmt=opts["format"],
                create_batch=opts["create_batch"],
                dry_run=opts["dry_run"],
                skip_invalid=opts["skip_invalid"],
                options=FormatOptions(
                    hh_transcript=opts["transcript"],
                    hh_first_turn_only=opts["first_turn_only"],
                ),
            )
        except ImportFailed as exc:
            if opts["json"]:
                self.stdout.write(json.dumps(exc.body(), ensure_ascii=False))
            raise CommandError(str(exc)) from exc
        report(self, result, opts["json"])
        if result.error_count:
            raise SystemExit(1)

    def queue(self, path: Path, opts: dict[str, Any]) -> None:
        if opts["dry_run"]:
            raise CommandError("--dry-run checks here and now; drop --background")
        job = queue_import_file(
            path=path,
            kind=ImportKind.DIALOGUES,
            batch_name=opts["batch"],
            fmt=opts["format"] or "",
            options={
                "create_batch": opts["create_batch"],
                "skip_invalid": opts["skip_invalid"],
                "transcript": opts["transcript"],
                "first_turn_only": opts["first_turn_only"],
            },
        )
        if opts["json"]:
            self.stdout.write(json.dumps({"job": job.pk, "status": job.status}))
        else:
            self.stdout.write(f"import job {job.pk} queued ({path.name})")
