"""Leads' decisions (annotation.adjudication.services): the queue, adjudicate, reopen, bulk
acceptance, on PostgreSQL."""

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from accounts.models import User
from annotation.adjudication.services import (
    AdjudicationConflict,
    AdjudicationInvalid,
    NotAdjudicated,
    NotALead,
    Queue,
    QueueItem,
    accept_unanimous,
    adjudicate,
    adjudication_queue,
    adjudication_version,
    read_queue,
    reopen,
)
from annotation.final_labels.services import derive_batch
from annotation.models import (
    Adjudication,
    Batch,
    Dialogue,
    FinalLabel,
    Flag,
    Label,
    VoteKind,
)
from tests.annotation.adjudication import data as adjudication_data
from tests.annotation.adjudication.data import add_votes, jury_decides
from tests.factories import (
    BatchFactory,
    DialogueFactory,
    LabelFactory,
    LeadFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db

# (its note becomes the adjudicated label's comment, checked below)
DECISION = adjudication_data.DECISION | {"note": "The prompt asks how to hurt someone."}


def _item(items: list[QueueItem], dialogue: Dialogue) -> QueueItem:
    (found,) = [i for i in items if i.dialogue_id == dialogue.pk]
    return found


@pytest.fixture
def batch() -> Batch:
    return BatchFactory(name="adj")


# --- the queue ----------------------------------------------------------------------


def test_a_tie_is_queued_as_tie_and_split_with_agreement_one_half():
    # given two votes, safe and unsafe, in a batch that asks for two
    batch = BatchFactory(name="pairs", labels_required=2)
    dialogue = DialogueFactory(batch=batch)
    add_votes(dialogue, "safe", "unsafe")
    derive_batch(batch)
    # when
    items = adjudication_queue()
    # then
    assert items == [
        QueueItem(dialogue.pk, "pairs", ["tie", "split"], 0.5, ["Violence"], 2, 2)
    ]


def test_a_split_with_a_majority_is_queued_as_split(batch: Batch):
    # given safe, safe, unsafe: the majority decides, but the humans split
    dialogue = DialogueFactory(batch=batch)
    add_votes(dialogue, "safe", "safe", "unsafe")
    derive_batch(batch)
    # when
    item = _item(adjudication_queue(), dialogue)
    # then
    assert item.reasons == ["split"]
    assert item.agreement == pytest.approx(2 / 3)


def test_needs_caution_splits_only_against_the_other_side_of_the_policy(batch: Batch):
    # given safe, safe, needs_caution under the permissive policy (all safe after it)
    permissive = DialogueFactory(batch=batch)
    add_votes(permissive, "safe", "safe", "needs_caution")
    defensive_batch = BatchFactory(name="def", needs_caution_policy="defensive")
    defensive = DialogueFactory(batch=defensive_batch)
    add_votes(defensive, "safe", "safe", "needs_caution")
    # when
    items = adjudication_queue()
    # then only the defensive batch's dialogue is split
    assert [i.dialogue_id for i in items] == [defensive.pk]
    assert items[0].reasons == ["split"]


def test_humans_against_the_jury_is_a_safe_dialogue_with_an_unsafe_response(
    batch: Batch,
):
    # given a safe dialogue whose response the jury calls unsafe, an unsafe prompt
    # whose response (a refusal) it calls safe, and one it agrees with
    unsafe_vs_safe = DialogueFactory(batch=batch)
    add_votes(unsafe_vs_safe, "unsafe", "unsafe", "unsafe")
    jury_decides(unsafe_vs_safe, "safe")
    safe_vs_unsafe = DialogueFactory(batch=batch)
    add_votes(safe_vs_unsafe, "safe", "safe", "safe")
    jury_decides(safe_vs_unsafe, "unsafe")
    agreeing = DialogueFactory(batch=batch)
    add_votes(agreeing, "unsafe", "unsafe", "unsafe")
    jury_decides(agreeing, "unsafe")
    # when
    items = adjudication_queue()
    # then only the first contradicts: an unsafe prompt may well get a safe answer
    assert [(i.dialogue_id, i.reasons, i.agreement) for i in items] == [
        (safe_vs_unsafe.pk, ["humans_vs_jury"], 1.0),
    ]


def test_human_response_labels_against_the_jury_both_ways():
    # given a batch with human response labels: the jury contradicts each way
    batch = BatchFactory(name="resp", asks_response_label=True)
    said_unsafe = DialogueFactory(batch=batch)
    said_safe = DialogueFactory(batch=batch)
    for _ in range(3):
        LabelFactory(dialogue=said_unsafe, label="unsafe", response_label="unsafe")
        LabelFactory(dialogue=said_safe, label="unsafe", response_label="safe")
    jury_decides(said_unsafe, "safe")
    jury_decides(said_safe, "unsafe")
    # then both are queued
    assert {i.dialogue_id: i.reasons for i in adjudication_queue()} == {
        said_unsafe.pk: ["humans_vs_jury"],
        said_safe.pk: ["humans_vs_jury"],
    }


def test_the_humans_response_labels_meet_the_jury_when_the_batch_asks_for_them():
    # given unsafe prompts whose human response labels are safe, as the jury says
    batch = BatchFactory(name="resp", asks_response_label=True)
    dialogue = DialogueFactory(batch=batch)
    for _ in range(3):
        LabelFactory(dialogue=dialogue, label="needs_caution", response_label="safe")
    jury_decides(dialogue, "safe")
    # then there is nothing to adjudicate
    assert adjudication_queue() == []
    # when one human response label is unsafe, the majority still agrees
    LabelFactory(dialogue=dialogue, label="needs_caution", response_label="unsafe")
    assert adjudication_queue() == []


def test_the_jury_needing_review_is_queued_by_its_latest_decision(batch: Batch):
    # given a dialogue the jury could not decide, then one it decided after all
    undecided = DialogueFactory(batch=batch)
    add_votes(undecided, "unsafe", "unsafe", "unsafe")
    jury_decides(undecided, "needs_review")
    decided_later = DialogueFactory(batch=batch)
    add_votes(decided_later, "unsafe", "unsafe", "unsafe")
    jury_decides(decided_later, "needs_review")
    jury_decides(decided_later, "unsafe", run_key="r2")
    # when
    items = adjudication_queue()
    # then
    assert [(i.dialogue_id, i.reasons) for i in items] == [
        (undecided.pk, ["jury_needs_review"])
    ]


def test_open_flags_are_queued_and_resolved_ones_are_not(batch: Batch):
    # given a flagged dialogue without votes and one whose flag was resolved
    flagged = DialogueFactory(batch=batch)
    Flag.objects.create(dialogue=flagged, annotator=UserFactory(), reason="other")
    resolved = DialogueFactory(batch=batch)
    Flag.objects.create(
        dialogue=resolved,
        annotator=UserFactory(),
        reason="other",
        resolved_at=timezone.now(),
    )
    # when
    items = adjudication_queue()
    # then
    assert items == [QueueItem(flagged.pk, "adj", ["flagged"], None, [], 0, 3)]


def test_unanimous_gold_and_adjudicated_dialogues_are_left_out(batch: Batch):
    # given a unanimous dialogue, a split gold item and a split adjudicated one
    unanimous = DialogueFactory(batch=batch)
    add_votes(unanimous, "safe", "safe", "safe")
    gold = DialogueFactory(batch=batch, is_gold=True)
    add_votes(gold, "safe", "unsafe", "unsafe")
    decided = DialogueFactory(batch=batch, adjudicated_at=timezone.now())
    add_votes(decided, "safe", "unsafe", "unsafe")
    split = DialogueFactory(batch=batch)
    add_votes(split, "safe", "unsafe", "unsafe")
    # then only the undecided split is queued
    assert [i.dialogue_id for i in adjudication_queue()] == [split.pk]


def test_lowest_agreement_first_then_id_and_no_votes_last(batch: Batch):
    # given agreements 3/4, 2/3, 2/3, 1.0 (against the jury) and none (a flag)
    batch.labels_required = 4
    batch.save()
    flagged = DialogueFactory(batch=batch)
    Flag.objects.create(dialogue=flagged, annotator=UserFactory(), reason="other")
    three_quarters = DialogueFactory(batch=batch)
    add_votes(three_quarters, "safe", "safe", "safe", "unsafe")
    jury = DialogueFactory(batch=batch)
    add_votes(jury, "safe", "safe", "safe")
    jury_decides(jury, "unsafe")
    two_thirds_a = DialogueFactory(batch=batch)
    add_votes(two_thirds_a, "unsafe", "unsafe", "safe")
    two_thirds_b = DialogueFactory(batch=batch)
    add_votes(two_thirds_b, "safe", "safe", "unsafe")
    # when (the dialogues with three votes of four are asked for too)
    items = adjudication_queue(include_incomplete=True)
    # then
    assert [i.dialogue_id for i in items] == [
        two_thirds_a.pk,
        two_thirds_b.pk,
        three_quarters.pk,
        jury.pk,
        flagged.pk,
    ]


def test_dialogues_still_waiting_for_votes_are_counted_not_listed(batch: Batch):
    # given a split with all three votes, splits with one and two of three, one of
    # them flagged, and a lone safe vote on a response the jury called unsafe
    complete = DialogueFactory(batch=batch)
    add_votes(complete, "safe", "safe", "unsafe")
    one_of_three = DialogueFactory(batch=batch)
    add_votes(one_of_three, "safe")
    jury_decides(one_of_three, "unsafe")
    two_of_three = DialogueFactory(batch=batch)
    add_votes(two_of_three, "safe", "unsafe")
    flagged = DialogueFactory(batch=batch)
    add_votes(flagged, "safe", "unsafe")
    Flag.objects.create(dialogue=flagged, annotator=UserFactory(), reason="other")
    derive_batch(batch)

    # when the queue is read by default, and widened
    default = read_queue()
    widened = read_queue(include_incomplete=True)

    # then by default only the complete split and the flag (for its flag alone) are
    # listed, and the two others are counted as waiting
    assert [(i.dialogue_id, i.reasons) for i in default.items] == [
        (complete.pk, ["split"]),
        (flagged.pk, ["flagged"]),
    ]
    assert default.waiting == 2
    # and widened, everything is listed with every reason and its vote count
    assert {i.dialogue_id: (i.reasons, i.votes, i.complete) for i in widened.items} == {
        complete.pk: (["split"], 3, True),
        one_of_three.pk: (["humans_vs_jury"], 1, False),
        two_of_three.pk: (["split"], 2, False),
        flagged.pk: (["split", "flagged"], 2, False),
    }
    assert widened.waiting == 0
    # and a reason filter counts only the waiting dialogues with that reason
    assert read_queue(reason="humans_vs_jury") == Queue(items=[], waiting=1)
    assert read_queue(reason="flagged").items[0].dialogue_id == flagged.pk


def test_filters_by_batch_category_and_reason(batch: Batch):
    # given a split in each of two batches, one of them also flagged, and a
    # split whose unsafe vote chose Hate
    split = DialogueFactory(batch=batch)
    add_votes(split, "safe", "safe", "unsafe")
    Flag.objects.create(dialogue=split, annotator=UserFactory(), reason="other")
    other_batch = BatchFactory(name="other")
    elsewhere = DialogueFactory(batch=other_batch)
    add_votes(elsewhere, "safe", "unsafe", "unsafe")
    hate = DialogueFactory(batch=other_batch)
    add_votes(hate, "unsafe", "safe", "safe", category="Hate/Identity Hate")
    derive_batch(batch)
    derive_batch(other_batch)
    # then
    assert [i.dialogue_id for i in adjudication_queue(batch=batch)] == [split.pk]
    # (both agree 2 to 1: by id)
    assert [i.dialogue_id for i in adjudication_queue(category="Violence")] == [
        split.pk,
        elsewhere.pk,
    ]
    assert [
        i.dialogue_id for i in adjudication_queue(category="Hate/Identity Hate")
    ] == [hate.pk]
    assert [i.dialogue_id for i in adjudication_queue(reason="flagged")] == [split.pk]
    assert adjudication_queue(reason="tie") == []
    with pytest.raises(ValueError, match="reason must be one of"):
        adjudication_queue(reason="boring")


def test_the_queue_is_one_query_whatever_its_size(batch: Batch):
    # given many dialogues with every kind of reason
    for k in range(6):
        dialogue = DialogueFactory(batch=batch)
        add_votes(dialogue, "safe", "unsafe", "unsafe")
        jury_decides(dialogue, "needs_review" if k % 2 else "safe")
        Flag.objects.create(dialogue=dialogue, annotator=UserFactory(), reason="other")
    derive_batch(batch)
    # when
    with CaptureQueriesContext(connection) as queries:
        items = adjudication_queue(batch=batch)
    # then
    assert len(items) == 6
    assert len(queries) == 1


# --- adjudicate ---------------------------------------------------------------------


def test_adjudicate_writes_the_label_the_history_and_the_final_label(
    batch: Batch, django_capture_on_commit_callbacks: Any
):
    # given a split dialogue
    dialogue = DialogueFactory(batch=batch)
    add_votes(dialogue, "safe", "safe", "unsafe")
    lead = LeadFactory(username="lena")
    # when
    with django_capture_on_commit_callbacks(execute=True):
        decision = adjudicate(
            dialogue_id=dialogue.pk,
            lead=lead,
            **DECISION | {"categories": ["s1"]},
            guideline_update=True,
            expected_version=0,
        )
    # then the history row, with the categories as the taxonomy spells them
    assert Adjudication.objects.get() == decision
    assert (
        decision.lead,
        decision.prompt_label,
        decision.response_label,
        decision.categories,
        decision.confidence,
        decision.reason,
        decision.guideline_update,
        decision.reopened_at,
    ) == (lead, "unsafe", "safe", ["Violence"], "high", "annotator_error", True, None)
    # the adjudicated label
    label = Label.objects.get(dialogue=dialogue, kind=VoteKind.ADJUDICATED)
    assert (label.annotator, label.label, label.response_label, label.comment) == (
        lead,
        "unsafe",
        "safe",
        "The prompt asks how to hurt someone.",
    )
    assert label.ordered_category_names() == ["Violence"]
    # the dialogue, its final label and the untouched votes
    dialogue.refresh_from_db()
    assert dialogue.adjudicated_at == decision.created_at
    final = FinalLabel.objects.get(dialogue=dialogue)
    assert (
        final.provenance,
        final.prompt_label,
        final.response_label,
        final.prompt_label_source,
        final.response_label_source,
        final.violated_categories,
    ) == ("adjudicated", "unsafe", "safe", "adjudicated", "adjudicated", ["Violence"])
    assert Label.objects.human().filter(dialogue=dialogue).count() == 3
    assert adjudication_version(dialogue.pk) == 1
    assert adjudication_queue() == []


def test_a_second_lead_is_refused_with_the_first_named_and_their_input_returned(
    batch: Batch,
):
    # given a dialogue lena adjudicated
    dialogue = DialogueFactory(batch=batch)
    add_votes(dialogue, "safe", "safe", "unsafe")
    first = adjudicate(
        dialogue_id=dialogue.pk, lead=LeadFactory(username="lena"), **DECISION
    )
    # when omar, who opened it before, decides too
    with pytest.raises(AdjudicationConflict) as refused:
        adjudicate(
            dialogue_id=dialogue.pk,
            lead=LeadFactory(username="omar"),
            **DECISION | {"prompt_label": "safe", "categories": []},
            expected_version=0,
        )
    # then he is told who decided when, and gets his input back
    error = refused.value
    assert str(error) == (
        f"Dialogue {dialogue.pk} was already adjudicated by lena at "
        f"{first.created_at:%Y-%m-%d %H:%M:%S %Z}; reopen it to change."
    )
    assert error.current == first
    assert (error.submitted.prompt_label, error.submitted.categories) == ("safe", ())
    assert error.submitted.note == DECISION["note"]
    # and nothing of his was written
    assert list(Adjudication.objects.all()) == [first]
    assert Label.objects.get(kind=VoteKind.ADJUDICATED).label == "unsafe"


def test_a_decision_reopened_since_the_page_was_read_is_a_conflict(batch: Batch):
    # given a page read at version 0, then a decision made and reopened
    dialogue = DialogueFactory(batch=batch)
    lena = LeadFactory(username="lena")
    adjudicate(dialogue_id=dialogue.pk, lead=lena, **DECISION)
    reopen(dialogue_id=dialogue.pk, lead=lena)
    # when
    with pytest.raises(AdjudicationConflict, match="decided and reopened by lena"):
        adjudicate(
            dialogue_id=dialogue.pk,
            lead=LeadFactory(username="omar"),
            **DECISION,
            expected_version=0,
        )
    # then
    assert Adjudication.objects.count() == 1
    assert not Label.objects.filter(kind=VoteKind.ADJUDICATED).exists()


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        ({"categories": []}, "categories", "at least one is required when unsafe"),
        ({"categories": ["Nope"]}, "categories", "unknown category 'Nope'"),
        (
            {"prompt_label": "safe", "categories": ["Violence"]},
            "categories",
            "must be empty when the label is safe",
        ),
        ({"prompt_label": "fine"}, "prompt_label", "must be one of"),
        ({"response_label": "maybe"}, "response_label", "must be one of"),
        ({"confidence": "total"}, "confidence", "must be one of low, medium, high"),
        ({"reason": "unanimous_accepted"}, "reason", "must be one of ambiguous"),
    ],
)
def test_an_invalid_decision_names_the_field_and_writes_nothing(
    batch: Batch, change: dict[str, Any], field: str, message: str
):
    dialogue = DialogueFactory(batch=batch)
    with pytest.raises(AdjudicationInvalid) as refused:
        adjudicate(dialogue_id=dialogue.pk, lead=LeadFactory(), **DECISION | change)
    assert list(refused.value.by_field()) == [field]
    assert message in refused.value.by_field()[field][0]
    assert not Adjudication.objects.exists()
    assert not Label.objects.exists()
    dialogue.refresh_from_db()
    assert dialogue.adjudicated_at is None


def test_a_response_label_needs_a_response(batch: Batch):
    dialogue = DialogueFactory(batch=batch, response=None)
    with pytest.raises(AdjudicationInvalid) as refused:
        adjudicate(dialogue_id=dialogue.pk, lead=LeadFactory(), **DECISION)
    assert refused.value.by_field() == {
        "response_label": ["the dialogue has no response"]
    }


def test_by_the_rules_without_a_jury_decision_is_refused_saying_why(batch: Batch):
    # given unsafe, unsafe, safe on a dialogue with a response the jury never saw
    # (demo-002 in the demo: its decision "by the rules" left it unresolved)
    dialogue = DialogueFactory(batch=batch)
    add_votes(dialogue, "unsafe", "unsafe", "safe")
    derive_batch(batch)
    # when a lead decides the prompt unsafe and leaves the response to the rules
    with pytest.raises(AdjudicationInvalid) as refused:
        adjudicate(
            dialogue_id=dialogue.pk,
            lead=LeadFactory(),
            **DECISION | {"response_label": None},
        )
    # then the response field says why, and nothing is written
    assert refused.value.by_field() == {
        "response_label": [
            "by the rules the response cannot be decided (response needs the jury: "
            "no decision): choose safe or unsafe for it"
        ]
    }
    assert not Adjudication.objects.exists()
    assert not Label.objects.filter(kind=VoteKind.ADJUDICATED).exists()
    dialogue.refresh_from_db()
    assert dialogue.adjudicated_at is None


@pytest.mark.parametrize(
    ("prompt_label", "jury", "response", "source"),
    [
        ("unsafe", "unsafe", "unsafe", "llm_jury"),  # the jury decides an unsafe one
        ("safe", None, "safe", "human"),  # a safe prompt makes the response safe
    ],
)
def test_by_the_rules_resolves_when_the_rules_can(
    batch: Batch,
    django_capture_on_commit_callbacks,
    prompt_label: str,
    jury: str | None,
    response: str,
    source: str,
):
    # given a split dialogue, with or without the jury's decision
    dialogue = DialogueFactory(batch=batch)
    add_votes(dialogue, "unsafe", "unsafe", "safe")
    if jury:
        jury_decides(dialogue, jury, categories=["Violence"])
    # when the lead leaves the response to the rules
    with django_capture_on_commit_callbacks(execute=True):
        adjudicate(
            dialogue_id=dialogue.pk,
            lead=LeadFactory(),
            **DECISION
            | {
                "prompt_label": prompt_label,
                "response_label": None,
                "categories": ["Violence"] if prompt_label == "unsafe" else [],
            },
        )
    # then the dialogue is resolved by the decision, the response by the rules
    final = FinalLabel.objects.get(dialogue=dialogue)
    assert (final.provenance, final.response_label, final.response_label_source) == (
        "adjudicated",
        response,
        source,
    )


def test_by_the_rules_follows_the_human_response_labels_when_the_batch_has_them(
    django_capture_on_commit_callbacks,
):
    # given a batch that asks for response labels: two say the response is unsafe
    batch = BatchFactory(name="resp", asks_response_label=True)
    dialogue = DialogueFactory(batch=batch)
    for label, response_label in [
        ("unsafe", "unsafe"),
        ("unsafe", "unsafe"),
        ("safe", "safe"),
    ]:
        LabelFactory(dialogue=dialogue, label=label, response_label=response_label)
    # when a lead decides only the prompt
    with django_capture_on_commit_callbacks(execute=True):
        adjudicate(
            dialogue_id=dialogue.pk,
            lead=LeadFactory(),
            **DECISION
            | {
                "categories": [],
                "prompt_label": "needs_caution",
                "response_label": None,
            },
        )
    # then the response is the humans' majority, not the jury's (which never ran)
    final = FinalLabel.objects.get(dialogue=dialogue)
    assert (final.provenance, final.response_label, final.response_label_source) == (
        "adjudicated",
        "unsafe",
        "human",
    )


def test_annotators_cannot_adjudicate(batch: Batch):
    dialogue = DialogueFactory(batch=batch)
    with pytest.raises(NotALead):
        adjudicate(dialogue_id=dialogue.pk, lead=UserFactory(), **DECISION)
    assert not Adjudication.objects.exists()


# --- the race, with real connections ------------------------------------------------


def _in_thread(
    work: Callable[[], object], errors: list[BaseException]
) -> threading.Thread:
    def run() -> None:
        try:
            work()
        except BaseException as error:
            errors.append(error)
        finally:
            connection.close()

    return threading.Thread(target=run)


def _wait_for_lock_waiters(n: int, timeout: float = 10.0) -> None:
    """Block until `n` other sessions wait on a row lock."""
    deadline = time.monotonic() + timeout
    with connection.cursor() as cursor:
        while time.monotonic() < deadline:
            cursor.execute("SELECT pg_stat_clear_snapshot()")
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE datname = current_database() AND wait_event_type = 'Lock' "
                "AND pid <> pg_backend_pid()"
            )
            if cursor.fetchone()[0] >= n:
                return
            time.sleep(0.02)
    raise AssertionError(f"fewer than {n} sessions ever waited on a lock")


def test_two_leads_at_once_exactly_one_decides(transactional_db: None):
    # given a split dialogue and two leads who submit while its row is held
    batch = BatchFactory(name="race")
    dialogue = DialogueFactory(batch=batch)
    add_votes(dialogue, "safe", "safe", "unsafe")
    leads = [LeadFactory(username="lena"), LeadFactory(username="omar")]
    errors: list[BaseException] = []
    done: list[Adjudication] = []

    def decide(lead: User) -> None:
        done.append(adjudicate(dialogue_id=dialogue.pk, lead=lead, **DECISION))

    threads = [_in_thread(lambda lead=lead: decide(lead), errors) for lead in leads]
    # when both wait on the dialogue's lock, then it is let go
    with transaction.atomic():
        Dialogue.objects.select_for_update().get(pk=dialogue.pk)
        for thread in threads:
            thread.start()
        _wait_for_lock_waiters(2)
    for thread in threads:
        thread.join(timeout=30)
    # then one decided and the other was told who did
    assert len(done) == 1
    assert len(errors) == 1
    assert isinstance(errors[0], AdjudicationConflict)
    winner = done[0].lead.username
    assert f"already adjudicated by {winner} at" in str(errors[0])
    assert Adjudication.objects.count() == 1
    assert Label.objects.filter(kind=VoteKind.ADJUDICATED).count() == 1
    final = FinalLabel.objects.get(dialogue=dialogue)  # recomputed after the commit
    assert final.provenance == "adjudicated"


# --- reopen -------------------------------------------------------------------------


def test_reopen_keeps_the_history_and_theadd_votes(
    batch: Batch, django_capture_on_commit_callbacks: Any
):
    # given an adjudicated split dialogue
    dialogue = DialogueFactory(batch=batch)
    add_votes(dialogue, "safe", "safe", "unsafe")
    lena, omar = LeadFactory(username="lena"), LeadFactory(username="omar")
    with django_capture_on_commit_callbacks(execute=True):
        first = adjudicate(dialogue_id=dialogue.pk, lead=lena, **DECISION)
    # when omar reopens it
    with django_capture_on_commit_callbacks(execute=True):
        reopened = reopen(dialogue_id=dialogue.pk, lead=omar)
    # then the decision is kept, marked, and the votes decide again
    assert reopened.pk == first.pk
    first.refresh_from_db()
    assert (first.reopened_by, first.reopened_at is not None) == (omar, True)
    assert not Label.objects.filter(kind=VoteKind.ADJUDICATED).exists()
    assert Label.objects.human().filter(dialogue=dialogue).count() == 3
    dialogue.refresh_from_db()
    assert dialogue.adjudicated_at is None
    final = FinalLabel.objects.get(dialogue=dialogue)
    assert (final.provenance, final.prompt_label) == ("majority", "safe")
    assert [i.dialogue_id for i in adjudication_queue()] == [dialogue.pk]
    # and a new decision adds to the history
    with django_capture_on_commit_callbacks(execute=True):
        adjudicate(
            dialogue_id=dialogue.pk,
            lead=omar,
            **DECISION | {"prompt_label": "safe", "categories": []},
            expected_version=1,
        )
    assert [
        (a.lead.username, a.prompt_label, a.is_current)
        for a in Adjudication.objects.order_by("id")
    ] == [("lena", "unsafe", False), ("omar", "safe", True)]
    assert FinalLabel.objects.get(dialogue=dialogue).provenance == "adjudicated"


def test_reopen_needs_a_decision(batch: Batch):
    dialogue = DialogueFactory(batch=batch)
    with pytest.raises(NotAdjudicated):
        reopen(dialogue_id=dialogue.pk, lead=LeadFactory())


# --- accept_unanimous ---------------------------------------------------------------


def _unanimous(batch: Batch, n: int) -> list[Dialogue]:
    dialogues = DialogueFactory.create_batch(n, batch=batch)
    for k, dialogue in enumerate(dialogues):
        add_votes(dialogue, *(["safe"] * 3 if k % 2 else ["unsafe"] * 3))
        if not k % 2:
            # unanimous humans, but the jury decides: llm_jury
            jury_decides(dialogue, "safe")
    return dialogues


def test_accept_unanimous_adjudicates_the_unanimous_with_their_derived_labels(
    batch: Batch, django_capture_on_commit_callbacks: Any
):
    # given unanimous safe dialogues, unanimous unsafe ones the jury decided, a
    # split one, and a unanimous one already adjudicated
    _unanimous(batch, 4)
    split = DialogueFactory(batch=batch)
    add_votes(split, "safe", "safe", "unsafe")
    prompt_only = DialogueFactory(batch=batch, response=None)
    add_votes(prompt_only, "unsafe", "unsafe", "unsafe")
    decided = DialogueFactory(batch=batch)
    add_votes(decided, "safe", "safe", "safe")
    derive_batch(batch)
    adjudicate(
        dialogue_id=decided.pk,
        lead=LeadFactory(),
        **DECISION | {"prompt_label": "safe", "categories": []},
    )
    lead = LeadFactory(username="lena")
    unanimous_ids = sorted(
        FinalLabel.objects.filter(provenance="unanimous")
        .exclude(dialogue=decided)
        .values_list("dialogue_id", flat=True)
    )
    # when
    with django_capture_on_commit_callbacks(execute=True):
        accepted = accept_unanimous(batch=batch, lead=lead)
    # then the two safe ones and the prompt-only unsafe one are accepted
    assert accepted == 3 == len(unanimous_ids)
    rows = Adjudication.objects.filter(lead=lead).order_by("dialogue_id")
    assert [a.dialogue_id for a in rows] == unanimous_ids
    assert {(a.reason, a.confidence) for a in rows} == {("unanimous_accepted", "high")}
    mine = rows.get(dialogue=prompt_only)
    assert (mine.prompt_label, mine.response_label, mine.categories) == (
        "unsafe",
        None,
        ["Violence"],
    )
    label = Label.objects.get(dialogue=prompt_only, kind=VoteKind.ADJUDICATED)
    assert (label.annotator, label.label) == (lead, "unsafe")
    assert label.ordered_category_names() == ["Violence"]
    assert set(
        FinalLabel.objects.filter(dialogue_id__in=unanimous_ids).values_list(
            "provenance", flat=True
        )
    ) == {"adjudicated"}
    assert FinalLabel.objects.get(dialogue=split).provenance == "majority"
    assert (
        Dialogue.objects.filter(batch=batch, adjudicated_at__isnull=False).count() == 4
    )
    # and a second run finds nothing left
    assert accept_unanimous(batch=batch, lead=lead) == 0


def test_accept_unanimous_queries_do_not_grow_with_the_batch(
    django_capture_on_commit_callbacks: Any,
):
    lead = LeadFactory()

    def queries_for(n: int) -> int:
        batch = BatchFactory()
        _unanimous(batch, n)
        derive_batch(batch)
        with CaptureQueriesContext(connection) as queries:
            assert accept_unanimous(batch=batch, lead=lead) == n // 2
        return len(queries)

    assert queries_for(4) == queries_for(20)


def test_accept_unanimous_counts_a_vote_whose_recomputation_is_still_queued(
    batch: Batch, django_capture_on_commit_callbacks: Any
):
    # given a unanimous safe dialogue, derived, then a fourth vote that splits it
    # (its recomputation queued, not run)
    (dialogue,) = DialogueFactory.create_batch(1, batch=batch)
    add_votes(dialogue, "safe", "safe", "safe")
    derive_batch(batch)
    batch.refresh_from_db()
    add_votes(dialogue, "unsafe")
    # when the lead accepts the unanimous dialogues
    with django_capture_on_commit_callbacks(execute=True):
        accepted = accept_unanimous(batch=batch, lead=LeadFactory())
    # then the dialogue is no longer unanimous, so nothing is accepted
    assert accepted == 0
    assert not Adjudication.objects.exists()
    assert FinalLabel.objects.get(dialogue=dialogue).provenance == "majority"


def test_a_decision_resolves_the_open_flags_of_its_dialogue(batch: Batch):
    # given a tied dialogue with an open flag and a flag resolved earlier
    dialogue = DialogueFactory(batch=batch, response=None)
    add_votes(dialogue, "safe", "unsafe")
    flagger = UserFactory(username="flagger")
    open_flag = Flag.objects.create(
        dialogue=dialogue, annotator=flagger, reason="other"
    )
    earlier = timezone.now() - timezone.timedelta(days=1)
    old_lead = LeadFactory(username="old-lead")
    resolved = Flag.objects.create(
        dialogue=dialogue,
        annotator=UserFactory(username="flagger-2"),
        reason="other",
        resolved_at=earlier,
        resolved_by=old_lead,
    )
    lead = LeadFactory(username="decider")
    # when a lead decides
    adjudicate(
        dialogue_id=dialogue.pk, lead=lead, **DECISION | {"response_label": None}
    )
    # then the open flag is resolved by that lead; the old one keeps its resolution
    open_flag.refresh_from_db()
    resolved.refresh_from_db()
    assert open_flag.resolved_by == lead
    assert open_flag.resolved_at is not None
    assert (resolved.resolved_by, resolved.resolved_at) == (old_lead, earlier)
