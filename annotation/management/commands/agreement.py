"""python manage.py agreement --batch NAME [--json] [--resamples N] [--seed S]"""

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from annotation.agreement.services import build_report, report_for
from annotation.models import Batch


def fmt(value: float | None) -> str:
    return "—" if value is None else f"{value:.3f}"


def interval(ci: list[float] | None) -> str:
    return "" if ci is None else f"[{ci[0]:.3f}, {ci[1]:.3f}]"


class Command(BaseCommand):
    help = (
        "Agreement of a batch's annotators (Fleiss' kappa, Krippendorff's alpha, "
        "percent agreement, 95% bootstrap intervals), per label, category, annotator "
        "and for the jury. Computed here; a current cached report is reused."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--batch", required=True, help="the batch's name")
        parser.add_argument("--json", action="store_true", help="print one object")
        parser.add_argument(
            "--resamples",
            type=int,
            help="bootstrap resamples (default 1000; set to skip the cache)",
        )
        parser.add_argument("--seed", type=int, help="bootstrap seed (default 0)")

    def handle(self, *args: Any, **opts: Any) -> None:
        batch = Batch.objects.filter(name=opts["batch"]).first()
        if batch is None:
            raise CommandError(f"no batch named {opts['batch']!r}")
        if opts["resamples"] is not None or opts["seed"] is not None:
            resamples = opts["resamples"] if opts["resamples"] is not None else 1000
            if resamples < 0:
                raise CommandError("--resamples must be at least 0")
            data = build_report(batch, n_resamples=resamples, seed=opts["seed"] or 0)
        else:
            report = report_for(batch, force_sync=True)
            assert report.data is not None
            data = report.data
        if opts["json"]:
            self.stdout.write(json.dumps(data, ensure_ascii=False))
            return
        self._print(data)

    def _print(self, data: dict[str, Any]) -> None:
        out = self.stdout.write
        out(
            f"batch {data['batch']}: {data['n_dialogues']} dialogues, "
            f"{data['n_votes']} human votes"
        )
        out("")
        header = (
            f"{'on':<34} {'items':>6} {'raters':>6} {'Fleiss':>7} {'alpha':>7} "
            f"{'agree':>7}  alpha 95% CI"
        )
        out(header)
        out("-" * len(header))
        rows = [
            ("label (3-way)", data["label"]),
            ("label (binary)", data["label_binary"]),
            ("response label", data["response_label"]),
            ("imported label", data["imported_label"]),
        ] + [(f"category: {k}", v) for k, v in data["categories"].items()]
        for name, s in rows:
            if s is None:
                continue
            out(
                f"{name[:34]:<34} {s['n_items']:>6} {s['n_raters']:>6} "
                f"{fmt(s['fleiss_kappa']):>7} {fmt(s['krippendorff_alpha']):>7} "
                f"{fmt(s['percent_agreement']):>7}  "
                + (
                    interval(s["ci95"]["krippendorff_alpha"])
                    if s["krippendorff_alpha"] is not None
                    else f"not defined: {s['reason']['krippendorff_alpha']}"
                )
            )
        out("")
        out(f"{'annotator':<24} {'votes':>6} {'kappa vs others':>16} {'agree':>7}")
        for name, a in data["annotators"].items():
            vs = a["vs_majority"]
            out(
                f"{name[:24]:<24} {a['n_votes']:>6} {fmt(vs['cohen_kappa']):>16} "
                f"{fmt(vs['agreement']):>7}  {'; '.join(a['warnings'])}"
            )
        jury = data["jury"]
        if jury:
            out("")
            out(
                f"jury ({', '.join(jury['judges'])}): alpha "
                f"{fmt(jury['label']['krippendorff_alpha'])}, decisions vs human "
                f"majority: agreement {fmt(jury['decisions']['vs_human']['agreement'])}"
            )
