"""The lead's taxonomy pages: list, view, clone, edit a draft, add, publish."""

import pytest
from django.contrib.messages import get_messages
from django.test import Client
from django.urls import reverse

from accounts.models import User
from taxonomy.models import Category, Status, Taxonomy
from tests.taxonomy.conftest import CATEGORY_FIELDS, snapshot


def formset_data(taxonomy: Taxonomy, **changes: dict[str, object]) -> dict[str, str]:
    """The POST the draft's edit form sends, with `changes` keyed by category code."""
    categories = list(taxonomy.categories.order_by("order"))
    data = {
        "cat-TOTAL_FORMS": str(len(categories)),
        "cat-INITIAL_FORMS": str(len(categories)),
        "cat-MIN_NUM_FORMS": "0",
        "cat-MAX_NUM_FORMS": "1000",
    }
    for i, category in enumerate(categories):
        values: dict[str, object] = {
            f: getattr(category, f) for f in CATEGORY_FIELDS
        } | changes.get(category.code, {})
        data[f"cat-{i}-id"] = str(category.pk)
        for field, value in values.items():
            if isinstance(value, bool):
                if value:  # an unticked checkbox is simply absent from the POST
                    data[f"cat-{i}-{field}"] = "on"
            else:
                data[f"cat-{i}-{field}"] = str(value)
    return data


def messages_of(response: object) -> list[tuple[str, str]]:
    return [(m.level_tag, m.message) for m in get_messages(response.wsgi_request)]  # type: ignore[attr-defined]


# --- browsing ------------------------------------------------------------------------


def test_a_lead_sees_the_list_of_versions(
    lead_client: Client, aegis2: Taxonomy, draft: Taxonomy
) -> None:
    # when
    response = lead_client.get(reverse("taxonomy:list"))

    # then
    assert response.status_code == 200
    assert list(response.context["versions"]) == [draft, aegis2]
    html = response.content.decode()
    assert "Aegis 2.0 v1" in html
    assert "Aegis 2.0 v2" in html
    assert reverse("taxonomy:detail", args=[draft.pk]) in html


def test_a_lead_sees_a_published_version_read_only(
    lead_client: Client, aegis2: Taxonomy
) -> None:
    # when
    response = lead_client.get(reverse("taxonomy:detail", args=[aegis2.pk]))

    # then
    assert response.status_code == 200
    assert response.context["formset"] is None
    groups = {
        label: [c.code for c in cats] for label, cats in response.context["groups"]
    }
    assert groups == {
        "Core": [f"S{n}" for n in range(1, 13)],
        "Fine-grained": [f"S{n}" for n in range(15, 24)],
        "Meta": ["S13", "S14"],
    }
    html = response.content.decode()
    assert "Political/Misinformation/Conspiracy" in html
    assert 'name="cat-TOTAL_FORMS"' not in html
    assert reverse("taxonomy:publish", args=[aegis2.pk]) not in html
    assert reverse("taxonomy:clone", args=[aegis2.pk]) in html


def test_a_lead_sees_the_edit_form_of_a_draft(
    lead_client: Client, draft: Taxonomy
) -> None:
    # when
    response = lead_client.get(reverse("taxonomy:detail", args=[draft.pk]))

    # then
    assert response.status_code == 200
    assert len(response.context["formset"].forms) == 23
    html = response.content.decode()
    assert 'name="cat-TOTAL_FORMS" value="23"' in html
    assert 'name="cat-0-name"' in html
    assert reverse("taxonomy:publish", args=[draft.pk]) in html
    assert reverse("taxonomy:add_category", args=[draft.pk]) in html


def test_an_unknown_version_is_404(lead_client: Client, db: None) -> None:
    # when
    response = lead_client.get(reverse("taxonomy:detail", args=[999_999]))

    # then
    assert response.status_code == 404


# --- clone ---------------------------------------------------------------------------


def test_clone_by_post_redirects_to_the_new_draft(
    lead_client: Client, aegis2: Taxonomy, lead: User
) -> None:
    # when
    response = lead_client.post(reverse("taxonomy:clone", args=[aegis2.pk]))

    # then
    new = Taxonomy.objects.get(name="Aegis 2.0", version=2)
    assert response.status_code == 302
    assert response["Location"] == reverse("taxonomy:detail", args=[new.pk])
    assert (new.status, new.parent, new.created_by) == (Status.DRAFT, aegis2, lead)
    assert snapshot(new) == snapshot(aegis2)
    assert messages_of(response) == [
        ("success", "Created draft Aegis 2.0 v2 from Aegis 2.0 v1.")
    ]


def test_clone_by_get_is_refused_and_creates_nothing(
    lead_client: Client, aegis2: Taxonomy
) -> None:
    # when
    response = lead_client.get(reverse("taxonomy:clone", args=[aegis2.pk]))

    # then
    assert response.status_code == 405
    assert Taxonomy.objects.count() == 1


# --- editing a draft -----------------------------------------------------------------


def test_a_lead_renames_a_category_through_the_formset(
    lead_client: Client, draft: Taxonomy, aegis2: Taxonomy
) -> None:
    # given
    before_original = snapshot(aegis2)
    data = formset_data(
        draft,
        S1={"name": "Violence and Gore", "unsafe_when": "Helps hurt people."},
        S23={"retired": True},
    )

    # when
    response = lead_client.post(reverse("taxonomy:detail", args=[draft.pk]), data)

    # then
    assert response.status_code == 302
    assert response["Location"] == reverse("taxonomy:detail", args=[draft.pk])
    assert messages_of(response) == [("success", "Draft saved.")]
    s1 = draft.categories.get(code="S1")
    assert (s1.name, s1.unsafe_when) == ("Violence and Gore", "Helps hurt people.")
    assert draft.categories.get(code="S23").retired is True
    assert draft.categories.filter(retired=False).count() == 22
    assert draft.categories.count() == 23
    assert snapshot(aegis2) == before_original


def test_an_invalid_formset_saves_nothing_and_says_so(
    lead_client: Client, draft: Taxonomy
) -> None:
    # given: a valid rename next to an invalid group
    before = snapshot(draft)
    data = formset_data(draft, S1={"name": "Renamed"}, S2={"group": "nonsense"})

    # when
    response = lead_client.post(reverse("taxonomy:detail", args=[draft.pk]), data)

    # then
    assert response.status_code == 200
    assert not response.context["formset"].is_valid()
    assert messages_of(response) == [
        ("error", "Some categories have errors; nothing was saved.")
    ]
    assert snapshot(draft) == before


def test_a_lead_adds_a_category(lead_client: Client, draft: Taxonomy) -> None:
    # when
    response = lead_client.post(
        reverse("taxonomy:add_category", args=[draft.pk]),
        {"code": "S24", "name": "Spam", "group": "fine_grained"},
    )

    # then
    assert response.status_code == 302
    assert response["Location"] == reverse("taxonomy:detail", args=[draft.pk])
    assert messages_of(response) == [("success", "Added S24: Spam.")]
    added = draft.categories.get(code="S24")
    assert (added.name, added.group, added.order) == ("Spam", "fine_grained", 24)
    assert draft.categories.count() == 24


def test_adding_a_duplicate_name_shows_an_error_and_adds_nothing(
    lead_client: Client, draft: Taxonomy
) -> None:
    # when
    response = lead_client.post(
        reverse("taxonomy:add_category", args=[draft.pk]),
        {"code": "S24", "name": "Malware", "group": "fine_grained"},
        follow=True,
    )

    # then
    assert response.status_code == 200
    assert [m.message for m in response.context["messages"]] == [
        "A category named 'Malware' already exists in Aegis 2.0 v2."
    ]
    assert draft.categories.count() == 23
    assert not draft.categories.filter(code="S24").exists()


def test_adding_a_badly_formed_code_shows_an_error_and_adds_nothing(
    lead_client: Client, draft: Taxonomy
) -> None:
    # when
    response = lead_client.post(
        reverse("taxonomy:add_category", args=[draft.pk]),
        {"code": "X1", "name": "Spam", "group": "fine_grained"},
    )

    # then
    assert response.status_code == 302
    assert messages_of(response) == [("error", "code: Enter a valid value.")]
    assert draft.categories.count() == 23
    assert not draft.categories.filter(name="Spam").exists()


def test_a_lead_publishes_a_draft(lead_client: Client, draft: Taxonomy) -> None:
    # when
    response = lead_client.post(reverse("taxonomy:publish", args=[draft.pk]))

    # then
    assert response.status_code == 302
    assert response["Location"] == reverse("taxonomy:detail", args=[draft.pk])
    assert messages_of(response) == [
        ("success", "Published Aegis 2.0 v2. It can no longer be edited.")
    ]
    stored = Taxonomy.objects.get(pk=draft.pk)
    assert stored.status == Status.PUBLISHED
    assert stored.published_at is not None


def test_publishing_a_published_version_shows_an_error(
    lead_client: Client, aegis2: Taxonomy
) -> None:
    # given
    published_at = aegis2.published_at

    # when
    response = lead_client.post(reverse("taxonomy:publish", args=[aegis2.pk]))

    # then
    assert response.status_code == 302
    assert messages_of(response) == [("error", "Aegis 2.0 v1 is already published.")]
    assert Taxonomy.objects.get(pk=aegis2.pk).published_at == published_at


# --- a published version cannot be changed through the pages -------------------------


def test_posting_an_edit_to_a_published_version_changes_nothing(
    lead_client: Client, aegis2: Taxonomy
) -> None:
    # given
    before = snapshot(aegis2)
    data = formset_data(aegis2, S1={"name": "Changed"}, S14={"requires_text": False})

    # when
    response = lead_client.post(
        reverse("taxonomy:detail", args=[aegis2.pk]), data, follow=True
    )

    # then
    assert response.status_code == 200
    assert response.redirect_chain == [
        (reverse("taxonomy:detail", args=[aegis2.pk]), 302)
    ]
    assert [(m.level_tag, m.message) for m in response.context["messages"]] == [
        ("error", "Aegis 2.0 v1 is published and cannot be edited.")
    ]
    assert (
        "Aegis 2.0 v1 is published and cannot be edited." in response.content.decode()
    )
    assert snapshot(aegis2) == before
    assert aegis2.categories.get(code="S1").name == "Violence"


def test_adding_a_category_to_a_published_version_changes_nothing(
    lead_client: Client, aegis2: Taxonomy
) -> None:
    # when
    response = lead_client.post(
        reverse("taxonomy:add_category", args=[aegis2.pk]),
        {"code": "S24", "name": "Spam", "group": "fine_grained"},
    )

    # then
    assert response.status_code == 302
    assert messages_of(response) == [
        ("error", "Aegis 2.0 v1 is published; clone it to change it.")
    ]
    assert aegis2.categories.count() == 23
    assert not Category.objects.filter(name="Spam").exists()


# --- who may use the pages -----------------------------------------------------------


def taxonomy_pages(taxonomy: Taxonomy) -> list[tuple[str, str]]:
    return [
        ("get", reverse("taxonomy:list")),
        ("get", reverse("taxonomy:detail", args=[taxonomy.pk])),
        ("post", reverse("taxonomy:detail", args=[taxonomy.pk])),
        ("post", reverse("taxonomy:clone", args=[taxonomy.pk])),
        ("post", reverse("taxonomy:publish", args=[taxonomy.pk])),
        ("post", reverse("taxonomy:add_category", args=[taxonomy.pk])),
    ]


def test_an_annotator_gets_403_on_every_taxonomy_page(
    annotator_client: Client, draft: Taxonomy
) -> None:
    # given
    before = snapshot(draft)

    for method, url in taxonomy_pages(draft):
        # when
        if method == "get":
            response = annotator_client.get(url)
        else:
            response = annotator_client.post(
                url,
                formset_data(draft, S1={"name": "Hacked"})
                | {"code": "S24", "name": "Spam", "group": "meta"},
            )

        # then
        assert response.status_code == 403, (method, url)

    # and nothing changed
    assert Taxonomy.objects.count() == 2
    stored = Taxonomy.objects.get(pk=draft.pk)
    assert stored.status == Status.DRAFT
    assert snapshot(stored) == before


def test_anonymous_users_are_sent_to_the_login_page(
    client: Client, draft: Taxonomy
) -> None:
    # given
    before = snapshot(draft)
    login = reverse("accounts:login")

    for method, url in taxonomy_pages(draft):
        # when
        response = getattr(client, method)(url)

        # then
        assert response.status_code == 302, (method, url)
        assert response["Location"] == f"{login}?next={url}", (method, url)

    # and nothing changed
    assert Taxonomy.objects.count() == 2
    assert Taxonomy.objects.get(pk=draft.pk).status == Status.DRAFT
    assert snapshot(draft) == before


# --- edits the formset must refuse ------------------------------------------------


@pytest.mark.parametrize(
    "change",
    [{"S2": {"name": "Violence"}}, {"S2": {"code": "S1"}}],
    ids=["duplicate-name", "duplicate-code"],
)
def test_a_duplicate_name_or_code_in_the_formset_is_a_form_error(
    lead_client: Client, draft: Taxonomy, change: dict[str, dict[str, object]]
) -> None:
    # given
    before = snapshot(draft)

    # when
    response = lead_client.post(
        reverse("taxonomy:detail", args=[draft.pk]), formset_data(draft, **change)
    )

    # then
    assert response.status_code == 200
    assert messages_of(response) == [
        ("error", "Some categories have errors; nothing was saved.")
    ]
    assert snapshot(draft) == before


def test_the_edit_formset_cannot_create_categories(
    lead_client: Client, draft: Taxonomy
) -> None:
    # given: one form more than the draft has categories
    data = formset_data(draft) | {
        "cat-TOTAL_FORMS": "24",
        "cat-23-code": "S24",
        "cat-23-name": "Spam",
        "cat-23-display_name": "Spam",
        "cat-23-group": "meta",
        "cat-23-order": "24",
    }

    # when
    response = lead_client.post(reverse("taxonomy:detail", args=[draft.pk]), data)

    # then: the extra form is ignored (or refused); nothing is created
    assert response.status_code in (200, 302)
    assert draft.categories.count() == 23
    assert not Category.objects.filter(name="Spam").exists()


# --- the draft editor (issue 11, item 13) ---------------------------------------------


def test_a_draft_offers_no_clone_button(lead_client: Client, draft: Taxonomy) -> None:
    # when a lead opens a draft
    html = lead_client.get(reverse("taxonomy:detail", args=[draft.pk])).content.decode()

    # then it can be edited and published, not cloned (that is for published versions)
    assert reverse("taxonomy:clone", args=[draft.pk]) not in html
    assert "Clone into a new draft" not in html
    assert reverse("taxonomy:publish", args=[draft.pk]) in html


def test_cloning_a_draft_is_refused_and_creates_nothing(
    lead_client: Client, draft: Taxonomy
) -> None:
    # when a lead posts a clone of a draft anyway (an old tab, a hand-made request)
    response = lead_client.post(reverse("taxonomy:clone", args=[draft.pk]))

    # then they are sent back to the draft with the reason, and no version is made
    assert response.status_code == 302
    assert response["Location"] == reverse("taxonomy:detail", args=[draft.pk])
    assert messages_of(response) == [
        (
            "error",
            "Aegis 2.0 v2 is a draft: edit it, or publish it and clone the "
            "published version.",
        )
    ]
    assert list(
        Taxonomy.objects.order_by("version").values_list("version", "status")
    ) == [(1, Status.PUBLISHED), (2, Status.DRAFT)]


def test_each_category_of_a_draft_has_labelled_fields_and_paragraph_textareas(
    lead_client: Client, draft: Taxonomy
) -> None:
    # when a lead opens a draft
    html = lead_client.get(reverse("taxonomy:detail", args=[draft.pk])).content.decode()

    # then every field has its own label, and the guidance boxes take a paragraph
    assert html.count('<fieldset class="category-edit"') == 23
    assert '<label for="id_cat-0-name">Exact string</label>' in html
    assert '<label for="id_cat-0-unsafe_when">Unsafe when</label>' in html
    assert html.count('rows="5"') == 46
    # and the full name stands as the card's title
    legend = '<legend><span class="code">S19</span> {}</legend>'
    assert legend.format("Political/Misinformation/Conspiracy") in html
