"""python manage.py export_dataset --batch NAME [--batch ...] --out DIR [--seed N]
[--ratios 0.8,0.1,0.1] [--policy permissive|defensive] [--no-refusals]
[--topic-file FILE] [--json]"""

import json
import time
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from annotation.export.services import ExportParams, ExportProblem, write_export
from annotation.models import NeedsCautionPolicy
from annotation.rules.splits import BadRatios, parse_ratios


class Command(BaseCommand):
    help = (
        "Export the batches' final labels as train/validation/test splits (Aegis 2.0 "
        "JSON, Parquet, CSV, guard fine-tuning JSONL, a dataset card and a manifest) "
        "into DIR, which must not exist or be empty. The same data and parameters "
        "give byte-identical files."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--batch", action="append", required=True, help="a batch (repeatable)"
        )
        parser.add_argument("--out", required=True, help="the folder to write")
        parser.add_argument("--seed", type=int, default=0, help="split seed (0)")
        parser.add_argument(
            "--ratios",
            default="0.8,0.1,0.1",
            help="train,validation,test shares (0.8,0.1,0.1)",
        )
        parser.add_argument(
            "--policy",
            choices=NeedsCautionPolicy.values,
            default="",
            help="how needs-caution votes count (default: each batch's own)",
        )
        parser.add_argument(
            "--no-refusals",
            action="store_true",
            help="leave generated refusals out (they never go to test anyway)",
        )
        parser.add_argument(
            "--topic-file",
            default="",
            help="a CantTalkAboutThis JSON/JSONL file to blend into the SFT files",
        )
        parser.add_argument("--json", action="store_true", help="print one object")

    def handle(self, *args: Any, **opts: Any) -> None:
        try:
            ratios = parse_ratios(opts["ratios"])
        except BadRatios as exc:
            raise CommandError(f"--ratios: {exc}") from None
        params = ExportParams(
            batches=tuple(opts["batch"]),
            seed=opts["seed"],
            ratios=ratios,
            needs_caution_policy=opts["policy"],
            include_refusals=not opts["no_refusals"],
            topic_file=opts["topic_file"],
        )
        started = time.perf_counter()
        try:
            result = write_export(params, Path(opts["out"]))
        except ExportProblem as exc:
            raise CommandError(str(exc)) from None
        seconds = time.perf_counter() - started
        rows = {split: c["rows"] for split, c in result.counts.items()}
        if opts["json"]:
            self.stdout.write(
                json.dumps(
                    {
                        "out": str(result.out),
                        "rows": rows,
                        "counts": result.counts,
                        "excluded": result.excluded,
                        "files": len(result.files),
                        "seconds": round(seconds, 3),
                    },
                    sort_keys=True,
                )
            )
            return
        left_out = ", ".join(f"{k} {v}" for k, v in result.excluded.items())
        self.stdout.write(
            f"wrote {sum(rows.values())} rows to {result.out} "
            + " ".join(f"{k} {v}" for k, v in rows.items())
            + (f"; left out: {left_out}" if left_out else "")
            + f" ({seconds:.1f} s)"
        )
