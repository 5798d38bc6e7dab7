"""python manage.py batches [--json]: every batch with its dialogue and label counts."""

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from annotation.models import Batch


class Command(BaseCommand):
    help = "List batches with their dialogue and label counts."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--json", action="store_true")

    def handle(self, *args: Any, **opts: Any) -> None:
        rows = [
            {
                "name": b["name"],
                "dialogues": b["n_dialogues"],
                "labels": b["n_labels"],
                "labels_required": b["labels_required"],
                "taxonomy": f"{b['taxonomy__name']} v{b['taxonomy__version']}",
                "status": b["status"],
                "annotators": b["n_annotators"],
            }
            # The n_* names come from with_counts(), which the type stubs cannot see.
            for b in Batch.objects.with_counts()
            .order_by("name")
            .values(  # type: ignore[misc]
                "name",
                "n_dialogues",
                "n_labels",
                "n_annotators",
                "labels_required",
                "taxonomy__name",
                "taxonomy__version",
                "status",
            )
        ]
        if opts["json"]:
            self.stdout.write(json.dumps(rows))
            return
        if not rows:
            self.stdout.write("No batches yet.")
            return
        self.stdout.write(f"{'batch':30} {'dialogues':>10} {'labels':>10}  taxonomy")
        for r in rows:
            self.stdout.write(
                f"{r['name']:30} {r['dialogues']:>10} {r['labels']:>10}  {r['taxonomy']}"
            )
