"""The adjudication API (/api/v1/adjudication..., accept-unanimous): the same
services as the pages, over HTTP, for leads only."""

import json

import pytest
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from accounts.models import User
from annotation.adjudication.services import adjudicate, reopen
from annotation.models import (
    Adjudication,
    Batch,
    FinalLabel,
    Flag,
    Label,
    VoteKind,
)
from tests.annotation.adjudication.data import (
    DECISION,
    add_votes,
    judge_vote,
    jury_decides,
    split_dialogues,
)
from tests.factories import (
    BatchFactory,
    DialogueFactory,
    LeadFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db

API = "/api/v1"


def _client(user: User) -> APIClient:
    client = APIClient()
    token = Token.objects.create(user=user)
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    return client


@pytest.fixture
def batch() -> Batch:
    return BatchFactory(name="adj")


@pytest.fixture
def lena() -> APIClient:
    return _client(LeadFactory(username="lena"))


# --- who may call it ----------------------------------------------------------------


def test_annotators_get_403_and_nothing_is_written(batch: Batch):
    # given a split dialogue and an annotator's token
    (dialogue,) = split_dialogues(batch)
    client = _client(UserFactory(username="anna"))
    # when she calls every endpoint
    codes = [
        client.get(f"{API}/adjudication").status_code,
        client.get(f"{API}/adjudication/{dialogue.pk}").status_code,
        client.post(
            f"{API}/adjudication/{dialogue.pk}", DECISION, format="json"
        ).status_code,
        client.post(f"{API}/adjudication/{dialogue.pk}/reopen").status_code,
        client.post(f"{API}/batches/adj/accept-unanimous").status_code,
    ]
    # then
    assert codes == [403] * 5
    assert APIClient().get(f"{API}/adjudication").status_code == 401
    assert not Adjudication.objects.exists()
    assert not Label.objects.filter(kind=VoteKind.ADJUDICATED).exists()


# --- the queue ----------------------------------------------------------------------


def test_the_queue_is_paginated_and_filtered(lena: APIClient, batch: Batch):
    # given three split dialogues, one flagged, and one in another batch
    first, second, third = split_dialogues(batch, 3)
    Flag.objects.create(dialogue=second, annotator=UserFactory(), reason="other")
    (elsewhere,) = split_dialogues(BatchFactory(name="other"))
    # when
    page = lena.get(f"{API}/adjudication", {"limit": 2, "batch": "adj"})
    # then
    assert page.status_code == 200
    body = page.json()
    assert body["count"] == 3
    assert body["previous"] is None
    assert body["next"].endswith("/api/v1/adjudication?batch=adj&limit=2&offset=2")
    assert body["results"][0] == {
        "dialogue": first.pk,
        "external_id": first.external_id,
        "batch": "adj",
        "reasons": ["split"],
        "agreement": pytest.approx(2 / 3),
        "categories": ["Violence"],
        "votes": {"safe": 2, "needs_caution": 0, "unsafe": 1},
        "jury": None,
        "prompt_excerpt": first.prompt,
        "human_votes": 3,
        "votes_required": 3,
    }
    assert body["waiting_for_votes"] == 0
    assert [r["dialogue"] for r in body["results"]] == [first.pk, second.pk]
    rest = lena.get(f"{API}/adjudication", {"limit": 2, "offset": 2, "batch": "adj"})
    assert [r["dialogue"] for r in rest.json()["results"]] == [third.pk]
    flagged = lena.get(f"{API}/adjudication", {"reason": "flagged"}).json()
    assert [(r["dialogue"], r["reasons"]) for r in flagged["results"]] == [
        (second.pk, ["split", "flagged"])
    ]
    everything = lena.get(f"{API}/adjudication", {"category": "Violence"}).json()
    assert everything["count"] == 4
    assert elsewhere.pk in [r["dialogue"] for r in everything["results"]]


def test_dialogues_waiting_for_votes_are_counted_and_listed_when_asked(
    lena: APIClient, batch: Batch
):
    # given a complete split and one with two of its three votes
    (complete,) = split_dialogues(batch)
    waiting = DialogueFactory(batch=batch)
    add_votes(waiting, "safe", "unsafe")
    # when the queue is read by default, and widened
    default = lena.get(f"{API}/adjudication").json()
    widened = lena.get(f"{API}/adjudication", {"include_incomplete": "true"}).json()
    # then
    assert [r["dialogue"] for r in default["results"]] == [complete.pk]
    assert default["waiting_for_votes"] == 1
    assert {r["dialogue"]: r["human_votes"] for r in widened["results"]} == {
        complete.pk: 3,
        waiting.pk: 2,
    }
    assert widened["waiting_for_votes"] == 0


def test_an_unknown_reason_is_400_and_an_unknown_batch_404(
    lena: APIClient, batch: Batch
):
    reason = lena.get(f"{API}/adjudication", {"reason": "boring", "offset": "null"})
    named = lena.get(f"{API}/adjudication", {"batch": "nope"})

    assert reason.status_code == 400
    assert reason.json() == {
        "offset": ["A valid integer is required."],
        "reason": ['"boring" is not a valid choice.'],
    }
    assert named.status_code == 404
    assert named.json() == {"detail": "no batch named 'nope'", "code": "not_found"}


# --- one dialogue -------------------------------------------------------------------


def test_a_dialogue_comes_with_votes_jury_flags_history_and_final_label(
    lena: APIClient, batch: Batch
):
    # given a split dialogue with a judge's vote, a jury decision, a flag, and a
    # decision that was reopened
    (dialogue,) = split_dialogues(batch)
    human = Label.objects.human().filter(dialogue=dialogue).order_by("id")
    judge = judge_vote(
        dialogue,
        "unsafe",
        judge="llama-guard",
        run_key="r1",
        raw_output='{"label": "unsafe"}',
    )
    jury_decides(dialogue, "unsafe", valid_votes=1, total_votes=1, agreement=1.0)
    omar = LeadFactory(username="omar")
    decided = adjudicate(
        dialogue_id=dialogue.pk, lead=omar, **DECISION | {"response_label": None}
    )
    reopen(dialogue_id=dialogue.pk, lead=omar)
    # (a decision resolves the flags raised before it: this one came after)
    flagger = UserFactory(username="flo")
    Flag.objects.create(dialogue=dialogue, annotator=flagger, reason="other", note="?")
    # when
    response = lena.get(f"{API}/adjudication/{dialogue.pk}")
    # then
    assert response.status_code == 200
    body = response.json()
    assert body["dialogue"]["id"] == dialogue.pk
    assert body["dialogue"]["prompt"] == dialogue.prompt
    assert body["version"] == 1
    assert [
        (v["annotator"], v["label"], v["categories"]) for v in body["human_votes"]
    ] == [(v.annotator.username, v.label, v.ordered_category_names()) for v in human]
    assert body["jury_votes"] == [
        {
            "id": judge.pk,
            "judge": "llama-guard",
            "run_key": "r1",
            "valid": True,
            "label": "unsafe",
            "categories": [],
            "raw_output": '{"label": "unsafe"}',
            "details": {},
            "latency_ms": None,
            "created_at": judge.created_at.isoformat().replace("+00:00", "Z"),
        }
    ]
    assert [d["decision"] for d in body["jury_decisions"]] == ["unsafe"]
    assert [(f["annotator"], f["reason"]) for f in body["open_flags"]] == [
        ("flo", "other")
    ]
    assert [
        (h["id"], h["lead"], h["is_current"], h["reopened_by"]) for h in body["history"]
    ] == [(decided.pk, "omar", False, "omar")]
    assert body["final_label"]["provenance"] == "majority"
    assert lena.get(f"{API}/adjudication/999999").status_code == 404


# --- deciding -----------------------------------------------------------------------


def test_a_decision_is_201_with_the_final_label(transactional_db: None):
    # given (real commits: the final label is derived after the decision's)
    batch = BatchFactory(name="adj")
    (dialogue,) = split_dialogues(batch)
    client = _client(LeadFactory(username="lena"))
    # when
    response = client.post(
        f"{API}/adjudication/{dialogue.pk}",
        DECISION | {"expected_version": 0, "guideline_update": True},
        format="json",
    )
    # then
    assert response.status_code == 201, response.content
    body = response.json()
    decision = Adjudication.objects.get()
    assert body["adjudication"] | {"created_at": None} == {
        "id": decision.pk,
        "dialogue": dialogue.pk,
        "lead": "lena",
        "prompt_label": "unsafe",
        "response_label": "safe",
        "categories": ["Violence"],
        "confidence": "high",
        "reason": "annotator_error",
        "note": "Asks how to hurt a neighbour.",
        "guideline_update": True,
        "created_at": None,
        "is_current": True,
        "reopened_at": None,
        "reopened_by": None,
    }
    assert body["final_label"]["provenance"] == "adjudicated"
    assert body["final_label"]["prompt_label_source"] == "adjudicated"
    assert FinalLabel.objects.get(dialogue=dialogue).provenance == "adjudicated"


def test_an_invalid_decision_is_400_by_field_and_writes_nothing(
    lena: APIClient, batch: Batch
):
    (dialogue,) = split_dialogues(batch)
    url = f"{API}/adjudication/{dialogue.pk}"

    # the input's shape
    shape = lena.post(url, {"prompt_label": "fine"}, format="json")
    # the rules of a decision
    rules = lena.post(url, DECISION | {"categories": []}, format="json")

    assert shape.status_code == 400
    assert shape.json() == {
        "prompt_label": ['"fine" is not a valid choice.'],
        "confidence": ["This field is required."],
        "reason": ["This field is required."],
    }
    assert rules.status_code == 400
    assert rules.json() == {"categories": ["at least one is required when unsafe"]}
    assert not Adjudication.objects.exists()
    assert not Label.objects.filter(kind=VoteKind.ADJUDICATED).exists()
    assert (
        lena.post(f"{API}/adjudication/999999", DECISION, format="json").status_code
        == 404
    )


def test_a_second_lead_gets_409_naming_the_first_with_the_input_returned(
    batch: Batch,
):
    # given lena decided the dialogue
    (dialogue,) = split_dialogues(batch)
    first = adjudicate(
        dialogue_id=dialogue.pk, lead=LeadFactory(username="lena"), **DECISION
    )
    omar = _client(LeadFactory(username="omar"))
    # when omar decides too
    mine = DECISION | {
        "prompt_label": "safe",
        "categories": [],
        "note": "Venting.",
        "expected_version": 0,
    }
    response = omar.post(f"{API}/adjudication/{dialogue.pk}", mine, format="json")
    # then
    assert response.status_code == 409
    body = response.json()
    stamp = f"{first.created_at:%Y-%m-%d %H:%M:%S %Z}"
    assert body["detail"] == (
        f"Dialogue {dialogue.pk} was already adjudicated by lena at {stamp}; "
        "reopen it to change."
    )
    assert body["code"] == "already_adjudicated"
    assert (body["current"]["id"], body["current"]["lead"]) == (first.pk, "lena")
    assert body["submitted"] == {
        "prompt_label": "safe",
        "response_label": "safe",
        "categories": [],
        "confidence": "high",
        "reason": "annotator_error",
        "note": "Venting.",
        "guideline_update": False,
    }
    assert list(Adjudication.objects.all()) == [first]


# --- reopen and accept unanimous ----------------------------------------------------


def test_reopen_is_200_and_keeps_the_history_then_409_when_nothing_is_in_force(
    lena: APIClient, batch: Batch
):
    # given a decided dialogue
    (dialogue,) = split_dialogues(batch)
    decided = adjudicate(dialogue_id=dialogue.pk, lead=LeadFactory(), **DECISION)
    # when lena reopens it, twice
    first = lena.post(f"{API}/adjudication/{dialogue.pk}/reopen")
    again = lena.post(f"{API}/adjudication/{dialogue.pk}/reopen")
    # then
    assert first.status_code == 200
    assert (first.json()["id"], first.json()["reopened_by"]) == (decided.pk, "lena")
    assert first.json()["is_current"] is False
    assert again.status_code == 409
    assert again.json() == {
        "detail": f"Dialogue {dialogue.pk} has no decision to reopen.",
        "code": "not_adjudicated",
    }
    assert Adjudication.objects.count() == 1
    assert not Label.objects.filter(kind=VoteKind.ADJUDICATED).exists()
    assert lena.post(f"{API}/adjudication/999999/reopen").status_code == 404


def test_accept_unanimous_answers_how_many(lena: APIClient, batch: Batch):
    # given two unanimous dialogues and a split one
    for _ in range(2):
        add_votes(DialogueFactory(batch=batch), "safe", "safe", "safe")
    split_dialogues(batch)
    # when
    response = lena.post(f"{API}/batches/adj/accept-unanimous")
    # then
    assert response.status_code == 200
    assert response.json() == {"batch": "adj", "accepted": 2}
    assert Adjudication.objects.filter(reason="unanimous_accepted").count() == 2
    assert lena.post(f"{API}/batches/adj/accept-unanimous").json()["accepted"] == 0
    assert lena.post(f"{API}/batches/nope/accept-unanimous").status_code == 404


def test_the_schema_describes_the_adjudication_api(lena: APIClient):
    response = lena.get("/api/schema/", {"format": "json"})

    schema = json.loads(response.content)
    paths = schema["paths"]
    assert "get" in paths["/api/v1/adjudication"]
    assert {"get", "post"} <= set(paths["/api/v1/adjudication/{dialogue_id}"])
    assert "post" in paths["/api/v1/adjudication/{dialogue_id}/reopen"]
    assert "post" in paths["/api/v1/batches/{name}/accept-unanimous"]
    names = [p["name"] for p in paths["/api/v1/adjudication"]["get"]["parameters"]]
    assert {"batch", "category", "reason", "limit", "offset"} <= set(names)
