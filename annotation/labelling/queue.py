"""The annotation queue: who labels what next, and what happens to a vote.

Every dialogue carries `votes` (human votes), `claimed` (votes plus active
reservations) and a random `shuffle_key`. The index (batch, votes, shuffle_key) lets
`reserve_next` walk a batch breadth-first (most votes first, among dialogues whose
`claimed` is below the required count) in a random order that starts at a different
point for each annotator, without scanning the batch.

Locks, always taken in this order so no two requests can deadlock:
1. the annotator's user row (reserve_next only: one reservation per person);
2. dialogue rows, in id order (the conditional UPDATE that claims a picked dialogue,
   `FOR UPDATE SKIP LOCKED` when sweeping, `FOR UPDATE` when voting, skipping,
   flagging or unassigning);
3. the reservation rows of dialogues already locked.
A vote's final label (`annotation.final_labels.services`) is derived again by a Celery task
queued after the commit, in its own transaction that takes the dialogue's lock alone,
so it never waits while holding one of the locks above.
`claimed` only changes under the dialogue's lock and is only raised while below the
required count, so it never passes it; unique (dialogue, annotator) constraints on votes, skips and reservations make
a second vote by one person impossible. On SQLite select_for_update is a no-op, but
transactions take the write lock at BEGIN (transaction_mode IMMEDIATE), which
serialises the same sections.

Gold items (`Dialogue.is_gold`, answers in `annotation.review.gold.services`) never go through the
pick: with probability `Batch.gold_rate` a request first tries the gold pick, a gold
dialogue of the batch the annotator has not labelled, skipped or reserved. Every
annotator labels each gold item once, so a gold dialogue's `claimed` (still votes
plus active reservations) is not bounded by the required count; the regular pick
skips gold dialogues, so they take none of the batch's regular vote slots. The gold
claim is the same UPDATE under the same locks, in the same order.
"""

import random
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db import connection, transaction
from django.db.models import (
    Count,
    Exists,
    F,
    IntegerField,
    OuterRef,
    QuerySet,
    Subquery,
)
from django.db.models.functions import Coalesce, Greatest
from django.utils import timezone

from accounts.models import User
from accounts.refusals import Conflict, NotFound
from annotation.final_labels.services import recompute_later
from annotation.models import (
    Assignment,
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
from annotation.rules.votes import VoteProblem, VoteProblems, check_vote
from taxonomy.matching import CategoryRef

# A time over this is the tab left open, not work; it is recorded as this much.
MAX_TIME_SPENT_MS = 60 * 60 * 1000
SWEEP_LIMIT = 500


class QueueError(Conflict):
    """A queue rule refused the request (409 unless a subclass says otherwise)."""


class ConsentRequired(QueueError):
    status = 403
    code = "consent_required"

    def __init__(self) -> None:
        super().__init__(
            "Acknowledge the content warning first (POST /api/v1/consent or the "
            "warning page); nothing is served before it."
        )


class NotAssigned(QueueError):
    status = 403
    code = "not_assigned"


class NotReserved(QueueError):
    status = 409
    code = "not_reserved"


class AlreadyLabelled(QueueError):
    status = 409
    code = "already_labelled"


class NotEditable(QueueError):
    status = 409
    code = "not_editable"


class VoteInvalid(VoteProblems, QueueError):
    """The vote breaks DESIGN section 3's rules; `problems` name the fields."""

    status = 400
    code = "invalid"


@dataclass(frozen=True)
class VoteIn:
    label: str | None
    response_label: str | None = None
    categories: tuple[str, ...] = ()
    other_text: str = ""
    comment: str = ""


@dataclass(frozen=True)
class NothingToDo:
    """Why `reserve_next` has nothing: shown to the annotator as it is."""

    reason: str
    message: str


def require_consent(annotator: User) -> None:
    if not annotator.has_acknowledged_warning:
        raise ConsentRequired()


def acknowledge_warning(*, annotator: User) -> User:
    """Record the content-warning acknowledgement once (the first time is kept)."""
    if annotator.content_warning_acknowledged_at is None:
        annotator.content_warning_acknowledged_at = timezone.now()
        annotator.save(update_fields=["content_warning_acknowledged_at"])
    return annotator


def start_offset(annotator: User) -> int:
    """Where this annotator enters the batch's random order (Knuth's multiplicative
    hash of the id): annotators start far apart, so they rarely want the same row."""
    return (annotator.pk * 2654435761) % 2**31


def active_batches(annotator: User) -> list[Batch]:
    return list(
        Batch.objects.filter(
            assignments__annotator=annotator, status=BatchStatus.ACTIVE
        )
        .select_related("taxonomy")
        .order_by("created_at", "pk")
    )


def labels_today(annotator: User) -> int:
    start = timezone.localtime().replace(hour=0, minute=0, second=0, microsecond=0)
    return (
        Label.objects.human().filter(annotator=annotator, created_at__gte=start).count()
    )


def _own_live(annotator: User) -> Reservation | None:
    return (
        Reservation.objects.live()
        .filter(annotator=annotator, batch__status=BatchStatus.ACTIVE)
        .select_related("dialogue", "batch")
        .order_by("reserved_at")
        .first()
    )


def gold_draw(annotator: User) -> random.Random:
    """The coin that decides whether a request tries the gold pick: seeded with the
    annotator and the time, so a test on a fixed clock sees the same draws."""
    return random.Random(f"{annotator.pk}:{timezone.now().isoformat()}")


def reserve_next(
    *, annotator: User, rng: random.Random | None = None
) -> Reservation | NothingToDo:
    """The dialogue the annotator should label now, reserved for them.

    Their own live reservation comes first. Otherwise, in their active batches, a
    dialogue below its required count that they have not labelled or skipped: most
    votes first, then in the batch's random order from their own starting point;
    before that, with probability `batch.gold_rate` (drawn from `rng`, by default
    `gold_draw`), a gold item they have not labelled yet.
    Expired reservations are released on the way. Holds the annotator's row lock
    throughout, so two requests of one person (two tabs) get one reservation.
    """
    require_consent(annotator)
    with transaction.atomic():
        User.objects.select_for_update().filter(pk=annotator.pk).first()
        mine = _own_live(annotator)
        if mine is not None:
            return mine
        cap = annotator.daily_label_cap
        if cap is not None and labels_today(annotator) >= cap:
            return NothingToDo(
                "daily_cap",
                f"You have reached today's limit of {cap} labels. Thank you!",
            )
        batches = active_batches(annotator)
        if not batches:
            return NothingToDo("no_batch", "You are not assigned to an active batch.")
        release_expired(batch_ids=[b.pk for b in batches])
        for batch in batches:
            if batch.gold_rate > 0:
                rng = rng or gold_draw(annotator)
                if rng.random() < batch.gold_rate:
                    gold = _reserve_gold(batch, annotator)
                    if gold is not None:
                        return gold
            reservation = _reserve_in(batch, annotator)
            if reservation is not None:
                return reservation
    return NothingToDo("done", "Nothing is left to label for you right now.")


# The pick, as one statement: it runs on every request for work, and building it
# through the ORM cost more than running it. One branch per level (most votes first)
# and per stretch of the random order (from the annotator's offset up, then below
# it); each branch is one short range of the index (batch, votes, shuffle_key), and
# the database stops at the first branch that has a row.
_BRANCH = """
SELECT * FROM (
  SELECT {columns} FROM annotation_dialogue d
  WHERE d.batch_id = %(batch)s AND d.votes = {level} AND {stretch}
    AND d.claimed < %(required)s
    AND d.adjudicated_at IS NULL AND d.augmentation IN ('', 'gen_response')
    AND NOT d.is_gold
    AND NOT EXISTS (SELECT 1 FROM annotation_label l WHERE l.dialogue_id = d.id
                    AND l.annotator_id = %(me)s AND l.kind = 'human')
    AND NOT EXISTS (SELECT 1 FROM annotation_skip s WHERE s.dialogue_id = d.id
                    AND s.annotator_id = %(me)s)
    AND NOT EXISTS (SELECT 1 FROM annotation_reservation r WHERE r.dialogue_id = d.id
                    AND r.annotator_id = %(me)s AND r.state = 'active')
  ORDER BY d.shuffle_key LIMIT 1
) AS pick_{level}_{n}"""
_STRETCHES = ("d.shuffle_key >= %(offset)s", "d.shuffle_key < %(offset)s")
_PICK_SQL: dict[int, str] = {}
PICK_ATTEMPTS = 5


def _pick_sql(required: int) -> str:
    if required not in _PICK_SQL:
        # Named columns, not d.*: a prepared statement's result must keep its shape
        # even if a later migration adds a column while this process still runs.
        columns = ", ".join(f"d.{f.column}" for f in Dialogue._meta.concrete_fields)
        branches = [
            _BRANCH.format(level=level, stretch=stretch, n=n, columns=columns)
            for level in range(required - 1, -1, -1)
            for n, stretch in enumerate(_STRETCHES)
        ]
        _PICK_SQL[required] = "\nUNION ALL\n".join(branches) + "\nLIMIT 1"
    return _PICK_SQL[required]


_PARAMS = ("batch", "required", "me", "offset")


def _pick_statement(required: int) -> str:
    """The pick for this required count, as SQL to run with the named params.

    On PostgreSQL the statement is PREPAREd once per connection: planning the six
    branches costs several times more than running them, and it runs on every
    request for work.
    """
    sql = _pick_sql(required)
    if connection.vendor != "postgresql":
        return sql
    connection.ensure_connection()
    raw = connection.connection
    prepared: set[str] = getattr(raw, "_aegis_prepared", set())
    name = f"aegis_pick_{required}"
    if name not in prepared:
        positional = sql
        for i, param in enumerate(_PARAMS, start=1):
            positional = positional.replace(f"%({param})s", f"${i}")
        with connection.cursor() as cursor:
            cursor.execute(
                f"PREPARE {name} (bigint, integer, bigint, integer) AS {positional}"
            )
        prepared.add(name)
        raw._aegis_prepared = prepared
    return f"EXECUTE {name} (" + ", ".join(f"%({p})s" for p in _PARAMS) + ")"


def _reserve_in(batch: Batch, annotator: User) -> Reservation | None:
    """Claim a dialogue of this batch for the annotator (caller holds their lock).

    The pick reads without locking; the claim is a conditional UPDATE (`claimed`
    still below the required count), which the row lock serialises, so a dialogue
    two annotators picked at once goes to both only while it has room.
    """
    params = {
        "batch": batch.pk,
        "required": batch.labels_required,
        "me": annotator.pk,
        "offset": start_offset(annotator),
    }
    sql = _pick_statement(batch.labels_required)
    for _ in range(PICK_ATTEMPTS):
        dialogue = next(iter(Dialogue.objects.raw(sql, params)), None)
        if dialogue is None:
            return None
        # is_gold again under the row lock: one marked gold since the pick read it
        # is not claimed by the regular pick.
        claimed = Dialogue.objects.filter(
            pk=dialogue.pk, claimed__lt=batch.labels_required, is_gold=False
        ).update(claimed=F("claimed") + 1)
        if claimed:
            return _hold(dialogue, batch, annotator)
    return None


def _reserve_gold(batch: Batch, annotator: User) -> Reservation | None:
    """Claim a gold dialogue of this batch that the annotator has not labelled,
    skipped or reserved (caller holds their lock); None when none is left.

    A batch holds few gold items, so this is an ordinary query. The claim has no
    bound (everyone labels a gold item) but still requires the dialogue to be gold,
    so one unmarked meanwhile is not claimed past its required count.
    """
    mine = {"dialogue": OuterRef("pk"), "annotator": annotator}
    candidates = (
        Dialogue.objects.filter(batch=batch, is_gold=True, adjudicated_at__isnull=True)
        .for_annotators()
        .exclude(Exists(Label.objects.filter(kind=VoteKind.HUMAN, **mine)))
        .exclude(Exists(Skip.objects.filter(**mine)))
        .exclude(
            Exists(Reservation.objects.filter(state=ReservationState.ACTIVE, **mine))
        )
        .order_by("shuffle_key", "pk")
    )
    for _ in range(PICK_ATTEMPTS):
        dialogue = candidates.first()
        if dialogue is None:
            return None
        claimed = Dialogue.objects.filter(pk=dialogue.pk, is_gold=True).update(
            claimed=F("claimed") + 1
        )
        if claimed:
            return _hold(dialogue, batch, annotator)
    return None


def _hold(dialogue: Dialogue, batch: Batch, annotator: User) -> Reservation:
    """Write the reservation of a dialogue whose `claimed` the caller just raised."""
    now = timezone.now()
    (reservation,) = Reservation.objects.bulk_create(
        [
            Reservation(
                dialogue=dialogue,
                annotator=annotator,
                batch=batch,
                state=ReservationState.ACTIVE,
                reserved_at=now,
                expires_at=now + timedelta(minutes=batch.reservation_minutes),
            )
        ],
        # Reserving a dialogue again (after an expiry) reuses its row.
        update_conflicts=True,
        unique_fields=["dialogue", "annotator"],
        update_fields=["batch", "state", "reserved_at", "expires_at"],
    )
    dialogue.claimed += 1
    dialogue.batch = batch
    reservation.dialogue = dialogue
    reservation.batch = batch
    return reservation


def release_expired(*, batch_ids: list[int], now: datetime | None = None) -> int:
    """Give expired reservations back to the pool; returns how many were released.

    Dialogues locked by someone else right now are left for the next sweep.
    """
    now = now or timezone.now()
    due = Reservation.objects.filter(
        batch_id__in=batch_ids, state=ReservationState.ACTIVE, expires_at__lte=now
    )
    if not due.exists():  # the usual case: one indexed probe, no transaction
        return 0
    return release_where(due, skip_locked=True)


def release_where(reservations: "QuerySet[Reservation]", *, skip_locked: bool) -> int:
    """Release the active reservations the queryset selects (at most SWEEP_LIMIT
    dialogues' worth); returns how many. Takes the locks in the module's order:
    dialogues first (id order), then their reservations."""
    active = reservations.filter(state=ReservationState.ACTIVE)
    dialogue_ids = list(
        active.order_by("dialogue_id")
        .values_list("dialogue_id", flat=True)
        .distinct()[:SWEEP_LIMIT]
    )
    if not dialogue_ids:
        return 0
    with transaction.atomic():
        locked = list(
            Dialogue.objects.filter(pk__in=dialogue_ids)
            .select_for_update(skip_locked=skip_locked, of=("self",))
            .order_by("pk")
            .values_list("pk", flat=True)
        )
        held = list(
            active.filter(dialogue_id__in=locked)
            .select_for_update(of=("self",))
            .values_list("pk", "dialogue_id")
        )
        if not held:
            return 0
        Reservation.objects.filter(pk__in=[pk for pk, _ in held]).update(
            state=ReservationState.RELEASED
        )
        per_dialogue = Counter(dialogue_id for _, dialogue_id in held)
        by_count: dict[int, list[int]] = {}
        for dialogue_id, n in per_dialogue.items():
            by_count.setdefault(n, []).append(dialogue_id)
        for n, ids in by_count.items():
            Dialogue.objects.filter(pk__in=ids).update(
                claimed=Greatest(F("claimed") - n, 0)
            )
    return len(held)


def _locked_dialogue(dialogue_id: int) -> Dialogue:
    return (
        Dialogue.objects.select_for_update(of=("self",))
        .select_related("batch__taxonomy")
        .get(pk=dialogue_id)
    )


def _require_assignment(annotator: User, batch: Batch) -> None:
    if not Assignment.objects.filter(batch=batch, annotator=annotator).exists():
        raise NotAssigned("You are not assigned to this dialogue's batch.")


def _checked_vote(dialogue: Dialogue, vote: VoteIn) -> list[CategoryRef]:
    """Resolve the vote's categories or raise VoteInvalid naming every bad field."""
    batch = dialogue.batch
    categories, problems = check_vote(
        label=vote.label,
        response_label=vote.response_label,
        category_names=list(vote.categories),
        other_text=vote.other_text,
        index=batch.taxonomy.category_index(),
    )
    problems += [
        VoteProblem("categories", f"{c.name!r} is retired")
        for c in categories
        if c.retired
    ]
    if vote.response_label is not None and not dialogue.has_response:
        problems.append(VoteProblem("response_label", "the dialogue has no response"))
    if (
        batch.asks_response_label
        and dialogue.has_response
        and vote.response_label is None
    ):
        problems.append(VoteProblem("response_label", "this batch asks for it"))
    if problems:
        raise VoteInvalid(problems)
    return categories


def _time_spent(given: int | None, reservation: Reservation | None) -> int | None:
    if given is not None and given >= 0:
        return min(int(given), MAX_TIME_SPENT_MS)
    if reservation is not None:
        elapsed = (timezone.now() - reservation.reserved_at).total_seconds() * 1000
        return min(int(elapsed), MAX_TIME_SPENT_MS)
    return None


@transaction.atomic
def submit_label(
    *,
    annotator: User,
    dialogue_id: int,
    vote: VoteIn,
    time_spent_ms: int | None = None,
) -> Label:
    """Record the annotator's vote on a dialogue reserved for them.

    Locks the dialogue row. A reservation that expired is still honoured if the
    dialogue has room left; one that went to someone else in the meantime is not.
    """
    require_consent(annotator)
    try:
        dialogue = _locked_dialogue(dialogue_id)
    except Dialogue.DoesNotExist:
        raise NotFound("No such dialogue.") from None
    _require_assignment(annotator, dialogue.batch)
    if dialogue.is_adjudicated:
        raise NotEditable(
            "A lead has adjudicated this dialogue; it takes no more votes."
        )
    if Label.objects.human().filter(dialogue=dialogue, annotator=annotator).exists():
        raise AlreadyLabelled(
            "You have already labelled this dialogue; change it from your history."
        )
    reservation = (
        Reservation.objects.select_for_update()
        .filter(dialogue=dialogue, annotator=annotator)
        .first()
    )
    if reservation is None or reservation.state == ReservationState.DONE:
        raise NotReserved("This dialogue is not reserved for you.")
    categories = _checked_vote(dialogue, vote)
    if reservation.state == ReservationState.RELEASED:
        if Skip.objects.filter(dialogue=dialogue, annotator=annotator).exists():
            raise NotReserved("You skipped this dialogue; it went to someone else.")
        if not dialogue.is_gold and dialogue.claimed >= dialogue.batch.labels_required:
            raise NotReserved(
                "Your reservation expired and the dialogue went to someone else."
            )
        Dialogue.objects.filter(pk=dialogue.pk).update(claimed=F("claimed") + 1)
    Dialogue.objects.filter(pk=dialogue.pk).update(votes=F("votes") + 1)
    reservation.state = ReservationState.DONE
    reservation.save(update_fields=["state"])
    label = Label.objects.create(
        dialogue=dialogue,
        kind=VoteKind.HUMAN,
        annotator=annotator,
        label=vote.label,
        response_label=vote.response_label,
        other_text=vote.other_text.strip(),
        comment=vote.comment.strip(),
        time_spent_ms=_time_spent(time_spent_ms, reservation),
    )
    LabelCategory.objects.bulk_create(
        LabelCategory(label=label, category_id=c.id, position=i)
        for i, c in enumerate(categories)
    )
    label.category_names = [c.name for c in categories]
    if dialogue.votes + 1 >= dialogue.batch.labels_required:
        # Before that the final label can only say "waiting for votes": no task.
        recompute_later(dialogue.pk)
    return label


def _release_mine(dialogue: Dialogue, annotator: User) -> None:
    """Drop the annotator's active reservation of a locked dialogue (if any)."""
    released = Reservation.objects.filter(
        dialogue=dialogue, annotator=annotator, state=ReservationState.ACTIVE
    ).update(state=ReservationState.RELEASED)
    if released:
        Dialogue.objects.filter(pk=dialogue.pk, claimed__gt=0).update(
            claimed=F("claimed") - 1
        )


@transaction.atomic
def skip_dialogue(*, annotator: User, dialogue_id: int, reason: str = "") -> Skip:
    """Pass on a reserved dialogue: it goes back to the others, never to this person."""
    require_consent(annotator)
    dialogue = _locked_dialogue(dialogue_id)
    if not Reservation.objects.filter(
        dialogue=dialogue, annotator=annotator, state=ReservationState.ACTIVE
    ).exists():
        raise NotReserved("This dialogue is not reserved for you.")
    _release_mine(dialogue, annotator)
    skip, _ = Skip.objects.get_or_create(
        dialogue=dialogue,
        annotator=annotator,
        defaults={"reason": reason.strip()[:500]},
    )
    return skip


@transaction.atomic
def flag_dialogue(
    *, annotator: User, dialogue_id: int, reason: str, note: str = ""
) -> Flag:
    """Report a dialogue to the leads. A reserved one is also skipped (it moves on);
    one the annotator already labelled keeps their vote."""
    require_consent(annotator)
    dialogue = _locked_dialogue(dialogue_id)
    reserved = Reservation.objects.filter(
        dialogue=dialogue, annotator=annotator, state=ReservationState.ACTIVE
    ).exists()
    voted = (
        Label.objects.human().filter(dialogue=dialogue, annotator=annotator).exists()
    )
    if not (reserved or voted):
        raise NotReserved("You can flag dialogues reserved for you or labelled by you.")
    flag, _ = Flag.objects.update_or_create(
        dialogue=dialogue,
        annotator=annotator,
        defaults={"reason": reason, "note": note.strip(), "resolved_at": None},
    )
    if reserved:
        _release_mine(dialogue, annotator)
        Skip.objects.get_or_create(
            dialogue=dialogue,
            annotator=annotator,
            defaults={"reason": f"flagged: {reason}"},
        )
    return flag


def vote_snapshot(label: Label) -> dict[str, Any]:
    """A vote's values as stored in its edit history."""
    return {
        "label": label.label,
        "response_label": label.response_label,
        "categories": label.ordered_category_names(),
        "other_text": label.other_text,
        "comment": label.comment,
    }


@transaction.atomic
def edit_label(*, annotator: User, label_id: int, vote: VoteIn) -> Label:
    """Change one's own vote until the dialogue is adjudicated; the edit is kept."""
    require_consent(annotator)
    label = (
        Label.objects.select_for_update(of=("self",))
        .select_related("dialogue__batch__taxonomy")
        .filter(pk=label_id, annotator=annotator, kind=VoteKind.HUMAN)
        .first()
    )
    if label is None:
        if not Label.objects.filter(pk=label_id).exists():
            raise NotFound("No such label.")
        raise NotEditable("No such label of yours.")
    if label.dialogue.is_adjudicated:
        raise NotEditable("A lead has adjudicated this dialogue; its votes are final.")
    categories = _checked_vote(label.dialogue, vote)
    before = vote_snapshot(label)
    label.label = vote.label
    label.response_label = vote.response_label
    label.other_text = vote.other_text.strip()
    label.comment = vote.comment.strip()
    label.save(
        update_fields=["label", "response_label", "other_text", "comment", "updated_at"]
    )
    label.label_categories.all().delete()
    LabelCategory.objects.bulk_create(
        LabelCategory(label=label, category_id=c.id, position=i)
        for i, c in enumerate(categories)
    )
    label.category_names = [c.name for c in categories]
    after = vote_snapshot(label)
    if after != before:
        LabelEdit.objects.create(
            label=label, edited_by=annotator, before=before, after=after
        )
        recompute_later(label.dialogue_id)
    return label


def recount_claimed(*, dialogue_ids: list[int]) -> None:
    """Set `votes` and `claimed` from the rows (human votes, active reservations)
    after a bulk write that bypassed the queue, such as an import of labels."""
    votes = (
        Label.objects.filter(dialogue=OuterRef("pk"), kind=VoteKind.HUMAN)
        .order_by()
        .values("dialogue")
        .annotate(n=Count("pk"))
        .values("n")
    )
    held = (
        Reservation.objects.filter(
            dialogue=OuterRef("pk"), state=ReservationState.ACTIVE
        )
        .order_by()
        .values("dialogue")
        .annotate(n=Count("pk"))
        .values("n")
    )
    for start in range(0, len(dialogue_ids), 5000):
        Dialogue.objects.filter(pk__in=dialogue_ids[start : start + 5000]).update(
            votes=Coalesce(Subquery(votes, output_field=IntegerField()), 0),
            claimed=Coalesce(Subquery(votes, output_field=IntegerField()), 0)
            + Coalesce(Subquery(held, output_field=IntegerField()), 0),
        )
