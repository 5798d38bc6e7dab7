"""python manage.py import_labels PATH --batch NAME [--create-annotators] [--json]"""

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from annotation.imports.services import ImportFailed, import_labels
from annotation.management.commands.import_dialogues import report


class Command(BaseCommand):
    help = (
        "Import human votes in long format (dialogue_id, annotator, label, "
        "response_label, categories, other_text, comment), all or nothing."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("path", type=Path)
        parser.add_argument("--batch", required=True)
        parser.add_argument(
            "--create-annotators",
            action="store_true",
            help="create annotator accounts (without a password) for unknown names",
        )
        parser.add_argument("--skip-invalid", action="store_true")
        parser.add_argument("--dry-run", action="store_true")
        parser.add_argument("--json", action="store_true")

    def handle(self, *args: Any, **opts: Any) -> None:
        path: Path = opts["path"]
        if not path.is_file():
            raise CommandError(f"{path}: no such file")
        try:
            result = import_labels(
                path=path,
                batch_name=opts["batch"],
                create_annotators=opts["create_annotators"],
                skip_invalid=opts["skip_invalid"],
                dry_run=opts["dry_run"],
            )
        except ImportFailed as exc:
            raise CommandError(str(exc)) from exc
        report(self, result, opts["json"])
        if result.error_count:
            raise SystemExit(1)
