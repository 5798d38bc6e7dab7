"""What each dialogue of a batch waits for, as the batch page shows and filters it.

A status is read from what is stored, never derived again: the human votes the
queue counts (`Dialogue.votes`) against the batch's required count, `is_gold`,
`adjudicated_at`, and the dialogue's `FinalLabel` (annotation.final_labels.services:
provenance, labels, and the reason it is unresolved). The five filters partition a
batch, in this order of rules: gold; adjudicated by a lead; complete (a resolved
final label, imported ones included); waiting for votes (fewer than required);
unresolved (votes complete, final label not: a tie, the jury, or not derived yet).
`dialogue_status` is the same rules over plain values, so a row's status and the
filter that lists it always agree.
"""

from dataclasses import dataclass

from django.db.models import Count, Q, QuerySet

from annotation.models import Batch, Dialogue, FinalLabel, Provenance

ALL = ""
WAITING = "waiting"
COMPLETE = "complete"
UNRESOLVED = "unresolved"
ADJUDICATED = "adjudicated"
GOLD = "gold"
# (value, label) in the order the page offers them.
FILTERS = (
    (ALL, "All"),
    (WAITING, "Waiting for votes"),
    (COMPLETE, "Complete"),
    (UNRESOLVED, "Unresolved"),
    (ADJUDICATED, "Adjudicated"),
    (GOLD, "Gold"),
)
RESOLVED = tuple(p.value for p in Provenance if p != Provenance.UNRESOLVED)


def _conditions(labels_required: int) -> dict[str, Q]:
    open_ = Q(is_gold=False, adjudicated_at__isnull=True)
    resolved = Q(final_label__provenance__in=RESOLVED)
    return {
        GOLD: Q(is_gold=True),
        ADJUDICATED: Q(is_gold=False, adjudicated_at__isnull=False),
        COMPLETE: open_ & resolved,
        WAITING: open_ & ~resolved & Q(votes__lt=labels_required),
        UNRESOLVED: open_ & ~resolved & Q(votes__gte=labels_required),
    }


def in_status(batch: Batch, status: str) -> QuerySet[Dialogue]:
    """The batch's dialogues in one status (all for ALL or an unknown value), with
    their final labels joined, in id order."""
    dialogues = batch.dialogues.select_related("final_label").order_by("id")
    condition = _conditions(batch.labels_required).get(status)
    return dialogues if condition is None else dialogues.filter(condition)


def status_counts(batch: Batch) -> dict[str, int]:
    """How many of the batch's dialogues are in each status (one query)."""
    counts = batch.dialogues.aggregate(
        **{
            key: Count("pk", filter=condition)
            for key, condition in _conditions(batch.labels_required).items()
        },
        **{"all": Count("pk")},
    )
    return {ALL: counts.pop("all"), **counts}


@dataclass(frozen=True)
class Status:
    """One dialogue's status: the filter it falls under, what the page says, its
    human votes as "n/m", the prompt label when decided, and the derivation's own
    words for an unresolved one."""

    kind: str
    text: str
    votes: str
    label: str = ""
    detail: str = ""


@dataclass(frozen=True)
class FinalIn:
    """The stored final label, as far as a status reads it."""

    provenance: str
    prompt_label: str | None = None
    response_label: str | None = None
    unresolved_reason: str = ""


def status_of(dialogue: Dialogue, labels_required: int) -> Status:
    """The status of a dialogue loaded with its final label (`in_status`)."""
    try:
        stored: FinalLabel | None = dialogue.final_label
    except FinalLabel.DoesNotExist:
        stored = None  # not derived yet
    return dialogue_status(
        votes=dialogue.votes,
        labels_required=labels_required,
        is_gold=dialogue.is_gold,
        adjudicated=dialogue.adjudicated_at is not None,
        final=None
        if stored is None
        else FinalIn(
            stored.provenance,
            stored.prompt_label,
            stored.response_label,
            stored.unresolved_reason,
        ),
    )


def dialogue_status(
    *,
    votes: int,
    labels_required: int,
    is_gold: bool,
    adjudicated: bool,
    final: FinalIn | None,
) -> Status:
    """The status of one dialogue, by the rules of the module docstring."""
    counted = f"{votes}/{labels_required}"
    if is_gold:
        return Status(GOLD, "gold", str(votes))
    if adjudicated:
        return _adjudicated(final, counted)
    if final is not None and final.provenance in RESOLVED:
        label = final.prompt_label or ""
        return Status(COMPLETE, _decided(final), counted, label)
    if votes < labels_required:
        return Status(WAITING, f"waiting for votes {counted}", counted)
    if final is None:
        return Status(UNRESOLVED, "final label pending", counted)
    return Status(
        UNRESOLVED, _unresolved(final), counted, detail=final.unresolved_reason
    )


_HOW: dict[str, str] = {
    Provenance.UNANIMOUS.value: "unanimous",
    Provenance.MAJORITY.value: "majority",
    Provenance.IMPORTED.value: "imported",
}


def _decided(final: FinalIn) -> str:
    """Say "unsafe (majority)"; the response too when it differs or the jury gave it."""
    if final.provenance == Provenance.LLM_JURY:
        return f"{final.prompt_label}; response {final.response_label} (jury)"
    text = f"{final.prompt_label} ({_HOW.get(final.provenance, 'majority')})"
    if final.response_label and final.response_label != final.prompt_label:
        text += f"; response {final.response_label}"
    return text


def _adjudicated(final: FinalIn | None, counted: str) -> Status:
    if final is None or final.prompt_label is None:
        return Status(ADJUDICATED, "adjudicated", counted)
    text = f"adjudicated: {final.prompt_label}"
    if final.provenance == Provenance.UNRESOLVED:
        text += "; response waits for the jury"
    return Status(
        ADJUDICATED, text, counted, final.prompt_label, final.unresolved_reason
    )


# The derivation's reasons (annotation.rules.derivation.derive), first words first.
_REASONS = (
    ("waiting for votes", "final label pending"),
    ("no votes", "final label pending"),
    ("tie after the policy", "tie: adjudication"),
    ("response: tie", "response tie: adjudication"),
    ("jury needs review", "jury unsure: adjudication"),
    ("response needs the jury", "needs the jury"),
    ("no human response labels", "waiting for response labels"),
)


def _unresolved(final: FinalIn) -> str:
    for start, text in _REASONS:
        if final.unresolved_reason.startswith(start):
            return text
    return final.unresolved_reason or "unresolved"
