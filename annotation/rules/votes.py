"""The rules a vote must follow (DESIGN section 3), as pure functions over plain data."""

from dataclasses import dataclass
from typing import Any

from accounts.refusals import Refused
from annotation.rules.labels import LABELS as LABEL_VALUES
from taxonomy.matching import CategoryIndex, CategoryRef

OTHER = "Other"


@dataclass(frozen=True)
class VoteProblem:
    field: str
    message: str


class VoteProblems(Refused):
    """Raised with the problems of a vote (or a lead's decision, or a gold answer),
    each naming its field; the API answers them by field."""

    status = 400
    code = "invalid"

    def __init__(self, problems: list[VoteProblem]) -> None:
        super().__init__("; ".join(f"{p.field}: {p.message}" for p in problems))
        self.problems = problems

    def by_field(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for p in self.problems:
            out.setdefault(p.field, []).append(p.message)
        return out

    def body(self) -> dict[str, Any]:
        return dict(self.by_field())


def check_vote(
    *,
    label: str | None,
    response_label: str | None,
    category_names: list[str],
    other_text: str,
    index: CategoryIndex,
    require_other_text: bool = True,
) -> tuple[list[CategoryRef], list[VoteProblem]]:
    """Resolve a vote's categories and list what breaks the rules (empty when valid).

    Categories are required when the label is unsafe, allowed with needs_caution and
    refused with safe; "Other" needs its free text.
    """
    problems: list[VoteProblem] = []
    if label not in LABEL_VALUES:
        problems.append(
            VoteProblem(
                "label", f"must be one of {', '.join(LABEL_VALUES)}, not {label!r}"
            )
        )
    if response_label is not None and response_label not in LABEL_VALUES:
        problems.append(
            VoteProblem(
                "response_label",
                f"must be one of {', '.join(LABEL_VALUES)} or empty, not {response_label!r}",
            )
        )
    categories, unknown = index.resolve_many(category_names)
    problems.extend(
        VoteProblem("categories", f"unknown category {name!r}") for name in unknown
    )
    if label == "unsafe" and not categories and not unknown:
        problems.append(
            VoteProblem("categories", "at least one is required when unsafe")
        )
    if label == "safe" and categories:
        problems.append(
            VoteProblem("categories", "must be empty when the label is safe")
        )
    if (
        require_other_text
        and any(c.name == OTHER for c in categories)
        and not other_text.strip()
    ):
        problems.append(VoteProblem("other_text", "is required when Other is chosen"))
    return categories, problems
