"""Other, standardised (annotation.other.services): normalising the free texts, their groups,
the leads' decisions, and derivation reading them (annotation.final_labels.services)."""

from typing import Any

import pytest
from django.utils import timezone

from accounts.models import User
from annotation.final_labels.services import derive_batch, recompute_dialogue
from annotation.models import (
    Batch,
    Dialogue,
    FinalLabel,
    Label,
    LabelCategory,
    OtherMapping,
    VoteKind,
)
from annotation.other.services import (
    MAX_TEXT,
    NotALead,
    OtherInvalid,
    map_other,
    normalise,
    other_groups,
    other_usage,
    standardise_categories,
    unmap_other,
)
from taxonomy.models import Category, Group, Taxonomy
from tests.factories import BatchFactory, DialogueFactory, LabelFactory, LeadFactory

# --- normalise, pure ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Phishing", "phishing"),
        ("  Phishing!  ", "phishing"),
        ('"Phishing"', "phishing"),
        ("“Crypto   scam”\n", "crypto scam"),
        ("(spam)...", "spam"),
        ("Crypto\tscam\n\nmessages", "crypto scam messages"),
        ("Self-harm", "self-harm"),  # punctuation inside stays
        ("don't know?!", "don't know"),
        ("STRASSE", "strasse"),
        ("Straße", "strasse"),  # casefold, not lower
        ("\uff30\uff28\uff29\uff33\uff28\uff29\uff2e\uff27", "phishing"),  # full-width
        ("c++", "c++"),  # symbols are not punctuation
        ("🔫 guns", "🔫 guns"),
        ("", ""),
        ("   ", ""),
        ("?!...", ""),
    ],
)
def test_normalise(text: str, expected: str) -> None:
    assert normalise(text) == expected


def test_normalise_cuts_long_texts_to_what_a_mapping_holds() -> None:
    assert normalise("a" * 600) == "a" * MAX_TEXT
    assert normalise("ab " * 300) == ("ab " * 300)[:MAX_TEXT].rstrip()
    cut_at_a_comma = "a" * (MAX_TEXT - 1) + ", more"
    assert normalise(cut_at_a_comma) == "a" * (MAX_TEXT - 1)


@pytest.mark.parametrize(
    "text", ["  Phishing!  ", "“Crypto   scam”", "x" * 499 + ". y", "Straße."]
)
def test_normalising_a_normalised_text_changes_nothing(text: str) -> None:
    # (the page posts the normalised text back, and mappings store it)
    assert normalise(normalise(text)) == normalise(text)


def test_standardise_categories_puts_the_mapped_category_in_others_place() -> None:
    mapped = {"phishing": "Fraud/Deception"}
    other = ("Other", True)

    assert standardise_categories(
        [("Violence", False), other, ("Threat", False)], "Phishing!", mapped
    ) == ("Violence", "Fraud/Deception", "Threat")
    # a category the vote named already stays where it was first named
    assert standardise_categories(
        [("Fraud/Deception", False), other], "phishing", mapped
    ) == ("Fraud/Deception",)
    assert standardise_categories(
        [other, ("Fraud/Deception", False)], "phishing", mapped
    ) == ("Fraud/Deception",)
    # unmapped or blank texts leave Other
    assert standardise_categories([other], "scam", mapped) == ("Other",)
    assert standardise_categories([other], "", mapped) == ("Other",)


# --- helpers -------------------------------------------------------------------------


def _category(name: str, taxonomy: Taxonomy | None = None) -> Category:
    return Category.objects.get(
        taxonomy=taxonomy or Taxonomy.objects.default(), name=name
    )


def _map(taxonomy: Taxonomy, text: str, category: str, lead: User) -> OtherMapping:
    """`map_other` to the category of `taxonomy` with that name."""
    return map_other(
        taxonomy=taxonomy, text=text, category=_category(category, taxonomy), lead=lead
    )


def _vote(
    dialogue: Dialogue, label: str, *categories: str, other: str = "", **kw: Any
) -> Label:
    """A human vote (or another kind, with kind=...) with its categories in order."""
    vote = LabelFactory(dialogue=dialogue, label=label, other_text=other, **kw)
    LabelCategory.objects.bulk_create(
        LabelCategory(
            label=vote,
            category=_category(name, dialogue.batch.taxonomy),
            position=i,
        )
        for i, name in enumerate(categories)
    )
    return vote


def _categories(dialogue: Dialogue) -> list[str]:
    return FinalLabel.objects.get(dialogue=dialogue).violated_categories


def _groups(**kw: Any) -> list[tuple[str, int, int, list[str], str | None]]:
    return [
        (
            g.text,
            g.votes,
            g.batches,
            g.examples,
            None if g.mapping is None else (g.category.name if g.category else "kept"),
        )
        for g in other_groups(**kw)
    ]


@pytest.fixture
def queued(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The batches whose derivation was queued (the Celery task's delay)."""
    from annotation import tasks

    found: list[int] = []
    monkeypatch.setattr(tasks.derive_final_labels, "delay", found.append)
    return found


@pytest.fixture
def two_batches(db: None) -> tuple[Batch, Batch]:
    """ "phishing" spelt five ways in two batches, one "crypto scam", and votes that
    are not Other groups."""
    first, second = BatchFactory(name="first"), BatchFactory(name="second")
    d1, d2 = DialogueFactory(batch=first), DialogueFactory(batch=first)
    _vote(d1, "unsafe", "Violence", "Other", other="Phishing!")
    _vote(d1, "unsafe", "Other", other="phishing")
    _vote(d1, "unsafe", "Other", other=" PHISHING ")
    _vote(d2, "unsafe", "Other", other="phishing")  # the same example again
    _vote(d2, "unsafe", "Other", other="Crypto scam")
    _vote(DialogueFactory(batch=second), "unsafe", "Other", other="phishing.")
    # not groups: Other without text, text without Other, a lead's adjudication
    _vote(d2, "unsafe", "Other", other="  ")
    _vote(d2, "unsafe", "Violence", other="phishing")
    _vote(
        d1,
        "unsafe",
        "Other",
        other="phishing",
        kind=VoteKind.ADJUDICATED,
        annotator=LeadFactory(),
    )
    return first, second


# --- groups --------------------------------------------------------------------------


def test_groups_count_votes_and_batches_with_distinct_examples(
    two_batches: tuple[Batch, Batch], lead: User
) -> None:
    first, second = two_batches
    taxonomy = first.taxonomy
    _map(taxonomy, "crypto scam", "Fraud/Deception", lead)

    assert _groups(taxonomy=taxonomy) == [
        ("phishing", 5, 2, ["Phishing!", "phishing", "PHISHING"], None),
        ("crypto scam", 1, 1, ["Crypto scam"], "Fraud/Deception"),
    ]
    assert _groups(batch=second) == [("phishing", 1, 1, ["phishing."], None)]
    assert _groups(taxonomy=taxonomy, batch=first) == [
        ("phishing", 4, 1, ["Phishing!", "phishing", "PHISHING"], None),
        ("crypto scam", 1, 1, ["Crypto scam"], "Fraud/Deception"),
    ]
    assert other_usage(taxonomy=taxonomy, text="phishing").votes == 5
    with pytest.raises(TypeError):
        other_groups()


def test_groups_read_in_a_fixed_number_of_queries(
    two_batches: tuple[Batch, Batch],
    lead: User,
    django_assert_num_queries: Any,
) -> None:
    # given decisions on both groups, and then ten times more votes
    first, _ = two_batches
    taxonomy = first.taxonomy
    map_other(taxonomy=taxonomy, text="phishing", category=None, lead=lead)
    _map(taxonomy, "crypto scam", "Fraud/Deception", lead)
    with django_assert_num_queries(2):  # the votes' texts, the decisions
        small = other_groups(taxonomy=taxonomy)
        assert small[1].category is not None
        assert small[1].mapping is not None
        assert small[1].mapping.decided_by == lead
    for i in range(30):
        _vote(DialogueFactory(batch=first), "unsafe", "Other", other=f"text {i}")

    # then the groups still take two queries, mappings and who decided included
    fraud = _category("Fraud/Deception")
    with django_assert_num_queries(2):
        large = other_groups(taxonomy=taxonomy)
        assert [g.category for g in large[:2]] == [None, fraud]
        assert large[1].mapping is not None
        assert large[1].mapping.decided_by == lead
    assert len(large) == 32


# --- decisions -----------------------------------------------------------------------


def _draft_taxonomy() -> Taxonomy:
    draft = Taxonomy.objects.create(name="Draft", version=1)
    Category.objects.create(
        taxonomy=draft,
        code="S15",
        name="Manipulation",
        display_name="Manipulation",
        group=Group.FINE_GRAINED,
        order=15,
    )
    Category.objects.create(
        taxonomy=draft,
        code="S16",
        name="Fraud/Deception",
        display_name="Fraud/Deception",
        group=Group.FINE_GRAINED,
        order=16,
        retired=True,
    )
    return draft


@pytest.mark.parametrize(
    ("text", "category", "message"),
    [
        ("phishing", "Violence", "Violence is not fine-grained"),
        ("phishing", "Other", "Other is not fine-grained"),
        ("phishing", "draft Manipulation", "Manipulation is not a category of Aegis"),
        ("...", "Fraud/Deception", "empty once normalised"),
    ],
)
def test_a_refused_decision_writes_and_queues_nothing(
    two_batches: tuple[Batch, Batch],
    lead: User,
    queued: list[int],
    django_capture_on_commit_callbacks: Any,
    text: str,
    category: str,
    message: str,
) -> None:
    taxonomy = Taxonomy.objects.default()
    draft = _draft_taxonomy()
    chosen = (
        _category(category.removeprefix("draft "), draft)
        if category.startswith("draft ")
        else _category(category)
    )

    with (
        django_capture_on_commit_callbacks(execute=True),
        pytest.raises(OtherInvalid, match=message),
    ):
        map_other(taxonomy=taxonomy, text=text, category=chosen, lead=lead)

    assert not OtherMapping.objects.exists()
    assert queued == []


def test_a_retired_category_is_refused(lead: User) -> None:
    draft = _draft_taxonomy()

    with pytest.raises(OtherInvalid, match="Fraud/Deception is retired"):
        _map(draft, "phishing", "Fraud/Deception", lead)

    assert not OtherMapping.objects.exists()


def test_only_leads_decide(
    two_batches: tuple[Batch, Batch], annotator: User, lead: User, queued: list[int]
) -> None:
    taxonomy = Taxonomy.objects.default()
    with pytest.raises(NotALead):
        _map(taxonomy, "phishing", "Fraud/Deception", annotator)
    assert not OtherMapping.objects.exists()
    map_other(taxonomy=taxonomy, text="phishing", category=None, lead=lead)
    with pytest.raises(NotALead):
        unmap_other(taxonomy=taxonomy, text="phishing", lead=annotator)
    assert OtherMapping.objects.count() == 1
    assert queued == []


def test_a_decision_queues_every_batch_with_the_text_after_the_commit(
    two_batches: tuple[Batch, Batch],
    lead: User,
    queued: list[int],
    django_capture_on_commit_callbacks: Any,
) -> None:
    first, second = two_batches
    taxonomy = first.taxonomy
    third = BatchFactory(name="third")
    _vote(DialogueFactory(batch=third), "unsafe", "Other", other="something else")

    # when "Phishing" (any spelling) is mapped
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        mapping = _map(taxonomy, "  PHISHING!", "Fraud/Deception", lead)
    assert queued == []  # not before the commit
    for callback in callbacks:
        callback()

    # then the decision is stored under the normalised text, and both batches with
    # such a vote are derived again; the third is not
    assert (mapping.text, mapping.category, mapping.decided_by) == (
        "phishing",
        _category("Fraud/Deception"),
        lead,
    )
    assert sorted(queued) == [first.pk, second.pk]

    # the same decision again changes nothing, so nothing is queued
    with django_capture_on_commit_callbacks(execute=True):
        _map(taxonomy, "phishing", "Fraud/Deception", lead)
    assert len(queued) == 2
    assert OtherMapping.objects.count() == 1

    # another category, keeping as Other and taking it back each re-derive once
    # they change what the votes derive to
    with django_capture_on_commit_callbacks(execute=True):
        _map(taxonomy, "phishing", "Manipulation", lead)
    assert len(queued) == 4
    with django_capture_on_commit_callbacks(execute=True):
        map_other(taxonomy=taxonomy, text="phishing", category=None, lead=lead)
    assert len(queued) == 6
    with django_capture_on_commit_callbacks(execute=True):
        assert unmap_other(taxonomy=taxonomy, text="phishing", lead=lead)
    assert len(queued) == 6  # kept and undecided both derive to Other
    assert not OtherMapping.objects.exists()
    assert not unmap_other(taxonomy=taxonomy, text="phishing", lead=lead)


# --- derivation ----------------------------------------------------------------------


@pytest.fixture
def phishing(db: None) -> tuple[Dialogue, list[Label]]:
    """A prompt three annotators call unsafe, each writing "phishing" their way."""
    dialogue = DialogueFactory(response=None)
    votes = [
        _vote(dialogue, "unsafe", "Violence", "Other", other="Phishing!"),
        _vote(dialogue, "unsafe", "Other", other="phishing"),
        _vote(dialogue, "unsafe", "Fraud/Deception", "Other", other=" PHISHING "),
    ]
    return dialogue, votes


def _stored_votes(votes: list[Label]) -> list[tuple[str, list[str]]]:
    return [
        (
            Label.objects.get(pk=v.pk).other_text,
            Label.objects.get(pk=v.pk).ordered_category_names(),
        )
        for v in votes
    ]


def test_derivation_puts_the_mapped_category_in_place_of_other(
    phishing: tuple[Dialogue, list[Label]], lead: User
) -> None:
    dialogue, votes = phishing
    before = _stored_votes(votes)
    derive_batch(dialogue.batch)
    assert _categories(dialogue) == ["Other", "Violence", "Fraud/Deception"]

    # when the lead maps "phishing" and the batch is derived again
    _map(dialogue.batch.taxonomy, "phishing", "Fraud/Deception", lead)
    derive_batch(dialogue.batch)

    # then the final label names the category (three votes; a vote that had it
    # already counts it once), and the votes keep Other and their own words
    assert _categories(dialogue) == ["Fraud/Deception", "Violence"]
    assert (
        _stored_votes(votes)
        == before
        == [
            ("Phishing!", ["Violence", "Other"]),
            ("phishing", ["Other"]),
            (" PHISHING ", ["Fraud/Deception", "Other"]),
        ]
    )


def test_keeping_as_other_leaves_other(
    phishing: tuple[Dialogue, list[Label]], lead: User
) -> None:
    dialogue, _ = phishing
    map_other(
        taxonomy=dialogue.batch.taxonomy, text="phishing", category=None, lead=lead
    )

    derive_batch(dialogue.batch)

    assert _categories(dialogue) == ["Other", "Violence", "Fraud/Deception"]


def test_a_changed_decision_rewrites_the_final_label(
    phishing: tuple[Dialogue, list[Label]], lead: User
) -> None:
    # given a derived batch with "phishing" mapped to Manipulation
    dialogue, _ = phishing
    taxonomy = dialogue.batch.taxonomy
    _map(taxonomy, "phishing", "Manipulation", lead)
    derive_batch(dialogue.batch)
    first = FinalLabel.objects.get(dialogue=dialogue)
    assert first.violated_categories == ["Manipulation", "Violence", "Fraud/Deception"]

    # when nothing changes, the row is not written again
    derive_batch(dialogue.batch)
    assert FinalLabel.objects.get(dialogue=dialogue).computed_at == first.computed_at

    # when the decision changes, the fingerprint does and the row is rewritten
    _map(taxonomy, "phishing", "Fraud/Deception", lead)
    derive_batch(dialogue.batch)
    second = FinalLabel.objects.get(dialogue=dialogue)
    assert second.violated_categories == ["Fraud/Deception", "Violence"]
    assert second.votes_fingerprint != first.votes_fingerprint

    # and taking it back brings Other back
    unmap_other(taxonomy=taxonomy, text="phishing", lead=lead)
    derive_batch(dialogue.batch)
    assert _categories(dialogue) == ["Other", "Violence", "Fraud/Deception"]


def test_recompute_dialogue_applies_the_mapping_too(
    phishing: tuple[Dialogue, list[Label]], lead: User
) -> None:
    dialogue, _ = phishing
    _map(dialogue.batch.taxonomy, "phishing", "Fraud/Deception", lead)

    row = recompute_dialogue(dialogue.pk)

    assert row is not None
    assert row.violated_categories == ["Fraud/Deception", "Violence"]
    assert _categories(dialogue) == ["Fraud/Deception", "Violence"]


def test_a_mapping_of_another_taxonomy_version_does_not_apply(
    phishing: tuple[Dialogue, list[Label]], lead: User
) -> None:
    dialogue, _ = phishing
    draft = _draft_taxonomy()
    _map(draft, "phishing", "Manipulation", lead)

    derive_batch(dialogue.batch)

    assert _categories(dialogue) == ["Other", "Violence", "Fraud/Deception"]


def test_an_adjudication_keeps_the_leads_own_categories(
    phishing: tuple[Dialogue, list[Label]], lead: User
) -> None:
    # given an adjudicated dialogue whose lead chose Other, "phishing"
    dialogue, _ = phishing
    _vote(
        dialogue,
        "unsafe",
        "Other",
        other="phishing",
        kind=VoteKind.ADJUDICATED,
        annotator=lead,
    )
    Dialogue.objects.filter(pk=dialogue.pk).update(adjudicated_at=timezone.now())
    _map(dialogue.batch.taxonomy, "phishing", "Fraud/Deception", lead)

    derive_batch(dialogue.batch)

    # then the final label is the adjudication's, as the lead gave it
    row = FinalLabel.objects.get(dialogue=dialogue)
    assert (row.provenance, row.violated_categories) == ("adjudicated", ["Other"])
