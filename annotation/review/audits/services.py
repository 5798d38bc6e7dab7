"""Audits: a lead reviews a random sample of a batch's finished dialogues with every
vote side by side, and leaves feedback on votes; annotators read it on their Feedback
page.

A dialogue is finished when it has the batch's required number of human votes. The
sample is drawn by `draw_sample`, a pure function of the finished dialogues, the rate
and a seed, so an audit can be drawn again exactly. Gold items are left out: their
votes are scored against the known answer (`annotation.review.gold.services`).
"""

import math
import random
import secrets
from collections.abc import Collection, Mapping

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Count, Q
from django.utils import timezone

from accounts.models import User
from accounts.refusals import Refused
from annotation.models import (
    LABELLED_BY_HUMANS,
    Audit,
    AuditItem,
    AuditStatus,
    Batch,
    Dialogue,
    Feedback,
    Label,
    Verdict,
    VoteKind,
)

DEFAULT_RATE = 0.15
MAX_SEED = 2**31 - 1
# Votes a lead can give feedback on: people's and judges'. Imported reference labels
# and adjudications are shown, but nobody would read a note on them.
REVIEWABLE_KINDS = (VoteKind.HUMAN, VoteKind.MODEL)


class AuditError(Refused):
    """An audit rule refused the request; the message says why, for a lead to read."""


# --- sampling (pure) -----------------------------------------------------------------


def quota(rate: float, n: int) -> int:
    """How many of `n` a rate draws: rounded up, so any rate draws at least one of a
    non-empty set (15% of 4 is 1), never more than `n`. The small tolerance keeps a
    product such as 0.15 * 20 = 3.0000000000000004 at 3."""
    return min(n, math.ceil(rate * n - 1e-9))


def draw_sample(
    voters: Mapping[int, Collection[int]],
    *,
    rate: float,
    per_annotator: bool,
    seed: int,
) -> list[int]:
    """The dialogue ids to review, in review order, without repeats.

    `voters` maps each finished dialogue to the ids of the people who voted on it.
    Plain: `quota(rate, n)` of the n dialogues. Per annotator: each annotator in id
    order gets at least `quota(rate, theirs)` of their own dialogues in the sample;
    dialogues already drawn for someone before count towards it, so a dialogue three
    people voted on is reviewed once, for all three. The same input and seed always
    give the same sample (inputs are sorted before drawing).
    """
    rng = random.Random(seed)
    dialogues = sorted(voters)
    if not per_annotator:
        return rng.sample(dialogues, quota(rate, len(dialogues)))
    by_annotator: dict[int, list[int]] = {}
    for dialogue in dialogues:
        for annotator in sorted(set(voters[dialogue])):
            by_annotator.setdefault(annotator, []).append(dialogue)
    chosen: list[int] = []
    taken: set[int] = set()
    for annotator in sorted(by_annotator):
        theirs = by_annotator[annotator]
        missing = quota(rate, len(theirs)) - sum(d in taken for d in theirs)
        if missing <= 0:
            continue
        picked = rng.sample([d for d in theirs if d not in taken], missing)
        chosen += picked
        taken.update(picked)
    # Drawn annotator by annotator; reviewed in a random order all the same.
    rng.shuffle(chosen)
    return chosen


# --- the batch's finished dialogues --------------------------------------------------


def _auditable(batch: Batch) -> Q:
    return Q(
        dialogue__batch=batch,
        dialogue__is_gold=False,
        dialogue__augmentation__in=LABELLED_BY_HUMANS,
    )


def finished_voters(batch: Batch) -> dict[int, list[int]]:
    """Each finished dialogue of the batch (gold items left out) with the ids of the
    people who voted on it, in one query."""
    voters: dict[int, list[int]] = {}
    rows = (
        Label.objects.filter(_auditable(batch), kind=VoteKind.HUMAN)
        .order_by()
        .values_list("dialogue_id", "annotator_id")
    )
    for dialogue_id, annotator_id in rows:
        voters.setdefault(dialogue_id, []).append(annotator_id)
    return {
        d: people
        for d, people in voters.items()
        if len(people) >= batch.labels_required
    }


def finished_count(batch: Batch) -> int:
    """How many dialogues an audit of the batch can draw from (one query)."""
    return (
        Dialogue.objects.filter(
            batch=batch, is_gold=False, augmentation__in=LABELLED_BY_HUMANS
        )
        .annotate(n=Count("labels", filter=Q(labels__kind=VoteKind.HUMAN)))
        .filter(n__gte=batch.labels_required)
        .count()
    )


# --- audits ---------------------------------------------------------------------------


@transaction.atomic
def create_audit(
    *,
    batch: Batch,
    rate: float = DEFAULT_RATE,
    per_annotator: bool = False,
    seed: int | None = None,
    by: User | None,
) -> Audit:
    """Draw a sample of the batch's finished dialogues and make it an audit.

    Without a seed one is chosen and stored. Raises ValidationError for a rate
    outside (0, 1] or a seed outside [0, 2**31), AuditError when the batch has no
    finished dialogue; nothing is written then.
    """
    if not 0 < rate <= 1:
        raise ValidationError({"rate": "The sample is more than 0% and at most 100%."})
    if seed is None:
        seed = secrets.randbelow(MAX_SEED + 1)
    if not 0 <= seed <= MAX_SEED:
        raise ValidationError({"seed": f"A seed is between 0 and {MAX_SEED}."})
    voters = finished_voters(batch)
    if not voters:
        raise AuditError(
            f"Batch {batch.name} has no finished dialogue yet (one with "
            f"{batch.labels_required} human vote{'' if batch.labels_required == 1 else 's'})."
        )
    sample = draw_sample(voters, rate=rate, per_annotator=per_annotator, seed=seed)
    audit = Audit.objects.create(
        batch=batch,
        created_by=by,
        rate=rate,
        per_annotator=per_annotator,
        seed=seed,
        population=len(voters),
    )
    AuditItem.objects.bulk_create(
        AuditItem(audit=audit, dialogue_id=dialogue_id, position=i)
        for i, dialogue_id in enumerate(sample, start=1)
    )
    return audit


def _locked_item(item: AuditItem) -> tuple[Audit, AuditItem]:
    """Lock the audit, then the item: one audit's reviews are serialised, so the
    last one to finish sees every other and marks the audit done."""
    audit = Audit.objects.select_for_update().get(pk=item.audit_id)
    return audit, AuditItem.objects.select_for_update().get(pk=item.pk)


@transaction.atomic
def review_item(*, item: AuditItem, by: User) -> AuditItem:
    """Mark the item reviewed (the first review is kept); the audit is done when
    every item is. Locks the audit row, then the item."""
    audit, locked = _locked_item(item)
    if locked.reviewed_at is None:
        locked.reviewed_at = timezone.now()
        locked.reviewed_by = by
        locked.save(update_fields=["reviewed_at", "reviewed_by"])
    left = audit.items.filter(reviewed_at__isnull=True).exists()
    if not left and audit.status == AuditStatus.OPEN:
        audit.set_status(AuditStatus.DONE)
    return locked


@transaction.atomic
def reopen_item(*, item: AuditItem) -> AuditItem:
    """Take a review back; a done audit is open again. Locks as `review_item`."""
    audit, locked = _locked_item(item)
    if locked.reviewed_at is not None:
        locked.reviewed_at = None
        locked.reviewed_by = None
        locked.save(update_fields=["reviewed_at", "reviewed_by"])
    if audit.status == AuditStatus.DONE:
        audit.set_status(AuditStatus.OPEN)
    return locked


@transaction.atomic
def give_feedback(
    *,
    item: AuditItem,
    label: Label,
    verdict: str,
    text: str = "",
    guideline_ref: str = "",
    by: User,
) -> Feedback:
    """The lead's verdict on one vote of the item's dialogue, with a note and a
    guideline reference; given again, it replaces the earlier one, which becomes
    unread again if anything changed.

    Raises AuditError for a vote of another dialogue or of a kind nobody reads
    feedback on, ValidationError for a verdict other than agree or disagree or a
    reference over 200 characters; nothing is written then. Locks the item row.
    """
    if label.dialogue_id != item.dialogue_id:
        raise AuditError("That vote is not on this dialogue.")
    if label.kind not in REVIEWABLE_KINDS:
        raise AuditError("Feedback is for annotators' and judges' votes.")
    if verdict not in Verdict.values:
        raise ValidationError({"verdict": "Agree or disagree with the vote."})
    text, guideline_ref = text.strip(), guideline_ref.strip()
    if len(guideline_ref) > 200:
        raise ValidationError({"guideline_ref": "At most 200 characters."})
    values = {
        "verdict": verdict,
        "text": text,
        "guideline_ref": guideline_ref,
    }
    # The item's lock serialises two leads' first feedback on one vote.
    AuditItem.objects.select_for_update().filter(pk=item.pk).first()
    feedback = Feedback.objects.filter(audit_item=item, label=label).first()
    if feedback is None:
        return Feedback.objects.create(
            audit_item=item,
            label=label,
            annotator_id=label.annotator_id if label.kind == VoteKind.HUMAN else None,
            author=by,
            **values,
        )
    if any(getattr(feedback, k) != v for k, v in values.items()):
        for k, v in values.items():
            setattr(feedback, k, v)
        feedback.author = by
        feedback.read_at = None
        feedback.save()
    return feedback


def unread_feedback(annotator: User) -> int:
    return Feedback.objects.for_annotator(annotator).unread().count()


def mark_feedback_read(*, annotator: User, ids: Collection[int] | None = None) -> int:
    """Mark the annotator's unread feedback read (only `ids`, when given); returns
    how many. Only ever their own."""
    unread = Feedback.objects.for_annotator(annotator).unread()
    if ids is not None:
        unread = unread.filter(pk__in=list(ids))
    return unread.update(read_at=timezone.now())
