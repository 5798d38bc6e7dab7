"""Every dialogue's final labels (DESIGN section 3), stored as `FinalLabel` rows.

`derive_batch` reads a batch in a fixed number of bulk queries, derives each
dialogue with the pure `annotation.rules.derivation.derive`, and upserts the rows whose
inputs changed. A human vote's Other is read as the category the leads mapped its
text to (`annotation.other.services`); the vote itself is not changed. `recompute_dialogue` does the same for one dialogue, after the
commit of what changed it, so it reads committed votes: a Celery task queued by
`annotation.labelling.queue`'s submit and edit (`recompute_later`), and directly in the jury's
worker after a decision (`recompute_on_commit`).

Locks: `recompute_dialogue` locks the dialogue row, then reads, then writes its
FinalLabel row; `derive_batch` locks the batch's existing FinalLabel rows (in
dialogue order) before it reads and holds them until it has written, and inserts
rows that did not exist without overwriting one a recomputation wrote meanwhile. So
a derivation that read older votes is never the last write: the one that reads
after a vote waits for the earlier one's lock. Neither holds a dialogue lock while
waiting for another, which keeps to the order in `annotation.labelling.queue` (dialogues, then
what hangs off them).

No lease and no job row (unlike imports, exports and agreement reports): a
derivation is one transaction, so a worker killed mid-way writes nothing, and
running it again is harmless. What it leaves undone is found by reading, not by a
reaper: whoever needs the stored labels current (an export, the adjudication
list) calls `refresh_batch`, which derives again whenever the batch's inputs stamp
differs from the one its last `derive_batch` stored; a dialogue's row is derived
again on its next vote; and the broker delivers the unacknowledged task again
(`acks_late`) after its visibility timeout.
"""

import hashlib
from collections import Counter, defaultdict
from collections.abc import Iterable
from datetime import datetime

from django.db import transaction
from django.db.models import Count, Max, Q
from django.utils import timezone

from annotation import enqueue
from annotation.models import (
    Batch,
    Dialogue,
    FinalLabel,
    JuryDecision,
    Label,
    LabelCategory,
    OtherMapping,
    VoteKind,
)
from annotation.other.services import standardise_categories
from annotation.rules.derivation import (
    AdjudicationIn,
    Final,
    HumanVote,
    JuryIn,
    ReferenceIn,
    derive,
)

# Part of every fingerprint: changing the rules makes every row be written again.
# 2: a lead's "by the rules" response follows the human response labels in batches
# that ask for them, as undecided dialogues do.
DERIVATION_VERSION = 2
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
    dialogue_filter: dict[str, object],
    decisions: Iterable[DecisionRow],
    *,
    taxonomy_id: int,
) -> dict[int, _Inputs]:
    """Read the votes of the filtered dialogues (all under one taxonomy version):
    three queries (labels, categories, the leads' Other mappings).

    A human vote's Other becomes the category its text is mapped to
    (`annotation.other.services`); adjudicated and imported votes are taken as they are.
    """
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
            "other_text",
        )
    )
    names: dict[int, list[tuple[str, bool]]] = defaultdict(list)
    for label_id, name, is_other in (
        LabelCategory.objects.filter(
            label__kind__in=KINDS,
            label__valid=True,
            **{f"label__{k}": v for k, v in dialogue_filter.items()},
        )
        .order_by("label_id", "position")
        .values_list("label_id", "category__name", "category__requires_text")
    ):
        names[label_id].append((name, is_other))
    mapped: dict[str, str] = dict(
        OtherMapping.objects.filter(taxonomy_id=taxonomy_id, category__isnull=False)
        .order_by()
        .values_list("text", "category__name")
    )
    inputs: dict[int, _Inputs] = defaultdict(_Inputs)
    for pk, dialogue, kind, label, response, p_source, r_source, other in labels:
        given = names.get(pk, [])
        categories = tuple(name for name, _ in given)
        found = inputs[dialogue]
        if kind == VoteKind.HUMAN and label is not None:
            if mapped and other:
                categories = standardise_categories(given, other, mapped)
            found.votes.append(HumanVote(label, response, categories))
        elif kind == VoteKind.ADJUDICATED and label is not None:
            found.adjudication = AdjudicationIn(label, response, categories)
        elif kind == VoteKind.REFERENCE:
            found.reference = ReferenceIn(
                label, response, categories, p_source, r_source
            )
    # The latest decision per dialogue is the one with the highest id, as in
    # annotation.agreement.services.read_jury_decisions.
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

    Twelve queries whatever the batch's size: lock the existing rows, take the
    inputs stamp (`inputs_stamp`, four aggregates), read the dialogues, votes, their
    categories, the taxonomy's Other mappings and the jury decisions, update the
    changed rows in one upsert and insert the new ones in one statement (on
    PostgreSQL; SQLite splits long statements by its variable limit), and store the
    stamp on the batch. Rows whose inputs did not change are not written.
    """
    stored = dict(
        FinalLabel.objects.select_for_update()
        .filter(dialogue__batch=batch)
        .order_by("dialogue_id")
        .values_list("dialogue_id", "votes_fingerprint")
    )
    # Before the reads: whatever commits after it changes the stamp, so a stamp
    # that matches later means nothing changed since these reads.
    stamp = inputs_stamp(batch)
    dialogues = list(
        Dialogue.objects.filter(batch=batch)
        .order_by("id")
        .values_list("id", "response")
    )
    inputs = _gather(
        {"dialogue__batch": batch},
        _decisions(dialogue__batch=batch),
        taxonomy_id=batch.taxonomy_id,
    )
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
    Batch.objects.filter(pk=batch.pk).update(final_labels_stamp=stamp)
    batch.final_labels_stamp = stamp
    return dict(counts)


def inputs_stamp(batch: Batch) -> str:
    """A digest of everything the batch's final labels depend on: its settings and
    the count, latest change and highest id of its dialogues, votes, jury decisions
    and Other mappings. Any vote cast, edited, invalidated or deleted, decision
    made or mapping changed gives another stamp. Four queries.

    Votes are never changed by a bulk update (which would skip `updated_at`), and a
    deleted vote lowers the count, so the stamp cannot miss a change.
    """
    votes = Label.objects.filter(dialogue__batch=batch, kind__in=KINDS).aggregate(
        n=Count("id"),
        valid=Count("id", filter=Q(valid=True)),
        last=Max("updated_at"),
        top=Max("id"),
    )
    dialogues = Dialogue.objects.filter(batch=batch).aggregate(
        n=Count("id"), top=Max("id")
    )
    decisions = JuryDecision.objects.filter(dialogue__batch=batch).aggregate(
        n=Count("id"), last=Max("decided_at"), top=Max("id")
    )
    mappings = OtherMapping.objects.filter(taxonomy_id=batch.taxonomy_id).aggregate(
        n=Count("id"), last=Max("decided_at"), top=Max("id")
    )
    key = repr(
        (
            DERIVATION_VERSION,
            batch.needs_caution_policy,
            batch.asks_response_label,
            batch.labels_required,
            sorted(votes.items()),
            sorted(dialogues.items()),
            sorted(decisions.items()),
            sorted(mappings.items()),
        )
    )
    return hashlib.sha256(key.encode()).hexdigest()


def refresh_batch(batch: Batch) -> bool:
    """Bring the batch's stored final labels up to date; False if they were.

    Four queries when nothing changed since the last `derive_batch`; otherwise a
    whole derivation (which writes only the rows whose inputs changed).
    """
    if batch.final_labels_stamp and inputs_stamp(batch) == batch.final_labels_stamp:
        return False
    derive_batch(batch)
    return True


@transaction.atomic
def recompute_dialogue(dialogue_id: int) -> FinalLabel | None:
    """Derive and store one dialogue's final labels; None if the dialogue is gone.

    Locks the dialogue row first (see the module docstring); six queries.
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
        _gather(
            {"dialogue_id": dialogue_id},
            _decisions(dialogue_id=dialogue_id),
            taxonomy_id=dialogue.batch.taxonomy_id,
        ).get(dialogue_id)
        or _Inputs()
    )
    final, fingerprint = _derive_one(
        found, has_response=dialogue.has_response, batch=dialogue.batch
    )
    row = _row(dialogue_id, final, fingerprint, timezone.now())
    _upsert([row])
    return row


def derive_with_adjudication(dialogue: Dialogue, adjudication: AdjudicationIn) -> Final:
    """What the dialogue's final labels would be with `adjudication` in force (a
    lead's decision before it is written); nothing is stored. Four queries."""
    found = (
        _gather(
            {"dialogue_id": dialogue.pk},
            _decisions(dialogue_id=dialogue.pk),
            taxonomy_id=dialogue.batch.taxonomy_id,
        ).get(dialogue.pk)
        or _Inputs()
    )
    found.adjudication = adjudication
    final, _ = _derive_one(
        found, has_response=dialogue.has_response, batch=dialogue.batch
    )
    return final


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
    waiting for it (six queries and a lock, on every vote: five were a third of a
    vote's time under load)."""

    enqueue.later("annotation.recompute_final_label", dialogue_id, robust=True)


def derive_later(batch_id: int) -> None:
    """Queue a whole batch's derivation in Celery once the current transaction
    commits: after what changes many dialogues at once (an import of votes, the
    batch's policy or required votes)."""

    enqueue.later("annotation.derive_final_labels", batch_id, robust=True)


def derive_with_policy(batch: Batch, policy: str) -> dict[int, Final]:
    """Every dialogue's final labels under another needs-caution policy, not stored.

    For an export that asks for a policy other than the batch's own; adjudicated and
    imported labels come out as stored ones would. Five queries.
    """
    dialogues = list(
        Dialogue.objects.filter(batch=batch)
        .order_by("id")
        .values_list("id", "response")
    )
    inputs = _gather(
        {"dialogue__batch": batch},
        _decisions(dialogue__batch=batch),
        taxonomy_id=batch.taxonomy_id,
    )
    return {
        dialogue_id: derive(
            votes=(found := inputs.get(dialogue_id) or _Inputs()).votes,
            has_response=response is not None,
            policy=policy,
            asks_response_label=batch.asks_response_label,
            labels_required=batch.labels_required,
            jury=found.jury,
            adjudication=found.adjudication,
            reference=found.reference,
        )
        for dialogue_id, response in dialogues
    }
