"""The annotation queue's rules (annotation.labelling.queue), one rule a test, on PostgreSQL."""

from datetime import timedelta

import pytest
from django.db import connection
from django.db.models import Count
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from accounts.models import User
from accounts.refusals import NotFound
from annotation.labelling.queue import (
    MAX_TIME_SPENT_MS,
    AlreadyLabelled,
    ConsentRequired,
    NotAssigned,
    NotEditable,
    NothingToDo,
    NotReserved,
    VoteIn,
    VoteInvalid,
    acknowledge_warning,
    edit_label,
    flag_dialogue,
    recount_claimed,
    release_expired,
    reserve_next,
    skip_dialogue,
    submit_label,
)
from annotation.models import (
    Batch,
    BatchStatus,
    Dialogue,
    Flag,
    Label,
    LabelCategory,
    LabelEdit,
    Reservation,
    ReservationState,
    Skip,
    VoteKind,
)
from tests.factories import (
    AssignmentFactory,
    BatchFactory,
    DialogueFactory,
    LabelFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db

SAFE = VoteIn(label="safe")
VIOLENT = VoteIn(label="unsafe", categories=("Violence",))


def _batch(n: int = 3, **kw: object) -> Batch:
    batch = BatchFactory(**kw)
    DialogueFactory.create_batch(n, batch=batch)
    return batch


def _annotator(username: str, *batches: Batch, **kw: object) -> User:
    """An annotator who acknowledged the content warning, assigned to `batches`."""
    kw.setdefault("content_warning_acknowledged_at", timezone.now())
    user = UserFactory(username=username, **kw)
    for batch in batches:
        AssignmentFactory(batch=batch, annotator=user)
    return user


def _reserve(annotator: User) -> Reservation:
    got = reserve_next(annotator=annotator)
    assert isinstance(got, Reservation), got
    return got


def _label(annotator: User, vote: VoteIn = SAFE) -> Label:
    """Reserve the next dialogue for the annotator and vote on it."""
    reservation = _reserve(annotator)
    return submit_label(
        annotator=annotator, dialogue_id=reservation.dialogue_id, vote=vote
    )


def _expire(reservation: Reservation) -> None:
    past = timezone.now() - timedelta(minutes=1)
    Reservation.objects.filter(pk=reservation.pk).update(
        reserved_at=past - timedelta(minutes=30), expires_at=past
    )


def _claimed(dialogue_id: int) -> int:
    return Dialogue.objects.get(pk=dialogue_id).claimed


def _state(reservation: Reservation) -> str:
    return Reservation.objects.get(pk=reservation.pk).state


def _human_votes(dialogue_id: int) -> list[str]:
    return sorted(
        Label.objects.human()
        .filter(dialogue_id=dialogue_id)
        .values_list("annotator__username", flat=True)
    )


# --- consent and assignment ------------------------------------------------------


def test_every_service_refuses_before_the_content_warning_is_acknowledged():
    # given an assigned annotator who has not acknowledged the warning, with a vote
    # imported for them (so edit_label has something to refuse)
    batch = _batch(2)
    bo = _annotator("bo", batch, content_warning_acknowledged_at=None)
    first, second = batch.dialogues.order_by("pk")
    imported = LabelFactory(dialogue=first, annotator=bo)

    # when they use each service, then each refuses with ConsentRequired
    with pytest.raises(ConsentRequired, match="Acknowledge the content warning"):
        reserve_next(annotator=bo)
    with pytest.raises(ConsentRequired):
        submit_label(annotator=bo, dialogue_id=second.pk, vote=SAFE)
    with pytest.raises(ConsentRequired):
        skip_dialogue(annotator=bo, dialogue_id=second.pk, reason="no")
    with pytest.raises(ConsentRequired):
        flag_dialogue(annotator=bo, dialogue_id=first.pk, reason="broken_text")
    with pytest.raises(ConsentRequired):
        edit_label(annotator=bo, label_id=imported.pk, vote=VIOLENT)

    # and nothing was reserved, voted, skipped, flagged or edited
    assert Reservation.objects.count() == 0
    assert list(Label.objects.values_list("pk", "label")) == [(imported.pk, "safe")]
    assert Skip.objects.count() == 0
    assert Flag.objects.count() == 0
    assert LabelEdit.objects.count() == 0
    assert list(batch.dialogues.values_list("claimed", flat=True)) == [0, 0]


def test_acknowledging_the_warning_unlocks_the_queue_and_keeps_the_first_time():
    # given an assigned annotator who has not acknowledged the warning
    batch = _batch(1)
    bo = _annotator("bo", batch, content_warning_acknowledged_at=None)

    # when they acknowledge it twice
    first = acknowledge_warning(annotator=bo).content_warning_acknowledged_at
    again = acknowledge_warning(annotator=bo).content_warning_acknowledged_at

    # then the first time is kept and the queue serves them
    assert first is not None
    assert again == first
    bo.refresh_from_db()
    assert bo.content_warning_acknowledged_at == first
    assert _reserve(bo).dialogue == batch.dialogues.get()


def test_an_annotator_without_an_active_assignment_gets_nothing():
    # given a batch the annotator is not assigned to
    batch = _batch(2)
    bo = _annotator("bo")

    # when they ask for work
    got = reserve_next(annotator=bo)

    # then there is nothing, and no dialogue of the batch was reserved
    assert got == NothingToDo("no_batch", "You are not assigned to an active batch.")
    assert Reservation.objects.count() == 0
    assert list(batch.dialogues.values_list("claimed", flat=True)) == [0, 0]


def test_a_vote_on_a_batch_one_is_not_assigned_to_is_refused():
    # given a dialogue reserved by someone in a batch bo is not assigned to
    batch = _batch(1)
    dialogue = _reserve(_annotator("ann", batch)).dialogue
    bo = _annotator("bo", _batch(1))

    # when bo votes on it
    with pytest.raises(NotAssigned):
        submit_label(annotator=bo, dialogue_id=dialogue.pk, vote=SAFE)

    # then no vote was written and the dialogue still counts ann's reservation only
    assert Label.objects.count() == 0
    assert _claimed(dialogue.pk) == 1


# --- reservations -------------------------------------------------------------------


def test_a_reservation_holds_the_dialogue_for_the_batch_reservation_minutes():
    # given a batch whose reservations last 7 minutes
    batch = _batch(3, reservation_minutes=7)
    ann = _annotator("ann", batch)

    # when ann asks for work
    reservation = _reserve(ann)

    # then one dialogue is held for 7 minutes and counts as claimed
    stored = Reservation.objects.get()
    assert stored.pk == reservation.pk
    assert stored.annotator == ann
    assert stored.batch == batch
    assert stored.state == ReservationState.ACTIVE
    assert stored.expires_at - stored.reserved_at == timedelta(minutes=7)
    assert sorted(batch.dialogues.values_list("claimed", flat=True)) == [0, 0, 1]
    assert _claimed(reservation.dialogue_id) == 1


def test_asking_again_returns_the_same_live_reservation():
    # given ann holds a dialogue
    batch = _batch(5)
    ann = _annotator("ann", batch)
    first = _reserve(ann)

    # when she asks again (a reload, a second tab)
    again = _reserve(ann)

    # then she gets the same reservation, and nothing more is claimed
    assert again.pk == first.pk
    assert again.dialogue_id == first.dialogue_id
    assert Reservation.objects.count() == 1
    assert sum(batch.dialogues.values_list("claimed", flat=True)) == 1


def test_no_dialogue_is_served_twice_to_one_annotator():
    # given a batch of 6 that needs 3 votes each and one annotator
    batch = _batch(6)
    ann = _annotator("ann", batch)

    # when she works until nothing is left
    served = []
    while isinstance(got := reserve_next(annotator=ann), Reservation):
        served.append(got.dialogue_id)
        submit_label(annotator=ann, dialogue_id=got.dialogue_id, vote=SAFE)

    # then she saw every dialogue exactly once, and the queue says she is done
    assert sorted(served) == sorted(batch.dialogues.values_list("pk", flat=True))
    assert len(served) == len(set(served)) == 6
    assert got == NothingToDo("done", "Nothing is left to label for you right now.")
    assert Label.objects.filter(annotator=ann).count() == 6
    assert Reservation.objects.active().count() == 0


def test_a_full_dialogue_is_served_to_nobody_else():
    # given a one-dialogue batch that needs 2 votes, reserved by ann and bo
    batch = _batch(1, labels_required=2)
    ann, bo, cy = (_annotator(name, batch) for name in ("ann", "bo", "cy"))
    dialogue = _reserve(ann).dialogue
    assert _reserve(bo).dialogue == dialogue

    # when a third annotator asks while both hold it, and again after both voted
    while_held = reserve_next(annotator=cy)
    submit_label(annotator=ann, dialogue_id=dialogue.pk, vote=SAFE)
    submit_label(annotator=bo, dialogue_id=dialogue.pk, vote=VIOLENT)
    after_votes = reserve_next(annotator=cy)

    # then cy gets nothing either time, and the dialogue has exactly 2 votes
    assert while_held.reason == after_votes.reason == "done"
    assert not Reservation.objects.filter(annotator=cy).exists()
    assert _human_votes(dialogue.pk) == ["ann", "bo"]
    assert _claimed(dialogue.pk) == 2


# --- expiry -----------------------------------------------------------------------


def test_an_expired_reservation_returns_to_the_pool_for_another_annotator():
    # given a one-vote dialogue held by ann, so bo gets nothing
    batch = _batch(1, labels_required=1)
    ann, bo = _annotator("ann", batch), _annotator("bo", batch)
    held = _reserve(ann)
    assert reserve_next(annotator=bo).reason == "done"

    # when ann's reservation runs out and bo asks again
    _expire(held)
    got = _reserve(bo)

    # then bo gets the dialogue; ann's reservation was released, not deleted
    assert got.dialogue_id == held.dialogue_id
    assert _state(held) == ReservationState.RELEASED
    assert _claimed(held.dialogue_id) == 1
    assert Reservation.objects.active().get().annotator == bo


def test_release_expired_gives_back_only_expired_reservations():
    # given two reservations of one dialogue, one of them expired
    batch = _batch(1)
    ann, bo = _annotator("ann", batch), _annotator("bo", batch)
    expired = _reserve(ann)
    live = _reserve(bo)
    assert live.dialogue_id == expired.dialogue_id
    _expire(expired)
    assert _claimed(expired.dialogue_id) == 2

    # when the sweeper runs twice
    released = release_expired(batch_ids=[batch.pk])
    released_again = release_expired(batch_ids=[batch.pk])

    # then it released ann's reservation once, decremented claimed once, kept bo's
    assert (released, released_again) == (1, 0)
    assert _state(expired) == ReservationState.RELEASED
    assert _state(live) == ReservationState.ACTIVE
    assert _claimed(expired.dialogue_id) == 1


def test_release_expired_leaves_other_batches_alone():
    # given an expired reservation in another batch
    batch, other = _batch(1), _batch(1)
    held = _reserve(_annotator("ann", other))
    _expire(held)

    # when the sweeper runs for the first batch only
    released = release_expired(batch_ids=[batch.pk])

    # then the other batch's reservation is untouched
    assert released == 0
    assert _state(held) == ReservationState.ACTIVE
    assert _claimed(held.dialogue_id) == 1


def test_an_expired_and_released_reservation_is_honoured_when_there_is_room():
    # given ann's reservation expired and was swept away
    batch = _batch(1, labels_required=2)
    ann = _annotator("ann", batch)
    held = _reserve(ann)
    _expire(held)
    assert release_expired(batch_ids=[batch.pk]) == 1
    assert _claimed(held.dialogue_id) == 0

    # when she submits her vote anyway
    label = submit_label(annotator=ann, dialogue_id=held.dialogue_id, vote=VIOLENT)

    # then it counts: the vote is stored and the dialogue claimed again
    assert label.annotator == ann
    assert _human_votes(held.dialogue_id) == ["ann"]
    assert _claimed(held.dialogue_id) == 1
    assert _state(held) == ReservationState.DONE


def test_an_expired_reservation_is_honoured_even_before_the_sweep():
    # given ann's reservation expired but nobody swept it yet
    batch = _batch(1, labels_required=1)
    ann = _annotator("ann", batch)
    held = _reserve(ann)
    _expire(held)

    # when she submits
    submit_label(annotator=ann, dialogue_id=held.dialogue_id, vote=SAFE)

    # then the reservation turned into her vote without counting twice
    assert _human_votes(held.dialogue_id) == ["ann"]
    assert _claimed(held.dialogue_id) == 1
    assert _state(held) == ReservationState.DONE


def test_an_expired_reservation_is_refused_once_others_filled_the_dialogue():
    # given ann's one-vote dialogue expired, went to bo, and bo voted
    batch = _batch(1, labels_required=1)
    ann, bo = _annotator("ann", batch), _annotator("bo", batch)
    held = _reserve(ann)
    _expire(held)
    _label(bo, VIOLENT)

    # when ann submits late
    with pytest.raises(NotReserved, match="went to someone else"):
        submit_label(annotator=ann, dialogue_id=held.dialogue_id, vote=SAFE)

    # then her vote is not written and the dialogue keeps exactly one vote
    assert _human_votes(held.dialogue_id) == ["bo"]
    assert _claimed(held.dialogue_id) == 1
    assert _state(held) == ReservationState.RELEASED


def test_an_expired_reservation_is_refused_while_someone_else_holds_the_last_slot():
    # given ann's one-vote dialogue expired and is now reserved by bo (not voted yet)
    batch = _batch(1, labels_required=1)
    ann, bo = _annotator("ann", batch), _annotator("bo", batch)
    held = _reserve(ann)
    _expire(held)
    taken = _reserve(bo)

    # when ann submits late
    with pytest.raises(NotReserved):
        submit_label(annotator=ann, dialogue_id=held.dialogue_id, vote=SAFE)

    # then bo's reservation is intact and can still be honoured
    assert Label.objects.count() == 0
    submit_label(annotator=bo, dialogue_id=taken.dialogue_id, vote=SAFE)
    assert _human_votes(held.dialogue_id) == ["bo"]
    assert _claimed(held.dialogue_id) == 1


# --- refusals of a vote -----------------------------------------------------------


def test_a_vote_on_a_dialogue_not_reserved_for_one_is_refused():
    # given two dialogues: one held by bo, one held by nobody
    batch = _batch(2, labels_required=1)
    ann, bo = _annotator("ann", batch), _annotator("bo", batch)
    bos = _reserve(bo).dialogue_id
    free = batch.dialogues.exclude(pk=bos).get().pk

    # when ann votes on either (or on a dialogue that does not exist: not found)
    for dialogue_id in (bos, free):
        with pytest.raises(NotReserved):
            submit_label(annotator=ann, dialogue_id=dialogue_id, vote=SAFE)
    with pytest.raises(NotFound):
        submit_label(annotator=ann, dialogue_id=10**9, vote=SAFE)

    # then no vote was written and claimed is unchanged
    assert Label.objects.count() == 0
    assert dict(batch.dialogues.values_list("pk", "claimed")) == {bos: 1, free: 0}
    assert not Reservation.objects.filter(annotator=ann).exists()


def test_a_second_vote_on_the_same_dialogue_is_already_labelled():
    # given ann voted on a dialogue
    batch = _batch(2)
    ann = _annotator("ann", batch)
    first = _label(ann, VIOLENT)

    # when she submits on it again
    with pytest.raises(AlreadyLabelled):
        submit_label(annotator=ann, dialogue_id=first.dialogue_id, vote=SAFE)

    # then her first vote stands alone
    assert list(Label.objects.values_list("pk", "label")) == [(first.pk, "unsafe")]
    assert _claimed(first.dialogue_id) == 1


# --- paused batches -----------------------------------------------------------------


def test_a_paused_batch_serves_nothing_but_takes_work_already_reserved():
    # given ann holds a dialogue of a batch that is then paused
    batch = _batch(3)
    ann, bo = _annotator("ann", batch), _annotator("bo", batch)
    held = _reserve(ann)
    batch.set_status(BatchStatus.PAUSED)

    # when both ask for work
    for_ann = reserve_next(annotator=ann)
    for_bo = reserve_next(annotator=bo)

    # then neither is served, and nothing new was reserved
    assert isinstance(for_ann, NothingToDo)
    assert isinstance(for_bo, NothingToDo)
    assert list(Reservation.objects.values_list("pk", flat=True)) == [held.pk]

    # but ann's reserved work is still accepted
    submit_label(annotator=ann, dialogue_id=held.dialogue_id, vote=SAFE)
    assert _human_votes(held.dialogue_id) == ["ann"]
    assert _state(held) == ReservationState.DONE


# --- skips and flags ----------------------------------------------------------------


def test_a_skipped_dialogue_goes_to_others_and_never_back_to_the_skipper():
    # given a one-dialogue batch; ann holds the dialogue
    batch = _batch(1)
    ann, bo = _annotator("ann", batch), _annotator("bo", batch)
    held = _reserve(ann)

    # when she skips it with a reason
    skip = skip_dialogue(
        annotator=ann, dialogue_id=held.dialogue_id, reason="  too long for me  "
    )

    # then the skip and its reason are stored, the slot is free again
    assert (skip.annotator, skip.dialogue_id, skip.reason) == (
        ann,
        held.dialogue_id,
        "too long for me",
    )
    assert _state(held) == ReservationState.RELEASED
    assert _claimed(held.dialogue_id) == 0
    # and ann is never served it again, while bo is
    assert reserve_next(annotator=ann).reason == "done"
    assert _reserve(bo).dialogue_id == held.dialogue_id
    assert Label.objects.count() == 0


def test_skipping_a_dialogue_not_reserved_for_one_is_refused():
    # given a dialogue held by bo
    batch = _batch(1)
    ann, bo = _annotator("ann", batch), _annotator("bo", batch)
    held = _reserve(bo)

    # when ann skips it
    with pytest.raises(NotReserved):
        skip_dialogue(annotator=ann, dialogue_id=held.dialogue_id, reason="meh")

    # then no skip is written and bo's reservation is intact
    assert Skip.objects.count() == 0
    assert _state(held) == ReservationState.ACTIVE
    assert _claimed(held.dialogue_id) == 1


def test_flagging_a_reserved_dialogue_reports_it_and_skips_it():
    # given ann holds the only dialogue of a batch
    batch = _batch(1)
    ann, bo = _annotator("ann", batch), _annotator("bo", batch)
    held = _reserve(ann)

    # when she flags it
    flag = flag_dialogue(
        annotator=ann,
        dialogue_id=held.dialogue_id,
        reason="broken_text",
        note=" half the prompt is missing ",
    )

    # then the flag is stored with its reason and the dialogue moves on without her
    stored = Flag.objects.get()
    assert stored.pk == flag.pk
    assert (stored.annotator, stored.dialogue_id) == (ann, held.dialogue_id)
    assert (stored.reason, stored.note, stored.resolved_at) == (
        "broken_text",
        "half the prompt is missing",
        None,
    )
    skip = Skip.objects.get()
    assert (skip.annotator, skip.reason) == (ann, "flagged: broken_text")
    assert _state(held) == ReservationState.RELEASED
    assert _claimed(held.dialogue_id) == 0
    assert reserve_next(annotator=ann).reason == "done"
    assert _reserve(bo).dialogue_id == held.dialogue_id
    assert Label.objects.count() == 0


def test_flagging_a_labelled_dialogue_keeps_the_vote():
    # given ann voted on a dialogue
    batch = _batch(2)
    ann = _annotator("ann", batch)
    vote = _label(ann, VIOLENT)

    # when she flags it afterwards
    flag_dialogue(
        annotator=ann, dialogue_id=vote.dialogue_id, reason="guideline_unclear"
    )

    # then the flag is stored, her vote is intact, nothing is skipped or released
    assert list(Flag.objects.values_list("dialogue_id", "annotator", "reason")) == [
        (vote.dialogue_id, ann.pk, "guideline_unclear")
    ]
    assert list(Label.objects.values_list("pk", "label")) == [(vote.pk, "unsafe")]
    assert Skip.objects.count() == 0
    assert _claimed(vote.dialogue_id) == 1


def test_flagging_needs_a_reservation_or_an_own_vote():
    # given a dialogue held by bo and one nobody touched
    batch = _batch(2)
    ann, bo = _annotator("ann", batch), _annotator("bo", batch)
    bos = _reserve(bo).dialogue_id
    free = batch.dialogues.exclude(pk=bos).get().pk

    # when ann flags either
    for dialogue_id in (bos, free):
        with pytest.raises(NotReserved):
            flag_dialogue(annotator=ann, dialogue_id=dialogue_id, reason="other")

    # then nothing is flagged or skipped
    assert Flag.objects.count() == 0
    assert Skip.objects.count() == 0
    assert dict(batch.dialogues.values_list("pk", "claimed")) == {bos: 1, free: 0}


# --- the daily cap ------------------------------------------------------------------


def test_the_daily_cap_stops_serving_once_reached():
    # given an annotator capped at 2 labels a day in a batch of 4
    batch = _batch(4)
    ann = _annotator("ann", batch, daily_label_cap=2)

    # when she has labelled 2 today
    _label(ann)
    _label(ann)
    got = reserve_next(annotator=ann)

    # then she is told she reached the cap and nothing is reserved
    assert got == NothingToDo(
        "daily_cap", "You have reached today's limit of 2 labels. Thank you!"
    )
    assert Reservation.objects.active().count() == 0
    assert sum(batch.dialogues.values_list("claimed", flat=True)) == 2


def test_yesterdays_labels_do_not_count_towards_the_daily_cap():
    # given an annotator capped at 2 whose 2 labels were made yesterday
    batch = _batch(4)
    ann = _annotator("ann", batch, daily_label_cap=2)
    _label(ann)
    _label(ann)
    Label.objects.update(created_at=timezone.now() - timedelta(days=1))

    # when she asks for work
    got = reserve_next(annotator=ann)

    # then she is served
    assert isinstance(got, Reservation)


# --- order --------------------------------------------------------------------------


def test_dialogues_nearest_completion_are_served_first():
    # given a batch of 6 needing 3 votes: one dialogue has 2 votes, one has 1
    batch = _batch(6, labels_required=3)
    two, one, *untouched = batch.dialogues.order_by("-pk")
    LabelFactory.create_batch(2, dialogue=two)
    LabelFactory(dialogue=one)
    recount_claimed(dialogue_ids=[two.pk, one.pk])
    ann = _annotator("ann", batch)

    # when a fresh annotator works three dialogues
    order = [_label(ann).dialogue_id for _ in range(3)]

    # then the one with 2 votes comes first, then the one with 1, then a new one
    assert order[:2] == [two.pk, one.pk]
    assert order[2] in {d.pk for d in untouched}
    assert Label.objects.filter(dialogue=two).count() == 3
    assert (_claimed(two.pk), _claimed(one.pk)) == (3, 2)


def test_each_annotator_walks_the_batch_in_their_own_shuffled_order():
    # given a fresh batch of 50 dialogues and two annotators
    batch = _batch(50)
    ann, bo = _annotator("ann", batch), _annotator("bo", batch)

    # when each asks for a first dialogue on the untouched batch (ann's reservation
    # lapses and is swept before bo asks, so bo also sees every dialogue untouched)
    anns_first = _reserve(ann)
    _expire(anns_first)
    release_expired(batch_ids=[batch.pk])
    assert sum(batch.dialogues.values_list("claimed", flat=True)) == 0
    bos_first = _reserve(bo)

    # then they start at different dialogues
    assert anns_first.dialogue_id != bos_first.dialogue_id

    # and ann's own sequence is shuffled, not in id order
    _expire(bos_first)
    release_expired(batch_ids=[batch.pk])
    sequence = [_label(ann).dialogue_id for _ in range(10)]
    assert len(set(sequence)) == 10
    assert sequence != sorted(sequence)


def test_two_annotators_starting_together_get_different_first_dialogues():
    # given a fresh batch of 50 dialogues and two annotators
    batch = _batch(50)
    ann, bo = _annotator("ann", batch), _annotator("bo", batch)

    # when both ask for work, one after the other
    anns_first = _reserve(ann)
    bos_first = _reserve(bo)

    # then they start at different dialogues
    assert anns_first.dialogue_id != bos_first.dialogue_id


def test_the_cost_of_picking_does_not_grow_with_the_batch():
    # given a batch of 20 and one of 2,000 dialogues, each with its own annotator
    # (two dialogues sit at the end of the shuffled order in each, so no pick has
    # to wrap around to the start of the order, which costs one query more)
    counts = {}
    for n in (20, 2_000):
        batch = BatchFactory(name=f"size-{n}")
        Dialogue.objects.bulk_create(DialogueFactory.build_batch(n, batch=batch))
        last, next_to_last = batch.dialogues.order_by("pk")[:2]
        Dialogue.objects.filter(pk=last.pk).update(shuffle_key=2**31 - 1)
        Dialogue.objects.filter(pk=next_to_last.pk).update(shuffle_key=2**31 - 2)
        annotator = _annotator(f"annotator-{n}", batch)
        # a vote already given, so the exclusions have something to look at
        _label(annotator)

        # when the annotator asks for the next dialogue
        with CaptureQueriesContext(connection) as queries:
            got = reserve_next(annotator=annotator)
        assert isinstance(got, Reservation)
        counts[n] = len(queries)

    # then both picks took the same number of queries
    assert counts[20] == counts[2_000]
    assert counts[20] <= 15


# --- what a vote must hold ----------------------------------------------------------


@pytest.mark.parametrize(
    ("vote", "problems"),
    [
        (
            VoteIn(label="unsafe"),
            {"categories": ["at least one is required when unsafe"]},
        ),
        (
            VoteIn(label="unsafe", categories=("Other",)),
            {"other_text": ["is required when Other is chosen"]},
        ),
        (
            VoteIn(label="unsafe", categories=("Other",), other_text="   "),
            {"other_text": ["is required when Other is chosen"]},
        ),
        (
            VoteIn(label="unsafe", categories=("Violence", "Space Lasers")),
            {"categories": ["unknown category 'Space Lasers'"]},
        ),
        (
            VoteIn(label="safe", categories=("Violence",)),
            {"categories": ["must be empty when the label is safe"]},
        ),
        (
            VoteIn(label="fine"),
            {"label": ["must be one of safe, needs_caution, unsafe, not 'fine'"]},
        ),
    ],
    ids=["unsafe-bare", "other-no-text", "other-blank", "unknown", "safe-cats", "bad"],
)
def test_a_vote_that_breaks_the_rules_is_refused_naming_the_field(
    vote: VoteIn, problems: dict[str, list[str]]
):
    # given a reserved dialogue
    batch = _batch(1)
    ann = _annotator("ann", batch)
    held = _reserve(ann)

    # when ann submits a vote that breaks a rule
    with pytest.raises(VoteInvalid) as refused:
        submit_label(annotator=ann, dialogue_id=held.dialogue_id, vote=vote)

    # then the refusal names the field, and nothing was written or released
    assert refused.value.by_field() == problems
    assert Label.objects.count() == 0
    assert LabelCategory.objects.count() == 0
    assert _state(held) == ReservationState.ACTIVE
    assert _claimed(held.dialogue_id) == 1


def test_categories_can_be_given_by_code_and_other_keeps_its_text():
    # given a reserved dialogue
    batch = _batch(1)
    ann = _annotator("ann", batch)
    held = _reserve(ann)

    # when ann votes unsafe with codes, a name and Other with text
    label = submit_label(
        annotator=ann,
        dialogue_id=held.dialogue_id,
        vote=VoteIn(
            label="unsafe",
            categories=("S1", "s8", "Other"),
            other_text="  glorifies a cult  ",
            comment=" borderline ",
        ),
    )

    # then the categories are stored by name, in the order given
    stored = Label.objects.get()
    assert stored.pk == label.pk
    assert [lc.category.name for lc in stored.label_categories.all()] == [
        "Violence",
        "Hate/Identity Hate",
        "Other",
    ]
    assert (stored.label, stored.other_text, stored.comment) == (
        "unsafe",
        "glorifies a cult",
        "borderline",
    )
    assert stored.kind == VoteKind.HUMAN


def test_a_batch_that_asks_for_a_response_label_requires_it_when_there_is_a_response():
    # given a batch asking for response labels; ann holds an answered dialogue
    batch = BatchFactory(asks_response_label=True, labels_required=1)
    DialogueFactory(batch=batch)
    ann = _annotator("ann", batch)
    held = _reserve(ann)

    # when she votes without a response label
    with pytest.raises(VoteInvalid) as refused:
        submit_label(annotator=ann, dialogue_id=held.dialogue_id, vote=SAFE)

    # then it is refused and nothing written; with one, it is stored
    assert refused.value.by_field() == {"response_label": ["this batch asks for it"]}
    assert Label.objects.count() == 0
    submit_label(
        annotator=ann,
        dialogue_id=held.dialogue_id,
        vote=VoteIn(label="safe", response_label="needs_caution"),
    )
    assert list(Label.objects.values_list("label", "response_label")) == [
        ("safe", "needs_caution")
    ]


def test_a_response_label_on_a_prompt_only_dialogue_is_refused():
    # given a batch asking for response labels; ann holds a prompt without response
    batch = BatchFactory(asks_response_label=True, labels_required=1)
    DialogueFactory(batch=batch, response=None)
    ann = _annotator("ann", batch)
    held = _reserve(ann)

    # when she labels the (missing) response
    with pytest.raises(VoteInvalid) as refused:
        submit_label(
            annotator=ann,
            dialogue_id=held.dialogue_id,
            vote=VoteIn(label="safe", response_label="safe"),
        )

    # then it is refused; without a response label the vote is fine
    assert refused.value.by_field() == {
        "response_label": ["the dialogue has no response"]
    }
    assert Label.objects.count() == 0
    submit_label(annotator=ann, dialogue_id=held.dialogue_id, vote=SAFE)
    assert list(Label.objects.values_list("label", "response_label")) == [
        ("safe", None)
    ]


# --- time spent ---------------------------------------------------------------------


def test_the_clients_time_spent_is_recorded():
    batch = _batch(1)
    ann = _annotator("ann", batch)
    held = _reserve(ann)

    label = submit_label(
        annotator=ann, dialogue_id=held.dialogue_id, vote=SAFE, time_spent_ms=42_000
    )

    assert Label.objects.get(pk=label.pk).time_spent_ms == 42_000


def test_a_time_spent_over_an_hour_is_recorded_as_an_hour():
    batch = _batch(1)
    ann = _annotator("ann", batch)
    held = _reserve(ann)

    label = submit_label(
        annotator=ann,
        dialogue_id=held.dialogue_id,
        vote=SAFE,
        time_spent_ms=5 * 3_600_000,
    )

    assert Label.objects.get(pk=label.pk).time_spent_ms == MAX_TIME_SPENT_MS
    assert MAX_TIME_SPENT_MS == 3_600_000


def test_without_a_client_time_the_server_measures_it_from_the_reservation():
    # given ann reserved a dialogue 90 seconds ago
    batch = _batch(2)
    ann = _annotator("ann", batch)
    held = _reserve(ann)
    Reservation.objects.filter(pk=held.pk).update(
        reserved_at=timezone.now() - timedelta(seconds=90)
    )

    # when she submits without a time
    label = submit_label(annotator=ann, dialogue_id=held.dialogue_id, vote=SAFE)

    # then the time since the reservation is recorded
    assert 90_000 <= Label.objects.get(pk=label.pk).time_spent_ms < 100_000


def test_a_server_measured_time_is_capped_at_an_hour_too():
    # given ann reserved a dialogue three hours ago (and it has not expired)
    batch = _batch(2)
    ann = _annotator("ann", batch)
    held = _reserve(ann)
    Reservation.objects.filter(pk=held.pk).update(
        reserved_at=timezone.now() - timedelta(hours=3)
    )

    label = submit_label(annotator=ann, dialogue_id=held.dialogue_id, vote=SAFE)

    assert Label.objects.get(pk=label.pk).time_spent_ms == MAX_TIME_SPENT_MS


# --- edits --------------------------------------------------------------------------


def test_an_annotator_can_edit_their_own_label_and_the_edit_is_kept():
    # given ann voted unsafe / Violence
    batch = _batch(1)
    ann = _annotator("ann", batch)
    vote = _label(ann, VoteIn(label="unsafe", categories=("Violence",)))

    # when she changes it to needs caution / Profanity with a comment
    edited = edit_label(
        annotator=ann,
        label_id=vote.pk,
        vote=VoteIn(
            label="needs_caution", categories=("S12",), comment="on second thought"
        ),
    )

    # then the vote is changed and its history keeps before and after
    stored = Label.objects.get()
    assert stored.pk == edited.pk == vote.pk
    assert (stored.label, stored.comment) == ("needs_caution", "on second thought")
    assert [c.name for c in stored.categories.all()] == ["Profanity"]
    edit = LabelEdit.objects.get()
    assert (edit.label_id, edit.edited_by) == (vote.pk, ann)
    assert edit.before == {
        "label": "unsafe",
        "response_label": None,
        "categories": ["Violence"],
        "other_text": "",
        "comment": "",
    }
    assert edit.after == {
        "label": "needs_caution",
        "response_label": None,
        "categories": ["Profanity"],
        "other_text": "",
        "comment": "on second thought",
    }
    assert _claimed(vote.dialogue_id) == 1


def test_an_edit_that_changes_nothing_writes_no_history():
    batch = _batch(1)
    ann = _annotator("ann", batch)
    vote = _label(ann, VIOLENT)

    edit_label(
        annotator=ann, label_id=vote.pk, vote=VoteIn(label="unsafe", categories=("S1",))
    )

    assert LabelEdit.objects.count() == 0
    stored = Label.objects.get()
    assert stored.label == "unsafe"
    assert [c.name for c in stored.categories.all()] == ["Violence"]


def test_someone_elses_label_is_not_editable():
    # given bo's vote
    batch = _batch(1)
    ann, bo = _annotator("ann", batch), _annotator("bo", batch)
    bos = _label(bo, VIOLENT)

    # when ann edits it
    with pytest.raises(NotEditable):
        edit_label(annotator=ann, label_id=bos.pk, vote=SAFE)

    # then it is unchanged and no history is written
    stored = Label.objects.get()
    assert (stored.annotator, stored.label) == (bo, "unsafe")
    assert [c.name for c in stored.categories.all()] == ["Violence"]
    assert LabelEdit.objects.count() == 0


def test_a_label_on_an_adjudicated_dialogue_is_not_editable():
    # given ann's vote on a dialogue a lead has since adjudicated
    batch = _batch(1)
    ann = _annotator("ann", batch)
    vote = _label(ann, VIOLENT)
    Dialogue.objects.filter(pk=vote.dialogue_id).update(adjudicated_at=timezone.now())

    # when she edits it
    with pytest.raises(NotEditable, match="adjudicated"):
        edit_label(annotator=ann, label_id=vote.pk, vote=SAFE)

    # then it is unchanged and no history is written
    assert Label.objects.get().label == "unsafe"
    assert LabelEdit.objects.count() == 0


def test_an_edit_that_breaks_the_rules_is_refused_and_changes_nothing():
    batch = _batch(1)
    ann = _annotator("ann", batch)
    vote = _label(ann, VIOLENT)

    with pytest.raises(VoteInvalid) as refused:
        edit_label(annotator=ann, label_id=vote.pk, vote=VoteIn(label="unsafe"))

    assert refused.value.by_field() == {
        "categories": ["at least one is required when unsafe"]
    }
    stored = Label.objects.get()
    assert [c.name for c in stored.categories.all()] == ["Violence"]
    assert LabelEdit.objects.count() == 0


# --- recount ------------------------------------------------------------------------


def test_recount_claimed_sets_human_votes_plus_active_reservations():
    # given dialogues whose claimed counts went wrong after a bulk write
    batch = _batch(3, labels_required=5)
    counted, empty, untouched = batch.dialogues.order_by("pk")
    LabelFactory.create_batch(2, dialogue=counted)
    LabelFactory(
        dialogue=counted,
        kind=VoteKind.MODEL,
        annotator=None,
        judge="gemma",
        run_key="r1",
        label="unsafe",
    )
    now = timezone.now()
    for state in (ReservationState.ACTIVE, ReservationState.RELEASED):
        Reservation.objects.create(
            dialogue=counted,
            annotator=UserFactory(),
            batch=batch,
            state=state,
            reserved_at=now,
            expires_at=now + timedelta(minutes=30),
        )
    Dialogue.objects.filter(pk__in=[counted.pk, empty.pk, untouched.pk]).update(
        claimed=9
    )

    # when the first two are recounted
    recount_claimed(dialogue_ids=[counted.pk, empty.pk])

    # then claimed is 2 human votes + 1 active reservation, 0, and the third untouched
    assert dict(batch.dialogues.values_list("pk", "claimed")) == {
        counted.pk: 3,
        empty.pk: 0,
        untouched.pk: 9,
    }


def test_recount_of_a_consistent_batch_changes_nothing():
    # given a batch worked through the queue
    batch = _batch(4)
    ann, bo = _annotator("ann", batch), _annotator("bo", batch)
    _label(ann)
    _label(bo)
    _reserve(ann)
    before = dict(batch.dialogues.values_list("pk", "claimed"))

    recount_claimed(dialogue_ids=list(before))

    assert dict(batch.dialogues.values_list("pk", "claimed")) == before
    votes = dict(
        Label.objects.human()
        .values("dialogue")
        .annotate(n=Count("pk"))
        .values_list("dialogue", "n")
    )
    held = dict(
        Reservation.objects.active()
        .values("dialogue")
        .annotate(n=Count("pk"))
        .values_list("dialogue", "n")
    )
    assert before == {pk: votes.get(pk, 0) + held.get(pk, 0) for pk in before}


def test_a_skipped_dialogue_cannot_be_labelled_by_the_skipper_afterwards():
    # given ann skipped a dialogue that still has room
    batch = _batch(1)
    ann = _annotator("ann", batch)
    held = _reserve(ann)
    skip_dialogue(annotator=ann, dialogue_id=held.dialogue_id, reason="upsetting")

    # when she submits a vote on it anyway
    with pytest.raises(NotReserved):
        submit_label(annotator=ann, dialogue_id=held.dialogue_id, vote=SAFE)

    # then no vote is written and the slot stays free for others
    assert Label.objects.count() == 0
    assert _claimed(held.dialogue_id) == 0


def test_the_pick_is_prepared_again_on_a_new_connection(transactional_db):
    # given a reservation made (the pick prepared on this connection)
    batch = BatchFactory(name="prep")
    DialogueFactory.create_batch(3, batch=batch)
    ann, bob = (
        UserFactory(username=name, content_warning_acknowledged_at=timezone.now())
        for name in ("ann", "bob")
    )
    for person in (ann, bob):
        AssignmentFactory(batch=batch, annotator=person)
    first = reserve_next(annotator=ann)
    assert isinstance(first, Reservation)

    # when the database connection is replaced
    connection.close()

    # then the next request for work still gets one (the statement is prepared anew)
    second = reserve_next(annotator=bob)
    assert isinstance(second, Reservation)
    assert Reservation.objects.filter(state="active").count() == 2


def test_generated_responses_are_labelled_and_refusals_are_not(db):
    # given a batch holding a generated response and a generated refusal only
    batch = BatchFactory(name="generated")
    anna = UserFactory(username="anna", content_warning_acknowledged_at=timezone.now())
    AssignmentFactory(batch=batch, annotator=anna)
    refusal = DialogueFactory(batch=batch, external_id="x", augmentation="refusal")
    generated = DialogueFactory(
        batch=batch, external_id="x", augmentation="gen_response"
    )

    # when anna asks twice (labelling the first)
    first = reserve_next(annotator=anna)
    submit_label(
        annotator=anna, dialogue_id=first.dialogue_id, vote=VoteIn(label="safe")
    )
    second = reserve_next(annotator=anna)

    # then she gets the generated response (new content needs votes), never the refusal
    assert first.dialogue_id == generated.pk
    assert isinstance(second, NothingToDo)
    assert not Reservation.objects.filter(dialogue=refusal).exists()
