"""Gold items: dialogues with a known answer that leads mix into the annotators' queues
(`Batch.gold_rate`, served by `annotation.labelling.queue`), and how well each annotator
matches them.

A gold dialogue is an ordinary dialogue of the batch whose `is_gold` is set and whose
answer is its `GoldItem`; votes on it are ordinary human votes. Marking and unmarking
lock the dialogue row (the queue's lock order: user, dialogue, reservation), so the
flag and the answer change together.
"""

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from django.db import transaction
from django.db.models import Prefetch

from accounts.models import User
from accounts.ordering import natural_sorted
from annotation.models import (
    LABELLED_BY_HUMANS,
    Batch,
    Dialogue,
    GoldItem,
    Label,
    LabelCategory,
    VoteKind,
)
from annotation.rules.votes import VoteProblem, VoteProblems, check_vote


class GoldRefused(VoteProblems):
    """The answer breaks the vote rules, or the dialogue cannot be gold; `problems`
    name the fields."""


@dataclass(frozen=True)
class GoldAnswer:
    label: str
    response_label: str | None = None
    categories: tuple[str, ...] = ()
    other_text: str = ""
    note: str = ""


def _locked(dialogue: Dialogue) -> Dialogue:
    return (
        Dialogue.objects.select_for_update(of=("self",))
        .select_related("batch__taxonomy")
        .get(pk=dialogue.pk)
    )


@transaction.atomic
def mark_gold(*, dialogue: Dialogue, answer: GoldAnswer, by: User | None) -> GoldItem:
    """Make the dialogue a gold item with this answer (or change its answer).

    The answer follows the rules of a vote (DESIGN section 3) against the batch's
    taxonomy; refusals and other generated rows that annotators never see cannot be
    gold. Raises GoldRefused and writes nothing when either rule breaks. Locks the
    dialogue row.
    """
    locked = _locked(dialogue)
    categories, problems = check_vote(
        label=answer.label,
        response_label=answer.response_label,
        category_names=list(answer.categories),
        other_text=answer.other_text,
        index=locked.batch.taxonomy.category_index(),
    )
    if answer.response_label is not None and not locked.has_response:
        problems.append(VoteProblem("response_label", "the dialogue has no response"))
    if locked.augmentation not in LABELLED_BY_HUMANS:
        problems.append(
            VoteProblem("dialogue", "annotators never see this dialogue (a refusal)")
        )
    if problems:
        raise GoldRefused(problems)
    gold, _ = GoldItem.objects.update_or_create(
        dialogue=locked,
        defaults={
            "label": answer.label,
            "response_label": answer.response_label,
            "other_text": answer.other_text.strip(),
            "note": answer.note.strip(),
        },
        create_defaults={
            "label": answer.label,
            "response_label": answer.response_label,
            "other_text": answer.other_text.strip(),
            "note": answer.note.strip(),
            "created_by": by,
        },
    )
    gold.categories.set([c.id for c in categories])
    if not locked.is_gold:
        Dialogue.objects.filter(pk=locked.pk).update(is_gold=True)
    dialogue.is_gold = True
    return gold


@transaction.atomic
def unmark_gold(*, dialogue: Dialogue) -> bool:
    """Return a gold dialogue to the regular queue; its votes stay. False when it was
    not gold. Locks the dialogue row.

    Its `claimed` may now be above the required count (everyone labelled it); the
    regular pick only serves dialogues below it, so it is simply finished.
    """
    locked = _locked(dialogue)
    GoldItem.objects.filter(dialogue=locked).delete()
    if locked.is_gold:
        Dialogue.objects.filter(pk=locked.pk).update(is_gold=False)
    dialogue.is_gold = False
    return locked.is_gold


# --- accuracy -----------------------------------------------------------------------


@dataclass(frozen=True)
class GoldVote:
    """One human vote on a gold item, with that item's answer, as plain data."""

    annotator: str
    label: str | None
    categories: frozenset[str]
    gold_label: str
    gold_categories: frozenset[str]
    dialogue: int = 0


def jaccard(a: frozenset[str], b: frozenset[str]) -> float:
    """The Jaccard index: categories in both over categories in either. Two empty
    sets agree (1.0): a safe vote on a safe gold item rightly names no category."""
    if not a and not b:
        return 1.0
    return len(a & b) / len(a | b)


def score_gold_votes(votes: Iterable[GoldVote]) -> dict[str, dict[str, float]]:
    """Per annotator: `n` votes on gold items, `label_accuracy` (share whose dialogue
    label equals the answer's) and `category_jaccard` (mean Jaccard index of the
    vote's categories and the answer's)."""
    per: dict[str, list[GoldVote]] = {}
    for vote in votes:
        per.setdefault(vote.annotator, []).append(vote)
    out: dict[str, dict[str, float]] = {}
    for name in natural_sorted(per):
        mine = per[name]
        n = len(mine)
        out[name] = {
            "n": n,
            "label_accuracy": sum(v.label == v.gold_label for v in mine) / n,
            "category_jaccard": sum(
                jaccard(v.categories, v.gold_categories) for v in mine
            )
            / n,
        }
    return out


def gold_items(batch: Batch) -> Sequence[GoldItem]:
    """The batch's gold items with their dialogues and answer categories (2 queries)."""
    return list(
        GoldItem.objects.filter(dialogue__batch=batch)
        .select_related("dialogue", "created_by")
        .prefetch_related("categories")
        .order_by("dialogue__external_id", "pk")
    )


def gold_votes(batch: Batch) -> list[GoldVote]:
    """Every human vote on the batch's gold items, with its answer (4 queries)."""
    answers = {
        g.dialogue_id: (g.label, frozenset(c.name for c in g.categories.all()))
        for g in GoldItem.objects.filter(dialogue__batch=batch).prefetch_related(
            "categories"
        )
    }
    labels = (
        Label.objects.filter(kind=VoteKind.HUMAN, dialogue_id__in=list(answers))
        .select_related("annotator")
        .prefetch_related(
            Prefetch(
                "label_categories",
                queryset=LabelCategory.objects.select_related("category"),
            )
        )
        .order_by("pk")
    )
    votes = []
    for label in labels:
        gold_label, gold_categories = answers[label.dialogue_id]
        assert label.annotator is not None  # a human vote always has one
        votes.append(
            GoldVote(
                annotator=label.annotator.username,
                label=label.label,
                categories=frozenset(
                    lc.category.name for lc in label.label_categories.all()
                ),
                gold_label=gold_label,
                gold_categories=gold_categories,
                dialogue=label.dialogue_id,
            )
        )
    return votes


def gold_accuracy(batch: Batch) -> dict[str, dict[str, float]]:
    """Each annotator's accuracy on the batch's gold items, keyed by username:
    `{"n", "label_accuracy", "category_jaccard"}` (see `score_gold_votes`).
    Annotators with no vote on a gold item are left out."""
    return score_gold_votes(gold_votes(batch))


def _batch_dialogues(batch: Batch, external_ids: Sequence[str]) -> list[Dialogue]:
    """The batch's dialogues (originals and generated responses, as annotators see
    them) with these ids, in the order given; GoldRefused names any missing."""
    found = {
        d.external_id: d
        for d in Dialogue.objects.filter(
            batch=batch, external_id__in=list(external_ids)
        ).for_annotators()
    }
    missing = [i for i in external_ids if i not in found]
    if missing:
        raise GoldRefused(
            [
                VoteProblem(
                    "external_ids",
                    f"not in batch {batch.name}: {', '.join(missing[:20])}"
                    + (f" and {len(missing) - 20} more" if len(missing) > 20 else ""),
                )
            ]
        )
    return [found[i] for i in external_ids]


@transaction.atomic
def mark_gold_many(
    *, batch: Batch, external_ids: Sequence[str], answer: GoldAnswer, by: User | None
) -> list[GoldItem]:
    """Make each of these dialogues of the batch gold with the same answer; all or
    nothing (GoldRefused names the ids not in the batch, or the answer's problems).
    Locks the dialogues in id order."""
    dialogues = sorted(_batch_dialogues(batch, external_ids), key=lambda d: d.pk)
    return _mark_each([(d, answer) for d in dialogues], by=by)


def _mark_each(
    pairs: Sequence[tuple[Dialogue, GoldAnswer]], *, by: User | None
) -> list[GoldItem]:
    """mark_gold for each pair; a refusal names the dialogue it is about."""
    made = []
    for dialogue, answer in pairs:
        try:
            made.append(mark_gold(dialogue=dialogue, answer=answer, by=by))
        except GoldRefused as refused:
            raise GoldRefused(
                [
                    VoteProblem(p.field, f"{dialogue.external_id}: {p.message}")
                    for p in refused.problems
                ]
            ) from refused
    return made


def reference_answer(dialogue: Dialogue) -> GoldAnswer | None:
    """The answer an imported reference label gives (Aegis 2.0's released labels),
    or None when the dialogue has none."""
    reference = (
        Label.objects.filter(dialogue=dialogue, kind=VoteKind.REFERENCE)
        .prefetch_related("label_categories__category")
        .first()
    )
    if reference is None or reference.label is None:
        return None
    return GoldAnswer(
        label=reference.label,
        response_label=reference.response_label if dialogue.has_response else None,
        categories=tuple(
            lc.category.name
            for lc in sorted(reference.label_categories.all(), key=lambda x: x.position)
        ),
        other_text=reference.other_text,
        note="From the imported reference label.",
    )


@transaction.atomic
def mark_gold_from_reference(
    *, batch: Batch, external_ids: Sequence[str], by: User | None
) -> list[GoldItem]:
    """Make each of these dialogues gold with its imported reference label as the
    answer; all or nothing (GoldRefused names those without one)."""
    dialogues = sorted(_batch_dialogues(batch, external_ids), key=lambda d: d.pk)
    answers = {d.pk: reference_answer(d) for d in dialogues}
    missing = [d.external_id for d in dialogues if answers[d.pk] is None]
    if missing:
        raise GoldRefused(
            [VoteProblem("external_ids", f"no reference label: {', '.join(missing)}")]
        )
    return _mark_each([(d, a) for d in dialogues if (a := answers[d.pk])], by=by)


@transaction.atomic
def unmark_gold_many(*, batch: Batch, external_ids: Sequence[str]) -> int:
    """Return these dialogues of the batch to the regular queue; how many were gold."""
    dialogues = sorted(_batch_dialogues(batch, external_ids), key=lambda d: d.pk)
    return sum(unmark_gold(dialogue=d) for d in dialogues)
