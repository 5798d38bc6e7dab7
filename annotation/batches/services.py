"""What leads do to batches: create one from imported sets, change its settings and
status, assign annotators, cap their day, resolve flags.

Validation of input happens in the forms and the command; these services keep the
invariants (a published taxonomy, at least one vote per dialogue, only active
annotators assigned, allowed status changes) and raise when one would break.
"""

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.utils import timezone

from accounts.models import Role, User
from accounts.refusals import NotFound, Refused
from annotation.final_labels.services import derive_later
from annotation.labelling.queue import release_where
from annotation.models import (
    Assignment,
    Augmentation,
    Batch,
    Dialogue,
    Flag,
    Reservation,
)
from taxonomy.models import Taxonomy


class BatchError(Refused):
    """A batch rule refused the change; the message says why, for a lead to read."""


class NoSuchBatch(NotFound):
    def __init__(self, name: str) -> None:
        super().__init__(f"There is no batch named {name!r}.")


def batch_named(name: str) -> Batch:
    """The batch a page names, with its taxonomy; NoSuchBatch (a 404) otherwise."""
    found = Batch.objects.select_related("taxonomy").filter(name=name).first()
    if found is None:
        raise NoSuchBatch(name)
    return found


class NotAnnotators(BatchError):
    """Some of the people given cannot label: not annotators, or not active."""

    def __init__(self, usernames: list[str]) -> None:
        super().__init__(
            "Only active annotators can be assigned: " + ", ".join(sorted(usernames))
        )
        self.usernames = sorted(usernames)


# The settings a lead may change after creation. The taxonomy and the name stay:
# votes point at the taxonomy version, and URLs and exports at the name.
SETTINGS_FIELDS = (
    "labels_required",
    "reservation_minutes",
    "break_reminder_minutes",
    "needs_caution_policy",
    "asks_response_label",
    "instructions",
)
# Changed on the settings page only: a new batch has no gold items yet.
LATER_SETTINGS_FIELDS = (*SETTINGS_FIELDS, "gold_rate")


# Counts the model bounds only by check constraints (or not at all); the services
# name the field that is wrong instead of the constraint.
AT_LEAST_ONE = ("labels_required", "reservation_minutes", "break_reminder_minutes")


# The settings final labels depend on (annotation.rules.derivation).
DERIVATION_SETTINGS = {"needs_caution_policy", "labels_required", "asks_response_label"}


def _check_counts(fields: dict[str, Any]) -> None:
    errors = {
        name: "Must be at least 1."
        for name in AT_LEAST_ONE
        if name in fields and fields[name] < 1
    }
    if errors:
        raise ValidationError(errors)


@dataclass(frozen=True)
class CopyResult:
    copied: int
    skipped: int


def _locked(batch: Batch) -> Batch:
    return Batch.objects.select_for_update().get(pk=batch.pk)


@transaction.atomic
def create_batch(
    *,
    name: str,
    taxonomy: Taxonomy,
    labels_required: int,
    reservation_minutes: int,
    needs_caution_policy: str,
    asks_response_label: bool,
    instructions: str,
    break_reminder_minutes: int,
    by: User | None,
    copy_from: list[Batch] | None = None,
    sources: list[str] | None = None,
) -> Batch:
    """A new batch, filled with copies of the original dialogues of `copy_from`
    (only those whose source is in `sources`, when given); votes are never copied.

    Raises ValidationError for a taken or malformed name, an unpublished taxonomy,
    or counts below one.
    """
    _check_counts(
        {
            "labels_required": labels_required,
            "reservation_minutes": reservation_minutes,
            "break_reminder_minutes": break_reminder_minutes,
        }
    )
    if not taxonomy.is_published:
        raise ValidationError(
            {"taxonomy": f"{taxonomy} is a draft; label against a published version."}
        )
    batch = Batch(
        name=name,
        taxonomy=taxonomy,
        labels_required=labels_required,
        reservation_minutes=reservation_minutes,
        needs_caution_policy=needs_caution_policy,
        asks_response_label=asks_response_label,
        instructions=instructions,
        break_reminder_minutes=break_reminder_minutes,
        created_by=by,
    )
    batch.full_clean()
    batch.save()
    if copy_from:
        copy_dialogues(into=batch, from_batches=copy_from, sources=sources)
    return batch


@transaction.atomic
def copy_dialogues(
    *, into: Batch, from_batches: list[Batch], sources: list[str] | None = None
) -> CopyResult:
    """Copy the original dialogues of other batches into `into` in one statement.

    Dialogues whose text or id is already in `into` (or that repeat across the
    batches copied from) are skipped and counted. The copies start unclaimed, with
    a fresh place in the random order; votes, reservations and flags stay behind.
    Locks `into`, so it is serialised with imports into the same batch.
    """
    _locked(into)
    ids = [b.pk for b in from_batches if b.pk != into.pk]
    if not ids or sources == []:
        return CopyResult(copied=0, skipped=0)
    table = Dialogue._meta.db_table
    # The text and where it came from; the queue's bookkeeping starts afresh, and
    # import_job stays empty (that job imported into another batch).
    kept = (
        "external_id",
        "source",
        "augmentation",
        "turns",
        "prompt",
        "response",
        "redacted",
        "reconstruction_id",
        "content_hash",
        "metadata",
    )
    postgres = connection.vendor == "postgresql"
    random_key = (
        "floor(random() * 2147483647)::int"
        if postgres
        else "abs(random()) %% 2147483647"  # %% : the query has parameters
    )
    where = [
        f"batch_id IN ({', '.join(['%s'] * len(ids))})",
        "augmentation = %s",
    ]
    now = connection.ops.adapt_datetimefield_value(timezone.now())
    params: list[Any] = [into.pk, now, *ids, Augmentation.NONE.value]
    if sources is not None:
        where.append(f"source IN ({', '.join(['%s'] * len(sources))})")
        params += sources
    columns = ", ".join(kept)
    statement = (
        f"INSERT {'' if postgres else 'OR IGNORE '}INTO {table} "
        f"(batch_id, {columns}, import_job_id, votes, claimed, shuffle_key, "
        "adjudicated_at, created_at) "
        f"SELECT %s, {columns}, NULL, 0, 0, {random_key}, NULL, %s "
        f"FROM {table} WHERE {' AND '.join(where)} ORDER BY id"
        + (" ON CONFLICT DO NOTHING" if postgres else "")
    )
    candidates = Dialogue.objects.filter(batch_id__in=ids).originals()
    if sources is not None:
        candidates = candidates.filter(source__in=sources)
    total = candidates.count()
    with connection.cursor() as cursor:
        cursor.execute(statement, params)
        copied = cursor.rowcount
    return CopyResult(copied=copied, skipped=total - copied)


@transaction.atomic
def update_batch_settings(*, batch: Batch, **fields: Any) -> Batch:
    """Change the settings named in LATER_SETTINGS_FIELDS; others raise TypeError.

    Lowering `labels_required` below the votes a dialogue has is allowed: the queue
    stops serving it. Raises ValidationError for values the model refuses.
    """
    unknown = set(fields) - set(LATER_SETTINGS_FIELDS)
    if unknown:
        raise TypeError(f"not a batch setting: {', '.join(sorted(unknown))}")
    _check_counts(fields)
    if "gold_rate" in fields and not 0 <= fields["gold_rate"] <= 1:
        raise ValidationError({"gold_rate": "A share between 0 and 1."})
    locked = _locked(batch)
    changed = [name for name, value in fields.items() if getattr(locked, name) != value]
    for name in changed:
        setattr(locked, name, fields[name])
    if not changed:
        return locked
    locked.full_clean(
        exclude=[f.name for f in Batch._meta.fields if f.name not in changed]
    )
    locked.save(update_fields=changed)
    if DERIVATION_SETTINGS & set(changed):
        derive_later(locked.pk)
    return locked


@transaction.atomic
def set_batch_status(*, batch: Batch, status: str) -> Batch:
    """Move the batch to `status` (Batch.set_status checks the transition); locks the
    batch row, so two leads cannot race."""
    locked = _locked(batch)
    locked.set_status(status)
    batch.status = status
    return locked


def _require_annotators(people: Iterable[User]) -> None:
    refused = [
        u.username for u in people if u.role != Role.ANNOTATOR or not u.is_active
    ]
    if refused:
        raise NotAnnotators(refused)


@transaction.atomic
def assign_annotators(*, batch: Batch, annotators: list[User]) -> int:
    """Add annotators to the batch (those already on it stay as they are); returns
    how many were added. Refuses the whole list if anyone in it cannot label."""
    _require_annotators(annotators)
    _locked(batch)
    present = set(
        Assignment.objects.filter(batch=batch).values_list("annotator_id", flat=True)
    )
    new = {u.pk: u for u in annotators if u.pk not in present}
    Assignment.objects.bulk_create(
        [Assignment(batch=batch, annotator=u) for u in new.values()]
    )
    return len(new)


@transaction.atomic
def unassign_annotators(*, batch: Batch, annotators: list[User]) -> int:
    """Take annotators off the batch; returns how many were on it. Their votes stay;
    their live reservations in it are released so others get those dialogues
    (`release_where` takes the queue's locks in the queue's order)."""
    _locked(batch)
    ids = [u.pk for u in annotators]
    release_where(
        Reservation.objects.filter(batch=batch, annotator_id__in=ids),
        skip_locked=False,
    )
    removed, _ = Assignment.objects.filter(batch=batch, annotator_id__in=ids).delete()
    return removed


def _check_cap(cap: int | None) -> None:
    if cap is not None and cap < 1:
        raise ValidationError(
            {"daily_label_cap": "A daily cap is at least 1; leave it empty for none."}
        )


@transaction.atomic
def set_daily_caps(*, caps: dict[User, int | None]) -> list[User]:
    """Set each annotator's most labels a day (None: no cap); returns those changed.

    The cap holds across all batches; the queue stops serving once it is reached.
    """
    _require_annotators(caps)
    for cap in caps.values():
        _check_cap(cap)
    changed = [u for u, cap in caps.items() if u.daily_label_cap != cap]
    for u in changed:
        u.daily_label_cap = caps[u]
    User.objects.bulk_update(changed, ["daily_label_cap"])
    return changed


@transaction.atomic
def resolve_flag(*, flag: Flag, by: User) -> Flag:
    """Mark a flag as dealt with (who and when); a resolved flag keeps its first
    resolution."""
    locked = Flag.objects.select_for_update().get(pk=flag.pk)
    if locked.resolved_at is None:
        locked.resolved_at = timezone.now()
        locked.resolved_by = by
        locked.save(update_fields=["resolved_at", "resolved_by"])
    return locked
