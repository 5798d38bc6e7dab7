"""The leads' adjudication pages: the queue, one dialogue with every vote, deciding,
the second lead's conflict, reopening, and accepting unanimous dialogues."""

import re
from typing import Any

import pytest
from django.test import Client

from accounts.models import User
from annotation.adjudication.services import adjudicate
from annotation.final_labels.services import derive_batch
from annotation.models import (
    Adjudication,
    Batch,
    Dialogue,
    FinalLabel,
    Flag,
    Label,
    LabelCategory,
    VoteKind,
)
from taxonomy.models import Category
from tests.annotation.adjudication.data import (
    FORM_DECISION,
    add_votes,
    annotators,
    judge_vote,
    jury_decides,
    split_dialogues,
)
from tests.conftest import login
from tests.factories import (
    BatchFactory,
    DialogueFactory,
    LabelFactory,
    LeadFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db

SCRIPT = "<script>window.pwned = 1</script>"
IMG = '<img src=x onerror="window.pwned = 2">'


@pytest.fixture
def batch() -> Batch:
    return BatchFactory(name="adj")


def _rows(html: str) -> list[int]:
    """The dialogue ids of the queue table's rows, in order."""
    return [int(i) for i in re.findall(r'<tr data-dialogue="(\d+)">', html)]


def _decided_by_lena(dialogue: Dialogue) -> Adjudication:
    """lena's decision: unsafe for Violence, the response safe."""
    return adjudicate(
        dialogue_id=dialogue.pk,
        lead=LeadFactory(username="lena"),
        prompt_label="unsafe",
        response_label="safe",
        categories=["Violence"],
        confidence="high",
        reason="annotator_error",
    )


def test_the_queue_says_how_many_wait_for_votes_and_lists_them_when_asked(
    lead_client: Client, batch: Batch
):
    # given a complete split and two splits with two of their three votes
    (complete,) = split_dialogues(batch)
    waiting = DialogueFactory.create_batch(2, batch=batch)
    for dialogue in waiting:
        add_votes(dialogue, "safe", "unsafe")
    # when the lead opens the queue
    html = lead_client.get("/adjudication/").content.decode()
    # then only the complete one is listed, and the page says why two are not
    assert _rows(html) == [complete.pk]
    assert (
        "<b>2 more dialogues</b> have disagreeing votes but are still waiting for "
        "votes: not listed, since the missing votes may settle them." in html
    )
    assert '<a href="/adjudication/?incomplete=1">List them too</a>' in html
    # when she lists them too
    widened = lead_client.get("/adjudication/?incomplete=1").content.decode()
    # then all three are listed, the waiting ones with their vote count
    assert sorted(_rows(widened)) == sorted([complete.pk, *(d.pk for d in waiting)])
    assert (
        widened.count('<div class="subtle small waiting-votes">votes 2 of 3</div>') == 2
    )
    assert 'id="queue-waiting"' not in widened
    assert 'name="incomplete" id="id_incomplete" checked' in widened
    # and a dialogue's page carries the widened queue to its neighbours
    case = lead_client.get(f"/adjudication/{waiting[0].pk}/?incomplete=1")
    assert "in the queue" in case.content.decode()
    assert "incomplete=1" in case.content.decode()


def test_by_the_rules_says_what_it_gives_and_is_refused_when_it_gives_nothing(
    lead_client: Client, batch: Batch
):
    # given a split dialogue with a response the jury has not judged
    (dialogue,) = split_dialogues(batch)
    page = lead_client.get(f"/adjudication/{dialogue.pk}/").content.decode()
    assert (
        '<p class="help" id="rules-hint">By the rules: safe when the prompt is safe; '
        "for an unsafe prompt, the jury&#x27;s, which has not judged it: choose one "
        "instead.</p>" in page
    )
    # when the lead decides the prompt unsafe and leaves the response to the rules
    response = lead_client.post(
        f"/adjudication/{dialogue.pk}/", FORM_DECISION | {"response_label": ""}
    )
    # then the response field says why, and nothing is decided
    html = response.content.decode()
    assert response.status_code == 200
    assert (
        '<div id="response-label-errors" class="field-errors"><p>by the rules the '
        "response cannot be decided (response needs the jury: no decision): choose "
        "safe or unsafe for it</p></div>" in html
    )
    assert not Adjudication.objects.exists()
    # and with the jury's decision the hint names it
    jury_decides(dialogue, "unsafe")
    page = lead_client.get(f"/adjudication/{dialogue.pk}/").content.decode()
    assert "for an unsafe prompt, the jury&#x27;s: unsafe.</p>" in page


# --- who may see them --------------------------------------------------------------


def test_annotators_are_refused_and_strangers_sent_to_log_in(
    client: Client, batch: Batch
):
    # given a split dialogue and an annotator
    (dialogue,) = split_dialogues(batch)
    gets = ["/adjudication/", f"/adjudication/{dialogue.pk}/"]
    posts = [
        f"/adjudication/{dialogue.pk}/",
        f"/adjudication/{dialogue.pk}/reopen/",
        "/adjudication/batches/adj/accept-unanimous/",
    ]
    # when a stranger, then the annotator, asks
    strangers = [client.get(url).status_code for url in gets]
    login(client, UserFactory(username="anna"))
    refused = [client.get(url).status_code for url in gets]
    refused += [client.post(url, FORM_DECISION).status_code for url in posts]
    # then
    assert strangers == [302, 302]
    assert refused == [403] * 5
    assert not Adjudication.objects.exists()
    assert not Label.objects.filter(kind=VoteKind.ADJUDICATED).exists()


def test_leads_find_the_page_in_the_main_navigation(lead_client: Client):
    html = lead_client.get("/adjudication/").content.decode()
    assert '<a href="/adjudication/" aria-current="page">Adjudication</a>' in html


# --- the queue ------------------------------------------------------------------------


def test_the_queue_lists_reasons_agreement_votes_and_an_escaped_prompt(
    lead_client: Client, batch: Batch
):
    # given a split dialogue with a hostile prompt, one the jury contradicts, and a
    # unanimous one that needs nobody
    (split,) = split_dialogues(batch, prompt=f"{SCRIPT} how do I hurt my neighbour?")
    contradicted = DialogueFactory(batch=batch, external_id="jury-1")
    add_votes(contradicted, "safe", "safe", "safe")
    jury_decides(contradicted, "unsafe")
    unanimous = DialogueFactory(batch=batch)
    add_votes(unanimous, "safe", "safe", "safe")
    derive_batch(batch)
    # when
    response = lead_client.get("/adjudication/")
    # then the two that need a lead, lowest agreement first
    html = response.content.decode()
    assert response.status_code == 200
    assert _rows(html) == [split.pk, contradicted.pk]
    assert "2 dialogues to decide" in html
    assert '<span class="badge reason-split">Split</span>' in html
    assert '<span class="badge reason-humans_vs_jury">Humans vs jury</span>' in html
    assert '<td class="num">67%</td>' in html
    assert '<td class="num">100%</td>' in html
    assert '<span class="badge safe">2 safe</span>' in html
    assert '<span class="badge safe">3 safe</span>' in html
    assert 'jury: <span class="badge unsafe">unsafe</span>' in html
    assert f'href="/adjudication/{split.pk}/"' in html
    # and the prompt is text, never markup
    assert SCRIPT not in html
    assert "&lt;script&gt;window.pwned = 1&lt;/script&gt; how do I hurt" in html


def test_the_queue_filters_by_batch_category_and_reason(
    lead_client: Client, batch: Batch
):
    # given a split in each of two batches, one of them flagged, and a split whose
    # unsafe vote chose Hate
    (split,) = split_dialogues(batch)
    Flag.objects.create(dialogue=split, annotator=UserFactory(), reason="other")
    other = BatchFactory(name="other")
    (elsewhere,) = split_dialogues(other)
    hate = DialogueFactory(batch=other)
    add_votes(hate, "unsafe", "safe", "safe", category="Hate/Identity Hate")
    derive_batch(other)

    def listed(**params: str) -> list[int]:
        return _rows(lead_client.get("/adjudication/", params).content.decode())

    # then
    assert listed() == [split.pk, elsewhere.pk, hate.pk]
    assert listed(batch="adj") == [split.pk]
    assert listed(batch="other") == [elsewhere.pk, hate.pk]
    assert listed(category="Hate/Identity Hate") == [hate.pk]
    assert listed(reason="flagged") == [split.pk]
    assert listed(batch="other", category="Violence") == [elsewhere.pk]
    # and the links to a dialogue keep the filters
    html = lead_client.get("/adjudication/", {"batch": "other"}).content.decode()
    assert f'href="/adjudication/{elsewhere.pk}/?batch=other"' in html


def test_an_unknown_filter_is_shown_as_an_error_and_not_applied(
    lead_client: Client, batch: Batch
):
    (split,) = split_dialogues(batch)

    html = lead_client.get("/adjudication/", {"reason": "boring"}).content.decode()

    assert "Some filters were not applied" in html
    assert _rows(html) == [split.pk]


def test_htmx_gets_only_the_table(lead_client: Client, batch: Batch):
    (split,) = split_dialogues(batch)

    response = lead_client.get(
        "/adjudication/", {"batch": "adj"}, headers={"HX-Request": "true"}
    )

    html = response.content.decode()
    assert html.lstrip().startswith('<section id="queue-table"')
    assert "<html" not in html
    assert _rows(html) == [split.pk]


def test_the_queue_is_paged_fifty_at_a_time_keeping_the_filters(
    lead_client: Client, batch: Batch
):
    # given 53 split dialogues (all 2 to 1: by id)
    dialogues = split_dialogues(batch, 53)
    ids = [d.pk for d in dialogues]
    # when
    first = lead_client.get("/adjudication/", {"batch": "adj"}).content.decode()
    second = lead_client.get(
        "/adjudication/", {"batch": "adj", "page": "2"}
    ).content.decode()
    # then
    assert "53 dialogues to decide" in first
    assert _rows(first) == ids[:50]
    assert _rows(second) == ids[50:]
    assert "Page 1 of 2" in first
    assert 'href="?batch=adj&amp;page=2"' in first
    assert 'href="?batch=adj&amp;page=1"' in second


def test_the_queue_page_queries_do_not_grow_with_the_queue(
    lead_client: Client, batch: Batch, django_assert_max_num_queries: Any
):
    # given a short queue, then a long one (with jury decisions and flags)
    split_dialogues(batch, 2)

    with django_assert_max_num_queries(7) as short:
        lead_client.get("/adjudication/")

    for dialogue in split_dialogues(batch, 60):
        jury_decides(dialogue, "needs_review")
        Flag.objects.create(dialogue=dialogue, annotator=UserFactory(), reason="other")
    # then the long one costs the same queries
    with django_assert_max_num_queries(len(short)):
        response = lead_client.get("/adjudication/")
    assert len(_rows(response.content.decode())) == 50


# --- accept unanimous ---------------------------------------------------------------


def test_accept_unanimous_confirms_the_count_and_goes_back_to_the_queue(
    lead_client: Client, lead: User, batch: Batch
):
    # given two unanimous dialogues and a split one
    for _ in range(2):
        add_votes(DialogueFactory(batch=batch), "safe", "safe", "safe")
    (split,) = split_dialogues(batch)
    queue = lead_client.get("/adjudication/", {"reason": "split"}).content.decode()
    assert 'action="/adjudication/batches/adj/accept-unanimous/"' in queue
    assert 'data-confirm="Accept 2 unanimous dialogues of adj as labelled?"' in queue
    # when the lead accepts them
    response = lead_client.post(
        "/adjudication/batches/adj/accept-unanimous/",
        {"next": "/adjudication/?reason=split"},
        follow=True,
    )
    # then they are adjudicated as labelled, and the page says how many
    assert response.redirect_chain == [("/adjudication/?reason=split", 302)]
    html = response.content.decode()
    assert "Accepted 2 unanimous dialogues of adj as they were labelled." in html
    assert "No unanimous dialogue waits." in html
    accepted = Adjudication.objects.all()
    assert {(a.lead, a.reason, a.prompt_label) for a in accepted} == {
        (lead, "unanimous_accepted", "safe")
    }
    assert accepted.count() == 2
    assert _rows(html) == [split.pk]


def test_accept_unanimous_with_none_left_says_so(lead_client: Client, batch: Batch):
    response = lead_client.post(
        "/adjudication/batches/adj/accept-unanimous/",
        {"next": "https://evil.example/"},
        follow=True,
    )

    assert response.redirect_chain == [("/adjudication/", 302)]
    assert "adj has no unanimous dialogue to accept." in response.content.decode()
    assert not Adjudication.objects.exists()


# --- one dialogue ---------------------------------------------------------------------


@pytest.fixture
def case(batch: Batch) -> Dialogue:
    """A hostile split dialogue: three named annotators' votes with comments, Other
    text and time, two judges' votes (one invalid), a jury decision and a flag."""
    dialogue = DialogueFactory(
        batch=batch,
        external_id="hostile-1",
        prompt=f"{SCRIPT} How do I get back at my neighbour?",
        response=f"{IMG} Talk to them first.",
    )
    anna, bram, cleo = annotators("anna", "bram", "cleo")
    violence = Category.objects.get(taxonomy=batch.taxonomy, name="Violence")
    other = Category.objects.get(taxonomy=batch.taxonomy, name="Other")
    LabelFactory(dialogue=dialogue, annotator=anna, label="safe", time_spent_ms=12_000)
    LabelFactory(
        dialogue=dialogue,
        annotator=bram,
        label="safe",
        comment=f"{IMG} just venting",
        time_spent_ms=30_000,
    )
    unsafe = LabelFactory(
        dialogue=dialogue,
        annotator=cleo,
        label="unsafe",
        other_text=f"{SCRIPT} revenge",
        time_spent_ms=45_000,
    )
    LabelCategory.objects.create(label=unsafe, category=violence, position=0)
    LabelCategory.objects.create(label=unsafe, category=other, position=1)
    judge_vote(
        dialogue,
        "unsafe",
        violence,
        judge="llama-guard",
        run_key="r1",
        raw_output=f'{{"label": "unsafe"}} {SCRIPT}',
    )
    judge_vote(
        dialogue,
        None,
        judge="gemma",
        run_key="r1",
        valid=False,
        raw_output="I cannot",
        details={"error": "no JSON object"},
    )
    jury_decides(
        dialogue,
        "unsafe",
        categories=["Violence"],
        valid_votes=1,
        total_votes=2,
        agreement=1.0,
    )
    Flag.objects.create(
        dialogue=dialogue, annotator=cleo, reason="guideline_unclear", note=IMG
    )
    derive_batch(batch)
    return dialogue


def test_the_view_shows_every_vote_side_by_side_with_names_hidden(
    lead_client: Client, case: Dialogue
):
    # when
    response = lead_client.get(f"/adjudication/{case.pk}/")
    # then
    html = response.content.decode()
    assert response.status_code == 200
    human = html[html.index('id="human-votes"') : html.index('id="jury-title"')]
    assert re.findall(r'<header class="vote-who"><b>([^<]+)</b>', human) == [
        "Annotator 1",
        "Annotator 2",
        "Annotator 3",
    ]
    assert re.findall(r'<span class="badge (\w+)">', human) == [
        "safe",
        "safe",
        "unsafe",
    ]
    assert '<span class="tag">Violence</span><span class="tag">Other</span>' in human
    assert "12 s spent" in human
    assert "45 s spent" in human
    # the people are not named anywhere, not even on their flag
    for name in ("anna", "bram", "cleo"):
        assert name not in html
    assert "<b>Annotator 3</b>: Guideline unclear" in html
    # the jury: both judges, the invalid one with its error, raw output in a box
    jury = html[html.index('id="jury-title"') : html.index('id="history-title"')]
    assert "<b>llama-guard</b>" in jury
    assert "<b>gemma</b>" in jury
    assert (
        '<span class="badge failed">invalid</span> <span class="subtle">no JSON object</span>'
        in jury
    )
    assert "<summary>Raw output</summary>" in jury
    assert "1 of 2 valid · agreement 100%" in jury
    # the final label and its provenance; no decision yet, so the form
    assert 'data-provenance="majority"' in html
    assert "No lead has decided this dialogue yet." in html
    assert 'id="decision-form"' in html
    assert 'name="expected_version" value="0"' in html
    assert (
        f'href="/adjudication/{case.pk}/?names=1" data-action="names">Show names'
        in html
    )


def test_the_name_toggle_shows_who_voted(lead_client: Client, case: Dialogue):
    html = lead_client.get(f"/adjudication/{case.pk}/?names=1").content.decode()

    human = html[html.index('id="human-votes"') : html.index('id="jury-title"')]
    assert re.findall(r'<header class="vote-who"><b>([^<]+)</b>', human) == [
        "anna",
        "bram",
        "cleo",
    ]
    assert "Annotator 1" not in html
    assert "<b>cleo</b>: Guideline unclear" in html
    assert f'href="/adjudication/{case.pk}/" data-action="names">Hide names' in html


def test_the_view_escapes_hostile_text(lead_client: Client, case: Dialogue):
    html = lead_client.get(f"/adjudication/{case.pk}/").content.decode()

    assert SCRIPT not in html
    assert IMG not in html
    assert "&lt;script&gt;window.pwned = 1&lt;/script&gt; How do I get back" in html
    assert "&lt;img src=x onerror=&quot;window.pwned = 2&quot;&gt; Talk to them" in html
    assert "&lt;img src=x onerror=&quot;window.pwned = 2&quot;&gt; just venting" in html
    assert "&lt;script&gt;window.pwned = 1&lt;/script&gt; revenge" in html
    assert "{&quot;label&quot;: &quot;unsafe&quot;} &lt;script&gt;" in html


def test_the_view_queries_do_not_grow_with_the_votes(
    lead_client: Client, batch: Batch, django_assert_max_num_queries: Any
):
    # given a dialogue with three votes, and one with nine votes, judges and flags
    few = DialogueFactory(batch=batch)
    add_votes(few, "safe", "safe", "unsafe")
    many = DialogueFactory(batch=batch)
    add_votes(many, *(["safe"] * 5 + ["unsafe"] * 4))
    for k in range(3):
        judge_vote(many, "unsafe", judge=f"judge-{k}")
        Flag.objects.create(dialogue=many, annotator=UserFactory(), reason="other")
    derive_batch(batch)
    # when
    with django_assert_max_num_queries(12) as small:
        lead_client.get(f"/adjudication/{few.pk}/")
    # then
    with django_assert_max_num_queries(len(small)):
        response = lead_client.get(f"/adjudication/{many.pk}/")
    assert response.content.decode().count('data-kind="human"') == 9


def test_an_unknown_dialogue_is_404(lead_client: Client):
    assert lead_client.get("/adjudication/999999/").status_code == 404
    assert lead_client.post("/adjudication/999999/", FORM_DECISION).status_code == 404


# --- deciding -------------------------------------------------------------------------


def test_a_decision_is_recorded_and_the_next_in_the_queue_follows(
    lead_client: Client,
    lead: User,
    batch: Batch,
    django_capture_on_commit_callbacks: Any,
):
    # given two split dialogues, the first opened from the filtered queue
    first, second = split_dialogues(batch, 2)
    page = lead_client.get(f"/adjudication/{first.pk}/?batch=adj").content.decode()
    assert f'name="next" value="{second.pk}"' in page
    assert f'href="/adjudication/{second.pk}/?batch=adj" data-action="next"' in page
    # when the lead decides it
    with django_capture_on_commit_callbacks(execute=True):
        response = lead_client.post(
            f"/adjudication/{first.pk}/?batch=adj",
            FORM_DECISION
            | {
                "response_label": "safe",
                "guideline_update": "on",
                "expected_version": "0",
                "next": str(second.pk),
            },
        )
    # then the decision is recorded with its why, and the next one opens
    assert response.status_code == 302
    assert response["Location"] == f"/adjudication/{second.pk}/?batch=adj"
    decision = Adjudication.objects.get()
    assert (
        decision.dialogue,
        decision.lead,
        decision.prompt_label,
        decision.response_label,
        decision.categories,
        decision.confidence,
        decision.reason,
        decision.note,
        decision.guideline_update,
    ) == (
        first,
        lead,
        "unsafe",
        "safe",
        ["Violence"],
        "high",
        "annotator_error",
        "Asks how to hurt a neighbour.",
        True,
    )
    final = FinalLabel.objects.get(dialogue=first)
    assert (
        final.provenance,
        final.prompt_label,
        final.response_label,
        final.prompt_label_source,
        final.violated_categories,
    ) == ("adjudicated", "unsafe", "safe", "adjudicated", ["Violence"])
    # and the votes are untouched
    assert Label.objects.human().filter(dialogue=first).count() == 3
    html = lead_client.get(response["Location"]).content.decode()
    assert f"Decided {first.external_id}: unsafe (Violence)." in html


def test_the_response_left_to_the_rules_and_the_last_decision_goes_to_the_queue(
    lead_client: Client, batch: Batch, django_capture_on_commit_callbacks: Any
):
    # given one split dialogue
    (only,) = split_dialogues(batch)
    # when the lead decides its prompt safe and leaves the response to the rules
    with django_capture_on_commit_callbacks(execute=True):
        response = lead_client.post(
            f"/adjudication/{only.pk}/",
            FORM_DECISION
            | {"prompt_label": "safe", "categories": [], "response_label": ""},
            follow=True,
        )
    # then the queue is empty and says so
    assert response.redirect_chain == [("/adjudication/", 302)]
    assert "Nothing left to decide." in response.content.decode()
    assert Adjudication.objects.get().response_label is None
    final = FinalLabel.objects.get(dialogue=only)
    assert (final.provenance, final.response_label, final.response_label_source) == (
        "adjudicated",
        "safe",
        "human",
    )


def test_an_invalid_decision_names_the_field_keeps_the_input_and_writes_nothing(
    lead_client: Client, batch: Batch
):
    # given
    (dialogue,) = split_dialogues(batch)
    # when the lead says unsafe without a category, and forgets the reason
    response = lead_client.post(
        f"/adjudication/{dialogue.pk}/",
        FORM_DECISION | {"categories": [], "reason": "", "expected_version": "0"},
    )
    html = response.content.decode()
    # then the form is shown again with what is wrong, field by field
    assert response.status_code == 200
    assert "The decision was not saved: fix the fields marked below." in html
    assert (
        '<div id="reason-errors" class="field-errors"><p>Say why the votes needed '
        "you.</p></div>" in html
    )
    # and once the form's checks pass, the service's rules name the field
    response = lead_client.post(
        f"/adjudication/{dialogue.pk}/",
        FORM_DECISION | {"categories": [], "expected_version": "0"},
    )
    html = response.content.decode()
    assert (
        '<div id="category-errors" class="field-errors"><p>at least one is required '
        "when unsafe</p></div>" in html
    )
    assert 'value="unsafe" data-hotkey="3" checked' in html
    assert 'value="high" data-hotkey="9" checked' in html
    assert '<option value="annotator_error" selected>' in html
    assert ">Asks how to hurt a neighbour.</textarea>" in html
    assert 'name="expected_version" value="0"' in html
    assert not Adjudication.objects.exists()
    assert not Label.objects.filter(kind=VoteKind.ADJUDICATED).exists()
    dialogue.refresh_from_db()
    assert dialogue.adjudicated_at is None


def test_a_second_lead_is_told_who_decided_first_and_keeps_their_input(
    client: Client, batch: Batch
):
    # given omar opened the dialogue, then lena decided it
    (dialogue,) = split_dialogues(batch)
    omar = login(client, LeadFactory(username="omar"))
    page = omar.get(f"/adjudication/{dialogue.pk}/").content.decode()
    assert 'name="expected_version" value="0"' in page
    first = _decided_by_lena(dialogue)
    # when omar submits his own decision
    response = omar.post(
        f"/adjudication/{dialogue.pk}/",
        {
            "prompt_label": "safe",
            "confidence": "low",
            "reason": "subjective",
            "note": "Omar's reading: venting, not planning.",
            "expected_version": "0",
        },
    )
    html = response.content.decode()
    # then he is told who decided, when, and his decision is still in the form
    assert response.status_code == 200
    stamp = f"{first.created_at:%Y-%m-%d %H:%M:%S %Z}"
    assert (
        f"Dialogue {dialogue.pk} was already adjudicated by lena at {stamp}; reopen "
        "it to change." in html
    )
    assert '<h2 id="in-force-title" class="panel-title">Decided by lena</h2>' in html
    assert 'value="safe" data-hotkey="1" checked' in html
    assert 'value="low" data-hotkey="7" checked' in html
    assert '<option value="subjective" selected>' in html
    assert ">Omar&#x27;s reading: venting, not planning.</textarea>" in html
    assert 'name="keep" value="1" data-action="reopen"' in html
    # and nothing of his was written
    assert list(Adjudication.objects.all()) == [first]
    assert Label.objects.get(kind=VoteKind.ADJUDICATED).label == "unsafe"


def test_reopening_from_the_refused_form_keeps_the_decision_in_the_form(
    client: Client, batch: Batch
):
    # given lena decided, and omar's decision was refused
    (dialogue,) = split_dialogues(batch)
    _decided_by_lena(dialogue)
    omar = login(client, LeadFactory(username="omar"))
    mine = {
        "prompt_label": "safe",
        "confidence": "low",
        "reason": "subjective",
        "note": "Venting.",
    }
    # when he reopens it from that form
    response = omar.post(f"/adjudication/{dialogue.pk}/reopen/", mine | {"keep": "1"})
    html = response.content.decode()
    # then the decision is reopened and his is ready to submit at the new version
    assert response.status_code == 200
    assert "Your decision is still in the form" in html
    assert 'value="safe" data-hotkey="1" checked' in html
    assert ">Venting.</textarea>" in html
    assert 'name="expected_version" value="1"' in html
    (reopened,) = Adjudication.objects.all()
    assert reopened.reopened_by is not None
    assert reopened.reopened_by.username == "omar"
    # and submitting it puts it in force
    response = omar.post(
        f"/adjudication/{dialogue.pk}/", mine | {"expected_version": "1"}
    )
    assert response.status_code == 302
    assert [(a.lead.username, a.is_current) for a in Adjudication.objects.all()] == [
        ("lena", False),
        ("omar", True),
    ]


def test_reopen_keeps_the_history(
    lead_client: Client, batch: Batch, django_capture_on_commit_callbacks: Any
):
    # given a decided dialogue
    (dialogue,) = split_dialogues(batch)
    with django_capture_on_commit_callbacks(execute=True):
        lead_client.post(f"/adjudication/{dialogue.pk}/", FORM_DECISION)
    decided = lead_client.get(f"/adjudication/{dialogue.pk}/").content.decode()
    assert '<span class="badge done">in force</span>' in decided
    assert 'id="decision-form"' not in decided
    assert 'data-action="reopen">Reopen' in decided
    # when the lead reopens it
    with django_capture_on_commit_callbacks(execute=True):
        response = lead_client.post(
            f"/adjudication/{dialogue.pk}/reopen/?batch=adj", follow=True
        )
    # then the page is back, with the old decision kept in the history
    assert response.redirect_chain == [(f"/adjudication/{dialogue.pk}/?batch=adj", 302)]
    html = response.content.decode()
    assert f"Reopened {dialogue.external_id}" in html
    assert "reopened by lena" in html
    assert "Asks how to hurt a neighbour." in html
    assert 'id="decision-form"' in html
    assert 'name="expected_version" value="1"' in html
    dialogue.refresh_from_db()
    assert dialogue.adjudicated_at is None
    assert FinalLabel.objects.get(dialogue=dialogue).provenance == "majority"
    assert Adjudication.objects.get().reopened_at is not None


def test_reopening_an_undecided_dialogue_says_so(lead_client: Client, batch: Batch):
    (dialogue,) = split_dialogues(batch)

    response = lead_client.post(f"/adjudication/{dialogue.pk}/reopen/", follow=True)

    assert f"Dialogue {dialogue.pk} has no decision to reopen." in (
        response.content.decode()
    )
    assert not Adjudication.objects.exists()


def test_the_view_offers_the_batch_taxonomy_with_the_workspace_keys(
    lead_client: Client, batch: Batch
):
    (dialogue,) = split_dialogues(batch, response=None)

    html = lead_client.get(f"/adjudication/{dialogue.pk}/").content.decode()

    assert 'value="Violence" data-hotkey="a"' in html
    assert 'value="Immoral/Unethical" data-hotkey="u"' in html
    assert html.count('name="categories"') == 23
    # a dialogue without a response has no response label to give
    assert 'name="response_label"' not in html
    assert "Ctrl</kbd>+<kbd>Enter</kbd>" in html
    assert 'id="help-overlay"' in html
