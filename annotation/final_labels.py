"""Every dialogue's final labels (DESIGN section 3), stored as `FinalLabel` rows.

`derive_batch` reads a batch in a fixed number of bulk queries, derives each
dialogue with the pure `annotation.derivation.derive`, and upserts the rows whose
inputs changed. `recompute_dialogue` does the same for one dialogue, after the
commit of what changed it, so it reads committed votes: a Celery task queued by
`annotation.queue`'s submit and edit (`recompute_later`), and directly in the jury's
worker after a decision (`recompute_on_commit`).

Locks: `recompute_dialogue` locks the dialogue row, then reads, then writes its
FinalLabel row; `derive_batch` locks the batch's existing FinalLabel rows (in
dialogue order) before it reads and holds them until it has written, and inserts
rows that did not exist without overwriting one a recomputation wrote meanwhile. So
a derivation that read older votes is never the last write: the one that reads
after a vote waits for the earlier one's lock. Neither holds a dialogue lock while
waiting for another, which keeps to the order in `annotation.queue` (dialogues, then
what hangs off them).
"""

import hashlib
from collections import Counter, defaultdict
from collections.abc import Iterable
from datetime import datetime

from django.db import transaction
from django.utils import timezone

from annotation.derivation import (
    AdjudicationIn,
    Final,
    HumanVote,
    JuryIn,
    ReferenceIn,
    derive,
)
from annotation.models import (
    Batch,
    Dialogue,
    FinalLabel,
    JuryDecision,
    Label,
    LabelCategory,
    VoteKind,
)

# Part of every fingerprint: changing the rules makes every row be written again.
DERIVATION_VERSION = 1
UPDATED_FIELDS = [
    "prompt_label",
    "response_label",
    "violated_categories",
    "prompt_label_source",
    "response_label_source",
    "provenance",
    "unresolved_reason",
    "votes_fingerprint",
    "computed_at",
]
KINDS = (VoteKind.HUMAN, VoteKind.ADJUDICATED, VoteKind.REFERENCE)


class _Inputs:
    """What derivation reads of one dialogue, gathered from the bulk queries."""

    def __init__(self) -> None:
        self.votes: list[HumanVote] = []
        self.adjudication: AdjudicationIn | None = None
        self.reference: ReferenceIn | None = None
        self.jury: JuryIn | None = None


# (id, dialogue id, decision, categories, reason) of a JuryDecision
DecisionRow = tuple[int, int, str, list[str], str]


def _gather(
    dialogue_filter: dict[str, object], decisions: Iterable[DecisionRow]
) -> dict[int, _Inputs]:
    """Read the votes of the filtered dialogues: two queries (labels, categories)."""
    labels = list(
        Label.objects.filter(kind__in=KINDS, valid=True, **dialogue_filter)
        .order_by("id")
        .values_list(
            "id",
            "dialogue_id",
            "kind",
            "label",
            "response_label",
            "prompt_label_source",
            "response_label_source",
        )
    )
    names: dict[int, list[str]] = defaultdict(list)
    for label_id, name in (
        LabelCategory.objects.filter(
            label__kind__in=KINDS,
            label__valid=True,
            **{f"label__{k}": v for k, v in dialogue_filter.items()},
        )
        .order_by("label_id", "position")
        .values_list("label_id", "category__name")
    ):
        names[label_id].append(name)
    inputs: dict[int, _Inputs] = defaultdict(_Inputs)
    for pk, dialogue, kind, label, response, p_source, r_source in labels:
        categories = tuple(names.get(pk, ()))
        found = inputs[dialogue]
        if kind == VoteKind.HUMAN and label is not None:
            found.votes.append(HumanVote(label, response, categories))
        elif kind == VoteKind.ADJUDICATED and label is not None:
            found.adjudication = AdjudicationIn(label, response, categories)
        elif kind == VoteKind.REFERENCE:
            found.reference = ReferenceIn(
                label, response, categories, p_source, r_source
            )
    # The latest decision per dialogue is the one with the highest id, as in
    # annotation.agreement.read_jury_decisions.
    for _pk, dialogue, decision, chosen, reason in sorted(
        decisions, key=lambda row: row[0]
    ):
        inputs[dialogue].jury = JuryIn(decision, tuple(chosen or ()), reason)
    return inputs


def _decisions(**dialogue_filter: object) -> list[DecisionRow]:
    return list(
        JuryDecision.objects.filter(**dialogue_filter)
        .order_by()
        .values_list("id", "dialogue_id", "decision", "categories", "reason")
    )


def _fingerprint(found: _Inputs, *, has_response: bool, batch: Batch) -> str:
    key = repr(
        (
            DERIVATION_VERSION,
            found.votes,
            found.adjudication,
            found.reference,
            found.jury,
            has_response,
            batch.needs_caution_policy,
            batch.asks_response_label,
            batch.labels_required,
        )
    )
    return hashlib.sha256(key.encode()).hexdigest()


def _row(dialogue_id: int, final: Final, fingerprint: str, now: datetime) -> FinalLabel:
    return FinalLabel(
        dialogue_id=dialogue_id,
        prompt_label=final.prompt_label,
        response_label=final.response_label,
        violated_categories=list(final.violated_categories),
        prompt_label_source=final.prompt_label_source,
        response_label_source=final.response_label_source,
        provenance=final.provenance,
        unresolved_reason=final.unresolved_reason[:200],
        votes_fingerprint=fingerprint,
        computed_at=now,
    )


def _upsert(rows: list[FinalLabel]) -> None:
    if rows:
        FinalLabel.objects.bulk_create(
            sorted(rows, key=lambda r: r.dialogue_id),
            update_conflicts=True,
            unique_fields=["dialogue"],
            update_fields=UPDATED_FIELDS,
        )


def _derive_one(
    found: _Inputs, *, has_response: bool, batch: Batch
) -> tuple[Final, str]:
    final = derive(
        votes=found.votes,
        has_response=has_response,
        policy=batch.needs_caution_policy,
        asks_response_label=batch.asks_response_label,
        labels_required=batch.labels_required,
        jury=found.jury,
        adjudication=found.adjudication,
        reference=found.reference,
    )
    return final, _fingerprint(found, has_response=has_response, batch=batch)


@transaction.atomic
def derive_batch(batch: Batch) -> dict[str, int]:
    """Derive and store the final labels of every dialogue in the batch; returns the
    number of dialogues per provenance.

    Seven queries whatever the batch's size: lock the existing rows, read the
    dialogues, votes, their categories and jury decisions, update the changed rows
    in one upsert and insert the new ones in one statement (on PostgreSQL; SQLite
    splits long statements by its variable limit). Rows whose inputs did not change
    are not written.
    """
    stored = dict(
        FinalLabel.objects.select_for_update()
        .filter(dialogue__batch=batch)
        .order_by("dialogue_id")
        .values_list("dialogue_id", "votes_fingerprint")
    )
    dialogues = list(
        Dialogue.objects.filter(batch=batch)
        .order_by("id")
        .values_list("id", "response")
    )
    inputs = _gather({"dialogue__batch": batch}, _decisions(dialogue__batch=batch))
    now = timezone.now()
    counts: Counter[str] = Counter()
    changed: list[FinalLabel] = []
    new: list[FinalLabel] = []
    for dialogue_id, response in dialogues:
        final, fingerprint = _derive_one(
            inputs.get(dialogue_id) or _Inputs(),
            has_response=response is not None,
            batch=batch,
        )
        counts[final.provenance] += 1
        if dialogue_id not in stored:
            new.append(_row(dialogue_id, final, fingerprint, now))
        elif stored[dialogue_id] != fingerprint:
            changed.append(_row(dialogue_id, final, fingerprint, now))
    _upsert(changed)
    # A row that appeared since the lock was written by `recompute_dialogue`, which
    # read after its vote committed: it is newer than what this read, so keep it.
    FinalLabel.objects.bulk_create(new, ignore_conflicts=True)
    return dict(counts)


@transaction.atomic
def recompute_dialogue(dialogue_id: int) -> FinalLabel | None:
    """Derive and store one dialogue's final labels; None if the dialogue is gone.

    Locks the dialogue row first (see the module docstring); five queries.
    """
    dialogue = (
        Dialogue.objects.select_for_update(of=("self",))
        .select_related("batch")
        .filter(pk=dialogue_id)
        .first()
    )
    if dialogue is None:
        return None
    found = (
        _gather({"dialogue_id": dialogue_id}, _decisions(dialogue_id=dialogue_id)).get(
            dialogue_id
        )
        or _Inputs()
    )
    final, fingerprint = _derive_one(
        found, has_response=dialogue.has_response, batch=dialogue.batch
    )
    row = _row(dialogue_id, final, fingerprint, timezone.now())
    _upsert([row])
    return row


def recompute_on_commit(dialogue_id: int) -> None:
    """Recompute the dialogue's final labels once the current transaction commits.

    For code that runs in a worker already (the jury's decisions): the recomputation
    happens right there, after the commit.
    """
    # robust: the vote is saved either way; a failure is logged and derive_batch
    # puts the row right later.
    transaction.on_commit(lambda: recompute_dialogue(dialogue_id), robust=True)


def recompute_later(dialogue_id: int) -> None:
    """Queue the dialogue's recomputation in Celery once the current transaction
    commits: for requests (an annotator's vote or edit), which answer without
    waiting for it (five queries and a lock, on every vote, were a third of a vote's
    time under load)."""

    def enqueue() -> None:
        from annotation.tasks import recompute_final_label

        recompute_final_label.delay(dialogue_id)

    transaction.on_commit(enqueue, robust=True)


def derive_later(batch_id: int) -> None:
    """Queue a whole batch's derivation in Celery once the current transaction
    commits: after what changes many dialogues at once (an import of votes, the
    batch's policy or required votes)."""

    def enqueue() -> None:
        from annotation.tasks import derive_final_labels

        derive_final_labels.delay(batch_id)

    transaction.on_commit(enqueue, robust=True)
