"""python manage.py derive_labels --batch NAME [--batch ...] [--json]"""

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from annotation.final_labels.services import derive_batch
from annotation.models import Batch


class Command(BaseCommand):
    help = (
        "Derive the final labels of the batches' dialogues now (DESIGN section 3) and "
        "print how many have each provenance. Votes and jury decisions queue this "
        "per dialogue by themselves; run it after changing the rules or by hand."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--batch", action="append", required=True, help="a batch (repeatable)"
        )
        parser.add_argument("--json", action="store_true", help="print one object")

    def handle(self, *args: Any, **opts: Any) -> None:
        names = list(dict.fromkeys(opts["batch"]))
        batches = {b.name: b for b in Batch.objects.filter(name__in=names)}
        missing = [n for n in names if n not in batches]
        if missing:
            raise CommandError(f"no batch named {', '.join(map(repr, missing))}")
        counts = {name: derive_batch(batches[name]) for name in names}
        if opts["json"]:
            self.stdout.write(json.dumps(counts, sort_keys=True))
            return
        for name, by_provenance in counts.items():
            total = sum(by_provenance.values())
            parts = ", ".join(f"{k} {v}" for k, v in sorted(by_provenance.items()))
            self.stdout.write(f"{name}: {total} dialogues ({parts})")
