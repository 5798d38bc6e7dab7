"""python manage.py assign_batch NAME (--annotators u1,u2 | --all) [--json]"""

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from accounts.models import User
from accounts.ordering import natural_sorted
from annotation.batches.services import NotAnnotators, assign_annotators
from annotation.models import Batch


class Command(BaseCommand):
    help = (
        "Assign annotators to a batch (those already on it stay). Unknown or "
        "inactive names stop the command before anything is assigned."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name", help="the batch")
        who = parser.add_mutually_exclusive_group(required=True)
        who.add_argument(
            "--annotators", metavar="U1,U2", help="comma-separated usernames"
        )
        who.add_argument(
            "--all",
            action="store_true",
            help="every active user with the annotator role",
        )
        parser.add_argument("--json", action="store_true", help="print JSON")

    def handle(self, *args: Any, **opts: Any) -> None:
        batch = Batch.objects.filter(name=opts["name"]).first()
        if batch is None:
            raise CommandError(f"no batch named {opts['name']!r}")
        if opts["all"]:
            people = list(User.objects.annotators().filter(is_active=True))
        else:
            people = self._named(opts["annotators"])
        before = set(batch.assignments.values_list("annotator__username", flat=True))
        try:
            assign_annotators(batch=batch, annotators=people)
        except NotAnnotators as error:
            raise CommandError(str(error)) from None
        new = natural_sorted(u.username for u in people if u.username not in before)
        kept = natural_sorted(u.username for u in people if u.username in before)
        if opts["json"]:
            self.stdout.write(
                json.dumps({"batch": batch.name, "assigned": new, "already": kept})
            )
            return
        if new:
            self.stdout.write(f"Assigned {len(new)} to {batch.name}: {', '.join(new)}")
        else:
            self.stdout.write(f"Nobody new assigned to {batch.name}.")
        if kept:
            self.stdout.write(f"Already assigned: {', '.join(kept)}")

    def _named(self, value: str) -> list[User]:
        names = list(dict.fromkeys(n.strip() for n in value.split(",") if n.strip()))
        if not names:
            raise CommandError("--annotators needs at least one username")
        found = {u.username: u for u in User.objects.filter(username__in=names)}
        unknown = [n for n in names if n not in found]
        if unknown:
            raise CommandError(f"unknown users: {', '.join(unknown)}")
        return [found[n] for n in names]
