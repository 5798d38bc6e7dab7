"""The audit and gold pages for leads, and the annotators' Feedback page."""

import re

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from accounts.models import User
from annotation.models import (
    Audit,
    AuditItem,
    Batch,
    Dialogue,
    Feedback,
    GoldItem,
    Label,
    LabelCategory,
    VoteKind,
)
from annotation.review.audits.services import create_audit, give_feedback
from annotation.review.gold.services import GoldAnswer, mark_gold
from taxonomy.models import Category
from tests.conftest import login
from tests.factories import (
    AssignmentFactory,
    BatchFactory,
    DialogueFactory,
    LabelFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db

SCRIPT = "<script>window.pwned = 1</script>"
IMG = '<img src=x onerror="window.pwned = 2">'


def _people(n: int) -> list[User]:
    now = timezone.now()
    return [
        UserFactory(username=f"ann{i:02d}", content_warning_acknowledged_at=now)
        for i in range(n)
    ]


def _fill(batch: Batch, *, dialogues: int, people: list[User]) -> list[Dialogue]:
    """Finished dialogues: every one voted on by `batch.labels_required` of `people`
    in turn, unsafe with Violence, with a hostile comment."""
    violence = Category.objects.get(taxonomy=batch.taxonomy, name="Violence")
    made = []
    for i in range(dialogues):
        d = DialogueFactory(
            batch=batch,
            external_id=f"{batch.name}-{i:03d}",
            prompt=f"{SCRIPT} prompt {i}",
            response=f"{IMG} answer {i}",
        )
        for k in range(batch.labels_required):
            who = people[(i + k) % len(people)]
            vote = LabelFactory(
                dialogue=d, annotator=who, label="unsafe", comment=f"{IMG} note"
            )
            LabelCategory.objects.create(label=vote, category=violence, position=0)
        made.append(d)
    return made


@pytest.fixture
def batch(db: None) -> Batch:
    return BatchFactory(name="demo", labels_required=3)


@pytest.fixture
def audited(batch: Batch, lead: User) -> Audit:
    _fill(batch, dialogues=4, people=_people(3))
    return create_audit(batch=batch, rate=0.5, seed=11, by=lead)


LEAD_GETS = [
    "/batches/demo/audits/",
    "/batches/demo/audits/{audit}/",
    "/batches/demo/audits/{audit}/1/",
    "/batches/demo/gold/",
]
LEAD_POSTS = [
    "/batches/demo/audits/",
    "/batches/demo/audits/{audit}/1/review/",
    "/batches/demo/audits/{audit}/1/gold/",
    "/batches/demo/audits/{audit}/1/votes/{label}/",
    "/batches/demo/gold/",
    "/batches/demo/dialogues/{dialogue}/gold/",
    "/batches/demo/dialogues/{dialogue}/gold/remove/",
]


def _urls(urls: list[str], audit: Audit) -> list[str]:
    item = audit.items.select_related("dialogue").get(position=1)
    label = Label.objects.filter(dialogue=item.dialogue).first()
    assert label is not None
    return [
        u.format(audit=audit.pk, label=label.pk, dialogue=item.dialogue_id)
        for u in urls
    ]


# --- who may see them --------------------------------------------------------------


def test_lead_pages_refuse_annotators_and_send_strangers_to_log_in(
    client: Client, audited: Audit
):
    annotator = UserFactory(
        username="anna", content_warning_acknowledged_at=timezone.now()
    )
    gets, posts = _urls(LEAD_GETS, audited), _urls(LEAD_POSTS, audited)
    payload = {
        "percent": "50",
        "gold-label": "safe",
        "external_ids": "demo-000",
        "label": "safe",
        "v1-verdict": "agree",
    }

    for url in gets:
        assert client.get(url).status_code == 302, url
    login(client, annotator)
    refused = [client.get(u).status_code for u in gets]
    refused += [client.post(u, payload).status_code for u in posts]

    assert refused == [403] * (len(gets) + len(posts))
    assert Audit.objects.count() == 1
    assert not AuditItem.objects.filter(reviewed_at__isnull=False).exists()
    assert Feedback.objects.count() == 0
    assert GoldItem.objects.count() == 0


@pytest.mark.parametrize("url", LEAD_GETS)
def test_lead_pages_render_for_a_lead(lead_client: Client, audited: Audit, url: str):
    response = lead_client.get(url.format(audit=audited.pk), follow=True)

    assert response.status_code == 200
    assert "lena" in response.content.decode()


# --- audits --------------------------------------------------------------------------


def test_a_lead_draws_an_audit_and_lands_on_its_first_item(
    lead_client: Client, batch: Batch
):
    _fill(batch, dialogues=10, people=_people(4))

    response = lead_client.post(
        "/batches/demo/audits/", {"percent": "20", "seed": "99", "per_annotator": ""}
    )

    audit = Audit.objects.get()
    assert response.status_code == 302
    assert response["Location"] == f"/batches/demo/audits/{audit.pk}/1/"
    assert (audit.rate, audit.seed, audit.per_annotator, audit.population) == (
        0.2,
        99,
        False,
        10,
    )
    assert audit.items.count() == 2
    listing = lead_client.get("/batches/demo/audits/").content.decode()
    assert f"Audit {audit.pk}</a>" in listing
    assert "0 / 2" in listing


def test_an_audit_of_a_batch_with_nothing_finished_shows_why(
    lead_client: Client, batch: Batch
):
    DialogueFactory(batch=batch)

    response = lead_client.post("/batches/demo/audits/", {"percent": "15"})

    assert response.status_code == 200
    assert "has no finished dialogue yet" in response.content.decode()
    assert Audit.objects.count() == 0


def test_the_review_page_shows_every_vote_escaped_side_by_side(
    lead_client: Client, audited: Audit
):
    item = audited.items.get(position=1)
    LabelFactory(
        dialogue=item.dialogue,
        kind=VoteKind.MODEL,
        annotator=None,
        judge="gemma-2-27b",
        label="unsafe",
    )

    html = lead_client.get(f"/batches/demo/audits/{audited.pk}/1/").content.decode()

    assert html.count('class="panel vote-card') == 4
    assert 'data-kind="model"' in html
    assert "gemma-2-27b" in html
    assert SCRIPT not in html
    assert IMG not in html
    assert "&lt;script&gt;window.pwned = 1&lt;/script&gt; prompt" in html
    assert 'aria-valuenow="0"' in html
    assert "0 / 2</b> reviewed" in html


def test_feedback_on_a_vote_is_saved_and_shown_in_the_item(
    lead_client: Client, audited: Audit
):
    item = audited.items.select_related("dialogue").get(position=1)
    vote = Label.objects.filter(dialogue=item.dialogue).order_by("pk").first()
    assert vote is not None
    url = f"/batches/demo/audits/{audited.pk}/1/votes/{vote.pk}/"

    response = lead_client.post(
        url,
        {
            f"v{vote.pk}-verdict": "disagree",
            f"v{vote.pk}-guideline_ref": "§2.3 Violence vs. Criminal Planning",
            f"v{vote.pk}-text": f"{SCRIPT} asks for a plan",
        },
        headers={"HX-Request": "true", "HX-Target": "audit-item"},
    )

    html = response.content.decode()
    assert response.status_code == 200
    assert html.lstrip().startswith('<section id="audit-item"')
    assert "Feedback saved." in html
    assert "&lt;script&gt;window.pwned = 1&lt;/script&gt; asks for a plan" in html
    feedback = Feedback.objects.get()
    assert (feedback.label, feedback.annotator, feedback.verdict) == (
        vote,
        vote.annotator,
        "disagree",
    )
    assert feedback.audit_item == item


def test_feedback_without_a_verdict_shows_the_error_and_saves_nothing(
    lead_client: Client, audited: Audit
):
    item = audited.items.get(position=1)
    vote = Label.objects.filter(dialogue_id=item.dialogue_id).first()
    assert vote is not None

    response = lead_client.post(
        f"/batches/demo/audits/{audited.pk}/1/votes/{vote.pk}/",
        {f"v{vote.pk}-text": "hmm"},
        headers={"HX-Request": "true"},
    )

    assert "Agree or disagree with the vote." in response.content.decode()
    assert Feedback.objects.count() == 0


def test_feedback_on_a_vote_of_another_dialogue_is_not_found(
    lead_client: Client, audited: Audit
):
    other = Label.objects.exclude(dialogue__audit_items__position=1).first()
    assert other is not None

    response = lead_client.post(
        f"/batches/demo/audits/{audited.pk}/1/votes/{other.pk}/",
        {f"v{other.pk}-verdict": "agree"},
    )

    assert response.status_code == 404
    assert Feedback.objects.count() == 0


def test_marking_items_reviewed_moves_on_and_finishes_the_audit(
    lead_client: Client, audited: Audit, lead: User
):
    first = lead_client.post(f"/batches/demo/audits/{audited.pk}/1/review/")
    second = lead_client.post(f"/batches/demo/audits/{audited.pk}/2/review/")

    assert first["Location"] == f"/batches/demo/audits/{audited.pk}/2/"
    assert second["Location"] == f"/batches/demo/audits/{audited.pk}/2/"
    audited.refresh_from_db()
    assert audited.status == "done"
    assert list(audited.items.values_list("reviewed_by", flat=True)) == [lead.pk] * 2
    page = lead_client.get(f"/batches/demo/audits/{audited.pk}/", follow=True)
    assert "2 / 2</b> reviewed" in page.content.decode()


def test_a_lead_marks_an_audited_dialogue_gold_from_the_review_page(
    lead_client: Client, audited: Audit
):
    item = audited.items.select_related("dialogue").get(position=1)

    bad = lead_client.post(
        f"/batches/demo/audits/{audited.pk}/1/gold/",
        {"gold-label": "unsafe"},
        headers={"HX-Request": "true"},
    )
    assert "at least one is required when unsafe" in bad.content.decode()
    assert GoldItem.objects.count() == 0

    good = lead_client.post(
        f"/batches/demo/audits/{audited.pk}/1/gold/",
        {"gold-label": "unsafe", "gold-categories": ["Violence", "Threat"]},
        headers={"HX-Request": "true"},
    )
    assert "is gold now" in good.content.decode()
    gold = GoldItem.objects.get()
    assert gold.dialogue == item.dialogue
    assert sorted(c.name for c in gold.categories.all()) == ["Threat", "Violence"]

    lead_client.post(f"/batches/demo/audits/{audited.pk}/1/gold/", {"action": "unmark"})
    assert GoldItem.objects.count() == 0
    assert not Dialogue.objects.get(pk=item.dialogue_id).is_gold


def _queries(client: Client, url: str) -> int:
    with CaptureQueriesContext(connection) as captured:
        response = client.get(url)
    assert response.status_code == 200
    return len(captured)


def test_the_review_page_needs_the_same_queries_for_more_items_and_votes(
    lead_client: Client, lead: User, django_assert_max_num_queries
):
    # given a small audit: 2 items of 3 votes, one with feedback
    small_batch = BatchFactory(name="small", labels_required=3)
    _fill(small_batch, dialogues=2, people=_people(3))
    small = create_audit(batch=small_batch, rate=1.0, by=lead)
    item = small.items.get(position=1)
    give_feedback(
        item=item,
        label=Label.objects.filter(dialogue_id=item.dialogue_id).first(),
        verdict="agree",
        by=lead,
    )
    n = _queries(lead_client, f"/batches/small/audits/{small.pk}/1/")

    # when an audit has 40 items of 8 votes each, with feedback, judges and gold
    big_batch = BatchFactory(name="big", labels_required=8)
    _fill(big_batch, dialogues=40, people=_people(12))
    big = create_audit(batch=big_batch, rate=1.0, by=lead)
    item = big.items.get(position=1)
    for vote in Label.objects.filter(dialogue_id=item.dialogue_id):
        give_feedback(item=item, label=vote, verdict="disagree", by=lead)
    for j in range(3):
        LabelFactory(
            dialogue_id=item.dialogue_id,
            kind=VoteKind.MODEL,
            annotator=None,
            judge=f"j{j}",
        )
    mark_gold(
        dialogue=item.dialogue,
        answer=GoldAnswer(label="unsafe", categories=("Violence",)),
        by=lead,
    )

    # then its page needs no more queries (a gold answer costs no more than the form)
    with django_assert_max_num_queries(n):
        lead_client.get(f"/batches/big/audits/{big.pk}/1/")
    assert n <= 12


def test_the_gold_page_needs_the_same_queries_for_more_items_and_votes(
    lead_client: Client, django_assert_max_num_queries
):
    small = BatchFactory(name="small", labels_required=1)
    (d,) = _fill(small, dialogues=1, people=_people(1))
    mark_gold(dialogue=d, answer=GoldAnswer(label="safe"), by=None)
    n = _queries(lead_client, "/batches/small/gold/")

    big = BatchFactory(name="big", labels_required=6)
    for d in _fill(big, dialogues=15, people=_people(10)):
        mark_gold(
            dialogue=d,
            answer=GoldAnswer(label="unsafe", categories=("Violence", "Threat")),
            by=None,
        )

    with django_assert_max_num_queries(n):
        response = lead_client.get("/batches/big/gold/")
    assert len(re.findall(r'<tr id="gold-\d+"', response.content.decode())) == 15
    assert n <= 12


# --- gold pages ------------------------------------------------------------------------


def test_the_gold_page_adds_items_by_id_and_shows_each_annotators_accuracy(
    lead_client: Client, batch: Batch
):
    anna, ben = _people(2)
    batch.labels_required = 2
    batch.save()
    _fill(batch, dialogues=3, people=[anna, ben])

    bad = lead_client.post(
        "/batches/demo/gold/",
        {
            "external_ids": "demo-000, nope",
            "label": "unsafe",
            "categories": ["Violence"],
        },
    )
    assert "not in batch demo: nope" in bad.content.decode()
    assert GoldItem.objects.count() == 0

    lead_client.post(
        "/batches/demo/gold/",
        {
            "external_ids": "demo-000\ndemo-001",
            "label": "unsafe",
            "categories": ["Violence", "Threat"],
            "note": "plans harm",
        },
    )

    assert sorted(GoldItem.objects.values_list("dialogue__external_id", flat=True)) == [
        "demo-000",
        "demo-001",
    ]
    html = lead_client.get("/batches/demo/gold/").content.decode()
    rows = re.findall(
        r'<tr><th scope="row">(\w+)</th><td class="num">(\d+)</td>\s*'
        r'<td class="num">(\d+)%</td>\s*<td class="num">([\d.]+)</td></tr>',
        html,
    )
    # both voted unsafe + Violence on both: labels right, categories 1/2
    assert rows == [("ann00", "2", "100", "0.50"), ("ann01", "2", "100", "0.50")]


def test_the_dialogue_page_marks_and_unmarks_gold(lead_client: Client, batch: Batch):
    dialogue = DialogueFactory(batch=batch)
    page = f"/batches/demo/dialogues/{dialogue.pk}/"
    assert "Mark as gold" in lead_client.get(page).content.decode()

    marked = lead_client.post(
        f"{page}gold/", {"gold-label": "safe", "next": page}, follow=True
    )
    assert marked.redirect_chain == [(page, 302)]
    assert "is gold now" in marked.content.decode()
    assert GoldItem.objects.get().dialogue == dialogue

    lead_client.post(f"{page}gold/remove/", {"next": "https://evil.example/"})
    assert GoldItem.objects.count() == 0


def test_the_settings_page_sets_the_gold_rate_in_percent(
    lead_client: Client, batch: Batch
):
    data = {
        "labels_required": 3,
        "reservation_minutes": 30,
        "break_reminder_minutes": 50,
        "needs_caution_policy": "permissive",
        "instructions": "",
    }

    lead_client.post("/batches/demo/settings/", data | {"gold_percent": "12.5"})
    batch.refresh_from_db()
    assert batch.gold_rate == 0.125
    page = lead_client.get("/batches/demo/settings/").content.decode()
    assert 'name="gold_percent" value="12.5"' in page

    refused = lead_client.post(
        "/batches/demo/settings/", data | {"gold_percent": "120"}
    )
    batch.refresh_from_db()
    assert refused.status_code == 200
    assert batch.gold_rate == 0.125


# --- the annotators' Feedback page ----------------------------------------------------


def _feedback_for(audit: Audit, annotator: User, lead: User, **kw: str) -> Feedback:
    vote = Label.objects.filter(
        annotator=annotator, dialogue__audit_items__audit=audit
    ).first()
    assert vote is not None
    item = audit.items.get(dialogue_id=vote.dialogue_id)
    return give_feedback(item=item, label=vote, by=lead, **kw)


def test_an_annotator_sees_the_unread_count_and_the_feedback_on_their_votes(
    client: Client, batch: Batch, lead: User
):
    anna, ben, cleo = _people(3)
    _fill(batch, dialogues=4, people=[anna, ben, cleo])
    audit = create_audit(batch=batch, rate=1.0, by=lead)
    _feedback_for(
        audit,
        anna,
        lead,
        verdict="disagree",
        text=f"{SCRIPT} It asks for a plan.",
        guideline_ref="§2.3 Violence vs. Criminal Planning",
    )
    _feedback_for(audit, ben, lead, verdict="agree", text="Ben's note")
    AssignmentFactory(batch=batch, annotator=anna)
    login(client, anna)

    workspace = client.get("/work/").content.decode()
    page = client.get("/work/feedback/").content.decode()

    assert 'data-unread="1"' in workspace
    assert "§2.3 Violence vs. Criminal Planning" in page
    assert "&lt;script&gt;window.pwned = 1&lt;/script&gt; It asks for a plan." in page
    assert "Disagrees with your label" in page
    assert "Ben&#x27;s note" not in page
    assert "Ben's note" not in page
    assert SCRIPT not in page
    assert IMG not in page


def test_marking_feedback_read_clears_the_count(
    client: Client, batch: Batch, lead: User
):
    anna, ben, cleo = _people(3)
    _fill(batch, dialogues=3, people=[anna, ben, cleo])
    audit = create_audit(batch=batch, rate=1.0, by=lead)
    first = _feedback_for(audit, anna, lead, verdict="agree")
    bens = _feedback_for(audit, ben, lead, verdict="agree")
    login(client, anna)

    client.post("/work/feedback/read/", {"id": [str(bens.pk)]})  # not hers
    assert 'data-unread="1"' in client.get("/work/feedback/").content.decode()
    response = client.post(
        "/work/feedback/read/", {"id": [str(first.pk)], "next": "/work/feedback/"}
    )

    assert response["Location"] == "/work/feedback/"
    assert "data-unread" not in client.get("/work/feedback/").content.decode()
    assert Feedback.objects.get(pk=first.pk).read_at is not None
    assert Feedback.objects.get(pk=bens.pk).read_at is None


def test_the_feedback_page_waits_for_the_content_warning(client: Client):
    anna = UserFactory(username="anna")
    login(client, anna)

    response = client.get("/work/feedback/")

    assert response.status_code == 302
    assert response["Location"] == "/work/consent/"


def test_leads_have_no_feedback_link(lead_client: Client, batch: Batch):
    html = lead_client.get("/batches/demo/audits/").content.decode()

    assert "/work/feedback/" not in html


def test_the_admin_lists_audits_feedback_and_gold_items(
    client: Client, admin_user: User, audited: Audit, lead: User
):
    item = audited.items.select_related("dialogue").get(position=1)
    vote = Label.objects.filter(dialogue=item.dialogue).first()
    assert vote is not None
    give_feedback(item=item, label=vote, verdict="agree", by=lead)
    mark_gold(dialogue=item.dialogue, answer=GoldAnswer(label="safe"), by=lead)
    login(client, admin_user)

    pages = [
        "/admin/annotation/audit/",
        f"/admin/annotation/audit/{audited.pk}/change/",
        "/admin/annotation/feedback/",
        "/admin/annotation/golditem/",
    ]

    assert [client.get(url).status_code for url in pages] == [200] * 4
    assert client.get("/admin/annotation/audit/add/").status_code == 403
