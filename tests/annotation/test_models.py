"""The database itself refuses what would corrupt labels or dialogues."""

import pytest
from django.db import IntegrityError, transaction

from annotation.models import Augmentation, Batch, Dialogue, Label, VoteKind
from tests.factories import (
    AssignmentFactory,
    BatchFactory,
    DialogueFactory,
    LabelFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db


def refused(make) -> bool:
    try:
        with transaction.atomic():
            make()
    except IntegrityError:
        return True
    return False


def test_one_human_label_per_dialogue_and_annotator():
    # given a vote by anna
    vote = LabelFactory()

    # when a second human vote by anna on the same dialogue is written
    # then the database refuses it and the first vote is unchanged
    assert refused(
        lambda: Label.objects.create(
            dialogue=vote.dialogue,
            annotator=vote.annotator,
            kind=VoteKind.HUMAN,
            label="unsafe",
        )
    )
    assert list(Label.objects.values_list("label", flat=True)) == ["safe"]
    # while another annotator may vote on it
    LabelFactory(dialogue=vote.dialogue, label="unsafe")
    assert vote.dialogue.labels.count() == 2


def test_a_human_vote_needs_an_annotator_and_a_known_value():
    dialogue = DialogueFactory()
    assert refused(
        lambda: Label.objects.create(
            dialogue=dialogue, kind=VoteKind.HUMAN, label="safe"
        )
    )
    assert refused(lambda: LabelFactory(dialogue=dialogue, label="probably-fine"))
    assert refused(
        lambda: LabelFactory(dialogue=dialogue, label="safe", response_label="meh")
    )
    assert Label.objects.count() == 0


def test_model_votes_are_unique_per_run_judge_and_dialogue():
    dialogue = DialogueFactory()

    def vote(run: str, judge: str, **extra):
        return Label.objects.create(
            dialogue=dialogue, kind=VoteKind.MODEL, judge=judge, run_key=run, **extra
        )

    vote("run-1", "gemma", label="unsafe")
    vote("run-1", "nemo", valid=False, raw_output="I cannot answer")
    vote("run-2", "gemma", label="safe")
    # a redelivered task writing the same vote again is refused
    assert refused(lambda: vote("run-1", "gemma", label="safe"))
    # a model vote must name its judge; a valid one must carry a label
    assert refused(lambda: vote("run-3", "", label="safe"))
    assert refused(lambda: vote("run-3", "mixtral", valid=True))
    assert Label.objects.filter(kind=VoteKind.MODEL).count() == 3


def test_one_reference_label_per_dialogue():
    dialogue = DialogueFactory()
    Label.objects.create(dialogue=dialogue, kind=VoteKind.REFERENCE, label="unsafe")
    assert refused(
        lambda: Label.objects.create(
            dialogue=dialogue, kind=VoteKind.REFERENCE, label="safe"
        )
    )


def test_dialogues_are_unique_per_batch_by_content_and_by_original_id():
    first = DialogueFactory(prompt="same text", response=None, external_id="x1")
    batch = first.batch
    # the same turns again in the batch, under another id
    assert refused(
        lambda: DialogueFactory(
            batch=batch, prompt="same text", response=None, external_id="x2"
        )
    )
    # another text under the same id
    assert refused(
        lambda: DialogueFactory(batch=batch, prompt="other", external_id="x1")
    )
    # a refusal for the same prompt may reuse the id (Aegis 2.0 does)
    DialogueFactory(
        batch=batch,
        prompt="same text",
        response="I can't help with that.",
        external_id="x1",
        augmentation=Augmentation.REFUSAL,
    )
    # and the same text may live in another batch
    DialogueFactory(prompt="same text", response=None, external_id="x1")
    assert Dialogue.objects.filter(external_id="x1").count() == 3


def test_a_batch_requires_at_least_one_vote_per_dialogue():
    assert refused(lambda: BatchFactory(labels_required=0))
    assert not Batch.objects.exists()


def test_with_counts_counts_dialogues_labels_and_annotators_without_join_products():
    # given a batch with 3 dialogues, 2 votes each, and 4 assigned annotators
    batch = BatchFactory()
    for _ in range(3):
        dialogue = DialogueFactory(batch=batch)
        LabelFactory.create_batch(2, dialogue=dialogue)
    AssignmentFactory.create_batch(4, batch=batch)
    BatchFactory()  # an empty batch counts zeros

    # when counted
    rows = {
        b.name: (b.n_dialogues, b.n_labels, b.n_annotators)
        for b in Batch.objects.with_counts()
    }

    # then
    assert rows[batch.name] == (3, 6, 4)
    assert sorted(rows.values())[0] == (0, 0, 0)
    assert UserFactory._meta.model.objects.count() == 6 + 4
