"""Dialogues that need a lead, and a lead's decision, for the adjudication tests
(services, pages, API and browser)."""

from typing import Any

from accounts.models import User
from annotation.final_labels.services import derive_batch
from annotation.models import (
    Batch,
    Dialogue,
    JuryDecision,
    Label,
    LabelCategory,
    VoteKind,
)
from taxonomy.models import Category
from tests.factories import DialogueFactory, LabelFactory, UserFactory

# What `adjudicate` takes (and the API posts): unsafe for Violence, response safe.
DECISION: dict[str, Any] = {
    "prompt_label": "unsafe",
    "response_label": "safe",
    "categories": ["Violence"],
    "confidence": "high",
    "reason": "annotator_error",
    "note": "Asks how to hurt a neighbour.",
}
# The same as the decision form posts it (the response chosen with its key, 4).
FORM_DECISION = dict(DECISION)


def annotators(*names: str) -> list[User]:
    return [UserFactory(username=name) for name in names]


def add_votes(
    dialogue: Dialogue, *labels: str, category: str = "Violence"
) -> list[Label]:
    """One human vote per label, each by a new annotator; unsafe ones choose
    `category`."""
    chosen = Category.objects.get(taxonomy=dialogue.batch.taxonomy, name=category)
    made = []
    for label in labels:
        vote = LabelFactory(dialogue=dialogue, label=label)
        if label == "unsafe":
            LabelCategory.objects.create(label=vote, category=chosen, position=0)
        made.append(vote)
    return made


def split_dialogues(batch: Batch, n: int = 1, **fields: Any) -> list[Dialogue]:
    """`n` dialogues voted safe, safe, unsafe (a split), with final labels derived."""
    made = DialogueFactory.create_batch(n, batch=batch, **fields)
    for dialogue in made:
        add_votes(dialogue, "safe", "safe", "unsafe")
    derive_batch(batch)
    return made


def judge_vote(
    dialogue: Dialogue, label: str | None, *categories: Category, **fields: Any
) -> Label:
    """A model judge's vote (no annotator), with its categories in order."""
    vote = LabelFactory(
        dialogue=dialogue, kind=VoteKind.MODEL, annotator=None, label=label, **fields
    )
    for position, category in enumerate(categories):
        LabelCategory.objects.create(label=vote, category=category, position=position)
    return vote


def jury_decides(dialogue: Dialogue, decision: str, **fields: Any) -> JuryDecision:
    """The jury's decision on run r1: three valid votes of three, or one when it
    needs review; `fields` change any of it."""
    values = {
        "run_key": "r1",
        "valid_votes": 1 if decision == "needs_review" else 3,
        "total_votes": 3,
    } | fields
    return JuryDecision.objects.create(dialogue=dialogue, decision=decision, **values)
