"""How votes become labels (DESIGN section 3), as pure functions over plain values."""

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from annotation.rules.labels import binary


def human_majority(labels: Sequence[str], policy: str) -> str | None:
    """The prompt label the human votes give: "safe", "unsafe", or None for a tie.

    The 3-way majority decides (a needs_caution majority is mapped by the policy);
    with no 3-way majority the votes are mapped by the policy first and the binary
    majority decides; a tie that remains is None (adjudication).
    """
    if not labels:
        return None
    counts = Counter(labels).most_common()
    top, n = counts[0]
    if n * 2 > len(labels):
        return binary(top, policy)
    mapped = Counter(binary(label, policy) for label in labels)
    if mapped["unsafe"] != mapped["safe"]:
        return "unsafe" if mapped["unsafe"] > mapped["safe"] else "safe"
    return None


# --- a dialogue's final labels ------------------------------------------------------

# Where a final label came from (DESIGN section 3); `FinalLabel.provenance`.
UNANIMOUS = "unanimous"
MAJORITY = "majority"
LLM_JURY = "llm_jury"
ADJUDICATED = "adjudicated"
IMPORTED = "imported"
UNRESOLVED = "unresolved"
PROVENANCES = (UNANIMOUS, MAJORITY, LLM_JURY, ADJUDICATED, IMPORTED, UNRESOLVED)

# The sources written next to each label, as the Aegis 2.0 release spells them.
SOURCE_HUMAN = "human"
SOURCE_JURY = "llm_jury"
SOURCE_ADJUDICATED = "adjudicated"


@dataclass(frozen=True)
class HumanVote:
    """One human vote: the 3-way label, the response label if asked, categories in
    the order the annotator gave them."""

    label: str
    response_label: str | None = None
    categories: tuple[str, ...] = ()


@dataclass(frozen=True)
class JuryIn:
    """The jury's latest decision on the dialogue's response (DESIGN section 4)."""

    decision: str  # safe, unsafe or needs_review
    categories: tuple[str, ...] = ()
    reason: str = ""


@dataclass(frozen=True)
class AdjudicationIn:
    """A lead's final word; `response_label` None leaves the response to the rules."""

    label: str
    response_label: str | None = None
    categories: tuple[str, ...] = ()


@dataclass(frozen=True)
class ReferenceIn:
    """An imported final label (Aegis 2.0's released row, or a refusal's)."""

    prompt_label: str | None
    response_label: str | None = None
    categories: tuple[str, ...] = ()
    prompt_label_source: str = ""
    response_label_source: str = ""


@dataclass(frozen=True)
class Final:
    """A dialogue's final labels and where they came from.

    `prompt_label` and `response_label` are binary (safe/unsafe) or None; when
    `provenance` is unresolved the parts that could be decided are kept and
    `unresolved_reason` says what is missing.
    """

    prompt_label: str | None
    response_label: str | None
    violated_categories: tuple[str, ...]
    prompt_label_source: str | None
    response_label_source: str | None
    provenance: str
    unresolved_reason: str = ""

    @property
    def is_resolved(self) -> bool:
        return self.provenance != UNRESOLVED


def ranked_categories(votes: Sequence[Sequence[str]]) -> tuple[str, ...]:
    """The union of the votes' categories, most often chosen first.

    Ties keep the order of first appearance (votes in the order they were cast,
    categories in the order each annotator gave them), as Counter.most_common does.
    """
    counts: Counter[str] = Counter()
    for categories in votes:
        counts.update(dict.fromkeys(categories, 1))  # a vote counts a category once
    return tuple(name for name, _ in counts.most_common())


# A response label, its source and what is missing to decide it ("" when decided).
Response = tuple[str | None, str | None, str]


def _response_after(prompt_label: str, jury: JuryIn | None) -> Response:
    """Response label, its source and what is missing, from the prompt's final label:
    safe makes the response safe (human); unsafe leaves it to the jury."""
    if prompt_label == "safe":
        return "safe", SOURCE_HUMAN, ""
    if jury is None:
        return None, None, "response needs the jury: no decision"
    if jury.decision not in ("safe", "unsafe"):
        why = f": {jury.reason}" if jury.reason else ""
        return None, None, f"jury needs review{why}"
    return jury.decision, SOURCE_JURY, ""


def response_by_rules(
    *,
    prompt_label: str,
    votes: Sequence[HumanVote],
    policy: str,
    asks_response_label: bool,
    jury: JuryIn | None,
) -> Response:
    """The response's label, its source and what is missing (DESIGN section 3),
    given the prompt's final label: in a batch that asks for response labels, the
    majority of the human response labels; otherwise from the prompt label and the
    jury (`_response_after`)."""
    if not asks_response_label:
        return _response_after(prompt_label, jury)
    given = [v.response_label for v in votes if v.response_label is not None]
    if not given:
        return None, None, "no human response labels"
    response = human_majority(given, policy)
    if response is None:
        return None, None, "response: tie after the policy"
    return response, SOURCE_HUMAN, ""


def derive(
    *,
    votes: Sequence[HumanVote],
    has_response: bool,
    policy: str,
    asks_response_label: bool,
    labels_required: int = 1,
    jury: JuryIn | None = None,
    adjudication: AdjudicationIn | None = None,
    reference: ReferenceIn | None = None,
) -> Final:
    """The final labels of one dialogue (DESIGN section 3), in this order of rules:

    1. an adjudication overrides everything (source `adjudicated`); a response it
       leaves open follows rule 4 with the adjudicated prompt label;
    2. fewer human votes than `labels_required`: the imported reference label if
       there is one (`imported`: Aegis 2.0 rows, refusals), else unresolved;
    3. prompt: the human majority (3-way, then the policy); a tie is unresolved;
    4. response (when there is one): in a batch that asks for response labels, the
       majority of the human response labels (source `human`); otherwise safe
       (`human`) when the prompt is safe and the jury's decision when it is unsafe
       (`llm_jury`; no decision or needs_review is unresolved);
    5. provenance: `llm_jury` when the jury decided the response, else `unanimous`
       when every human vote has the same 3-way label, else `majority`.
    Categories are the union of the human votes' (see `ranked_categories`), or the
    adjudication's or reference's own when they decide.
    """

    def by_rules(prompt: str) -> Response:
        if not has_response:
            return None, None, ""
        return response_by_rules(
            prompt_label=prompt,
            votes=votes,
            policy=policy,
            asks_response_label=asks_response_label,
            jury=jury,
        )

    if adjudication is not None:
        return _adjudicated(adjudication, policy, has_response, by_rules)
    if len(votes) < labels_required:
        if reference is not None and reference.prompt_label is not None:
            return _imported(reference, has_response, policy)
        reason = (
            "no votes"
            if not votes
            else f"waiting for votes ({len(votes)} of {labels_required})"
        )
        return Final(None, None, (), None, None, UNRESOLVED, reason)
    return _voted(votes, policy, by_rules)


def _adjudicated(
    adjudication: AdjudicationIn,
    policy: str,
    has_response: bool,
    by_rules: Callable[[str], Response],
) -> Final:
    """Rule 1: the lead's labels; a response the lead left open follows the rules."""
    prompt = binary(adjudication.label, policy)
    if has_response and adjudication.response_label is not None:
        response: Response = (
            binary(adjudication.response_label, policy),
            SOURCE_ADJUDICATED,
            "",
        )
    else:
        response = by_rules(prompt)
    label, source, missing = response
    return Final(
        prompt,
        label,
        tuple(adjudication.categories),
        SOURCE_ADJUDICATED,
        source,
        UNRESOLVED if missing else ADJUDICATED,
        f"adjudication left the response open; {missing}" if missing else "",
    )


def _voted(
    votes: Sequence[HumanVote], policy: str, by_rules: Callable[[str], Response]
) -> Final:
    """Rules 3 to 5, for a dialogue with the votes its batch asks for."""
    categories = ranked_categories([v.categories for v in votes])
    prompt = human_majority([v.label for v in votes], policy)
    if prompt is None:
        return Final(
            None, None, categories, None, None, UNRESOLVED, "tie after the policy"
        )
    response, source, missing = by_rules(prompt)
    if missing:
        provenance = UNRESOLVED
    elif source == SOURCE_JURY:
        provenance = LLM_JURY
    elif len({v.label for v in votes}) == 1:
        provenance = UNANIMOUS
    else:
        provenance = MAJORITY
    return Final(
        prompt, response, categories, SOURCE_HUMAN, source, provenance, missing
    )


def _imported(reference: ReferenceIn, has_response: bool, policy: str) -> Final:
    assert reference.prompt_label is not None
    response = reference.response_label if has_response else None
    if response is not None:
        response = binary(response, policy)
    return Final(
        binary(reference.prompt_label, policy),
        response,
        tuple(reference.categories),
        reference.prompt_label_source or SOURCE_HUMAN,
        (reference.response_label_source or SOURCE_HUMAN) if response else None,
        IMPORTED,
    )
