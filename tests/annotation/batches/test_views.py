"""The leads' batch pages: new, settings, annotators, progress (and flag resolution)."""

from datetime import timedelta

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from accounts.models import User
from annotation.models import Batch, Dialogue, Flag, Label, Skip
from taxonomy.models import Taxonomy
from tests.factories import (
    AssignmentFactory,
    BatchFactory,
    DialogueFactory,
    LabelFactory,
    LeadFactory,
    UserFactory,
)

SCRIPT = "<script>alert(1)</script>"
IMG = "<img src=x onerror=alert(2)>"


@pytest.fixture
def batch(db: None) -> Batch:
    return BatchFactory(name="demo")


def form_data(**overrides: object) -> dict[str, object]:
    return {
        "name": "round-2",
        "taxonomy": Taxonomy.objects.default().pk,
        "labels_required": 3,
        "reservation_minutes": 30,
        "break_reminder_minutes": 50,
        "needs_caution_policy": "permissive",
        "instructions": "",
        **overrides,
    }


def settings_data(**overrides: object) -> dict[str, object]:
    data = form_data(**overrides)
    del data["name"], data["taxonomy"]
    return data


# --- who may see them ------------------------------------------------------------------

GET_PAGES = [
    "/batches/new/",
    "/batches/demo/settings/",
    "/batches/demo/assign/",
    "/batches/demo/progress/",
]
POST_PAGES = ["/batches/demo/status/", "/batches/demo/flags/1/resolve/"]


@pytest.mark.parametrize("url", GET_PAGES)
def test_lead_pages_render_for_a_lead(lead_client: Client, batch: Batch, url: str):
    response = lead_client.get(url)

    assert response.status_code == 200
    assert response["Content-Type"] == "text/html; charset=utf-8"
    assert "lena" in response.content.decode()


@pytest.mark.parametrize("url", GET_PAGES + POST_PAGES)
def test_lead_pages_are_forbidden_to_annotators(
    annotator_client: Client, batch: Batch, url: str
):
    # given a paused batch with an open flag
    batch.status = "paused"
    batch.save()
    Flag.objects.create(
        pk=1,
        dialogue=DialogueFactory(batch=batch),
        annotator=UserFactory(),
        reason="other",
    )

    # when an annotator asks for the page or posts to it
    get = annotator_client.get(url)
    post = annotator_client.post(url, {"status": "active", "name": "sneaky"})

    # then both are refused and nothing changed
    # (a page that takes only one method refuses the other before asking who it is)
    assert get.status_code == (405 if url in POST_PAGES else 403)
    assert post.status_code == (405 if url.endswith("/progress/") else 403)
    assert Batch.objects.get(pk=batch.pk).status == "paused"
    assert Flag.objects.open().count() == 1
    assert not Batch.objects.filter(name="sneaky").exists()


@pytest.mark.parametrize("url", GET_PAGES)
def test_lead_pages_send_anonymous_people_to_log_in(
    client: Client, batch: Batch, url: str
):
    response = client.get(url)

    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


def test_unknown_batches_are_404(lead_client: Client, db: None):
    for url in GET_PAGES[1:]:
        assert lead_client.get(url.replace("demo", "nope")).status_code == 404, url


# --- new batch ------------------------------------------------------------------------


def test_new_batch_form_offers_published_taxonomies_with_aegis_2_chosen(
    lead_client: Client, batch: Batch
):
    # given a draft taxonomy next to the published one, and a source batch
    Taxonomy.objects.create(name="Draft taxonomy", version=1)
    DialogueFactory(batch=batch, source="aegis2")
    default = Taxonomy.objects.default()

    # when the lead opens the form
    page = lead_client.get("/batches/new/").content.decode()

    # then only published versions are offered, the newest Aegis 2.0 selected
    assert f'<option value="{default.pk}" selected>{default}</option>' in page
    assert "Draft taxonomy" not in page
    assert "demo (1 dialogue)" in page
    assert "aegis2 (1)" in page


def test_creating_a_batch_copies_the_chosen_batch_and_goes_to_assignment(
    lead_client: Client, lead: User, batch: Batch
):
    # given an imported batch with two sources and a vote
    DialogueFactory(batch=batch, external_id="a1", source="aegis2")
    DialogueFactory(batch=batch, external_id="x1", source="xstest")
    LabelFactory(dialogue=batch.dialogues.get(external_id="a1"))

    # when the lead creates round-2 from its aegis2 dialogues
    response = lead_client.post(
        "/batches/new/",
        form_data(copy_from=[batch.pk], sources=["aegis2"], labels_required=5),
        follow=True,
    )

    # then the batch exists with one copied dialogue, no votes, and the page says so
    assert response.redirect_chain == [("/batches/round-2/assign/", 302)]
    created = Batch.objects.get(name="round-2")
    assert created.created_by == lead
    assert created.labels_required == 5
    assert list(created.dialogues.values_list("external_id", flat=True)) == ["a1"]
    assert Label.objects.filter(dialogue__batch=created).count() == 0
    assert "Batch round-2 created with 1 dialogue." in response.content.decode()


def test_creating_a_batch_through_htmx_redirects_the_client(
    lead_client: Client, batch: Batch
):
    response = lead_client.post("/batches/new/", form_data(), HTTP_HX_REQUEST="true")

    assert response.status_code == 200
    assert response["HX-Redirect"] == "/batches/round-2/assign/"
    assert Batch.objects.filter(name="round-2").count() == 1


@pytest.mark.parametrize(
    ("overrides", "field", "message"),
    [
        ({"name": "demo"}, "name", "A batch with this name already exists."),
        ({"name": "new"}, "name", "is taken by a page"),
        ({"name": "a/b"}, "name", "Use letters, digits"),
        ({"labels_required": 0}, "labels_required", "Must be at least 1."),
        ({"reservation_minutes": ""}, "reservation_minutes", "This field is required."),
        ({"sources": ["test"]}, "copy_from", "Choose the batches to copy"),
    ],
)
def test_a_bad_new_batch_form_shows_its_errors_and_creates_nothing(
    lead_client: Client, batch: Batch, overrides: dict, field: str, message: str
):
    # given a source batch
    DialogueFactory(batch=batch, source="test")

    # when the form is posted with one bad field (as htmx does)
    response = lead_client.post(
        "/batches/new/", form_data(**overrides), HTTP_HX_REQUEST="true"
    )

    # then the form fragment comes back with the error, and no batch was made
    page = response.content.decode()
    assert response.status_code == 200
    assert page.lstrip().startswith('<form id="batch-form"')
    assert message in page
    assert response.context["form"].has_error(field)
    assert list(Batch.objects.values_list("name", flat=True)) == ["demo"]
    assert Dialogue.objects.count() == 1


# --- settings and status -------------------------------------------------------------


def test_saving_settings_changes_the_batch(lead_client: Client, batch: Batch):
    response = lead_client.post(
        "/batches/demo/settings/",
        settings_data(
            labels_required=2,
            reservation_minutes=10,
            break_reminder_minutes=25,
            needs_caution_policy="defensive",
            asks_response_label="on",
            instructions="## Read this\n<b>carefully</b>",
        ),
        follow=True,
    )

    assert response.redirect_chain == [("/batches/demo/settings/", 302)]
    stored = Batch.objects.get(pk=batch.pk)
    assert (
        stored.labels_required,
        stored.reservation_minutes,
        stored.break_reminder_minutes,
        stored.needs_caution_policy,
        stored.asks_response_label,
        stored.instructions,
    ) == (2, 10, 25, "defensive", True, "## Read this\n<b>carefully</b>")
    page = response.content.decode()
    assert "Settings of demo saved." in page
    assert "&lt;b&gt;carefully&lt;/b&gt;" in page
    assert "<b>carefully</b>" not in page


def test_bad_settings_show_errors_and_change_nothing(lead_client: Client, batch: Batch):
    response = lead_client.post(
        "/batches/demo/settings/",
        settings_data(labels_required=0, instructions="changed"),
        HTTP_HX_REQUEST="true",
    )

    page = response.content.decode()
    assert response.status_code == 200
    assert page.lstrip().startswith('<form id="settings-form"')
    assert "Must be at least 1." in page
    stored = Batch.objects.get(pk=batch.pk)
    assert (stored.labels_required, stored.instructions) == (3, "")


def test_pause_and_resume_from_the_settings_page(lead_client: Client, batch: Batch):
    # when the lead pauses the batch
    paused = lead_client.post(
        "/batches/demo/status/", {"status": "paused"}, follow=True
    )

    # then it is paused, and the page offers resume
    assert Batch.objects.get(pk=batch.pk).status == "paused"
    page = paused.content.decode()
    assert "Batch demo is now paused." in page
    assert ">Resume</button>" in page
    assert ">Pause</button>" not in page

    # when they resume it
    lead_client.post("/batches/demo/status/", {"status": "active"})

    # then it is active again
    assert Batch.objects.get(pk=batch.pk).status == "active"


def test_a_refused_status_change_is_reported_and_changes_nothing(
    lead_client: Client, batch: Batch
):
    batch.status = "archived"
    batch.save()

    response = lead_client.post(
        "/batches/demo/status/", {"status": "paused"}, follow=True
    )

    assert Batch.objects.get(pk=batch.pk).status == "archived"
    assert "it can go to active, not paused." in response.content.decode()


def test_status_changes_need_a_post(lead_client: Client, batch: Batch):
    assert lead_client.get("/batches/demo/status/").status_code == 405


# --- annotators ------------------------------------------------------------------------


def test_assign_page_lists_active_annotators_with_their_state(
    lead_client: Client, batch: Batch
):
    # given two annotators (one assigned, one capped), a lead, and a deactivated one
    anna = UserFactory(username="anna")
    UserFactory(username="ben", daily_label_cap=40)
    UserFactory(username="gone", is_active=False)
    AssignmentFactory(batch=batch, annotator=anna)

    # when the lead opens the page
    response = lead_client.get("/batches/demo/assign/")

    # then anna is ticked, ben is not but shows his cap; the others are not listed
    rows = {r["user"].username: r for r in response.context["form"].rows()}
    assert sorted(rows) == ["anna", "ben"]
    assert (rows["anna"]["checked"], rows["ben"]["checked"]) == (True, False)
    page = response.content.decode()
    assert f'value="{anna.pk}" checked' in page
    assert 'value="40"' in page
    assert "gone" not in page


def test_saving_the_assign_page_adds_removes_and_caps(
    lead_client: Client, batch: Batch
):
    # given anna on the batch, ben and cleo not
    anna, ben, cleo = (UserFactory(username=n) for n in ("anna", "ben", "cleo"))
    AssignmentFactory(batch=batch, annotator=anna)
    other = BatchFactory(name="other")
    AssignmentFactory(batch=other, annotator=anna)

    # when the lead ticks ben and cleo, unticks anna, and caps cleo at 30
    response = lead_client.post(
        "/batches/demo/assign/",
        {
            "assigned": [ben.pk, cleo.pk],
            f"cap_{anna.pk}": "",
            f"cap_{ben.pk}": "",
            f"cap_{cleo.pk}": "30",
        },
        follow=True,
    )

    # then the batch has ben and cleo, anna keeps her other batch, cleo is capped
    assert sorted(batch.assignments.values_list("annotator__username", flat=True)) == [
        "ben",
        "cleo",
    ]
    assert other.assignments.filter(annotator=anna).exists()
    caps = dict(User.objects.values_list("username", "daily_label_cap"))
    assert (caps["anna"], caps["ben"], caps["cleo"]) == (None, None, 30)
    assert "demo: 2 assigned, 1 unassigned, 1 daily caps changed." in (
        response.content.decode()
    )


def test_a_bad_cap_shows_its_error_and_changes_nothing(
    lead_client: Client, batch: Batch
):
    anna = UserFactory(username="anna", daily_label_cap=10)

    response = lead_client.post(
        "/batches/demo/assign/", {"assigned": [anna.pk], f"cap_{anna.pk}": "0"}
    )

    assert response.status_code == 200
    assert "Must be at least 1." in response.content.decode()
    assert batch.assignments.count() == 0
    assert User.objects.get(pk=anna.pk).daily_label_cap == 10


def test_assigning_someone_not_listed_is_refused(lead_client: Client, batch: Batch):
    lena = LeadFactory(username="lars")

    response = lead_client.post("/batches/demo/assign/", {"assigned": [lena.pk]})

    assert response.status_code == 200
    assert response.context["form"].has_error("assigned")
    assert batch.assignments.count() == 0


# --- progress -----------------------------------------------------------------------------


def fill(batch: Batch, annotators: int, flags: int) -> list[User]:
    """Assigned annotators with votes and skips, and open flags with hostile notes."""
    dialogues = [DialogueFactory(batch=batch) for _ in range(max(flags, 2))]
    people = []
    for i in range(annotators):
        person = UserFactory(username=f"ann{i:02d}", daily_label_cap=20 if i else None)
        AssignmentFactory(batch=batch, annotator=person)
        LabelFactory(dialogue=dialogues[0], annotator=person, time_spent_ms=4000 + i)
        Skip.objects.create(dialogue=dialogues[1], annotator=person)
        people.append(person)
    for i in range(flags):
        Flag.objects.create(
            dialogue=dialogues[i],
            annotator=people[i % annotators],
            reason="broken_text",
            note=f"{IMG} {i}",
        )
    return people


def test_progress_shows_totals_people_and_open_flags(lead_client: Client, batch: Batch):
    # given two dialogues, two annotators with a vote and a skip each, two flags, one
    # of them resolved, and a dialogue whose prompt is a script
    _, ben = fill(batch, annotators=2, flags=2)
    hostile = batch.dialogues.order_by("pk").first()
    Dialogue.objects.filter(pk=hostile.pk).update(prompt=SCRIPT)
    Flag.objects.filter(annotator=ben).update(resolved_at=timezone.now())
    Label.objects.filter(annotator=ben).update(
        created_at=timezone.now() - timedelta(days=2)
    )

    # when the lead opens the progress page
    response = lead_client.get("/batches/demo/progress/")

    # then the numbers are there
    progress = response.context["progress"]
    assert (progress.dialogues, progress.votes, progress.votes_needed) == (2, 2, 6)
    assert progress.percent == 33
    rows = {r.username: r for r in progress.annotators}
    assert (rows["ann00"].labelled, rows["ann00"].skipped, rows["ann00"].flagged) == (
        1,
        1,
        1,
    )
    assert (rows["ann00"].today, rows["ann00"].daily_cap) == (1, None)
    assert (rows["ann01"].today, rows["ann01"].daily_cap) == (0, 20)
    assert rows["ann00"].median_seconds == 4.0
    page = response.content.decode()
    assert 'aria-valuenow="33"' in page
    assert "0 / 20" in page
    # and only the open flag is listed, escaped, with a link to its dialogue
    assert [f.annotator.username for f in response.context["flags"]] == ["ann00"]
    assert f'href="/batches/demo/dialogues/{hostile.pk}/"' in page
    assert "&lt;img src=x onerror=alert(2)&gt; 0" in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert IMG not in page
    assert SCRIPT not in page
    assert "Broken text" in page


def test_polling_progress_returns_only_its_fragment(lead_client: Client, batch: Batch):
    fill(batch, annotators=1, flags=1)

    response = lead_client.get(
        "/batches/demo/progress/",
        HTTP_HX_REQUEST="true",
        HTTP_HX_TARGET="batch-progress",
    )

    page = response.content.decode()
    assert page.lstrip().startswith('<section id="batch-progress"')
    assert "open-flags" not in page
    assert "ann00" in page


def test_resolving_a_flag_records_the_lead_and_drops_it_from_the_list(
    lead_client: Client, lead: User, batch: Batch
):
    # given two open flags
    fill(batch, annotators=2, flags=2)
    first, second = Flag.objects.order_by("pk")

    # when the lead resolves the first through htmx
    response = lead_client.post(
        f"/batches/demo/flags/{first.pk}/resolve/", HTTP_HX_REQUEST="true"
    )

    # then it is resolved by the lead, the list fragment no longer has it, the other
    # flag stays open, and a toast says so
    first.refresh_from_db()
    assert first.resolved_by == lead
    assert first.resolved_at is not None
    assert Flag.objects.open().get() == second
    page = response.content.decode()
    assert page.lstrip().startswith('<section id="open-flags"')
    assert f'id="flag-{first.pk}"' not in page
    assert f'id="flag-{second.pk}"' in page
    assert 'hx-swap-oob="true"' in page
    assert f"Flag on {first.dialogue.external_id} resolved." in page


def test_resolving_without_htmx_goes_back_to_progress(
    lead_client: Client, batch: Batch
):
    fill(batch, annotators=1, flags=1)
    flag = Flag.objects.get()

    response = lead_client.post(f"/batches/demo/flags/{flag.pk}/resolve/")

    assert response.status_code == 302
    assert response["Location"] == "/batches/demo/progress/"
    assert Flag.objects.open().count() == 0


def test_a_flag_of_another_batch_cannot_be_resolved_here(
    lead_client: Client, batch: Batch
):
    other = BatchFactory(name="other")
    fill(other, annotators=1, flags=1)
    flag = Flag.objects.get()

    response = lead_client.post(f"/batches/demo/flags/{flag.pk}/resolve/")

    assert response.status_code == 404
    assert Flag.objects.open().count() == 1


# --- queries do not grow with people or flags ---------------------------------------------


def queries(client: Client, url: str) -> int:
    with CaptureQueriesContext(connection) as captured:
        response = client.get(url)
    assert response.status_code == 200
    return len(captured)


@pytest.mark.parametrize("url", ["/batches/demo/progress/", "/batches/demo/assign/"])
def test_page_queries_do_not_grow_with_annotators_or_flags(
    lead_client: Client, batch: Batch, django_assert_max_num_queries, url: str
):
    # given a small batch: two annotators, two flags
    fill(batch, annotators=2, flags=2)
    small = queries(lead_client, url)

    # when it grows to twelve annotators and thirty flags
    big = BatchFactory(name="big")
    fill_more = fill(big, annotators=12, flags=30)
    assert len(fill_more) == 12

    # then the same page of the bigger batch needs no more queries
    with django_assert_max_num_queries(small):
        lead_client.get(url.replace("demo", "big"))


def test_new_and_settings_pages_have_a_fixed_number_of_queries(
    lead_client: Client, batch: Batch, django_assert_max_num_queries
):
    fill(batch, annotators=2, flags=2)
    small = {u: queries(lead_client, u) for u in GET_PAGES[:2]}
    for i in range(10):
        fill(BatchFactory(name=f"more-{i}"), annotators=1, flags=1)

    for url, n in small.items():
        with django_assert_max_num_queries(n):
            lead_client.get(url)
