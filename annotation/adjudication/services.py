"""Leads' final word on dialogues (DESIGN section 3): what needs it, and the decisions.

`adjudication_queue` lists the dialogues that need a lead, read from the stored
final labels, the votes, the jury's decisions and open flags in one query.
`adjudicate`, `reopen` and `accept_unanimous` record decisions: each decision is an
`Adjudication` row (the history, never deleted) and, while in force, the dialogue's
kind="adjudicated" Label, which derivation reads, and `Dialogue.adjudicated_at`.

Locks follow `annotation.labelling.queue`'s order: dialogue rows (in id order when several),
then what hangs off them (their adjudications and labels). The final labels are
derived again after the commit, in a transaction of their own
(`annotation.final_labels.services`).
"""

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from django.db import transaction
from django.db.models import (
    Count,
    Exists,
    OuterRef,
    Prefetch,
    Q,
    QuerySet,
    Subquery,
)
from django.db.models.functions import Substr
from django.utils import timezone

from accounts.models import User
from accounts.refusals import Conflict, NotALead
from annotation.final_labels.services import (
    derive_batch,
    derive_with_adjudication,
    recompute_on_commit,
    refresh_batch,
)
from annotation.models import (
    Adjudication,
    AdjudicationReason,
    Batch,
    Confidence,
    Dialogue,
    FinalLabel,
    Flag,
    JuryDecision,
    Label,
    LabelCategory,
    Provenance,
    VoteKind,
)
from annotation.rules.derivation import AdjudicationIn, human_majority
from annotation.rules.labels import BINARY, LABELS, SAFE, UNSAFE, binary_counts
from annotation.rules.votes import VoteProblem, VoteProblems, check_vote

# Why a dialogue is in the queue, in the order they are listed on an item.
TIE = "tie"
SPLIT = "split"
HUMANS_VS_JURY = "humans_vs_jury"
JURY_NEEDS_REVIEW = "jury_needs_review"
FLAGGED = "flagged"
REASONS = (TIE, SPLIT, HUMANS_VS_JURY, JURY_NEEDS_REVIEW, FLAGGED)

# The unresolved reasons of `annotation.rules.derivation.derive` that are a tie.
_TIE_REASONS = ("tie after the policy", "response: tie after the policy")


class AdjudicationError(Conflict):
    """A decision was refused (409 unless a subclass says otherwise)."""


class NotAdjudicated(AdjudicationError):
    status = 409
    code = "not_adjudicated"


class AdjudicationInvalid(VoteProblems, AdjudicationError):
    """The decision breaks DESIGN section 3's rules; `problems` name the fields."""

    status = 400
    code = "invalid"


@dataclass(frozen=True)
class DecisionIn:
    """What a lead submitted, kept whole so a refused decision can be shown back."""

    prompt_label: str
    response_label: str | None
    categories: tuple[str, ...]
    confidence: str
    reason: str
    note: str = ""
    guideline_update: bool = False


class AdjudicationConflict(AdjudicationError):
    """Another lead decided the dialogue first (or it changed since the page was
    read); `current` is the decision in force, `submitted` what was refused."""

    code = "already_adjudicated"

    def __init__(
        self,
        message: str,
        *,
        current: Adjudication | None,
        submitted: DecisionIn,
    ) -> None:
        super().__init__(message)
        self.current = current
        self.submitted = submitted


# --- the queue ----------------------------------------------------------------------


@dataclass(frozen=True)
class QueueItem:
    dialogue_id: int
    batch: str
    reasons: list[str]
    agreement: float | None
    categories: list[str]
    # Human votes so far and the batch's required count: a dialogue whose votes are
    # not all in is listed only when asked (its split may still resolve itself).
    votes: int = 0
    required: int = 0

    @property
    def complete(self) -> bool:
        return self.votes >= self.required


@dataclass(frozen=True)
class Queue:
    """The queue, and how many dialogues it left out because they are still waiting
    for votes (each would have a reason to be here, but more votes may settle it)."""

    items: list[QueueItem]
    waiting: int


def _expand(counts: dict[str, int]) -> list[str]:
    return [label for label, n in counts.items() for _ in range(n)]


def queue_reasons(
    *,
    votes: dict[str, int],
    response_votes: dict[str, int],
    policy: str,
    asks_response_label: bool,
    jury: str | None,
    unresolved_reason: str,
    flagged: bool,
) -> tuple[list[str], float | None]:
    """Why a dialogue needs a lead (in `REASONS` order) and its agreement.

    `votes` and `response_votes` count the human 3-way labels; `jury` is the latest
    decision. Agreement is the share of human votes on the side of the binary
    majority (after the policy; a tie is 0.5), None without human votes. The humans
    are compared with the jury where they said something about the response: their
    response labels in a batch that asks for them; otherwise only a safe dialogue
    contradicts an unsafe response (an unsafe prompt answered with a refusal, which
    the jury calls safe, is the rules working, not a disagreement).
    """
    reasons: list[str] = []
    safe, unsafe = binary_counts(votes, policy)
    total = safe + unsafe
    if unresolved_reason in _TIE_REASONS:
        reasons.append(TIE)
    if safe and unsafe:
        reasons.append(SPLIT)
    if asks_response_label and any(response_votes.values()):
        humans = human_majority(_expand(response_votes), policy)
        against = jury in BINARY and humans not in (None, jury)
    else:
        humans = human_majority(_expand(votes), policy)
        against = humans == SAFE and jury == UNSAFE
    if against:
        reasons.append(HUMANS_VS_JURY)
    if jury == "needs_review":
        reasons.append(JURY_NEEDS_REVIEW)
    if flagged:
        reasons.append(FLAGGED)
    agreement = max(safe, unsafe) / total if total else None
    return reasons, agreement


def _count(label: str, field: str) -> Count:
    return Count(
        "labels",
        filter=Q(
            labels__kind=VoteKind.HUMAN,
            labels__valid=True,
            **{f"labels__{field}": label},
        ),
    )


def adjudication_queue(
    *,
    batch: Batch | None = None,
    category: str | None = None,
    reason: str | None = None,
    include_incomplete: bool = False,
) -> list[QueueItem]:
    """The dialogues that need a lead (see `read_queue`)."""
    return read_queue(
        batch=batch,
        category=category,
        reason=reason,
        include_incomplete=include_incomplete,
    ).items


def read_queue(
    *,
    batch: Batch | None = None,
    category: str | None = None,
    reason: str | None = None,
    include_incomplete: bool = False,
) -> Queue:
    """The dialogues that need a lead, lowest agreement first, then by id.

    One query: dialogues not adjudicated (gold items have their answer and are left
    out) with their human vote counts, latest jury decision, open flags and stored
    final label, narrowed in SQL to those that can have a reason; `queue_reasons`
    decides. `category` is a category name of the final label's categories, `reason`
    one of `REASONS`. A dialogue with fewer human votes than its batch requires is
    counted in `waiting` instead of listed, unless `include_incomplete`; an open flag
    is listed whatever the votes (an annotator asked for a lead), with that reason
    alone.
    """
    if reason is not None and reason not in REASONS:
        raise ValueError(f"reason must be one of {', '.join(REASONS)}, not {reason!r}")
    items: list[QueueItem] = []
    waiting = 0
    for row in _candidates(batch=batch, category=category):
        item = _queue_item(row)
        if item is None or (reason is not None and reason not in item.reasons):
            continue
        if not item.complete and not include_incomplete:
            if FLAGGED not in item.reasons:
                waiting += 1
                continue
            if reason not in (None, FLAGGED):
                continue  # it is here for its flag only; its split may settle
            item = replace(item, reasons=[FLAGGED], agreement=None)
        items.append(item)
    # No human votes (a flag, the jury alone) says nothing about agreement: last.
    items.sort(key=lambda i: (i.agreement is None, i.agreement or 0.0, i.dialogue_id))
    return Queue(items=items, waiting=waiting)


def _candidates(
    *, batch: Batch | None, category: str | None
) -> QuerySet[Dialogue, dict[str, Any]]:
    """The query `read_queue` reads: undecided, non-gold dialogues that can have a
    reason, with their vote counts, latest jury decision, open flag and final label."""
    latest_jury = (
        JuryDecision.objects.filter(dialogue=OuterRef("pk"))
        .order_by("-id")
        .values("decision")[:1]
    )
    counts = {f"n_{label}": _count(label, "label") for label in LABELS} | {
        f"r_{label}": _count(label, "response_label") for label in LABELS
    }
    dialogues: QuerySet[Dialogue] = Dialogue.objects.filter(
        adjudicated_at__isnull=True, is_gold=False
    )
    if batch is not None:
        dialogues = dialogues.filter(batch=batch)
    if category is not None:
        dialogues = dialogues.filter(
            final_label__violated_categories__contains=[category]
        )
    candidates: QuerySet[Dialogue, dict[str, Any]] = (
        dialogues.annotate(
            **counts,
            jury=Subquery(latest_jury),
            flagged=Exists(Flag.objects.open().filter(dialogue=OuterRef("pk"))),
        )
        .filter(
            # What can give a reason: a tie, two different labels (a split or a
            # majority against the jury), a jury decision, a flag.
            Q(final_label__unresolved_reason__in=_TIE_REASONS)
            | Q(jury__isnull=False)
            | Q(flagged=True)
            | Q(n_safe__gt=0, n_unsafe__gt=0)
            | Q(n_safe__gt=0, n_needs_caution__gt=0)
            | Q(n_unsafe__gt=0, n_needs_caution__gt=0)
        )
        .order_by("id")
        .values(
            "id",
            "batch__name",
            "batch__needs_caution_policy",
            "batch__asks_response_label",
            "batch__labels_required",
            "final_label__unresolved_reason",
            "final_label__violated_categories",
            "jury",
            "flagged",
            *counts,
        )
    )
    return candidates


def _queue_item(row: dict[str, Any]) -> QueueItem | None:
    """A row of `read_queue`'s query as an item with every reason it has, or None."""
    votes = {label: row[f"n_{label}"] for label in LABELS}
    reasons, agreement = queue_reasons(
        votes=votes,
        response_votes={label: row[f"r_{label}"] for label in LABELS},
        policy=row["batch__needs_caution_policy"],
        asks_response_label=row["batch__asks_response_label"],
        jury=row["jury"],
        unresolved_reason=row["final_label__unresolved_reason"] or "",
        flagged=row["flagged"],
    )
    if not reasons:
        return None
    return QueueItem(
        dialogue_id=row["id"],
        batch=row["batch__name"],
        reasons=reasons,
        agreement=agreement,
        categories=list(row["final_label__violated_categories"] or []),
        votes=sum(votes.values()),
        required=row["batch__labels_required"],
    )


# --- decisions ----------------------------------------------------------------------


def adjudication_version(dialogue_id: int) -> int:
    """How many decisions the dialogue has had; a page passes it back as
    `expected_version` so a decision made or reopened meanwhile is not overwritten."""
    return Adjudication.objects.filter(dialogue_id=dialogue_id).count()


def _require_lead(lead: User) -> None:
    if not lead.is_lead:
        raise NotALead("Only leads adjudicate dialogues.")


def _locked(dialogue_id: int) -> Dialogue:
    dialogue = (
        Dialogue.objects.select_for_update(of=("self",))
        .select_related("batch__taxonomy")
        .filter(pk=dialogue_id)
        .first()
    )
    if dialogue is None:
        raise NotAdjudicated(f"No dialogue {dialogue_id}.")
    return dialogue


def _checked(dialogue: Dialogue, decision: DecisionIn) -> list[str]:
    """The decision's category names as the taxonomy spells them, or
    AdjudicationInvalid naming every bad field (the rules of a vote, plus ours)."""
    categories, problems = check_vote(
        label=decision.prompt_label,
        response_label=decision.response_label,
        category_names=list(decision.categories),
        other_text="",
        index=dialogue.batch.taxonomy.category_index(),
        # A lead's note says what Other means; the Other mapping is its own page.
        require_other_text=False,
    )
    problems = [
        VoteProblem("prompt_label", p.message) if p.field == "label" else p
        for p in problems
    ]
    problems += [
        VoteProblem("categories", f"{c.name!r} is retired")
        for c in categories
        if c.retired
    ]
    if decision.response_label is not None and not dialogue.has_response:
        problems.append(VoteProblem("response_label", "the dialogue has no response"))
    if decision.confidence not in Confidence.values:
        problems.append(
            VoteProblem(
                "confidence",
                f"must be one of {', '.join(Confidence.values)}, "
                f"not {decision.confidence!r}",
            )
        )
    # Bulk acceptance has its own reason; a lead's form chooses among the others.
    allowed = [r for r in AdjudicationReason.values if r != "unanimous_accepted"]
    if decision.reason not in allowed:
        problems.append(
            VoteProblem(
                "reason",
                f"must be one of {', '.join(allowed)}, not {decision.reason!r}",
            )
        )
    if problems:
        raise AdjudicationInvalid(problems)
    names = [c.name for c in categories]
    _check_resolves(dialogue, decision, names)
    return names


def _check_resolves(dialogue: Dialogue, decision: DecisionIn, names: list[str]) -> None:
    """A decision resolves the dialogue or is refused saying why: "by the rules" can
    leave the response open (an unsafe prompt whose response the jury has not
    decided, a tie of human response labels)."""
    if decision.response_label is not None or not dialogue.has_response:
        return
    final = derive_with_adjudication(
        dialogue, AdjudicationIn(decision.prompt_label, None, tuple(names))
    )
    if final.is_resolved:
        return
    missing = final.unresolved_reason.removeprefix(
        "adjudication left the response open; "
    )
    raise AdjudicationInvalid(
        [
            VoteProblem(
                "response_label",
                f"by the rules the response cannot be decided ({missing}): "
                "choose safe or unsafe for it",
            )
        ]
    )


def _conflict(
    dialogue: Dialogue, decision: DecisionIn, expected_version: int | None
) -> AdjudicationConflict | None:
    history = list(
        Adjudication.objects.filter(dialogue=dialogue)
        .select_related("lead")
        .order_by("id")
    )
    current = next((a for a in history if a.is_current), None)
    if current is not None:
        return AdjudicationConflict(
            f"Dialogue {dialogue.pk} was already adjudicated by "
            f"{current.lead.username} at {current.created_at:%Y-%m-%d %H:%M:%S %Z}; "
            "reopen it to change.",
            current=current,
            submitted=decision,
        )
    if dialogue.is_adjudicated:
        # Adjudicated outside this module (an older import): no history to name.
        return AdjudicationConflict(
            f"Dialogue {dialogue.pk} was already adjudicated at "
            f"{dialogue.adjudicated_at:%Y-%m-%d %H:%M:%S %Z}; reopen it to change.",
            current=None,
            submitted=decision,
        )
    if expected_version is not None and expected_version != len(history):
        last = history[-1] if history else None
        who = f" by {last.reopened_by.username}" if last and last.reopened_by else ""
        return AdjudicationConflict(
            f"Dialogue {dialogue.pk} was decided and reopened{who} since you opened "
            "it; look at it again.",
            current=None,
            submitted=decision,
        )
    return None


def _write_label(
    dialogue_id: int,
    lead: User,
    decision: DecisionIn,
    categories: list[str],
    ids: dict[str, int],
) -> Label:
    label, _ = Label.objects.update_or_create(
        dialogue_id=dialogue_id,
        kind=VoteKind.ADJUDICATED,
        defaults={
            "annotator": lead,
            "label": decision.prompt_label,
            "response_label": decision.response_label,
            "comment": decision.note,
            "valid": True,
        },
    )
    label.label_categories.all().delete()
    LabelCategory.objects.bulk_create(
        LabelCategory(label=label, category_id=ids[name], position=i)
        for i, name in enumerate(categories)
    )
    label.category_names = categories
    return label


@transaction.atomic
def adjudicate(
    *,
    dialogue_id: int,
    lead: User,
    prompt_label: str,
    response_label: str | None,
    categories: Sequence[str],
    confidence: str,
    reason: str,
    note: str = "",
    guideline_update: bool = False,
    expected_version: int | None = None,
) -> Adjudication:
    """Record a lead's final labels for a dialogue; its votes stay as they are.

    Locks the dialogue row, so of two leads deciding at once the second waits and
    then gets AdjudicationConflict naming the first (with its own input, to show
    back). `expected_version` is `adjudication_version` as the lead's page read it.
    Validation follows a vote's rules (AdjudicationInvalid names the fields). The
    final label is derived again after the commit.
    """
    _require_lead(lead)
    decision = DecisionIn(
        prompt_label=prompt_label,
        response_label=response_label or None,
        categories=tuple(categories),
        confidence=confidence,
        reason=reason,
        note=note.strip(),
        guideline_update=guideline_update,
    )
    dialogue = _locked(dialogue_id)
    conflict = _conflict(dialogue, decision, expected_version)
    if conflict is not None:
        raise conflict
    names = _checked(dialogue, decision)
    now = timezone.now()
    adjudication = Adjudication.objects.create(
        dialogue=dialogue,
        lead=lead,
        prompt_label=decision.prompt_label,
        response_label=decision.response_label,
        categories=names,
        confidence=decision.confidence,
        reason=decision.reason,
        note=decision.note,
        guideline_update=decision.guideline_update,
        created_at=now,
    )
    ids = {c.name: c.id for c in dialogue.batch.taxonomy.category_index().categories}
    _write_label(dialogue.pk, lead, decision, names, ids)
    Dialogue.objects.filter(pk=dialogue.pk).update(adjudicated_at=now)
    # The decision answers the annotators' flags on the dialogue.
    Flag.objects.filter(dialogue=dialogue, resolved_at__isnull=True).update(
        resolved_at=now, resolved_by=lead
    )
    recompute_on_commit(dialogue.pk)
    return adjudication


@transaction.atomic
def reopen(*, dialogue_id: int, lead: User) -> Adjudication:
    """Take a decision back: the dialogue follows its votes again and can be decided
    anew. The Adjudication row stays (marked reopened); the votes are untouched.

    Locks the dialogue row; the final label is derived again after the commit.
    """
    _require_lead(lead)
    dialogue = _locked(dialogue_id)
    current = (
        Adjudication.objects.current()
        .select_for_update()
        .filter(dialogue=dialogue)
        .first()
    )
    if current is None:
        raise NotAdjudicated(f"Dialogue {dialogue_id} has no decision to reopen.")
    current.reopened_at = timezone.now()
    current.reopened_by = lead
    current.save(update_fields=["reopened_at", "reopened_by"])
    Label.objects.filter(dialogue=dialogue, kind=VoteKind.ADJUDICATED).delete()
    Dialogue.objects.filter(pk=dialogue.pk).update(adjudicated_at=None)
    recompute_on_commit(dialogue.pk)
    return current


# What `accept_unanimous` accepts: undecided, not gold, and unanimous by the last
# derivation.
_UNANIMOUS_UNDECIDED = Q(
    adjudicated_at__isnull=True,
    is_gold=False,
    final_label__provenance=Provenance.UNANIMOUS,
    final_label__prompt_label__isnull=False,
)


@transaction.atomic
def accept_unanimous(*, batch: Batch, lead: User) -> int:
    """Adjudicate every unanimous, undecided dialogue of the batch with its derived
    labels (reason `unanimous_accepted`); returns how many.

    Brings the stored final labels up to date first (`refresh_batch`: a vote whose
    recomputation is still queued is counted), then locks the dialogue rows in id
    order and writes in bulk: a fixed number of queries whatever the batch's size.
    The batch is derived again after the commit.
    """
    _require_lead(lead)
    refresh_batch(batch)
    rows = list(
        Dialogue.objects.select_for_update(of=("self",))
        .filter(_UNANIMOUS_UNDECIDED, batch=batch)
        .order_by("id")
        .values_list(
            "id",
            "final_label__prompt_label",
            "final_label__response_label",
            "final_label__violated_categories",
        )
    )
    if not rows:
        return 0
    ids = [row[0] for row in rows]
    now = timezone.now()
    Adjudication.objects.bulk_create(
        Adjudication(
            dialogue_id=pk,
            lead=lead,
            prompt_label=str(prompt),
            response_label=response,
            categories=list(names or []),
            confidence=Confidence.HIGH,
            reason=AdjudicationReason.UNANIMOUS_ACCEPTED,
            created_at=now,
        )
        for pk, prompt, response, names in rows
    )
    # None should exist (the dialogues are undecided); one left by older code would
    # break the one-per-dialogue constraint.
    Label.objects.filter(dialogue_id__in=ids, kind=VoteKind.ADJUDICATED).delete()
    labels = Label.objects.bulk_create(
        Label(
            dialogue_id=pk,
            kind=VoteKind.ADJUDICATED,
            annotator=lead,
            label=prompt,
            response_label=response,
            comment="Unanimous, accepted in bulk.",
        )
        for pk, prompt, response, _names in rows
    )
    category_ids = {c.name: c.id for c in batch.taxonomy.category_index().categories}
    LabelCategory.objects.bulk_create(
        LabelCategory(label=label, category_id=category_ids[name], position=i)
        for label, (_pk, _p, _r, names) in zip(labels, rows, strict=True)
        for i, name in enumerate(names or [])
        if name in category_ids
    )
    Dialogue.objects.filter(pk__in=ids).update(adjudicated_at=now)
    # One derivation of the batch (a fixed number of queries), not one per dialogue.
    transaction.on_commit(lambda: derive_batch(batch), robust=True)
    return len(rows)


def unanimous_counts() -> dict[str, int]:
    """How many dialogues `accept_unanimous` would accept, by batch name (one query);
    batches with none are left out."""
    rows = (
        Dialogue.objects.filter(_UNANIMOUS_UNDECIDED)
        .order_by()
        .values("batch__name")
        .annotate(n=Count("pk"))
        .values_list("batch__name", "n")
    )
    return {name: n for name, n in rows if n}


# --- reading, for the pages and the API ---------------------------------------------

# The longest prompt excerpt a queue row shows; the database cuts it, so a queue page
# never loads whole dialogues.
EXCERPT_CHARS = 160


@dataclass(frozen=True)
class QueueRow:
    """What a page of the queue shows of an item besides its `QueueItem`."""

    external_id: str
    prompt_excerpt: str
    votes: dict[str, int]
    jury: str | None


def queue_rows(dialogue_ids: Sequence[int]) -> dict[int, QueueRow]:
    """External id, prompt excerpt, human vote counts (3-way) and latest jury
    decision of the given dialogues (one page of the queue), in one query."""
    latest_jury = (
        JuryDecision.objects.filter(dialogue=OuterRef("pk"))
        .order_by("-id")
        .values("decision")[:1]
    )
    counts = {f"n_{label}": _count(label, "label") for label in LABELS}
    rows = (
        Dialogue.objects.filter(pk__in=list(dialogue_ids))
        .annotate(
            **counts,
            jury=Subquery(latest_jury),
            excerpt=Substr("prompt", 1, EXCERPT_CHARS + 1),
        )
        .order_by()
        .values("id", "external_id", "excerpt", "jury", *counts)
    )
    out: dict[int, QueueRow] = {}
    for row in rows:
        excerpt = row["excerpt"]
        if len(excerpt) > EXCERPT_CHARS:
            excerpt = excerpt[: EXCERPT_CHARS - 1].rstrip() + "…"
        out[row["id"]] = QueueRow(
            external_id=row["external_id"],
            prompt_excerpt=excerpt,
            votes={label: row[f"n_{label}"] for label in LABELS},
            jury=row["jury"],
        )
    return out


@dataclass(frozen=True)
class DialogueCase:
    """Everything a lead reads before deciding one dialogue."""

    dialogue: Dialogue
    final_label: FinalLabel | None
    human_votes: list[Label]
    jury_votes: list[Label]
    references: list[Label]
    jury_decisions: list[JuryDecision]
    open_flags: list[Flag]
    history: list[Adjudication]

    @property
    def version(self) -> int:
        """`adjudication_version` as this read saw it."""
        return len(self.history)

    @property
    def current(self) -> Adjudication | None:
        return next((a for a in self.history if a.is_current), None)


def dialogue_case(dialogue_id: int) -> DialogueCase | None:
    """The dialogue with its batch and taxonomy, stored final label, every vote with
    its categories (people's, judges', imported; the adjudicated one is the history's
    current decision), the jury's decisions (latest first), open flags and the
    decision history (oldest first): six queries, whatever the number of votes.
    None when there is no such dialogue."""
    dialogue = (
        Dialogue.objects.select_related("batch__taxonomy", "final_label")
        .filter(pk=dialogue_id)
        .first()
    )
    if dialogue is None:
        return None
    votes = list(
        Label.objects.filter(dialogue_id=dialogue_id)
        .exclude(kind=VoteKind.ADJUDICATED)
        .select_related("annotator")
        .prefetch_related(
            Prefetch(
                "label_categories",
                queryset=LabelCategory.objects.select_related("category").order_by(
                    "position"
                ),
            )
        )
        .order_by("id")
    )
    for vote in votes:
        vote.category_names = [lc.category.name for lc in vote.label_categories.all()]
    return DialogueCase(
        dialogue=dialogue,
        final_label=getattr(dialogue, "final_label", None),
        human_votes=[v for v in votes if v.kind == VoteKind.HUMAN],
        jury_votes=[v for v in votes if v.kind == VoteKind.MODEL],
        references=[v for v in votes if v.kind == VoteKind.REFERENCE],
        jury_decisions=list(
            JuryDecision.objects.filter(dialogue_id=dialogue_id).order_by("-id")
        ),
        open_flags=list(
            Flag.objects.open()
            .filter(dialogue_id=dialogue_id)
            .select_related("annotator")
            .order_by("created_at", "id")
        ),
        history=list(
            Adjudication.objects.filter(dialogue_id=dialogue_id)
            .select_related("lead", "reopened_by")
            .order_by("id")
        ),
    )
