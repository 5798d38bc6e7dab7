"""python manage.py jury_run --batch NAME [--judges a,b,c] [--all-responses]
[--include-incomplete] [--sync] [--json]"""

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from annotation.facade import Batch
from jury.models import Judge, RunStatus, Scope
from jury.presence import queue_listeners
from jury.runs.services import RunError, run_in_process, run_progress, start_run
from jury.runs.state import Waiting


class Command(BaseCommand):
    help = (
        "Start a jury run on a batch (queued to the judges' workers, or --sync here)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--batch", required=True)
        parser.add_argument(
            "--judges",
            help="comma-separated judge names (default: every available one)",
        )
        parser.add_argument(
            "--all-responses",
            action="store_true",
            help="judge every response, not only where the humans say unsafe",
        )
        parser.add_argument(
            "--include-incomplete",
            action="store_true",
            help="also judge dialogues still waiting for human votes (where the "
            "votes so far say unsafe); by default only complete votes count",
        )
        parser.add_argument(
            "--source", action="append", help="only this source (repeatable)"
        )
        parser.add_argument("--chunk-size", type=int, default=16)
        parser.add_argument(
            "--sync", action="store_true", help="judge in this process and wait"
        )
        parser.add_argument("--json", action="store_true", help="print one JSON object")

    def handle(self, *args: Any, **opts: Any) -> None:
        batch = Batch.objects.filter(name=opts["batch"]).first()
        if batch is None:
            raise CommandError(f"no batch named {opts['batch']!r}")
        if opts["judges"]:
            names = [n.strip() for n in opts["judges"].split(",") if n.strip()]
            judges = list(Judge.objects.filter(name__in=names))
            unknown = sorted(set(names) - {j.name for j in judges})
            if unknown:
                raise CommandError(f"no judge named {', '.join(unknown)}")
        else:
            judges = [j for j in Judge.objects.enabled() if j.available]
            if not judges:
                raise CommandError(
                    "no judge is available: enable one, or set its model's environment "
                    "variable (python manage.py seed_demo adds CPU judges)"
                )
        try:
            run = start_run(
                batch=batch,
                judges=judges,
                scope=Scope.ALL_RESPONSES
                if opts["all_responses"]
                else Scope.UNSAFE_MAJORITY,
                sources=opts["source"],
                include_incomplete=opts["include_incomplete"],
                chunk_size=opts["chunk_size"],
                enqueue=not opts["sync"],
            )
            if opts["sync"]:
                run_in_process(run=run)
        except RunError as exc:
            raise CommandError(str(exc)) from exc
        run.refresh_from_db()
        progress = run_progress(run)
        waiting = Waiting.from_json(run.waiting_for_votes)
        summary = {
            "run": run.pk,
            "status": run.status,
            "dialogues": progress.dialogues,
            "judges": [j.name for j in judges],
            "votes": progress.votes,
            "valid": progress.valid,
            "invalid": progress.invalid,
            "decisions": progress.decisions,
            "left_out": 0 if run.include_incomplete else waiting.dialogues,
            "waiting_for_votes": waiting.as_json()
            | {"included": run.include_incomplete},
        }
        if opts["json"]:
            self.stdout.write(json.dumps(summary))
            return
        verb = "judged" if run.status == RunStatus.DONE else "queued"
        note = waiting.text(included=run.include_incomplete)
        if not opts["sync"]:
            listeners = queue_listeners(j.queue_name for j in judges)
            for queue, found in listeners.items():
                if found is None or not found.listening:
                    self.stderr.write(
                        f"no worker listening on {queue}: its chunks wait until one "
                        f"starts (QUEUES={queue} make jury-worker)"
                    )
        self.stdout.write(
            f"run {run.pk} on {batch.name}: {progress.dialogues} dialogues x "
            f"{len(judges)} judges {verb}; {progress.votes} votes "
            f"({progress.invalid} invalid); decisions {progress.decisions}"
            + (f"; {note}" if note else "")
        )
