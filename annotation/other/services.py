"""Standardising the free texts given with "Other" (DESIGN section 2).

Annotators who choose Other write what they saw in their own words. `normalise`
turns those words into one form, so "Phishing!" and " phishing " are one group;
`other_groups` lists the groups of a taxonomy version (or one batch) with their
counts and a few of the original texts; `map_other` records a lead's decision for a
group: a fine-grained category, or keep it as Other. `unmap_other` takes a decision
back.

Derivation (`annotation.final_labels.services`) reads the decisions and puts the category in
place of Other in each matching human vote, so the final labels and the exports
carry it; the votes themselves keep Other and their original text, for audit.
Adjudicated votes are a lead's explicit categories and are never rewritten.
"""

import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from django.db import transaction
from django.db.models import Exists, OuterRef, QuerySet
from django.utils import timezone

from accounts.models import User
from accounts.refusals import NotALead, Refused
from annotation import enqueue
from annotation.models import Batch, Label, LabelCategory, OtherMapping, VoteKind
from taxonomy.models import Category, Group, Taxonomy

# OtherMapping.text's length: longer texts are grouped by their first 500 characters.
MAX_TEXT = 500
EXAMPLES = 3


class OtherError(Refused):
    """A decision on an Other group was refused (400)."""


class OtherInvalid(OtherError):
    """The text or the category cannot be used (the message says which and why)."""


# --- the pure part ----------------------------------------------------------------


def _is_edge(char: str) -> bool:
    """Whitespace or punctuation (quotes, brackets and dashes included)."""
    return char.isspace() or unicodedata.category(char).startswith("P")


def normalise(text: str) -> str:
    """The form that groups Other texts: what a lead would call the same words.

    - Unicode compatibility forms are folded (NFKC: full-width letters, ligatures),
      then the case (`str.casefold`, so "Straße" and "STRASSE" meet);
    - every run of whitespace (newlines and tabs too) becomes one space;
    - whitespace, punctuation, quotes and brackets around the text are dropped
      (`"Phishing!"` and `(phishing)` are `phishing`); inside the text they stay
      (`self-harm` is not `self harm`), and so do symbols (`c++`, emoji);
    - the result is cut to MAX_TEXT characters (and trimmed again), so normalising
      a normalised text changes nothing.

    "" means there is nothing to group (blank or only punctuation).
    """
    folded = " ".join(unicodedata.normalize("NFKC", text).casefold().split())
    # Cut, then trim again: what a mapping stores must normalise to itself.
    return _trim(_trim(folded)[:MAX_TEXT])


def _trim(text: str) -> str:
    start, end = 0, len(text)
    while start < end and _is_edge(text[start]):
        start += 1
    while end > start and _is_edge(text[end - 1]):
        end -= 1
    return text[start:end]


def standardise_categories(
    categories: Iterable[tuple[str, bool]], other_text: str, mapped: Mapping[str, str]
) -> tuple[str, ...]:
    """A human vote's category names with Other replaced by what its text maps to.

    `categories` are (name, takes free text) in the vote's order; `mapped` maps a
    normalised text to a category name (a group kept as Other is not in it). The
    category takes Other's place; if the vote named it already, it stays where the
    vote first named it.
    """
    target = mapped.get(normalise(other_text)) if other_text else None
    names = (target if target and is_other else name for name, is_other in categories)
    return tuple(dict.fromkeys(names))


# --- reading the groups -----------------------------------------------------------


@dataclass
class OtherGroup:
    """One normalised Other text and the human votes that gave it."""

    text: str
    votes: int = 0
    batch_ids: set[int] = field(default_factory=set)
    # Distinct original texts, first given first.
    examples: list[str] = field(default_factory=list)
    mapping: OtherMapping | None = None

    @property
    def batches(self) -> int:
        return len(self.batch_ids)

    @property
    def decided(self) -> bool:
        return self.mapping is not None

    @property
    def category(self) -> Category | None:
        """The category the group stands for; None while undecided or kept."""
        return self.mapping.category if self.mapping else None


def other_votes(taxonomy: Taxonomy, batch: Batch | None = None) -> QuerySet[Label]:
    """The valid human votes under the taxonomy (or in one batch) that chose a
    category taking free text (Other) and gave some text."""
    votes = Label.objects.filter(
        kind=VoteKind.HUMAN,
        valid=True,
        dialogue__batch__taxonomy=taxonomy,
        other_text__gt="",
    ).filter(
        Exists(
            LabelCategory.objects.filter(
                label=OuterRef("pk"), category__requires_text=True
            )
        )
    )
    if batch is not None:
        votes = votes.filter(dialogue__batch=batch)
    return votes


def other_groups(
    *, taxonomy: Taxonomy | None = None, batch: Batch | None = None
) -> list[OtherGroup]:
    """The Other groups of a taxonomy version, or of one batch (then of its version),
    most votes first, each with its current mapping.

    Two queries whatever the number of votes or groups (the votes' texts, the
    mappings); the texts are grouped here because `normalise` is Python.
    """
    if taxonomy is None:
        if batch is None:
            raise TypeError("other_groups needs a taxonomy or a batch")
        taxonomy = batch.taxonomy
    elif batch is not None and batch.taxonomy_id != taxonomy.pk:
        raise ValueError(f"batch {batch.name} is not labelled against {taxonomy}")
    groups: dict[str, OtherGroup] = {}
    for text, batch_id in (
        other_votes(taxonomy, batch)
        .order_by("id")
        .values_list("other_text", "dialogue__batch_id")
    ):
        key = normalise(text)
        if not key:
            continue
        group = groups.get(key)
        if group is None:
            group = groups[key] = OtherGroup(key)
        group.votes += 1
        group.batch_ids.add(batch_id)
        example = text.strip()
        if len(group.examples) < EXAMPLES and example not in group.examples:
            group.examples.append(example)
    if groups:
        for mapping in OtherMapping.objects.for_taxonomy(taxonomy).select_related(
            "category", "decided_by"
        ):
            if mapping.text in groups:
                groups[mapping.text].mapping = mapping
    return sorted(groups.values(), key=lambda g: (-g.votes, g.text))


@dataclass(frozen=True)
class Usage:
    """How many human votes gave a normalised Other text, and in which batches."""

    votes: int
    batch_ids: tuple[int, ...]


def other_usage(*, taxonomy: Taxonomy, text: str) -> Usage:
    """The votes and batches a decision on `text` (normalised) applies to; one query."""
    votes = 0
    batch_ids: set[int] = set()
    for original, batch_id in other_votes(taxonomy).values_list(
        "other_text", "dialogue__batch_id"
    ):
        if normalise(original) == text:
            votes += 1
            batch_ids.add(batch_id)
    return Usage(votes, tuple(sorted(batch_ids)))


# --- decisions --------------------------------------------------------------------


def _check(
    *, taxonomy: Taxonomy, text: str, category: Category | None, lead: User
) -> str:
    """The normalised text, once the decision is allowed."""
    if not lead.is_lead:
        raise NotALead("Only leads decide what Other texts stand for.")
    normalised = normalise(text)
    if not normalised:
        raise OtherInvalid("The text is empty once normalised; there is no group.")
    if category is not None:
        if category.taxonomy_id != taxonomy.pk:
            raise OtherInvalid(f"{category.name} is not a category of {taxonomy}.")
        if category.group != Group.FINE_GRAINED:
            raise OtherInvalid(
                f"{category.name} is not fine-grained; Other maps to one of the "
                "fine-grained categories, or stays Other."
            )
        if category.retired:
            raise OtherInvalid(f"{category.name} is retired in {taxonomy}.")
    return normalised


def _rederive(taxonomy: Taxonomy, text: str) -> Usage:
    """Queue the derivation of every batch with a vote that gave `text`, after the
    commit (so the task reads the decision)."""
    usage = other_usage(taxonomy=taxonomy, text=text)
    for batch_id in usage.batch_ids:
        enqueue.later("annotation.derive_final_labels", batch_id, robust=True)
    return usage


@transaction.atomic
def map_other(
    *, taxonomy: Taxonomy, text: str, category: Category | None, lead: User
) -> OtherMapping:
    """Record that the Other text (any spelling that normalises alike) stands for
    `category` under `taxonomy`, or, with None, that it stays Other.

    Replaces an earlier decision on the same text. When what the votes derive to
    changes, every batch with such a vote is derived again after the commit. Raises
    NotALead or OtherInvalid, having written nothing.
    """
    normalised = _check(taxonomy=taxonomy, text=text, category=category, lead=lead)
    before = (
        OtherMapping.objects.select_for_update()
        .filter(taxonomy=taxonomy, text=normalised)
        .values_list("category_id", flat=True)
        .first()
    )
    mapping, _ = OtherMapping.objects.update_or_create(
        taxonomy=taxonomy,
        text=normalised,
        defaults={
            "category": category,
            "decided_by": lead,
            "decided_at": timezone.now(),
        },
    )
    # Undecided and kept both derive to Other: only a category change re-derives.
    if before != (category.pk if category else None):
        _rederive(taxonomy, normalised)
    return mapping


@transaction.atomic
def unmap_other(*, taxonomy: Taxonomy, text: str, lead: User) -> bool:
    """Take back the decision on the Other text: its votes derive to Other again and
    the group is undecided. False when there was no decision."""
    normalised = _check(taxonomy=taxonomy, text=text, category=None, lead=lead)
    mapping = (
        OtherMapping.objects.select_for_update()
        .filter(taxonomy=taxonomy, text=normalised)
        .first()
    )
    if mapping is None:
        return False
    mapping.delete()
    if mapping.category_id is not None:
        _rederive(taxonomy, normalised)
    return True
