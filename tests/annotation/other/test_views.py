"""The leads' Other page (/other/): the groups, a decision per row, htmx and not."""

import re
from typing import Any

import pytest
from django.test import Client

from accounts.models import User
from annotation.models import Batch, Dialogue, Label, LabelCategory, OtherMapping
from annotation.other.services import OtherGroup
from annotation.other.views import Row
from taxonomy.models import Category, Group, Taxonomy
from tests.factories import BatchFactory, DialogueFactory, LabelFactory

SCRIPT = "<script>alert(1)</script>"


def _category(name: str, taxonomy: Taxonomy | None = None) -> Category:
    return Category.objects.get(
        taxonomy=taxonomy or Taxonomy.objects.default(), name=name
    )


def _other_vote(dialogue: Dialogue, text: str, *before: str) -> Label:
    vote = LabelFactory(dialogue=dialogue, label="unsafe", other_text=text)
    names = [*before, "Other"]
    LabelCategory.objects.bulk_create(
        LabelCategory(
            label=vote, category=_category(name, dialogue.batch.taxonomy), position=i
        )
        for i, name in enumerate(names)
    )
    return vote


@pytest.fixture
def batches(db: None) -> tuple[Batch, Batch]:
    first, second = BatchFactory(name="first"), BatchFactory(name="second")
    dialogue = DialogueFactory(batch=first)
    _other_vote(dialogue, "Phishing!")
    _other_vote(dialogue, "phishing", "Violence")
    _other_vote(dialogue, f"{SCRIPT} scam")
    _other_vote(DialogueFactory(batch=second), "Crypto scam")
    return first, second


@pytest.fixture
def queued(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    from annotation import tasks

    found: list[int] = []
    monkeypatch.setattr(tasks.derive_final_labels, "delay", found.append)
    return found


def _key(text: str) -> str:
    return Row(OtherGroup(text)).key


def _post(client: Client, htmx: bool = True, **data: object) -> Any:
    data = {"taxonomy": Taxonomy.objects.default().pk, **data}
    headers = {"HTTP_HX_REQUEST": "true"} if htmx else {}
    return client.post("/other/map/", data, **headers)


def _rows(page: str) -> list[str]:
    """The normalised texts of the table's rows, as shown."""
    return re.findall(r'<th scope="row" class="[^"]*">([^<]*)</th>', page)


# --- who may see it ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "url"), [("get", "/other/"), ("post", "/other/map/")]
)
def test_the_page_is_forbidden_to_annotators(
    annotator_client: Client, batches: tuple[Batch, Batch], method: str, url: str
) -> None:
    data = {"text": "phishing", "category": _category("Fraud/Deception").pk}
    response = getattr(annotator_client, method)(url, data)

    assert response.status_code == 403
    assert not OtherMapping.objects.exists()


def test_anonymous_visitors_are_sent_to_log_in(client: Client) -> None:
    response = client.get("/other/")

    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


# --- the groups ---------------------------------------------------------------------


def test_the_page_lists_the_groups_with_escaped_examples(
    lead_client: Client, batches: tuple[Batch, Batch]
) -> None:
    response = lead_client.get("/other/")

    assert response.status_code == 200
    page = response.content.decode()
    assert _rows(page) == [
        "phishing",
        "&lt;script&gt;alert(1)&lt;/script&gt; scam",
        "crypto scam",
    ]
    assert SCRIPT not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt; scam" in page  # the example too
    assert "Phishing!" in page
    assert "3 groups from 4 votes; 0 decided." in page
    assert 'href="/other/" aria-current="page">Other</a>' in page
    # every fine-grained category is offered, no core one
    assert ">S16: Fraud/Deception</option>" in page
    assert ">S1: Violence</option>" not in page
    assert "Keep as Other</option>" in page


def test_the_page_filters_by_batch(
    lead_client: Client, batches: tuple[Batch, Batch]
) -> None:
    page = lead_client.get("/other/?batch=second").content.decode()

    assert _rows(page) == ["crypto scam"]
    assert '<option value="second" selected>' in page
    assert lead_client.get("/other/?batch=nope").status_code == 404


def test_the_page_offers_taxonomy_versions_when_batches_use_several(
    lead_client: Client, batches: tuple[Batch, Batch], lead: User
) -> None:
    # given a batch labelled against another version with its own Other text
    draft = Taxonomy.objects.create(name="Draft", version=1)
    for code, name, group, order in (
        ("S14", "Other", Group.META, 14),
        ("S15", "Manipulation", Group.FINE_GRAINED, 15),
    ):
        Category.objects.create(
            taxonomy=draft,
            code=code,
            name=name,
            display_name=name,
            group=group,
            order=order,
            requires_text=name == "Other",
        )
    _other_vote(DialogueFactory(batch=BatchFactory(taxonomy=draft)), "Gaslighting")
    default = Taxonomy.objects.default()

    # then each version shows its own groups, and a batch of the other version is
    # dropped when the version is switched
    page = lead_client.get(f"/other/?taxonomy={default.pk}").content.decode()
    assert 'name="taxonomy"' in page
    assert "Draft v1</option>" in page
    assert "gaslighting" not in _rows(page)
    draft_page = lead_client.get(
        f"/other/?taxonomy={draft.pk}&batch=first"
    ).content.decode()
    assert _rows(draft_page) == ["gaslighting"]
    assert ">S15: Manipulation</option>" in draft_page


def test_the_page_reads_a_fixed_number_of_queries(
    lead_client: Client, batches: tuple[Batch, Batch], django_assert_max_num_queries
) -> None:
    first, _ = batches
    lead_client.get("/other/")  # the session and user, once
    with django_assert_max_num_queries(12) as small:
        lead_client.get("/other/")
    for i in range(20):
        _other_vote(DialogueFactory(batch=first), f"text {i}")
    with django_assert_max_num_queries(len(small)):
        page = lead_client.get("/other/").content.decode()
    assert len(_rows(page)) == 23


def test_no_other_texts_yet(lead_client: Client, db: None) -> None:
    BatchFactory(name="empty")

    page = lead_client.get("/other/?batch=empty").content.decode()

    assert "No Other texts in empty yet." in page


# --- decisions ----------------------------------------------------------------------


def test_mapping_a_group_through_htmx_rerenders_its_row(
    lead_client: Client,
    lead: User,
    batches: tuple[Batch, Batch],
    queued: list[int],
    django_capture_on_commit_callbacks: Any,
) -> None:
    first, _ = batches
    fraud = _category("Fraud/Deception")

    with django_capture_on_commit_callbacks(execute=True):
        response = _post(lead_client, text="phishing", category=fraud.pk, action="map")

    # then the decision is stored, the batch is derived again, and the answer is
    # just that row (with its new decision selected) and a toast
    assert response.status_code == 200
    mapping = OtherMapping.objects.get()
    assert (mapping.text, mapping.category, mapping.decided_by) == (
        "phishing",
        fraud,
        lead,
    )
    assert queued == [first.pk]
    page = response.content.decode()
    assert page.lstrip().startswith(f'<tr id="{_key("phishing")}">')
    assert page.count("<tr") == 1
    assert '<span class="badge done">Fraud/Deception</span>' in page
    assert f'<option value="{fraud.pk}" selected>' in page
    assert 'hx-swap-oob="true"' in page
    assert "“phishing” maps to Fraud/Deception: 2 votes in 1 batch;" in page


def test_keeping_and_resetting_a_group(
    lead_client: Client, batches: tuple[Batch, Batch], queued: list[int]
) -> None:
    response = _post(lead_client, text="crypto scam", category="other")
    page = response.content.decode()
    assert '<span class="badge">Kept as Other</span>' in page
    assert '<option value="other" selected>' in page
    assert "“crypto scam” stays Other: 1 vote in 1 batch;" in page
    assert OtherMapping.objects.get().category is None

    response = _post(lead_client, text="crypto scam", category="", action="reset")

    page = response.content.decode()
    assert '<span class="badge pending">Not decided</span>' in page
    assert "is undecided again" in page
    assert not OtherMapping.objects.exists()


def test_mapping_without_javascript_redirects_back_to_the_page(
    lead_client: Client, batches: tuple[Batch, Batch]
) -> None:
    taxonomy = Taxonomy.objects.default()

    response = _post(
        lead_client,
        htmx=False,
        text="crypto scam",
        batch="second",
        category=_category("Fraud/Deception").pk,
    )

    assert response.status_code == 302
    assert response["Location"] == f"/other/?taxonomy={taxonomy.pk}&batch=second"
    page = lead_client.get(response["Location"]).content.decode()
    assert "“crypto scam” maps to Fraud/Deception: 1 vote in 1 batch;" in page
    assert OtherMapping.objects.get().category == _category("Fraud/Deception")


@pytest.mark.parametrize(
    ("category", "message"),
    [
        ("Violence", "Violence is not fine-grained"),
        ("Other", "Other is not fine-grained"),
        ("", "Choose a category, or Keep as Other."),
        ("x1", "Choose one of the listed categories."),
        ("999999", "That category does not exist."),
    ],
)
def test_a_refused_decision_shows_its_error_in_the_row(
    lead_client: Client,
    batches: tuple[Batch, Batch],
    queued: list[int],
    category: str,
    message: str,
) -> None:
    value = (
        str(_category(category).pk) if category in ("Violence", "Other") else category
    )

    response = _post(lead_client, text="phishing", category=value)

    assert response.status_code == 200
    page = response.content.decode()
    assert page.lstrip().startswith(f'<tr id="{_key("phishing")}">')
    assert message in page
    assert 'aria-invalid="true"' in page
    assert not OtherMapping.objects.exists()
    assert queued == []


def test_a_refused_decision_without_javascript_shows_the_page_with_the_error(
    lead_client: Client, batches: tuple[Batch, Batch]
) -> None:
    violence = _category("Violence")

    response = _post(lead_client, htmx=False, text="phishing", category=violence.pk)

    assert response.status_code == 200
    page = response.content.decode()
    assert "<h1>Other, standardised</h1>" in page
    assert "Violence is not fine-grained" in page
    assert f'<option value="{violence.pk}"' not in page  # core: never offered
    assert not OtherMapping.objects.exists()


def test_a_decision_on_a_text_nobody_gave_says_so(
    lead_client: Client, batches: tuple[Batch, Batch]
) -> None:
    # (a form posted after every vote with the text was edited away)
    response = _post(lead_client, text="...", category="other")

    page = response.content.decode()
    assert "<tr" not in page
    assert "Not saved: The text is empty once normalised" in page
    assert not OtherMapping.objects.exists()


# --- the counters at the top --------------------------------------------------------


def test_a_saved_decision_updates_the_counters_out_of_band(
    lead_client: Client, batches: tuple[Batch, Batch], queued: list[int]
) -> None:
    # given the page says nothing is decided yet
    page = lead_client.get("/other/").content.decode()
    assert (
        '<p class="subtle" id="other-summary">3 groups from 4 votes; 0 decided.</p>'
        in page
    )

    # when a lead saves one group's decision through htmx
    response = _post(
        lead_client, text="phishing", category=_category("Fraud/Deception").pk
    )

    # then the answer carries the row and the counters, swapped in by their id
    fragment = response.content.decode()
    assert fragment.lstrip().startswith(f'<tr id="{_key("phishing")}">')
    assert (
        '<p class="subtle" id="other-summary" hx-swap-oob="true">'
        "3 groups from 4 votes; 1 decided.</p>"
    ) in fragment


def test_a_refused_decision_leaves_the_counters_as_they_were(
    lead_client: Client, batches: tuple[Batch, Batch], queued: list[int]
) -> None:
    # when a lead saves a decision the rules refuse
    response = _post(lead_client, text="phishing", category="")

    # then the counters sent back still say nothing is decided, and nothing was
    fragment = response.content.decode()
    assert "3 groups from 4 votes; 0 decided.</p>" in fragment
    assert not OtherMapping.objects.exists()


def test_resetting_a_decision_counts_it_as_undecided_again(
    lead_client: Client, batches: tuple[Batch, Batch], queued: list[int]
) -> None:
    # given one decided group
    _post(lead_client, text="crypto scam", category="other")

    # when the lead resets it
    response = _post(lead_client, text="crypto scam", category="", action="reset")

    # then the counters go back to none decided
    assert "3 groups from 4 votes; 0 decided.</p>" in response.content.decode()


def test_a_row_that_goes_away_still_sends_the_counters(
    lead_client: Client, batches: tuple[Batch, Batch]
) -> None:
    # when a decision names a text no vote gives (the row goes, a toast says why)
    response = _post(lead_client, text="...", category="other")

    # then the counters come along, unchanged
    page = response.content.decode()
    assert (
        '<p class="subtle" id="other-summary" hx-swap-oob="true">'
        "3 groups from 4 votes; 0 decided.</p>"
    ) in page
    assert not OtherMapping.objects.exists()
