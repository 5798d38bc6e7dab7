"""Every page lists people and categories in one order (issue 11): annotators by
name as a person reads it (annotator2 before annotator10), categories core, then
fine-grained, then meta, as on the labelling page."""

import re

import pytest
from django.test import Client

from annotation.labelling.views import category_groups
from annotation.models import Batch
from tests.factories import (
    AssignmentFactory,
    BatchFactory,
    DialogueFactory,
    LabelFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db

NAMES = ["annotator10", "annotator2", "annotator1", "annotator12"]
NATURAL = ["annotator1", "annotator2", "annotator10", "annotator12"]


@pytest.fixture
def batch() -> Batch:
    batch = BatchFactory(name="order")
    people = [UserFactory(username=name) for name in NAMES]
    for person in people:
        AssignmentFactory(batch=batch, annotator=person)
    for _ in range(2):
        dialogue = DialogueFactory(batch=batch)
        for person in people[:3]:
            LabelFactory(dialogue=dialogue, annotator=person, label="safe")
    return batch


def first_seen(html: str, names: list[str]) -> list[str]:
    """The names in the order the page first mentions them."""
    return sorted(names, key=lambda n: re.search(rf"\b{n}\b", html).start())  # type: ignore[union-attr]


def test_the_progress_page_lists_annotators_naturally(
    lead_client: Client, batch: Batch
) -> None:
    html = lead_client.get("/batches/order/progress/").content.decode()

    assert first_seen(html, NAMES) == NATURAL


def test_the_batch_page_lists_its_annotators_naturally(
    lead_client: Client, batch: Batch
) -> None:
    html = lead_client.get("/batches/order/").content.decode()

    assert first_seen(html, NAMES) == NATURAL


def test_the_assign_page_lists_annotators_naturally(
    lead_client: Client, batch: Batch
) -> None:
    html = lead_client.get("/batches/order/assign/").content.decode()

    assert first_seen(html, NAMES) == NATURAL


def test_the_agreement_page_lists_annotators_naturally(
    lead_client: Client, batch: Batch
) -> None:
    html = lead_client.get("/batches/order/agreement/").content.decode()
    table = html[html.index('id="agreement-annotators"') :]

    voters = ["annotator10", "annotator2", "annotator1"]

    assert first_seen(table, voters) == ["annotator1", "annotator2", "annotator10"]


def test_the_gold_form_lists_categories_as_the_labelling_page_does(
    lead_client: Client, batch: Batch
) -> None:
    # given the order of the labelling page: core, fine-grained, then meta
    workspace = [
        item["category"].name for _, items in category_groups(batch) for item in items
    ]
    assert workspace[-2:] == ["Needs Caution", "Other"]

    # when the lead opens the gold page
    html = lead_client.get("/batches/order/gold/").content.decode()

    # then its answer form offers the categories in that same order
    offered = re.findall(r'name="categories" value="([^"]+)"', html)
    assert [name.replace("&amp;", "&") for name in offered] == workspace
