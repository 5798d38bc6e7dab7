"""The batch page's dialogue list: a status per dialogue (votes n/m, the final label
or what it waits for) and filters by status, in a fixed number of queries."""

import re
from typing import Any

import pytest
from django.test import Client

from accounts.models import User
from annotation.adjudication.services import adjudicate
from annotation.batches.status import (
    ADJUDICATED,
    COMPLETE,
    GOLD,
    UNRESOLVED,
    WAITING,
    FinalIn,
    dialogue_status,
)
from annotation.final_labels.services import derive_batch
from annotation.labelling.queue import recount_claimed
from annotation.models import Batch, Dialogue, VoteKind
from tests.factories import BatchFactory, DialogueFactory, LabelFactory

pytestmark = pytest.mark.django_db


def _dialogue(batch: Batch, external_id: str, *labels: str, **kw: Any) -> Dialogue:
    dialogue = DialogueFactory(batch=batch, external_id=external_id, **kw)
    for label in labels:
        LabelFactory(dialogue=dialogue, label=label)
    return dialogue


@pytest.fixture
def batch(lead: User) -> Batch:
    """One dialogue in every status, three votes required, labelled as a real batch
    is: votes counted by the queue's own recount, final labels derived."""
    batch = BatchFactory(name="round-1", labels_required=3)
    _dialogue(batch, "none")
    _dialogue(batch, "one-vote", "unsafe")
    _dialogue(batch, "all-safe", "safe", "safe", "safe")
    _dialogue(batch, "majority", "unsafe", "unsafe", "safe", response=None)
    _dialogue(batch, "needs-jury", "unsafe", "unsafe", "unsafe")
    split = _dialogue(
        batch, "decided", "unsafe", "safe", "needs_caution", response=None
    )
    gold = _dialogue(batch, "gold", "safe", "safe")
    reference = _dialogue(batch, "imported", response=None)
    LabelFactory(
        dialogue=reference, kind=VoteKind.REFERENCE, annotator=None, label="unsafe"
    )
    recount_claimed(dialogue_ids=list(batch.dialogues.values_list("pk", flat=True)))
    derive_batch(batch)
    # A lead decides the split; gold is set as annotation.review.gold.services sets it (one flag).
    adjudicate(
        dialogue_id=split.pk,
        lead=lead,
        prompt_label="unsafe",
        response_label=None,
        categories=["Violence"],
        confidence="high",
        reason="ambiguous",
    )
    Dialogue.objects.filter(pk=gold.pk).update(is_gold=True)
    derive_batch(batch)
    return batch


def _statuses(page: str) -> dict[str, tuple[str, str]]:
    """External id -> (votes, status text) of each row of the dialogues table."""
    rows = re.findall(
        r'<tr data-status="[a-z]+">\s*<td class="code"><a [^>]*>([^<]+)</a></td>'
        r'.*?<td class="num">([^<]*)</td>\s*<td><span class="badge[^"]*"[^>]*>'
        r"([^<]+)</span>",
        page,
        flags=re.S,
    )
    return {external_id: (votes, text) for external_id, votes, text in rows}


def test_every_dialogue_shows_its_votes_and_what_it_waits_for(
    lead_client: Client, batch: Batch
) -> None:
    # when a lead opens the batch
    page = lead_client.get("/batches/round-1/").content.decode()

    # then each row says its human votes and its final label or what is missing
    assert _statuses(page) == {
        "none": ("0/3", "waiting for votes 0/3"),
        "one-vote": ("1/3", "waiting for votes 1/3"),
        "all-safe": ("3/3", "safe (unanimous)"),
        "majority": ("3/3", "unsafe (majority)"),
        "needs-jury": ("3/3", "needs the jury"),
        "decided": ("3/3", "adjudicated: unsafe"),
        "gold": ("2", "gold"),
        "imported": ("0/3", "unsafe (imported)"),
    }


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        ("", ["none", "one-vote", "all-safe", "majority", "needs-jury", "decided"]),
        ("waiting", ["none", "one-vote"]),
        ("complete", ["all-safe", "majority", "imported"]),
        ("unresolved", ["needs-jury"]),
        ("adjudicated", ["decided"]),
        ("gold", ["gold"]),
    ],
)
def test_the_list_filters_by_status(
    lead_client: Client, batch: Batch, status: str, expected: list[str]
) -> None:
    # when a lead follows a filter link
    response = lead_client.get(f"/batches/round-1/?status={status}")

    # then only the dialogues in that status are listed, in id order
    listed = [d.external_id for d in response.context["page"].object_list]
    if status == "":
        expected = [*expected, "gold", "imported"]
    assert listed == expected
    # and the filter links say how many each holds, the current one marked
    page = response.content.decode()
    assert (
        'href="?status=waiting"'
        + (' aria-current="page"' if status == "waiting" else "")
        + '>Waiting for votes <span class="count">2</span></a>'
    ) in page


def test_the_counts_partition_the_batch(lead_client: Client, batch: Batch) -> None:
    # when
    response = lead_client.get("/batches/round-1/")

    # then every dialogue is in exactly one status
    counts = {value: n for value, _, n in response.context["status_counts"]}
    assert counts == {
        "": 8,
        WAITING: 2,
        COMPLETE: 3,
        UNRESOLVED: 1,
        ADJUDICATED: 1,
        GOLD: 1,
    }


def test_each_row_status_is_the_filter_that_lists_it(
    lead_client: Client, batch: Batch
) -> None:
    for status in (WAITING, COMPLETE, UNRESOLVED, ADJUDICATED, GOLD):
        # when
        response = lead_client.get(f"/batches/round-1/?status={status}")

        # then
        assert {s.kind for _, s in response.context["rows"]} == {status}, status


def test_pages_keep_the_filter(lead_client: Client, batch: Batch) -> None:
    # given 55 more dialogues waiting for votes
    DialogueFactory.create_batch(55, batch=batch)

    # when the lead pages through the waiting ones
    first = lead_client.get("/batches/round-1/?status=waiting")
    second = lead_client.get("/batches/round-1/?status=waiting&page=2")

    # then the page links carry the filter, plain links that work without script
    assert len(first.context["page"].object_list) == 50
    assert len(second.context["page"].object_list) == 7
    assert 'href="?status=waiting&amp;page=2">Next →</a>' in first.content.decode()
    assert 'href="?status=waiting&amp;page=1">← Previous</a>' in (
        second.content.decode()
    )


def test_an_unknown_status_lists_everything(lead_client: Client, batch: Batch) -> None:
    response = lead_client.get("/batches/round-1/?status=bogus")

    assert response.status_code == 200
    assert len(response.context["page"].object_list) == 8


def test_the_page_reads_a_fixed_number_of_queries(
    lead_client: Client, batch: Batch, django_assert_num_queries: Any
) -> None:
    # given a page of 8 dialogues, then one of 50 (each with votes and a final label)
    lead_client.get("/batches/round-1/")  # warm the session and content types
    with django_assert_num_queries(8):
        lead_client.get("/batches/round-1/?status=")
    for i in range(60):
        _dialogue(batch, f"more-{i}", "safe", "safe", "safe")
    recount_claimed(dialogue_ids=list(batch.dialogues.values_list("pk", flat=True)))
    derive_batch(batch)

    # when / then: the same number of queries, whatever the filter
    for status in ("", "complete", "waiting"):
        with django_assert_num_queries(8):
            lead_client.get(f"/batches/round-1/?status={status}")


# --- the rules, over plain values --------------------------------------------------


@pytest.mark.parametrize(
    ("kw", "expected"),
    [
        (
            {"votes": 1, "final": FinalIn("unresolved", None, None, "x")},
            (WAITING, "waiting for votes 1/3"),
        ),
        (
            {"votes": 3, "final": None},
            (UNRESOLVED, "final label pending"),
        ),
        (
            {"final": FinalIn("unresolved", None, None, "tie after the policy")},
            (UNRESOLVED, "tie: adjudication"),
        ),
        (
            {
                "final": FinalIn(
                    "unresolved", "unsafe", None, "jury needs review: split"
                )
            },
            (UNRESOLVED, "jury unsure: adjudication"),
        ),
        (
            {"final": FinalIn("llm_jury", "unsafe", "safe")},
            (COMPLETE, "unsafe; response safe (jury)"),
        ),
        (
            {"final": FinalIn("majority", "unsafe", "safe")},
            (COMPLETE, "unsafe (majority); response safe"),
        ),
        (
            {
                "adjudicated": True,
                "final": FinalIn(
                    "unresolved",
                    "unsafe",
                    None,
                    "adjudication left the response open; jury needs review",
                ),
            },
            (ADJUDICATED, "adjudicated: unsafe; response waits for the jury"),
        ),
        (
            {"is_gold": True, "adjudicated": True, "final": None},
            (GOLD, "gold"),
        ),
    ],
)
def test_dialogue_status_rules(kw: dict[str, Any], expected: tuple[str, str]) -> None:
    args: dict[str, Any] = {
        "votes": 3,
        "labels_required": 3,
        "is_gold": False,
        "adjudicated": False,
    }
    status = dialogue_status(**(args | kw))

    assert (status.kind, status.text) == expected
