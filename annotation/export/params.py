"""What an export is asked for, and the refusal that names a bad parameter.

Beside `services` and below it: the export's pipeline steps take the parameters and
raise the refusal too, and `services` imports the pipeline, so they cannot live in
`services` without an import cycle. Callers import both from `services`.
"""

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from accounts.refusals import Refused
from annotation.models import NeedsCautionPolicy
from annotation.rules.splits import DEFAULT_RATIOS, BadRatios, parse_ratios

# The parameters an ExportProblem's message may start with ("ratios: ...").
PARAMETERS = ("batches", "seed", "ratios", "needs_caution_policy", "topic_file")


class ExportProblem(Refused, ValueError):
    """Parameters an export cannot run with; the message names the parameter."""

    def parameter(self) -> tuple[str | None, str]:
        """The parameter the problem names (None when it names none), and the rest."""
        name, sep, rest = str(self).partition(": ")
        if sep and name in PARAMETERS:
            return name, rest
        return None, str(self)

    def body(self) -> dict[str, Any]:
        """By parameter, as the API's serializers answer: `{"ratios": [problem]}`."""
        name, message = self.parameter()
        return {name or "non_field_errors": [message]}


@dataclass(frozen=True)
class ExportParams:
    """What an export is asked for. `needs_caution_policy` "" keeps each batch's."""

    batches: tuple[str, ...]
    seed: int = 0
    ratios: tuple[float, float, float] = DEFAULT_RATIOS
    needs_caution_policy: str = ""
    include_refusals: bool = True
    topic_file: str = ""

    def checked(self) -> "ExportParams":
        """The same parameters, validated; raises ExportProblem naming the field."""
        if not self.batches:
            raise ExportProblem("batches: choose at least one batch")
        try:
            ratios = parse_ratios(self.ratios)
        except BadRatios as exc:
            raise ExportProblem(f"ratios: {exc}") from None
        if self.seed < 0:
            raise ExportProblem(f"seed: must be 0 or more, not {self.seed}")
        policies = {"", *NeedsCautionPolicy.values}
        if self.needs_caution_policy not in policies:
            raise ExportProblem(
                f"needs_caution_policy: {self.needs_caution_policy!r} is not one of "
                f"{sorted(p for p in policies if p)} (or empty for each batch's own)"
            )
        if self.topic_file and not Path(self.topic_file).is_file():
            raise ExportProblem(f"topic_file: no file at {self.topic_file}")
        return ExportParams(
            batches=tuple(sorted(dict.fromkeys(self.batches))),
            seed=self.seed,
            ratios=ratios,
            needs_caution_policy=self.needs_caution_policy,
            include_refusals=self.include_refusals,
            topic_file=self.topic_file,
        )
