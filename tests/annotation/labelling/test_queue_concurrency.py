"""The queue under real concurrency: threads with their own PostgreSQL connections."""

import threading
import time
from collections.abc import Callable
from datetime import timedelta

from django.db import connection, transaction
from django.db.models import Count
from django.utils import timezone

from accounts.models import User
from annotation.labelling.queue import (
    NothingToDo,
    VoteIn,
    release_expired,
    reserve_next,
    submit_label,
)
from annotation.models import (
    Batch,
    Dialogue,
    Label,
    Reservation,
    ReservationState,
    VoteKind,
)
from annotation.review.gold.services import GoldAnswer, mark_gold
from tests.factories import (
    AssignmentFactory,
    BatchFactory,
    DialogueFactory,
    UserFactory,
)

ANNOTATORS = 12
DIALOGUES = 40
REQUIRED = 3
VOTES = [
    VoteIn(label="safe"),
    VoteIn(label="unsafe", categories=("Violence",)),
    VoteIn(label="needs_caution"),
]


def _annotators(batch: Batch, n: int) -> list[User]:
    people = [
        UserFactory(
            username=f"annotator{k}", content_warning_acknowledged_at=timezone.now()
        )
        for k in range(1, n + 1)
    ]
    for person in people:
        AssignmentFactory(batch=batch, annotator=person)
    return people


def _in_thread(
    work: Callable[[], object], errors: list[BaseException]
) -> threading.Thread:
    """Run `work` on its own database connection, keeping any exception it raises."""

    def run() -> None:
        try:
            work()
        except BaseException as error:
            errors.append(error)
        finally:
            connection.close()

    return threading.Thread(target=run)


def _wait_for_lock_waiters(
    n: int, timeout: float = 10.0, unless: threading.Thread | None = None
) -> None:
    """Block until `n` other sessions wait on a row lock (a barrier the database sees),
    or until the thread `unless` has finished without waiting."""
    deadline = time.monotonic() + timeout
    with connection.cursor() as cursor:
        while time.monotonic() < deadline:
            if unless is not None and not unless.is_alive():
                return
            # pg_stat_activity is read once per transaction unless told to look again
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


def test_twelve_concurrent_annotators_never_exceed_the_required_count(
    transactional_db: None,
):
    # given a batch of 40 dialogues needing 3 votes each and 12 annotators
    batch = BatchFactory(name="rush", labels_required=REQUIRED)
    DialogueFactory.create_batch(DIALOGUES, batch=batch)
    people = _annotators(batch, ANNOTATORS)
    served: dict[str, list[int]] = {p.username: [] for p in people}
    start = threading.Barrier(ANNOTATORS)
    errors: list[BaseException] = []

    def work(person: User) -> None:
        start.wait()
        for i in range(DIALOGUES + 1):
            got = reserve_next(annotator=person)
            if isinstance(got, NothingToDo):
                # Ask once more before stopping: the queue can answer "done" while
                # the last open slot is locked by someone's submit (a known bug,
                # test_a_dialogue_locked_by_a_submit_in_flight_is_still_served).
                time.sleep(0.05)
                got = reserve_next(annotator=person)
            if isinstance(got, NothingToDo):
                return
            served[person.username].append(got.dialogue_id)
            submit_label(
                annotator=person,
                dialogue_id=got.dialogue_id,
                vote=VOTES[i % len(VOTES)],
            )
        raise AssertionError(f"{person.username} was served more than the batch")

    # when all 12 work at once until the queue has nothing left for them
    threads = [_in_thread(lambda p=p: work(p), errors) for p in people]
    began = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    elapsed = time.monotonic() - began

    # then nobody failed or hung
    assert errors == []
    assert not any(thread.is_alive() for thread in threads)
    assert elapsed < 20, f"took {elapsed:.1f} s"
    # every dialogue has exactly its 3 human votes, and claimed agrees
    votes = dict(
        Label.objects.filter(kind=VoteKind.HUMAN)
        .values("dialogue")
        .annotate(n=Count("pk"))
        .values_list("dialogue", "n")
    )
    dialogue_ids = list(Dialogue.objects.values_list("pk", flat=True))
    assert votes == {pk: REQUIRED for pk in dialogue_ids}
    assert dict(Dialogue.objects.values_list("pk", "claimed")) == votes
    # nobody voted twice on a dialogue, nor was served one twice
    twice = (
        Label.objects.values("dialogue", "annotator")
        .annotate(n=Count("pk"))
        .filter(n__gt=1)
    )
    assert list(twice) == []
    assert {u: len(ids) - len(set(ids)) for u, ids in served.items()} == {
        p.username: 0 for p in people
    }
    assert sum(len(ids) for ids in served.values()) == DIALOGUES * REQUIRED
    # and nothing is left reserved
    assert Reservation.objects.filter(state=ReservationState.ACTIVE).count() == 0
    assert Reservation.objects.filter(state=ReservationState.DONE).count() == (
        DIALOGUES * REQUIRED
    )


def test_two_tabs_asking_at_once_get_one_reservation(transactional_db: None):
    # given one annotator in a batch of 5, with a request of hers already inside the
    # locked section (the main thread holds her user row, as _reserve_in does)
    batch = BatchFactory(name="tabs")
    DialogueFactory.create_batch(5, batch=batch)
    (ann,) = _annotators(batch, 1)
    errors: list[BaseException] = []
    results: list[object] = []
    tabs = [
        _in_thread(lambda: results.append(reserve_next(annotator=ann)), errors)
        for _ in range(2)
    ]

    # when two tabs ask for work while that request is still in flight
    with transaction.atomic():
        User.objects.select_for_update().get(pk=ann.pk)
        for tab in tabs:
            tab.start()
        _wait_for_lock_waiters(2)
    for tab in tabs:
        tab.join(timeout=30)

    # then both tabs show the same single reservation
    assert errors == []
    assert Reservation.objects.filter(state=ReservationState.ACTIVE).count() == 1
    assert len({r.dialogue_id for r in results}) == 1
    assert sum(Dialogue.objects.values_list("claimed", flat=True)) == 1


def test_a_late_submit_and_a_sweep_at_the_same_time_do_not_deadlock(
    transactional_db: None,
):
    # given ann's reservation expired; ann submits late just as bo's request sweeps
    # (the main thread is ann's submit_label: it holds the dialogue row lock when
    # the sweeper, in another thread, takes the reservation)
    batch = BatchFactory(name="sweep", labels_required=2)
    DialogueFactory(batch=batch)
    (ann,) = _annotators(batch, 1)
    held = reserve_next(annotator=ann)
    past = timezone.now() - timedelta(minutes=1)
    Reservation.objects.filter(pk=held.pk).update(expires_at=past)
    errors: list[BaseException] = []
    sweeper = _in_thread(lambda: release_expired(batch_ids=[batch.pk]), errors)

    # when both run
    try:
        with transaction.atomic():
            Dialogue.objects.select_for_update().get(pk=held.dialogue_id)
            sweeper.start()
            _wait_for_lock_waiters(1, unless=sweeper)
            submit_label(
                annotator=ann, dialogue_id=held.dialogue_id, vote=VoteIn(label="safe")
            )
    except Exception as error:
        errors.append(error)
    sweeper.join(timeout=30)

    # then neither fails: the vote counts once and the reservation is done
    assert errors == []
    assert Label.objects.filter(annotator=ann).count() == 1
    assert Reservation.objects.get(pk=held.pk).state == ReservationState.DONE
    assert Dialogue.objects.get(pk=held.dialogue_id).claimed == 1


def test_a_dialogue_locked_by_a_submit_in_flight_is_still_served(
    transactional_db: None,
):
    # given a dialogue that needs 2 votes, reserved by bo, who is submitting right
    # now (the main thread holds the dialogue's row lock, as submit_label does)
    batch = BatchFactory(name="busy", labels_required=2)
    DialogueFactory(batch=batch)
    ann, bo = _annotators(batch, 2)
    held = reserve_next(annotator=bo)
    errors: list[BaseException] = []
    results: list[object] = []
    asking = _in_thread(lambda: results.append(reserve_next(annotator=ann)), errors)

    # when ann asks for work during bo's submit
    with transaction.atomic():
        Dialogue.objects.select_for_update().get(pk=held.dialogue_id)
        asking.start()
        _wait_for_lock_waiters(1, unless=asking)
        submit_label(
            annotator=bo, dialogue_id=held.dialogue_id, vote=VoteIn(label="safe")
        )
    asking.join(timeout=30)

    # then she is served the dialogue's second slot, not told that nothing is left
    assert errors == []
    (got,) = results
    assert isinstance(got, Reservation), got
    assert got.dialogue_id == held.dialogue_id
    assert Dialogue.objects.get(pk=held.dialogue_id).claimed == 2


def test_concurrent_annotators_get_each_gold_item_once_and_regular_counts_hold(
    transactional_db: None,
):
    # given 12 regular dialogues needing 2 votes, 3 gold items at a rate of 100%,
    # and 8 annotators
    batch = BatchFactory(name="gold-rush", labels_required=2, gold_rate=1.0)
    regular = DialogueFactory.create_batch(12, batch=batch)
    gold = DialogueFactory.create_batch(3, batch=batch)
    for d in gold:
        mark_gold(dialogue=d, answer=GoldAnswer(label="safe"), by=None)
    people = _annotators(batch, 8)
    start = threading.Barrier(len(people))
    errors: list[BaseException] = []

    def work(person: User) -> None:
        start.wait()
        for _ in range(len(regular) + len(gold) + 1):
            got = reserve_next(annotator=person)
            if isinstance(got, NothingToDo):
                time.sleep(0.05)  # see the first test: a slot may be mid-submit
                got = reserve_next(annotator=person)
            if isinstance(got, NothingToDo):
                return
            submit_label(annotator=person, dialogue_id=got.dialogue_id, vote=VOTES[0])
        raise AssertionError(f"{person.username} was served more than the batch")

    # when all work at once until nothing is left
    threads = [_in_thread(lambda p=p: work(p), errors) for p in people]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    # then every gold item has one vote of each, and every regular one exactly 2
    assert errors == []
    votes = dict(
        Label.objects.filter(kind=VoteKind.HUMAN)
        .values("dialogue")
        .annotate(n=Count("pk"))
        .values_list("dialogue", "n")
    )
    assert votes == {d.pk: 8 for d in gold} | {d.pk: 2 for d in regular}
    assert dict(Dialogue.objects.values_list("pk", "claimed")) == votes
    twice = (
        Label.objects.values("dialogue", "annotator")
        .annotate(n=Count("pk"))
        .filter(n__gt=1)
    )
    assert list(twice) == []
    assert Reservation.objects.filter(state=ReservationState.ACTIVE).count() == 0
