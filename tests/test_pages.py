"""Every page renders for the people it is for, safely and in a fixed number of queries."""

import pytest
import yaml
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from accounts.models import User
from annotation.models import Batch, ImportJob
from taxonomy.models import Taxonomy
from tests.factories import (
    AssignmentFactory,
    BatchFactory,
    DialogueFactory,
    LabelFactory,
    UserFactory,
)

SCRIPT = "<script>alert(1)</script>"
FORMULA = '=HYPERLINK("x")'
IMG = "<img src=x onerror=alert(2)>"


@pytest.fixture
def batch(db: None) -> Batch:
    return BatchFactory(name="demo")


def batch_url(batch: Batch) -> str:
    return reverse("annotation:batch_detail", args=[batch.name])


def count_queries(client: Client, url: str) -> int:
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url)
    assert response.status_code == 200
    return len(queries)


# --- lead pages ----------------------------------------------------------------------


def test_every_lead_page_renders_for_a_lead(
    lead_client: Client, lead: User, batch: Batch
) -> None:
    # given
    DialogueFactory(batch=batch)
    job = ImportJob.objects.create(
        batch=batch,
        batch_name=batch.name,
        file_path="/nonexistent/upload.jsonl",
        original_name="upload.jsonl",
        created_by=lead,
    )
    aegis2 = Taxonomy.objects.get(name="Aegis 2.0", version=1)
    pages = [
        "/batches/",
        "/batches/demo/",
        "/imports/",
        "/imports/new/",
        f"/imports/{job.pk}/",
        "/taxonomy/",
        f"/taxonomy/{aegis2.pk}/",
    ]

    for url in pages:
        # when
        response = lead_client.get(url)

        # then
        assert response.status_code == 200, url
        assert response["Content-Type"] == "text/html; charset=utf-8", url
        assert "lena" in response.content.decode(), url


def test_a_lead_is_sent_from_home_to_the_batches(lead_client: Client) -> None:
    # when
    response = lead_client.get("/")

    # then
    assert response.status_code == 302
    assert response["Location"] == "/batches/"


def test_the_batch_list_shows_counts(lead_client: Client, batch: Batch) -> None:
    # given
    first, _ = DialogueFactory.create_batch(2, batch=batch)
    LabelFactory(dialogue=first)
    AssignmentFactory(batch=batch)
    BatchFactory(name="empty")

    # when
    response = lead_client.get("/batches/")

    # then
    rows = {
        b.name: (b.n_dialogues, b.n_labels, b.n_annotators)
        for b in response.context["batches"]
    }
    assert rows == {"demo": (2, 1, 1), "empty": (0, 0, 0)}


def test_an_unknown_batch_is_404(lead_client: Client) -> None:
    # when / then
    assert lead_client.get("/batches/no-such-batch/").status_code == 404


def test_lead_pages_are_403_for_an_annotator(
    annotator_client: Client, batch: Batch
) -> None:
    for url in ["/batches/", "/batches/demo/", "/imports/", "/imports/new/"]:
        # when / then
        assert annotator_client.get(url).status_code == 403, url


# --- annotator home ------------------------------------------------------------------


def test_annotator_home_is_the_workspace(annotator_client: Client) -> None:
    # when an annotator opens the site
    response = annotator_client.get("/")

    # then they go straight to labelling (which asks for consent first)
    assert response.status_code == 302
    assert response["Location"] == "/work/"


def test_home_sends_anonymous_users_to_login(client: Client, db: None) -> None:
    # when
    response = client.get("/")

    # then
    assert response.status_code == 302
    assert response["Location"] == "/accounts/login/?next=/"


# --- the batch page ------------------------------------------------------------------


def test_hostile_dialogue_text_is_escaped_on_the_batch_page(
    lead_client: Client, batch: Batch
) -> None:
    # given
    DialogueFactory(batch=batch, prompt=SCRIPT, response=FORMULA)
    DialogueFactory(batch=batch, prompt=FORMULA, response=IMG)

    # when
    html = lead_client.get(batch_url(batch)).content.decode()

    # then
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert SCRIPT not in html
    assert "=HYPERLINK(&quot;x&quot;)" in html
    assert FORMULA not in html
    assert "&lt;img src=x onerror=alert(2)&gt;" in html
    assert IMG not in html
    assert "onerror=alert(2)>" not in html


def test_the_batch_page_shows_a_missing_response_as_none(
    lead_client: Client, batch: Batch
) -> None:
    # given
    DialogueFactory(batch=batch, prompt="Only a prompt", response=None)

    # when
    html = lead_client.get(batch_url(batch)).content.decode()

    # then
    assert "Only a prompt" in html
    assert '<span class="subtle">none</span>' in html


def test_the_batch_page_query_count_does_not_grow_with_dialogues(
    lead_client: Client, lead: User
) -> None:
    # given: two batches alike except for the number of dialogues
    small, large = BatchFactory(name="small"), BatchFactory(name="large")
    for b, n in ((small, 5), (large, 60)):
        DialogueFactory.create_batch(n, batch=b)
        for name in ("ann-" + b.name, "bob-" + b.name):
            AssignmentFactory(batch=b, annotator=UserFactory(username=name))
        ImportJob.objects.create(
            batch=b,
            batch_name=b.name,
            file_path="/nonexistent/x.jsonl",
            original_name="x.jsonl",
            created_by=lead,
        )
    lead_client.get(batch_url(small))  # warm the session and content-type caches

    # when
    few = count_queries(lead_client, batch_url(small))
    many = count_queries(lead_client, batch_url(large))

    # then
    assert few == many
    assert many <= 10


def test_the_batch_page_paginates_by_50(lead_client: Client, batch: Batch) -> None:
    # given
    DialogueFactory.create_batch(60, batch=batch)

    # when
    first = lead_client.get(batch_url(batch))
    second = lead_client.get(batch_url(batch) + "?page=2")

    # then
    assert len(first.context["page"].object_list) == 50
    assert len(second.context["page"].object_list) == 10
    assert "Page 2 of 2" in second.content.decode()


def test_the_batch_list_query_count_does_not_grow_with_batches(
    lead_client: Client,
) -> None:
    # given
    BatchFactory.create_batch(2)
    lead_client.get("/batches/")
    few = count_queries(lead_client, "/batches/")
    BatchFactory.create_batch(20)

    # when
    many = count_queries(lead_client, "/batches/")

    # then
    assert few == many


# --- the API -------------------------------------------------------------------------


def test_the_schema_is_an_openapi_document(annotator_client: Client) -> None:
    # when
    as_yaml = annotator_client.get("/api/schema/")
    as_json = annotator_client.get("/api/schema/?format=json")

    # then
    assert as_yaml.status_code == 200
    assert as_json.status_code == 200
    for document in (yaml.safe_load(as_yaml.content), as_json.json()):
        assert document["openapi"].startswith("3.")
        assert document["info"]["title"] == "Aegis Studio API"
        assert {"/api/v1/batches", "/api/v1/imports", "/api/v1/imports/{id}"} <= set(
            document["paths"]
        )
    # and it is served at that one address only
    assert annotator_client.get("/api/v1/schema/").status_code == 404


def test_the_batch_api_gives_names_and_counts_to_a_lead(
    lead_client: Client, batch: Batch
) -> None:
    # given
    d1, d2 = DialogueFactory.create_batch(2, batch=batch)
    LabelFactory(dialogue=d1)
    LabelFactory(dialogue=d1)
    LabelFactory(dialogue=d2)
    BatchFactory(name="other")

    # when
    response = lead_client.get("/api/v1/batches")

    # then
    assert response.status_code == 200
    assert response.json() == [
        {
            "name": "demo",
            "taxonomy": "Aegis 2.0 v1",
            "labels_required": 3,
            "needs_caution_policy": "permissive",
            "asks_response_label": False,
            "status": "active",
            "dialogues": 2,
            "labels": 3,
        },
        {
            "name": "other",
            "taxonomy": "Aegis 2.0 v1",
            "labels_required": 3,
            "needs_caution_policy": "permissive",
            "asks_response_label": False,
            "status": "active",
            "dialogues": 0,
            "labels": 0,
        },
    ]


def test_the_batch_api_shows_an_annotator_only_their_batches(
    annotator_client: Client, annotator: User
) -> None:
    # given
    mine = BatchFactory(name="mine")
    DialogueFactory(batch=mine)
    AssignmentFactory(batch=mine, annotator=annotator)
    AssignmentFactory(batch=mine, annotator=UserFactory(username="bob"))
    AssignmentFactory(
        batch=BatchFactory(name="theirs"), annotator=UserFactory(username="carl")
    )
    BatchFactory(name="unassigned")

    # when
    response = annotator_client.get("/api/v1/batches")

    # then: one row for "mine", though two people are assigned to it
    assert response.status_code == 200
    assert [(b["name"], b["dialogues"], b["labels"]) for b in response.json()] == [
        ("mine", 1, 0)
    ]


def test_the_batch_api_needs_a_login(client: Client, batch: Batch) -> None:
    # when
    response = client.get("/api/v1/batches")

    # then
    assert response.status_code == 401
    assert "demo" not in response.content.decode()


def test_dialogue_page_shows_turns_metadata_and_votes_escaped(
    lead_client, django_assert_max_num_queries
):
    # given a multi-turn dialogue with hostile text, metadata and three votes
    from tests.factories import DialogueFactory, LabelFactory

    dialogue = DialogueFactory(
        turns=[
            {"role": "user", "content": "hi <img src=x onerror=alert(1)>"},
            {"role": "assistant", "content": "hello"},
            {"role": "user", "content": "=cmd|' /C calc'!A0"},
        ],
        prompt="=cmd|' /C calc'!A0",
        response=None,
        metadata={"focus": "<b>x</b>"},
    )
    for _ in range(3):
        LabelFactory(dialogue=dialogue, label="safe")

    # when a lead opens it
    with django_assert_max_num_queries(8):
        response = lead_client.get(
            f"/batches/{dialogue.batch.name}/dialogues/{dialogue.pk}/"
        )

    # then every turn, the metadata and the votes are there, escaped
    html = response.content.decode()
    assert response.status_code == 200
    assert "hi &lt;img src=x onerror=alert(1)&gt;" in html
    assert "<img src=x" not in html
    assert "&lt;b&gt;x&lt;/b&gt;" in html
    assert html.count('class="badge safe"') == 3


def test_dialogue_page_is_for_leads_only(annotator_client):
    from tests.factories import DialogueFactory

    dialogue = DialogueFactory()
    response = annotator_client.get(
        f"/batches/{dialogue.batch.name}/dialogues/{dialogue.pk}/"
    )
    assert response.status_code == 403
