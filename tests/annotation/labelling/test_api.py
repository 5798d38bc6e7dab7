"""The annotator's workspace API (/api/v1/...): the queue's rules, over HTTP."""

import json
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from accounts.models import User
from annotation.labelling.queue import VoteIn, reserve_next, submit_label
from annotation.models import (
    Batch,
    Dialogue,
    Flag,
    Label,
    LabelEdit,
    Reservation,
    ReservationState,
    Skip,
    VoteKind,
)
from tests.factories import (
    PASSWORD,
    AssignmentFactory,
    BatchFactory,
    DialogueFactory,
    LabelFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db

API = "/api/v1"
LEAKY_KEYS = {"labels", "votes", "jury", "verdicts", "other_labels"}
CONSENT_MESSAGE = (
    "Acknowledge the content warning first (POST /api/v1/consent or the warning "
    "page); nothing is served before it."
)


@pytest.fixture
def batch() -> Batch:
    batch = BatchFactory(name="work", labels_required=3)
    DialogueFactory.create_batch(3, batch=batch)
    return batch


def _person(username: str, batch: Batch | None, consent: bool = True) -> User:
    user = UserFactory(
        username=username,
        content_warning_acknowledged_at=timezone.now() if consent else None,
    )
    if batch is not None:
        AssignmentFactory(batch=batch, annotator=user)
    return user


def _client(user: User) -> APIClient:
    client = APIClient()
    token = Token.objects.create(user=user)
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    return client


def _next(client: APIClient) -> dict[str, Any]:
    response = client.post(f"{API}/queue/next")
    assert response.status_code == 200, response.content
    return response.json()


def _items(obj: object) -> Iterator[tuple[str, object]]:
    if isinstance(obj, dict):
        for key, value in obj.items():
            yield key, value
            yield from _items(value)
    elif isinstance(obj, list):
        for value in obj:
            yield from _items(value)


# --- the flow -----------------------------------------------------------------------


def test_the_full_flow_consent_next_label_until_nothing_is_left(batch: Batch):
    # given an assigned annotator who has not acknowledged the warning yet
    ann = _person("ann", batch, consent=False)
    client = _client(ann)

    # when she acknowledges it
    consent = client.post(f"{API}/consent")

    # then it is recorded
    assert consent.status_code == 200
    ann.refresh_from_db()
    assert ann.content_warning_acknowledged_at is not None
    assert consent.json() == {
        "acknowledged_at": ann.content_warning_acknowledged_at.isoformat().replace(
            "+00:00", "Z"
        )
    }

    # when she works through the batch (categories by name, then by code)
    served = []
    for categories in (["Violence"], ["S8"], []):
        body = _next(client)
        dialogue = Dialogue.objects.get(pk=body["dialogue"]["id"])
        reservation = Reservation.objects.get(annotator=ann, dialogue=dialogue)
        assert body["dialogue"] == {
            "id": dialogue.pk,
            "external_id": dialogue.external_id,
            "batch": "work",
            "prompt": dialogue.prompt,
            "response": dialogue.response,
            "turns": dialogue.turns,
            "redacted": False,
        }
        assert set(body["reservation"]) == {"reserved_at", "expires_at"}
        assert body["asks_response_label"] is False
        assert reservation.state == ReservationState.ACTIVE
        served.append(dialogue.pk)
        created = client.post(
            f"{API}/labels",
            {
                "dialogue": dialogue.pk,
                "label": "unsafe" if categories else "safe",
                "categories": categories,
                "comment": "ok",
                "time_spent_ms": 12_345,
            },
            format="json",
        )
        assert created.status_code == 201, created.content
        label = Label.objects.get(annotator=ann, dialogue=dialogue)
        assert created.json() == {
            "id": label.pk,
            "dialogue": dialogue.pk,
            "label": label.label,
            "response_label": None,
            "categories": {
                ("Violence",): ["Violence"],
                ("S8",): ["Hate/Identity Hate"],
                (): [],
            }[tuple(categories)],
            "other_text": "",
            "comment": "ok",
            "time_spent_ms": 12_345,
            "created_at": created.json()["created_at"],
            "updated_at": created.json()["updated_at"],
        }

    # then every dialogue was served once, and now there is nothing left: 204
    assert sorted(served) == sorted(batch.dialogues.values_list("pk", flat=True))
    done = client.post(f"{API}/queue/next")
    assert done.status_code == 204
    assert done.content == b""
    assert Reservation.objects.filter(state=ReservationState.ACTIVE).count() == 0
    assert Label.objects.filter(annotator=ann).count() == 3


def test_queue_next_before_consent_is_403_with_a_clear_message(batch: Batch):
    # given an assigned annotator who has not acknowledged the content warning
    client = _client(_person("ann", batch, consent=False))

    # when she asks for work
    response = client.post(f"{API}/queue/next")

    # then she is refused with a message that says what to do, and nothing is held
    assert response.status_code == 403
    assert response.json() == {"detail": CONSENT_MESSAGE, "code": "consent_required"}
    assert Reservation.objects.count() == 0
    assert list(batch.dialogues.values_list("claimed", flat=True)) == [0, 0, 0]


def test_every_workspace_endpoint_refuses_before_consent(batch: Batch):
    # given a dialogue reserved by someone else, and an annotator without consent
    other = _person("bo", batch)
    dialogue_id = reserve_next(annotator=other).dialogue_id
    client = _client(_person("ann", batch, consent=False))
    vote = {"dialogue": dialogue_id, "label": "safe"}

    # when she uses the workspace endpoints
    responses = {
        "labels": client.post(f"{API}/labels", vote, format="json"),
        "my labels": client.get(f"{API}/labels"),
        "skip": client.post(f"{API}/queue/skip", {"dialogue": dialogue_id}),
        "flag": client.post(
            f"{API}/flags", {"dialogue": dialogue_id, "reason": "other"}
        ),
    }

    # then each is refused with 403 and nothing was written
    assert {k: r.status_code for k, r in responses.items()} == dict.fromkeys(
        responses, 403
    )
    assert {r.json()["code"] for r in responses.values()} == {"consent_required"}
    assert Label.objects.count() == 0
    assert Skip.objects.count() == 0
    assert Flag.objects.count() == 0
    assert Reservation.objects.filter(annotator__username="ann").count() == 0


def test_anonymous_requests_are_refused(batch: Batch):
    response = APIClient().post(f"{API}/queue/next")

    assert response.status_code == 401
    assert Reservation.objects.count() == 0


def test_session_auth_works_too(batch: Batch):
    # given an annotator logged in through the pages (a session, no token)
    ann = _person("ann", batch)
    client = APIClient()
    assert client.login(username="ann", password=PASSWORD)

    # when she uses the API
    body = _next(client)
    created = client.post(
        f"{API}/labels",
        {"dialogue": body["dialogue"]["id"], "label": "safe"},
        format="json",
    )

    # then it works as with a token
    assert created.status_code == 201
    assert Label.objects.get().annotator == ann


# --- refusals of a vote -------------------------------------------------------------


@pytest.mark.parametrize(
    ("vote", "errors"),
    [
        (
            {"label": "unsafe"},
            {"categories": ["at least one is required when unsafe"]},
        ),
        (
            {"label": "unsafe", "categories": ["Other"]},
            {"other_text": ["is required when Other is chosen"]},
        ),
        (
            {"label": "unsafe", "categories": ["Violence", "Space Lasers"]},
            {"categories": ["unknown category 'Space Lasers'"]},
        ),
        (
            {"label": "safe", "response_label": "safe"},
            {"response_label": ["the dialogue has no response"]},
        ),
        ({"label": "fine"}, {"label": ['"fine" is not a valid choice.']}),
        ({"categories": ["Violence"]}, {"label": ["This field is required."]}),
    ],
    ids=[
        "unsafe-bare",
        "other-no-text",
        "unknown",
        "response-on-prompt",
        "bad",
        "none",
    ],
)
def test_a_bad_vote_is_400_with_field_errors_and_writes_nothing(
    vote: dict[str, Any], errors: dict[str, list[str]]
):
    # given a reserved prompt-only dialogue
    batch = BatchFactory(name="work")
    DialogueFactory(batch=batch, response=None)
    client = _client(_person("ann", batch))
    dialogue_id = _next(client)["dialogue"]["id"]

    # when she submits a vote that breaks a rule
    response = client.post(
        f"{API}/labels", {"dialogue": dialogue_id, **vote}, format="json"
    )

    # then it is refused naming the field; no vote is written, the hold stays
    assert response.status_code == 400
    assert response.json() == errors
    assert Label.objects.count() == 0
    assert Reservation.objects.get().state == ReservationState.ACTIVE
    assert Dialogue.objects.get().claimed == 1


def test_a_response_label_is_required_when_the_batch_asks_for_it():
    # given a batch that asks for response labels
    batch = BatchFactory(name="work", asks_response_label=True)
    DialogueFactory(batch=batch)
    client = _client(_person("ann", batch))
    body = _next(client)
    assert body["asks_response_label"] is True

    # when she votes without, then with one
    without = client.post(
        f"{API}/labels", {"dialogue": body["dialogue"]["id"], "label": "safe"}
    )
    with_it = client.post(
        f"{API}/labels",
        {
            "dialogue": body["dialogue"]["id"],
            "label": "safe",
            "response_label": "unsafe",
        },
    )

    # then the first is refused and the second stored
    assert without.status_code == 400
    assert without.json() == {"response_label": ["this batch asks for it"]}
    assert with_it.status_code == 201
    assert list(Label.objects.values_list("label", "response_label")) == [
        ("safe", "unsafe")
    ]


def test_a_vote_on_a_dialogue_not_reserved_for_one_is_409(batch: Batch):
    # given a dialogue held by bo
    bo = _person("bo", batch)
    held = reserve_next(annotator=bo)
    client = _client(_person("ann", batch))

    # when ann votes on it
    response = client.post(
        f"{API}/labels", {"dialogue": held.dialogue_id, "label": "safe"}
    )

    # then it is a conflict and nothing is written
    assert response.status_code == 409
    assert response.json() == {
        "detail": "This dialogue is not reserved for you.",
        "code": "not_reserved",
    }
    assert Label.objects.count() == 0
    assert Dialogue.objects.get(pk=held.dialogue_id).claimed == 1


def test_a_second_vote_on_the_same_dialogue_is_409(batch: Batch):
    # given ann voted on a dialogue
    client = _client(_person("ann", batch))
    dialogue_id = _next(client)["dialogue"]["id"]
    vote = {"dialogue": dialogue_id, "label": "safe"}
    assert client.post(f"{API}/labels", vote).status_code == 201

    # when she posts it again
    again = client.post(f"{API}/labels", {**vote, "label": "needs_caution"})

    # then it is a conflict and her first vote stands alone
    assert again.status_code == 409
    assert again.json()["code"] == "already_labelled"
    assert list(Label.objects.values_list("label", flat=True)) == ["safe"]


def test_a_vote_on_a_batch_one_is_not_assigned_to_is_403():
    # given a dialogue in a batch ann is not assigned to
    other = BatchFactory(name="other")
    DialogueFactory(batch=other)
    held = reserve_next(annotator=_person("bo", other))
    client = _client(_person("ann", None))

    response = client.post(
        f"{API}/labels", {"dialogue": held.dialogue_id, "label": "safe"}
    )

    assert response.status_code == 403
    assert response.json()["code"] == "not_assigned"
    assert Label.objects.count() == 0


# --- my labels and edits ------------------------------------------------------------


def test_my_labels_list_only_mine(batch: Batch):
    # given ann and bo each voted on a dialogue, and a judge voted too
    ann, bo = _person("ann", batch), _person("bo", batch)
    anns = _vote(ann, VoteIn(label="unsafe", categories=("Violence",)))
    bos = _vote(bo, VoteIn(label="safe"))
    LabelFactory(
        dialogue=bos.dialogue,
        kind=VoteKind.MODEL,
        annotator=None,
        judge="gemma",
        run_key="r1",
        label="unsafe",
    )

    # when ann lists her labels
    response = _client(ann).get(f"{API}/labels")

    # then she sees hers only
    assert response.status_code == 200
    assert [
        (v["id"], v["dialogue"], v["label"], v["categories"]) for v in response.json()
    ] == [(anns.pk, anns.dialogue_id, "unsafe", ["Violence"])]
    assert "gemma" not in response.content.decode()


def _vote(user: User, vote: VoteIn) -> Label:
    reservation = reserve_next(annotator=user)
    return submit_label(annotator=user, dialogue_id=reservation.dialogue_id, vote=vote)


def test_put_edits_my_label_and_keeps_the_edit(batch: Batch):
    # given ann's vote
    ann = _person("ann", batch)
    label = _vote(ann, VoteIn(label="safe"))

    # when she changes it
    response = _client(ann).put(
        f"{API}/labels/{label.pk}",
        {"label": "unsafe", "categories": ["S17"], "comment": "missed the payload"},
        format="json",
    )

    # then the vote is changed and its history kept
    assert response.status_code == 200
    body = response.json()
    assert (body["id"], body["label"], body["categories"], body["comment"]) == (
        label.pk,
        "unsafe",
        ["Malware"],
        "missed the payload",
    )
    edit = LabelEdit.objects.get()
    assert (
        edit.label_id,
        edit.edited_by,
        edit.before["label"],
        edit.after["label"],
    ) == (
        label.pk,
        ann,
        "safe",
        "unsafe",
    )
    assert Label.objects.get().label == "unsafe"


def test_put_on_someone_elses_label_is_409_and_changes_nothing(batch: Batch):
    bo = _person("bo", batch)
    label = _vote(bo, VoteIn(label="safe"))
    client = _client(_person("ann", batch))

    response = client.put(
        f"{API}/labels/{label.pk}", {"label": "unsafe", "categories": ["S1"]}
    )

    assert response.status_code == 409
    assert response.json()["code"] == "not_editable"
    assert Label.objects.get().label == "safe"
    assert LabelEdit.objects.count() == 0


def test_put_with_a_bad_vote_is_400_and_changes_nothing(batch: Batch):
    ann = _person("ann", batch)
    label = _vote(ann, VoteIn(label="safe"))

    response = _client(ann).put(f"{API}/labels/{label.pk}", {"label": "unsafe"})

    assert response.status_code == 400
    assert response.json() == {"categories": ["at least one is required when unsafe"]}
    assert Label.objects.get().label == "safe"
    assert LabelEdit.objects.count() == 0


# --- skips, flags, progress ---------------------------------------------------------


def test_skip_endpoint_passes_the_dialogue_on(batch: Batch):
    # given ann holds a dialogue
    ann = _person("ann", batch)
    client = _client(ann)
    dialogue_id = _next(client)["dialogue"]["id"]

    # when she skips it
    response = client.post(
        f"{API}/queue/skip", {"dialogue": dialogue_id, "reason": "not my language"}
    )

    # then the skip is stored, the dialogue released, and she gets another one
    assert response.status_code == 200
    assert response.json() == {"skipped": dialogue_id}
    assert list(Skip.objects.values_list("annotator", "dialogue", "reason")) == [
        (ann.pk, dialogue_id, "not my language")
    ]
    assert Dialogue.objects.get(pk=dialogue_id).claimed == 0
    assert _next(client)["dialogue"]["id"] != dialogue_id


def test_skipping_an_unreserved_dialogue_is_409(batch: Batch):
    client = _client(_person("ann", batch))
    dialogue_id = batch.dialogues.first().pk

    response = client.post(f"{API}/queue/skip", {"dialogue": dialogue_id})

    assert response.status_code == 409
    assert response.json()["code"] == "not_reserved"
    assert Skip.objects.count() == 0


def test_flag_endpoint_reports_and_skips_a_reserved_dialogue(batch: Batch):
    # given ann holds a dialogue
    ann = _person("ann", batch)
    client = _client(ann)
    dialogue_id = _next(client)["dialogue"]["id"]

    # when she flags it
    response = client.post(
        f"{API}/flags",
        {"dialogue": dialogue_id, "reason": "wrong_language", "note": "Klingon"},
    )

    # then the flag is stored and the dialogue skipped for her
    assert response.status_code == 201
    assert response.json() == {"dialogue": dialogue_id, "reason": "wrong_language"}
    assert list(
        Flag.objects.values_list("annotator", "dialogue", "reason", "note")
    ) == [(ann.pk, dialogue_id, "wrong_language", "Klingon")]
    assert list(Skip.objects.values_list("annotator", "dialogue")) == [
        (ann.pk, dialogue_id)
    ]
    assert Dialogue.objects.get(pk=dialogue_id).claimed == 0


def test_a_flag_with_an_unknown_reason_is_400(batch: Batch):
    client = _client(_person("ann", batch))
    dialogue_id = _next(client)["dialogue"]["id"]

    response = client.post(f"{API}/flags", {"dialogue": dialogue_id, "reason": "meh"})

    assert response.status_code == 400
    assert list(response.json()) == ["reason"]
    assert Flag.objects.count() == 0
    assert Skip.objects.count() == 0


def test_flagging_an_untouched_dialogue_is_409(batch: Batch):
    client = _client(_person("ann", batch))
    dialogue_id = batch.dialogues.first().pk

    response = client.post(f"{API}/flags", {"dialogue": dialogue_id, "reason": "other"})

    assert response.status_code == 409
    assert response.json()["code"] == "not_reserved"
    assert Flag.objects.count() == 0


@pytest.mark.parametrize(
    ("endpoint", "body"),
    [("queue/skip", {}), ("flags", {"reason": "other"})],
)
def test_skipping_or_flagging_an_unknown_dialogue_is_a_json_404(
    batch: Batch, endpoint: str, body: dict[str, str]
):
    # given a dialogue id that does not exist
    client = _client(_person("ann", batch))
    missing = max(batch.dialogues.values_list("pk", flat=True)) + 1000

    # when it is skipped or flagged
    response = client.post(f"{API}/{endpoint}", {"dialogue": missing} | body)

    # then the answer is a 404 in JSON (it was a 500), and nothing is written
    assert response.status_code == 404
    assert response.json() == {"detail": "Not found.", "code": "not_found"}
    assert Skip.objects.count() == 0
    assert Flag.objects.count() == 0


def test_my_progress_counts_my_labels(batch: Batch):
    # given ann (capped at 5 a day) voted twice, one of them yesterday; bo voted once
    ann = _person("ann", batch)
    User.objects.filter(pk=ann.pk).update(daily_label_cap=5)
    ann.refresh_from_db()
    yesterday = _vote(ann, VoteIn(label="safe"))
    Label.objects.filter(pk=yesterday.pk).update(
        created_at=timezone.now() - timedelta(days=1)
    )
    _vote(ann, VoteIn(label="safe"))
    _vote(_person("bo", batch), VoteIn(label="safe"))

    # when she looks at her progress
    response = _client(ann).get(f"{API}/me/progress")

    # then it counts hers only
    assert response.status_code == 200
    assert response.json() == {
        "today": 1,
        "total": 2,
        "daily_cap": 5,
        "batches": [{"batch": "work", "mine": 2, "dialogues": 3}],
    }


def test_queue_next_is_204_at_the_daily_cap(batch: Batch):
    # given ann is capped at 1 label a day and has made it
    ann = _person("ann", batch)
    User.objects.filter(pk=ann.pk).update(daily_label_cap=1)
    ann.refresh_from_db()
    _vote(ann, VoteIn(label="safe"))

    response = _client(ann).post(f"{API}/queue/next")

    assert response.status_code == 204
    assert Reservation.objects.filter(state=ReservationState.ACTIVE).count() == 0


# --- blind labelling ----------------------------------------------------------------


def test_queue_next_never_shows_other_votes_or_verdicts():
    # given a dialogue with three human votes and a judge's verdict, in a batch
    # that needs four, next to an untouched one
    batch = BatchFactory(name="blind", labels_required=4)
    DialogueFactory.create_batch(2, batch=batch)
    others = [_person(name, batch) for name in ("olga", "piet", "quinn")]
    served = []
    for person, vote in zip(
        others,
        [
            VoteIn(label="unsafe", categories=("Violence",), comment="graphic"),
            VoteIn(label="needs_caution"),
            VoteIn(label="unsafe", categories=("Other",), other_text="gore"),
        ],
        strict=True,
    ):
        reservation = reserve_next(annotator=person)
        served.append(reservation.dialogue_id)
        submit_label(annotator=person, dialogue_id=reservation.dialogue_id, vote=vote)
    # (breadth-first: each was served the dialogue the first one voted on)
    assert len(set(served)) == 1
    seen = Dialogue.objects.get(pk=served[0])
    untouched = batch.dialogues.exclude(pk=seen.pk).get()
    LabelFactory(
        dialogue=seen,
        kind=VoteKind.MODEL,
        annotator=None,
        judge="gemma",
        run_key="r1",
        label="unsafe",
    )
    client = _client(_person("rita", batch))

    # when a fourth annotator is served
    response = client.post(f"{API}/queue/next")

    # then she gets that dialogue with no trace of anyone's vote
    assert response.status_code == 200
    body = response.json()
    assert body["dialogue"]["id"] == seen.pk
    leaks = [(k, v) for k, v in _items(body) if k in LEAKY_KEYS and v]
    assert leaks == []
    text = response.content.decode()
    for secret in ("olga", "piet", "quinn", "gemma", "graphic", "gore"):
        assert secret not in text, secret
    assert json.loads(text) == body

    # and her own vote's response shows her vote only
    created = client.post(
        f"{API}/labels", {"dialogue": seen.pk, "label": "safe"}, format="json"
    )
    assert created.status_code == 201
    assert created.json()["label"] == "safe"
    for secret in ("olga", "piet", "quinn", "gemma", "graphic", "gore"):
        assert secret not in created.content.decode(), secret
    assert untouched.labels.count() == 0


# --- schema -------------------------------------------------------------------------


def test_the_schema_describes_the_queue(batch: Batch):
    client = _client(_person("ann", batch))

    response = client.get("/api/schema/", {"format": "json"})

    assert response.status_code == 200
    schema = json.loads(response.content)
    assert schema["openapi"].startswith("3.")
    assert "post" in schema["paths"]["/api/v1/queue/next"]
    for path in (
        "/api/v1/consent",
        "/api/v1/labels",
        "/api/v1/labels/{id}",
        "/api/v1/queue/skip",
        "/api/v1/flags",
        "/api/v1/me/progress",
    ):
        assert path in schema["paths"], path


def test_voting_on_or_editing_an_unknown_id_is_a_json_404(batch: Batch):
    # given ids that name no dialogue and no label
    client = _client(_person("ann", batch))
    missing = max(batch.dialogues.values_list("pk", flat=True)) + 1000

    # when a vote is sent for the one and an edit for the other
    vote = client.post(f"{API}/labels", {"dialogue": missing, "label": "safe"})
    edit = client.put(f"{API}/labels/{missing}", {"label": "safe"})

    # then both are 404 in the API's error shape, and nothing is written
    assert vote.status_code == 404
    assert vote.json() == {"detail": "No such dialogue.", "code": "not_found"}
    assert edit.status_code == 404
    assert edit.json() == {"detail": "No such label.", "code": "not_found"}
    assert Label.objects.count() == 0
