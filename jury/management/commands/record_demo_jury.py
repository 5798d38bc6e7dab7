"""python manage.py record_demo_jury [--out FILE]: run the demo's CPU judges for real
over demo-reviewed and write what they said to jury/demo/recorded-run.json."""

from collections import Counter
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from annotation.facade import REVIEWED_BATCH, Batch, differs_from_file, seed_demo
from jury.demo import (
    RECORD_COMMAND,
    RECORDING,
    record_run,
    seed_demo_judges,
    write_recording,
)
from jury.runs.services import RunError


class Command(BaseCommand):
    help = (
        "Run the demo's three CPU judges (SmolLM2-135M-Instruct) over every response "
        f"of {REVIEWED_BATCH} and write their votes as the recording seed_demo "
        "loads. Takes minutes (the model runs on the CPU); the run itself is rolled "
        "back, so the database is left as it was."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--out", default=str(RECORDING), help=f"where to write ({RECORDING})"
        )

    def handle(self, *args: Any, **opts: Any) -> None:
        # The demo's dialogues and judges, as seed_demo makes them (idempotent).
        seed_demo()
        judges = seed_demo_judges()
        batch = Batch.objects.get(name=REVIEWED_BATCH)
        if differs_from_file(batch):
            raise CommandError(
                f"{REVIEWED_BATCH} in this database was seeded from another version "
                "of annotation/demo/dialogues.json; record on a fresh database: "
                "DATABASE_URL=sqlite:////tmp/record-demo.sqlite3 python manage.py "
                f"migrate, then the same DATABASE_URL with {RECORD_COMMAND}"
            )
        names = ", ".join(judge.name for judge in judges)
        self.stdout.write(
            f"Judging every response of {REVIEWED_BATCH} with {names} "
            "(the model loads first; minutes on a CPU)..."
        )
        try:
            recording = record_run(batch=batch, judges=judges)
        except RunError as exc:
            raise CommandError(str(exc)) from exc
        path = write_recording(recording, Path(opts["out"]))
        votes = [vote for d in recording["dialogues"] for vote in d["votes"]]
        decisions = Counter(d["decision"]["decision"] for d in recording["dialogues"])
        self.stdout.write(
            f"Wrote {path}: {len(recording['dialogues'])} dialogues, {len(votes)} "
            f"votes ({sum(not vote['valid'] for vote in votes)} invalid), decisions "
            f"{dict(sorted(decisions.items()))}, in {recording['duration_s']} s."
        )
