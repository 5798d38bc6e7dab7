"""The annotator's pages: consent gate, labelling, skip, flag, undo/edit, history."""

import json

import pytest
from django.test import Client
from django.utils import timezone

from accounts.models import User
from annotation.models import (
    Dialogue,
    Flag,
    Label,
    LabelEdit,
    Reservation,
    ReservationState,
    Skip,
)
from tests.conftest import login
from tests.factories import (
    AssignmentFactory,
    BatchFactory,
    DialogueFactory,
    LabelFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db
HX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def anna(db: None) -> User:
    return UserFactory(username="anna", content_warning_acknowledged_at=timezone.now())


@pytest.fixture
def batch(anna: User):
    batch = BatchFactory(name="work")
    AssignmentFactory(batch=batch, annotator=anna)
    return batch


@pytest.fixture
def anna_client(client: Client, anna: User) -> Client:
    return login(client, anna)


def reserved_id(user: User) -> int:
    return Reservation.objects.get(
        annotator=user, state=ReservationState.ACTIVE
    ).dialogue_id


def test_nothing_is_served_before_the_content_warning(client: Client, batch) -> None:
    # given an assigned annotator who has not acknowledged the warning
    bob = UserFactory(username="bob")
    AssignmentFactory(batch=batch, annotator=bob)
    DialogueFactory(batch=batch, prompt="secret prompt text")
    login(client, bob)

    # when they open the workspace, then they get the warning, not a dialogue
    page = client.get("/work/")
    assert (page.status_code, page["Location"]) == (302, "/work/consent/")
    htmx = client.get("/work/", **HX)
    assert htmx["HX-Redirect"] == "/work/consent/"
    assert b"secret prompt text" not in client.get("/work/consent/").content
    assert not Reservation.objects.exists()

    # when they acknowledge it (asking for blurred text)
    client.post("/work/consent/", {"blur_text": "on"})

    # then it is stored with a time, and the dialogue is served, blurred
    bob.refresh_from_db()
    assert bob.content_warning_acknowledged_at is not None
    assert bob.blur_text is True
    html = client.get("/work/").content.decode()
    assert "secret prompt text" in html
    assert "blur-on" in html


def test_workspace_shows_the_reserved_dialogue_escaped_with_hotkeys(
    anna_client: Client, batch
) -> None:
    # given a dialogue with hostile text
    DialogueFactory(
        batch=batch,
        prompt="<script>alert(1)</script>",
        response='<img src=x onerror="alert(2)">',
    )

    # when anna opens the workspace
    html = anna_client.get("/work/").content.decode()

    # then the text is escaped and every label and category has its key
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<img src=x" not in html
    assert 'data-hotkey="1"' in html
    assert 'data-hotkey="3"' in html
    assert html.count('name="categories"') == 23
    assert 'data-hotkey="w"' in html
    assert "Unsafe when:" in html  # guidance on hover or focus


def test_blind_no_other_vote_reaches_the_page(anna_client: Client, batch) -> None:
    # given two other annotators and a judge voted on the only dialogue
    dialogue = DialogueFactory(batch=batch, claimed=2)
    for name, comment in [("carol", "carol-comment"), ("dave", "dave-comment")]:
        LabelFactory(
            dialogue=dialogue,
            annotator=UserFactory(username=name),
            label="unsafe",
            comment=comment,
        )
    Label.objects.create(
        dialogue=dialogue,
        kind="model",
        judge="judge-gemma",
        run_key="r1",
        label="unsafe",
    )

    # when anna gets it
    html = anna_client.get("/work/").content.decode()

    # then nothing of theirs is in the page
    assert dialogue.prompt in html
    for secret in ("carol", "dave", "judge-gemma", "carol-comment", "badge unsafe"):
        assert secret not in html


def test_submit_saves_the_vote_and_swaps_in_the_next_dialogue(
    anna_client: Client, anna: User, batch
) -> None:
    # given two dialogues
    DialogueFactory.create_batch(2, batch=batch)
    anna_client.get("/work/")
    first = reserved_id(anna)

    # when anna submits unsafe / Violence through htmx
    response = anna_client.post(
        f"/work/{first}/submit/",
        {"label": "unsafe", "categories": ["Violence"], "time_spent_ms": "4200"},
        **HX,
    )

    # then the vote is stored and the next dialogue is the new fragment
    label = Label.objects.get(annotator=anna)
    assert (label.dialogue_id, label.label, label.time_spent_ms) == (
        first,
        "unsafe",
        4200,
    )
    assert [c.name for c in label.categories.all()] == ["Violence"]
    html = response.content.decode()
    assert html.lstrip().startswith('<div id="workspace"')
    second = reserved_id(anna)
    assert second != first
    assert f"/work/{second}/submit/" in html
    assert json.loads(response["HX-Trigger"]) == {
        "toast": {"message": "Saved.", "level": "success"}
    }
    # and the top bar's counts come along out of band
    assert 'id="work-status" class="work-status" hx-swap-oob="true"' in html


def test_invalid_vote_rerenders_with_inline_errors_and_writes_nothing(
    anna_client: Client, anna: User, batch
) -> None:
    DialogueFactory(batch=batch)
    anna_client.get("/work/")
    dialogue_id = reserved_id(anna)

    # when anna submits unsafe without a category, then Other without text
    no_category = anna_client.post(
        f"/work/{dialogue_id}/submit/", {"label": "unsafe"}, **HX
    )
    no_text = anna_client.post(
        f"/work/{dialogue_id}/submit/",
        {"label": "unsafe", "categories": ["Other"], "comment": "keep me"},
        **HX,
    )

    # then the same dialogue comes back with the errors and her input kept
    assert "at least one is required when unsafe" in no_category.content.decode()
    html = no_text.content.decode()
    assert "is required when Other is chosen" in html
    assert "keep me" in html
    assert 'value="Other" data-hotkey="w"' in html
    assert "checked" in html
    assert Label.objects.count() == 0
    assert reserved_id(anna) == dialogue_id


def test_a_dialogue_not_reserved_for_me_cannot_be_labelled(
    anna_client: Client, batch
) -> None:
    # given a dialogue reserved for nobody
    dialogue = DialogueFactory(batch=batch)

    # when anna posts a vote for it
    response = anna_client.post(f"/work/{dialogue.pk}/submit/", {"label": "safe"}, **HX)

    # then nothing is written and she is told why
    assert Label.objects.count() == 0
    trigger = json.loads(response["HX-Trigger"])
    assert trigger["toast"]["level"] == "error"


def test_skip_and_flag_move_on(anna_client: Client, anna: User, batch) -> None:
    DialogueFactory.create_batch(3, batch=batch)
    anna_client.get("/work/")
    first = reserved_id(anna)

    # when she skips one with a reason
    anna_client.post(f"/work/{first}/skip/", {"reason": "too long"}, **HX)
    second = reserved_id(anna)
    # and flags the next as broken
    anna_client.post(
        f"/work/{second}/flag/", {"reason": "broken_text", "note": "cut off"}, **HX
    )

    # then both are recorded and she has a third dialogue
    assert Skip.objects.get(dialogue_id=first).reason == "too long"
    flag = Flag.objects.get(dialogue_id=second)
    assert (flag.reason, flag.note, flag.annotator) == ("broken_text", "cut off", anna)
    assert reserved_id(anna) not in (first, second)
    assert Dialogue.objects.get(pk=first).claimed == 0


def test_undo_reopens_my_last_label_and_edits_are_kept(
    anna_client: Client, anna: User, batch
) -> None:
    DialogueFactory.create_batch(2, batch=batch)
    anna_client.get("/work/")
    first = reserved_id(anna)
    anna_client.post(f"/work/{first}/submit/", {"label": "safe"}, **HX)
    label = Label.objects.get(annotator=anna)

    # when she presses undo, the label's edit form comes back
    html = anna_client.get("/work/undo/", **HX).content.decode()
    assert f"/work/labels/{label.pk}/" in html
    assert 'value="safe" data-hotkey="1" checked' in html

    # and she changes it
    anna_client.post(
        f"/work/labels/{label.pk}/",
        {"label": "unsafe", "categories": ["Threat"]},
        **HX,
    )

    # then the vote changed and the edit is in its history
    label.refresh_from_db()
    assert label.label == "unsafe"
    edit = LabelEdit.objects.get(label=label)
    assert (edit.before["label"], edit.after["label"]) == ("safe", "unsafe")
    assert edit.after["categories"] == ["Threat"]
    assert edit.edited_by == anna


def test_the_edit_page_shows_my_vote_and_a_refused_edit_keeps_both(
    anna_client: Client, anna: User, batch
) -> None:
    # given anna's vote: unsafe for Violence and Other, with its text and a comment
    DialogueFactory(batch=batch)
    anna_client.get("/work/")
    anna_client.post(
        f"/work/{reserved_id(anna)}/submit/",
        {
            "label": "unsafe",
            "categories": ["Violence", "Other"],
            "other_text": "revenge",
            "comment": "first read",
        },
        **HX,
    )
    label = Label.objects.get(annotator=anna)

    # when she opens it for editing, then the form shows it as stored
    html = anna_client.get(f"/work/labels/{label.pk}/").content.decode()
    assert 'value="unsafe" data-hotkey="3" checked' in html
    assert 'value="Violence" data-hotkey="a"' in html
    assert html.count("checked") == 3
    assert 'name="other_text" maxlength="500" value="revenge"' in html
    assert ">first read</textarea>" in html
    assert "The label was not saved" not in html

    # when she sends an edit the rules refuse (Other without its text)
    html = anna_client.post(
        f"/work/labels/{label.pk}/",
        {"label": "unsafe", "categories": ["Other"], "comment": "second read"},
        **HX,
    ).content.decode()

    # then the form shows what she sent, the refused field says why
    assert "The label was not saved: fix the fields marked below." in html
    assert "<p>is required when Other is chosen</p>" in html
    assert 'name="other_text" maxlength="500" value=""' in html
    assert ">second read</textarea>" in html
    assert html.count("checked") == 2
    # and the stored vote is as it was, with no edit recorded
    label.refresh_from_db()
    assert (label.label, label.other_text, label.comment) == (
        "unsafe",
        "revenge",
        "first read",
    )
    assert label.ordered_category_names() == ["Violence", "Other"]
    assert not LabelEdit.objects.exists()


def test_history_lists_only_my_labels_and_locks_adjudicated_ones(
    anna_client: Client, anna: User, batch
) -> None:
    mine = LabelFactory(
        annotator=anna, dialogue=DialogueFactory(batch=batch, prompt="mine p")
    )
    final = LabelFactory(
        annotator=anna,
        dialogue=DialogueFactory(
            batch=batch, prompt="final p", adjudicated_at=timezone.now()
        ),
    )
    LabelFactory(dialogue=DialogueFactory(batch=batch, prompt="someone else p"))

    html = anna_client.get("/work/history/").content.decode()

    assert "mine p" in html
    assert "final p" in html
    assert "someone else p" not in html
    assert f"/work/labels/{mine.pk}/" in html
    assert f"/work/labels/{final.pk}/" not in html
    # and the edit page refuses another person's label
    other = Label.objects.exclude(annotator=anna).get()
    assert anna_client.get(f"/work/labels/{other.pk}/").status_code == 404


def test_preferences_toggle_blur_and_refuse_foreign_redirects(
    anna_client: Client, anna: User
) -> None:
    response = anna_client.post(
        "/work/preferences/", {"blur_text": "on", "next": "https://evil.example/"}
    )
    anna.refresh_from_db()
    assert anna.blur_text is True
    assert response["Location"] == "/work/history/"


def test_workspace_query_count_does_not_grow_with_the_batch(
    anna_client: Client, anna: User, batch, django_assert_max_num_queries
) -> None:
    DialogueFactory.create_batch(5, batch=batch)
    anna_client.get("/work/")  # reserves one
    with django_assert_max_num_queries(20):
        small = anna_client.get("/work/")
    DialogueFactory.create_batch(60, batch=batch)
    with django_assert_max_num_queries(20):
        large = anna_client.get("/work/")
    assert small.status_code == large.status_code == 200
