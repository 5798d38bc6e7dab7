"""python manage.py mark_gold --batch NAME --ids A,B (--label L [--response-label L]
[--categories C1,C2] [--other-text T] [--note N] | --from-reference | --remove) [--json]"""

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from annotation.models import Batch, LabelValue
from annotation.review.gold.services import (
    GoldAnswer,
    GoldRefused,
    mark_gold_from_reference,
    mark_gold_many,
    unmark_gold_many,
)
from taxonomy.matching import split_category_list


class Command(BaseCommand):
    help = (
        "Mark dialogues of a batch as gold items with a known answer (the same for "
        "all of them, or each one's imported reference label), or take them out "
        "again. All or nothing: an unknown id or a bad answer writes nothing."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--batch", required=True, help="the batch")
        parser.add_argument(
            "--ids",
            required=True,
            metavar="A,B",
            help="the dialogues' ids in the batch, comma-separated",
        )
        how = parser.add_mutually_exclusive_group(required=True)
        how.add_argument("--label", choices=LabelValue.values, help="the answer")
        how.add_argument(
            "--from-reference",
            action="store_true",
            help="each dialogue's imported reference label is its answer",
        )
        how.add_argument(
            "--remove", action="store_true", help="return them to the regular queue"
        )
        parser.add_argument("--response-label", choices=LabelValue.values)
        parser.add_argument(
            "--categories", default="", help="names or codes, comma-separated"
        )
        parser.add_argument("--other-text", default="")
        parser.add_argument("--note", default="", help="why (shown to leads)")
        parser.add_argument("--json", action="store_true", help="print JSON")

    def handle(self, *args: Any, **opts: Any) -> None:
        batch = Batch.objects.filter(name=opts["batch"]).first()
        if batch is None:
            raise CommandError(f"no batch named {opts['batch']!r}")
        ids = list(
            dict.fromkeys(i.strip() for i in opts["ids"].split(",") if i.strip())
        )
        if not ids:
            raise CommandError("--ids needs at least one dialogue id")
        try:
            if opts["remove"]:
                removed = unmark_gold_many(batch=batch, external_ids=ids)
                result = {"batch": batch.name, "removed": removed}
            elif opts["from_reference"]:
                made = mark_gold_from_reference(batch=batch, external_ids=ids, by=None)
                result = {"batch": batch.name, "gold": len(made)}
            else:
                answer = GoldAnswer(
                    label=opts["label"],
                    response_label=opts["response_label"],
                    categories=tuple(split_category_list(opts["categories"])),
                    other_text=opts["other_text"],
                    note=opts["note"],
                )
                made = mark_gold_many(
                    batch=batch, external_ids=ids, answer=answer, by=None
                )
                result = {"batch": batch.name, "gold": len(made)}
        except GoldRefused as refused:
            raise CommandError(str(refused)) from None
        if opts["json"]:
            self.stdout.write(json.dumps(result))
        elif "removed" in result:
            self.stdout.write(
                f"{result['removed']} gold item(s) removed from {batch.name}."
            )
        else:
            self.stdout.write(f"{result['gold']} gold item(s) saved in {batch.name}.")
