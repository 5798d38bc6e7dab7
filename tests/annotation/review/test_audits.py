"""Audits (annotation.review.audits.services): the sample, reviewing it, and feedback on votes."""

from collections import Counter

import pytest
from django.core.exceptions import ValidationError

from accounts.models import User
from annotation.models import (
    Audit,
    AuditItem,
    AuditStatus,
    Augmentation,
    Batch,
    Dialogue,
    Feedback,
    Label,
    VoteKind,
)
from annotation.review.audits.services import (
    AuditError,
    create_audit,
    draw_sample,
    finished_voters,
    give_feedback,
    mark_feedback_read,
    quota,
    reopen_item,
    review_item,
    unread_feedback,
)
from tests.factories import (
    BatchFactory,
    DialogueFactory,
    LabelFactory,
    LeadFactory,
    UserFactory,
)

# --- the sample (pure) ----------------------------------------------------------------


def _voters(n: int, people: tuple[int, ...] = (1, 2, 3)) -> dict[int, list[int]]:
    return {d: list(people) for d in range(100, 100 + n)}


@pytest.mark.parametrize(
    ("rate", "n", "expected"),
    [(0.15, 100, 15), (0.15, 20, 3), (0.15, 4, 1), (0.15, 0, 0), (1.0, 7, 7)],
)
def test_quota_rounds_up_but_not_past_float_noise(rate: float, n: int, expected: int):
    assert quota(rate, n) == expected


def test_a_plain_sample_draws_the_rate_of_the_dialogues_without_repeats():
    voters = _voters(200)

    sample = draw_sample(voters, rate=0.15, per_annotator=False, seed=42)

    assert len(sample) == 30
    assert len(set(sample)) == 30
    assert set(sample) <= set(voters)


def test_the_same_seed_draws_the_same_sample_whatever_the_input_order():
    voters = _voters(80)
    backwards = dict(reversed(list(voters.items())))

    first = draw_sample(voters, rate=0.25, per_annotator=False, seed=7)
    again = draw_sample(backwards, rate=0.25, per_annotator=False, seed=7)
    other = draw_sample(voters, rate=0.25, per_annotator=False, seed=8)

    assert first == again
    assert other != first
    assert len(other) == len(first) == 20


def test_per_annotator_covers_each_annotators_share_and_repeats_no_dialogue():
    # given a busy annotator (1) on 60 dialogues and a rare one (9) on 7 of them,
    # plus 2 and 3 who split the rest
    voters: dict[int, list[int]] = {}
    for d in range(60):
        voters[d] = [1, 2 if d % 2 else 3]
    for d in range(7):
        voters[d * 8] = [1, 9]
    theirs = Counter(a for people in voters.values() for a in people)
    assert theirs == {1: 60, 2: 30, 3: 23, 9: 7}

    # when 10% is drawn per annotator, with several seeds
    for seed in range(20):
        sample = draw_sample(voters, rate=0.10, per_annotator=True, seed=seed)

        # then nothing repeats, and each annotator has at least their share in it
        assert len(sample) == len(set(sample))
        covered = Counter(a for d in sample for a in voters[d])
        assert covered[1] >= 6
        assert covered[2] >= 3
        assert covered[3] >= 3
        assert covered[9] >= 1
        # and dialogues drawn for one count for the others: no more than the sum
        assert len(sample) <= 6 + 3 + 3 + 1
        assert sample == draw_sample(voters, rate=0.10, per_annotator=True, seed=seed)


def test_per_annotator_reaches_the_rare_annotator_a_plain_sample_can_miss():
    # given 1 voted on 200 dialogues, 9 on only two of them
    voters = {d: [1] for d in range(200)}
    voters[5] = [1, 9]
    voters[150] = [1, 9]

    # when both kinds of sample are drawn with the same seeds
    plain_misses = sum(
        not {5, 150} & set(draw_sample(voters, rate=0.05, per_annotator=False, seed=s))
        for s in range(30)
    )
    stratified_misses = sum(
        not {5, 150} & set(draw_sample(voters, rate=0.05, per_annotator=True, seed=s))
        for s in range(30)
    )

    # then the plain sample often leaves 9 out; the stratified one never does
    assert plain_misses > 20
    assert stratified_misses == 0


# --- the batch's finished dialogues and the audit ------------------------------------


def _vote(dialogue: Dialogue, who: User, label: str = "safe") -> Label:
    return LabelFactory(dialogue=dialogue, annotator=who, label=label)


@pytest.fixture
def people(db: None) -> tuple[User, User, User]:
    return (
        UserFactory(username="anna"),
        UserFactory(username="ben"),
        UserFactory(username="cleo"),
    )


@pytest.fixture
def batch(db: None, people: tuple[User, User, User]) -> Batch:
    """Two votes needed: 5 finished dialogues (f-0..f-4), 3 with one vote, 1 gold
    with two, a refusal, and a judge's vote on a half-done one."""
    anna, ben, cleo = people
    batch = BatchFactory(name="audited", labels_required=2)
    for i in range(5):
        d = DialogueFactory(batch=batch, external_id=f"f-{i}")
        _vote(d, anna)
        _vote(d, ben if i % 2 else cleo)
    for i in range(3):
        half = DialogueFactory(batch=batch, external_id=f"h-{i}")
        _vote(half, anna)
    LabelFactory(
        dialogue=half, kind=VoteKind.MODEL, annotator=None, judge="j1", label="unsafe"
    )
    gold = DialogueFactory(batch=batch, external_id="g-0", is_gold=True)
    _vote(gold, anna)
    _vote(gold, ben)
    DialogueFactory(batch=batch, external_id="f-0", augmentation=Augmentation.REFUSAL)
    return batch


def _external_ids(audit: Audit) -> list[str]:
    return list(
        audit.items.order_by("position").values_list("dialogue__external_id", flat=True)
    )


def test_only_dialogues_with_every_vote_are_finished_and_gold_is_left_out(batch):
    finished = finished_voters(batch)

    names = Dialogue.objects.in_bulk(list(finished))
    assert sorted(names[d].external_id for d in finished) == [
        f"f-{i}" for i in range(5)
    ]
    assert all(len(people) == 2 for people in finished.values())


def test_an_audit_at_100_percent_holds_exactly_the_finished_dialogues(batch, lead):
    audit = create_audit(batch=batch, rate=1.0, by=lead)

    assert sorted(_external_ids(audit)) == [f"f-{i}" for i in range(5)]
    assert list(
        audit.items.values_list("position", flat=True).order_by("position")
    ) == [
        1,
        2,
        3,
        4,
        5,
    ]
    assert (audit.population, audit.status, audit.created_by) == (5, "open", lead)


def test_an_audit_draws_its_rate_and_the_same_seed_draws_it_again(batch, lead):
    first = create_audit(batch=batch, rate=0.4, seed=1234, by=lead)
    again = create_audit(batch=batch, rate=0.4, seed=1234, by=lead)

    assert len(_external_ids(first)) == 2  # 40% of 5
    assert _external_ids(again) == _external_ids(first)
    assert first.seed == again.seed == 1234


def test_an_audit_without_a_seed_stores_the_one_it_drew_with(batch, lead):
    audit = create_audit(batch=batch, rate=0.6, by=lead)

    redrawn = draw_sample(
        finished_voters(batch), rate=0.6, per_annotator=False, seed=audit.seed
    )
    assert (
        list(audit.items.order_by("position").values_list("dialogue_id", flat=True))
        == redrawn
    )


def test_a_per_annotator_audit_covers_everyone_who_finished_work(batch, lead):
    audit = create_audit(batch=batch, rate=0.15, per_annotator=True, seed=3, by=lead)

    # anna voted on all 5 finished, ben on 2, cleo on 3: one each is enough
    voters = set(
        Label.objects.human()
        .filter(dialogue__audit_items__audit=audit)
        .values_list("annotator__username", flat=True)
    )
    assert voters == {"anna", "ben", "cleo"}
    assert audit.per_annotator is True
    assert 2 <= audit.items.count() <= 3


def test_no_finished_dialogue_means_no_audit(lead):
    batch = BatchFactory(name="fresh")
    DialogueFactory(batch=batch)

    with pytest.raises(AuditError, match="no finished dialogue yet"):
        create_audit(batch=batch, by=lead)

    assert Audit.objects.count() == 0


@pytest.mark.parametrize(
    ("rate", "seed"), [(0.0, None), (1.5, None), (-0.1, None), (0.5, -1)]
)
def test_a_rate_or_seed_out_of_range_is_refused(batch, lead, rate, seed):
    with pytest.raises(ValidationError):
        create_audit(batch=batch, rate=rate, seed=seed, by=lead)

    assert Audit.objects.count() == 0
    assert AuditItem.objects.count() == 0


# --- reviewing -------------------------------------------------------------------------


def test_the_audit_is_done_when_its_last_item_is_reviewed_and_open_if_reopened(
    batch, lead
):
    audit = create_audit(batch=batch, rate=0.4, seed=1, by=lead)
    first, second = audit.items.order_by("position")

    review_item(item=first, by=lead)
    review_item(item=first, by=LeadFactory(username="other"))  # the first is kept
    audit.refresh_from_db()
    assert audit.status == AuditStatus.OPEN
    first.refresh_from_db()
    assert first.reviewed_by == lead

    review_item(item=second, by=lead)
    audit.refresh_from_db()
    assert audit.status == AuditStatus.DONE

    reopen_item(item=first)
    audit.refresh_from_db()
    first.refresh_from_db()
    assert audit.status == AuditStatus.OPEN
    assert (first.reviewed_at, first.reviewed_by) == (None, None)


# --- feedback --------------------------------------------------------------------------


def _item_with_votes(batch: Batch, lead: User) -> AuditItem:
    audit = create_audit(batch=batch, rate=1.0, seed=5, by=lead)
    return audit.items.select_related("dialogue").get(dialogue__external_id="f-1")


def test_feedback_on_a_vote_reaches_its_annotator_unread(batch, people, lead):
    anna, ben, _ = people
    item = _item_with_votes(batch, lead)
    vote = Label.objects.get(dialogue=item.dialogue, annotator=ben)

    feedback = give_feedback(
        item=item,
        label=vote,
        verdict="disagree",
        text="  The prompt asks for a plan.  ",
        guideline_ref=" §2.3 Violence vs. Criminal Planning ",
        by=lead,
    )

    stored = Feedback.objects.get()
    assert stored.pk == feedback.pk
    assert (stored.annotator, stored.author, stored.verdict) == (ben, lead, "disagree")
    assert stored.text == "The prompt asks for a plan."
    assert stored.guideline_ref == "§2.3 Violence vs. Criminal Planning"
    assert stored.read_at is None
    assert (unread_feedback(ben), unread_feedback(anna)) == (1, 0)


def test_feedback_given_again_replaces_the_first_and_is_unread_again_if_changed(
    batch, people, lead
):
    anna, _, _ = people
    item = _item_with_votes(batch, lead)
    vote = Label.objects.get(dialogue=item.dialogue, annotator=anna)
    give_feedback(item=item, label=vote, verdict="agree", by=lead)
    assert mark_feedback_read(annotator=anna) == 1

    give_feedback(item=item, label=vote, verdict="agree", by=lead)  # no change
    assert unread_feedback(anna) == 0
    give_feedback(item=item, label=vote, verdict="disagree", text="Look again", by=lead)

    stored = Feedback.objects.get()
    assert (stored.verdict, stored.text, stored.read_at) == (
        "disagree",
        "Look again",
        None,
    )
    assert unread_feedback(anna) == 1


def test_feedback_on_a_judges_vote_has_no_annotator(batch, lead):
    audit = create_audit(batch=batch, rate=1.0, by=lead)
    half = Dialogue.objects.get(batch=batch, external_id="h-2")
    item = AuditItem.objects.create(audit=audit, dialogue=half, position=99)
    judge_vote = Label.objects.get(kind=VoteKind.MODEL)

    feedback = give_feedback(item=item, label=judge_vote, verdict="agree", by=lead)

    assert feedback.annotator is None


def test_feedback_on_a_vote_of_another_dialogue_or_a_bad_verdict_is_refused(
    batch, people, lead
):
    anna, _, _ = people
    item = _item_with_votes(batch, lead)
    elsewhere = Label.objects.get(dialogue__external_id="f-2", annotator=anna)
    own = Label.objects.get(dialogue=item.dialogue, annotator=anna)

    with pytest.raises(AuditError, match="not on this dialogue"):
        give_feedback(item=item, label=elsewhere, verdict="agree", by=lead)
    with pytest.raises(ValidationError):
        give_feedback(item=item, label=own, verdict="maybe", by=lead)
    with pytest.raises(ValidationError):
        give_feedback(
            item=item, label=own, verdict="agree", guideline_ref="§" * 201, by=lead
        )

    assert Feedback.objects.count() == 0


def test_marking_read_touches_only_ones_own_feedback(batch, people, lead):
    anna, ben, _ = people
    item = _item_with_votes(batch, lead)
    for who in (anna, ben):
        vote = Label.objects.get(dialogue=item.dialogue, annotator=who)
        give_feedback(item=item, label=vote, verdict="agree", by=lead)
    bens = Feedback.objects.get(annotator=ben)

    assert mark_feedback_read(annotator=anna, ids=[bens.pk]) == 0
    assert mark_feedback_read(annotator=anna) == 1

    assert unread_feedback(ben) == 1
    assert Feedback.objects.get(annotator=anna).read_at is not None
