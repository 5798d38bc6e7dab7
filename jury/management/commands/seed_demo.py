"""python manage.py seed_demo: the demo batch, users and a CPU jury (idempotent)."""

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from annotation.demo import (
    ANNOTATORS,
    DEMO_PASSWORD,
    REVIEWED_BATCH,
    REVIEWERS,
    seed_demo,
)
from jury.demo import seed_demo_judges


class Command(BaseCommand):
    help = (
        "Create the demo batch, annotator1..12, lead, admin, and three CPU judge "
        "slots (SmolLM2-135M-Instruct); safe to run again."
    )

    def handle(self, *args: Any, **opts: Any) -> None:
        result = seed_demo()
        if result.imported.error_count:
            raise CommandError("; ".join(str(e) for e in result.imported.errors[:5]))
        if result.reviewed is not None and result.reviewed.error_count:
            raise CommandError("; ".join(str(e) for e in result.reviewed.errors[:5]))
        judges = seed_demo_judges()
        n = result.batch.dialogues.count()
        self.stdout.write(
            f"Demo batch '{result.batch.name}': {n} dialogues "
            f"({result.imported.imported} new), {len(ANNOTATORS)} annotators assigned, "
            f"{result.batch.labels_required} votes required per dialogue."
        )
        self.stdout.write(
            f"Demo batch '{REVIEWED_BATCH}': the same dialogues, already labelled by "
            f"{', '.join(REVIEWERS)}, for the agreement, adjudication, Other and "
            "export pages."
        )
        self.stdout.write(
            f"Demo jury: {', '.join(j.name for j in judges)} "
            "(SmolLM2-135M-Instruct on CPU, queues jury.<name>)."
        )
        self.stdout.write(f"Logins (password for all: {DEMO_PASSWORD}):")
        self.stdout.write(f"  annotators  {ANNOTATORS[0]} .. {ANNOTATORS[-1]}")
        self.stdout.write("  lead        lead")
        self.stdout.write("  admin       admin   (also the Django admin at /admin/)")
