"""The jury writes votes and decisions through annotation, idempotently."""

import pytest

from annotation.facade import ModelVoteIn, record_jury_decision, record_model_votes
from annotation.models import JuryDecision, Label, LabelCategory
from tests.factories import DialogueFactory

pytestmark = pytest.mark.django_db


def test_votes_are_written_once_with_their_categories():
    # given two dialogues and two judges' votes, one invalid
    a, b = DialogueFactory(), DialogueFactory()
    votes = [
        ModelVoteIn(
            a.pk, "gemma", True, "unsafe", ("Violence", "Threat"), raw_output="{..}"
        ),
        ModelVoteIn(b.pk, "gemma", True, "safe", (), latency_ms=120, prompt_tokens=900),
        ModelVoteIn(
            a.pk,
            "nemo",
            False,
            None,
            (),
            raw_output="I think",
            details={"error": "no verdict found"},
        ),
    ]

    # when they are recorded twice (a redelivered task)
    first = record_model_votes(run_key="r1", votes=votes)
    second = record_model_votes(run_key="r1", votes=votes)

    # then three labels exist, once, with the categories in order
    assert (first, second) == (3, 0)
    assert Label.objects.filter(kind="model").count() == 3
    gemma_a = Label.objects.get(dialogue=a, judge="gemma")
    assert [
        lc.category.name for lc in gemma_a.label_categories.order_by("position")
    ] == [
        "Violence",
        "Threat",
    ]
    invalid = Label.objects.get(dialogue=a, judge="nemo")
    assert (invalid.valid, invalid.label, invalid.raw_output) == (
        False,
        None,
        "I think",
    )
    assert invalid.details == {"error": "no verdict found"}
    assert LabelCategory.objects.count() == 2
    # and another run keeps its own votes
    assert record_model_votes(run_key="r2", votes=votes[:1]) == 1


def test_a_decision_is_one_row_per_dialogue_and_run():
    dialogue = DialogueFactory()
    for _ in range(2):
        record_jury_decision(
            dialogue_id=dialogue.pk,
            run_key="r1",
            decision="unsafe",
            categories=["Violence"],
            valid_votes=3,
            total_votes=3,
            agreement=1.0,
            reason="3 of 3 valid votes unsafe",
        )
    decision = JuryDecision.objects.get()
    assert (decision.decision, decision.categories, decision.valid_votes) == (
        "unsafe",
        ["Violence"],
        3,
    )
