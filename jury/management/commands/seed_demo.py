"""python manage.py seed_demo: the demo batches, users, a CPU jury and its recorded
run on demo-reviewed (idempotent)."""

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from annotation.facade import (
    ANNOTATORS,
    DEMO_PASSWORD,
    REVIEWED_BATCH,
    REVIEWERS,
    Batch,
    seed_demo,
)
from jury.demo import (
    RECORD_COMMAND,
    RECORDING_NAME,
    LoadedRecording,
    load_recording,
    seed_demo_judges,
)


class Command(BaseCommand):
    help = (
        "Create the demo batch, annotator1..12, lead, admin, and three CPU judge "
        "slots (SmolLM2-135M-Instruct), and load the judges' recorded votes on "
        "demo-reviewed; safe to run again."
    )

    def handle(self, *args: Any, **opts: Any) -> None:
        result = seed_demo()
        if result.imported.error_count:
            raise CommandError("; ".join(str(e) for e in result.imported.errors[:5]))
        if result.reviewed is not None and result.reviewed.error_count:
            raise CommandError("; ".join(str(e) for e in result.reviewed.errors[:5]))
        judges = seed_demo_judges()
        loaded = load_recording(batch=Batch.objects.get(name=REVIEWED_BATCH))
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
        self.stdout.write(_recording_line(loaded))
        self.stdout.write(f"Logins (password for all: {DEMO_PASSWORD}):")
        self.stdout.write(f"  annotators  {ANNOTATORS[0]} .. {ANNOTATORS[-1]}")
        self.stdout.write("  lead        lead")
        self.stdout.write("  admin       admin   (also the Django admin at /admin/)")


def _recording_line(loaded: LoadedRecording) -> str:
    if loaded.already_loaded:
        return f"Recorded jury run ({RECORDING_NAME}): loaded already."
    stale = (
        f"; {len(loaded.stale)} recorded dialogue(s) left out, as {REVIEWED_BATCH} "
        "does not hold the text judged (seeded from an older demo, or a dialogue "
        f"edited since the recording: `{RECORD_COMMAND}`)"
        if loaded.stale
        else ""
    )
    if loaded.run is None:
        return f"Recorded jury run ({RECORDING_NAME}): nothing to load{stale}."
    decisions = ", ".join(f"{n} {d}" for d, n in sorted(loaded.decisions.items()))
    return (
        f"Recorded jury run {loaded.run.pk} on {REVIEWED_BATCH} ({RECORDING_NAME}, "
        f"a real run of the CPU judges): {loaded.votes} votes, decisions "
        f"{decisions}{stale}."
    )
