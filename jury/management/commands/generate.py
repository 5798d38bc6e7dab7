"""python manage.py generate --batch NAME --kind refusals|responses [--generator NAME]
[--strategies direct_refusal,educational_insight,safe_reframing] [--sync] [--json]"""

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from annotation.facade import Batch
from jury.backends import BackendError, BackendUnavailable
from jury.generation.prompts import STRATEGIES
from jury.generation.services import (
    DEFAULT_REFUSAL_GENERATOR,
    GenerationError,
    generation_progress,
    run_in_process,
    start_generation_run,
)
from jury.models import GenerationKind, Judge, RunStatus


class Command(BaseCommand):
    help = (
        "Start a generation run on a batch: refusals for unsafe prompts, or responses "
        "for prompts without one (queued to the generator's worker, or --sync here)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--batch", required=True)
        parser.add_argument("--kind", required=True, choices=GenerationKind.values)
        parser.add_argument(
            "--generator",
            help=(
                "the judge slot that generates (default for refusals: "
                f"{DEFAULT_REFUSAL_GENERATOR}; responses need one named)"
            ),
        )
        parser.add_argument(
            "--strategies",
            help=f"refusals only, comma-separated (default: {','.join(STRATEGIES)})",
        )
        parser.add_argument("--chunk-size", type=int, default=8)
        parser.add_argument(
            "--max-tokens",
            type=int,
            help="the longest text to write (default: the generator's max_tokens)",
        )
        parser.add_argument(
            "--sync", action="store_true", help="generate in this process and wait"
        )
        parser.add_argument("--json", action="store_true", help="print one JSON object")

    def handle(self, *args: Any, **opts: Any) -> None:
        batch = Batch.objects.filter(name=opts["batch"]).first()
        if batch is None:
            raise CommandError(f"no batch named {opts['batch']!r}")
        kind = opts["kind"]
        name = opts["generator"] or (
            DEFAULT_REFUSAL_GENERATOR if kind == GenerationKind.REFUSALS else None
        )
        if name is None:
            raise CommandError(
                "name the generator with --generator (a judge slot; Aegis 2.0 took "
                "its responses from Mistral-7B-v0.1)"
            )
        generator = Judge.objects.filter(name=name).first()
        if generator is None:
            raise CommandError(f"no judge named {name!r}")
        strategies = None
        if opts["strategies"]:
            if kind != GenerationKind.REFUSALS:
                raise CommandError("--strategies is for refusals only")
            strategies = [s.strip() for s in opts["strategies"].split(",") if s.strip()]
        try:
            run = start_generation_run(
                batch=batch,
                generator=generator,
                kind=kind,
                strategies=strategies,
                chunk_size=opts["chunk_size"],
                max_tokens=opts["max_tokens"],
                enqueue=not opts["sync"],
            )
        except GenerationError as exc:
            raise CommandError(str(exc)) from exc
        if opts["sync"]:
            try:
                run_in_process(run=run)
            except (BackendError, BackendUnavailable) as exc:
                raise CommandError(
                    f"run {run.pk} stopped: {exc} (what is written stays; resume "
                    "it from its page)"
                ) from exc
        run.refresh_from_db()
        progress = generation_progress(run)
        summary = {
            "run": run.pk,
            "kind": run.kind,
            "generator": generator.name,
            "strategies": run.strategies,
            "status": run.status,
            "targets": progress.targets,
            "written": progress.written,
            "duplicates": progress.duplicates,
            "failed": progress.failed,
            "pending": progress.pending,
        }
        if opts["json"]:
            self.stdout.write(json.dumps(summary))
            return
        verb = "generated" if run.status == RunStatus.DONE else "queued"
        self.stdout.write(
            f"run {run.pk} on {batch.name}: {progress.targets} {run.kind} {verb} by "
            f"{generator.name}; {progress.written} written, {progress.duplicates} "
            f"duplicates, {progress.failed} failed, {progress.pending} pending"
        )
