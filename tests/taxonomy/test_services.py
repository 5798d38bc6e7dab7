"""Clone, edit and publish taxonomy versions; published versions are frozen."""

import pytest

from accounts.models import User
from taxonomy.models import Category, Group, Status, Taxonomy, TaxonomyLocked
from taxonomy.services import (
    TaxonomyError,
    add_category,
    clone_taxonomy,
    publish_taxonomy,
)
from tests.taxonomy.conftest import snapshot

# --- clone ---------------------------------------------------------------------------


def test_clone_makes_draft_v2_with_identical_categories(
    aegis2: Taxonomy, lead: User
) -> None:
    # given
    before = snapshot(aegis2)

    # when
    draft = clone_taxonomy(source=aegis2, by=lead)

    # then
    draft.refresh_from_db()
    assert (draft.name, draft.version, draft.status) == ("Aegis 2.0", 2, Status.DRAFT)
    assert draft.parent == aegis2
    assert draft.created_by == lead
    assert draft.published_at is None
    assert draft.description == aegis2.description
    assert snapshot(draft) == before
    # new rows, not the original ones moved over
    assert set(draft.categories.values_list("pk", flat=True)).isdisjoint(
        aegis2.categories.values_list("pk", flat=True)
    )
    assert snapshot(aegis2) == before
    assert aegis2.categories.count() == 23


def test_cloning_again_numbers_after_the_newest_version(
    aegis2: Taxonomy, draft: Taxonomy, lead: User
) -> None:
    # when: clone the old v1 once more
    second = clone_taxonomy(source=aegis2, by=lead)

    # then
    assert second.version == 3
    assert second.parent == aegis2
    assert list(
        Taxonomy.objects.filter(name="Aegis 2.0")
        .order_by("version")
        .values_list("version", "status")
    ) == [(1, "published"), (2, "draft"), (3, "draft")]


def test_clone_under_a_new_name_starts_at_version_1(
    aegis2: Taxonomy, lead: User
) -> None:
    # when
    fork = clone_taxonomy(source=aegis2, by=lead, name="Team taxonomy")

    # then
    assert (fork.name, fork.version, fork.status) == ("Team taxonomy", 1, "draft")
    assert snapshot(fork) == snapshot(aegis2)


# --- editing the draft; the published original stays frozen -------------------------


def test_cloning_a_draft_is_refused(draft: Taxonomy, lead: User) -> None:
    # when a draft is given as the source (it is edited in place instead)
    with pytest.raises(TaxonomyError) as refused:
        clone_taxonomy(source=draft, by=lead)

    # then it says so, and no version is made
    assert str(refused.value) == (
        "Aegis 2.0 v2 is a draft: edit it, or publish it and clone the published "
        "version."
    )
    assert Taxonomy.objects.filter(name="Aegis 2.0").count() == 2


def test_editing_the_draft_leaves_the_published_original_untouched(
    aegis2: Taxonomy, draft: Taxonomy
) -> None:
    # given
    before = snapshot(aegis2)
    violence = draft.categories.get(code="S1")

    # when
    violence.name = "Violence and Gore"
    violence.unsafe_when = "New wording."
    violence.save()
    draft.description = "Edited."
    draft.save()

    # then
    assert draft.categories.get(code="S1").name == "Violence and Gore"
    assert Taxonomy.objects.get(pk=draft.pk).description == "Edited."
    assert snapshot(aegis2) == before
    assert aegis2.categories.get(code="S1").name == "Violence"


def test_a_draft_category_can_be_deleted(draft: Taxonomy) -> None:
    # when
    draft.categories.get(code="S23").delete()

    # then
    assert draft.categories.count() == 22
    assert not draft.categories.filter(code="S23").exists()


def test_saving_a_category_of_a_published_version_raises(aegis2: Taxonomy) -> None:
    # given
    violence = aegis2.categories.get(code="S1")
    violence.name = "Changed"

    # when / then
    with pytest.raises(TaxonomyLocked):
        violence.save()
    assert Category.objects.get(pk=violence.pk).name == "Violence"


def test_adding_a_category_row_to_a_published_version_raises(
    aegis2: Taxonomy,
) -> None:
    # when / then
    with pytest.raises(TaxonomyLocked):
        Category.objects.create(
            taxonomy=aegis2, code="S24", name="New", group=Group.META, order=24
        )
    assert aegis2.categories.count() == 23
    assert not aegis2.categories.filter(code="S24").exists()


def test_saving_a_published_taxonomy_raises(aegis2: Taxonomy) -> None:
    # given
    aegis2.description = "Changed"
    aegis2.status = Status.DRAFT

    # when / then
    with pytest.raises(TaxonomyLocked):
        aegis2.save()
    stored = Taxonomy.objects.get(pk=aegis2.pk)
    assert stored.description != "Changed"
    assert stored.status == Status.PUBLISHED


def test_deleting_a_category_of_a_published_version_raises(
    aegis2: Taxonomy,
) -> None:
    # given
    other = aegis2.categories.get(code="S14")

    # when / then
    with pytest.raises(TaxonomyLocked):
        other.delete()
    assert aegis2.categories.filter(pk=other.pk, name="Other").exists()
    assert aegis2.categories.count() == 23


def test_add_category_refuses_a_published_version(aegis2: Taxonomy) -> None:
    # when / then
    with pytest.raises(TaxonomyLocked):
        add_category(taxonomy=aegis2, code="S24", name="Spam", group=Group.META)
    assert aegis2.categories.count() == 23


# --- publish -------------------------------------------------------------------------


def test_publish_freezes_the_draft(draft: Taxonomy, lead: User) -> None:
    # when
    published = publish_taxonomy(taxonomy=draft, by=lead)

    # then
    stored = Taxonomy.objects.get(pk=draft.pk)
    assert published.pk == draft.pk
    assert stored.status == Status.PUBLISHED
    assert stored.published_at is not None
    s1 = stored.categories.get(code="S1")
    s1.name = "Changed"
    with pytest.raises(TaxonomyLocked):
        s1.save()
    with pytest.raises(TaxonomyLocked):
        stored.save()
    with pytest.raises(TaxonomyLocked):
        add_category(taxonomy=stored, code="S24", name="Spam", group=Group.META)
    assert stored.categories.get(code="S1").name == "Violence"
    assert stored.categories.count() == 23


def test_publishing_the_newest_version_makes_it_the_default(
    draft: Taxonomy, lead: User
) -> None:
    # when
    publish_taxonomy(taxonomy=draft, by=lead)

    # then
    assert Taxonomy.objects.default() == draft


def test_publishing_twice_errors_and_keeps_the_first_publication_time(
    draft: Taxonomy, lead: User
) -> None:
    # given
    publish_taxonomy(taxonomy=draft, by=lead)
    first = Taxonomy.objects.get(pk=draft.pk).published_at

    # when / then
    with pytest.raises(TaxonomyLocked, match="already published"):
        publish_taxonomy(taxonomy=draft, by=lead)
    assert Taxonomy.objects.get(pk=draft.pk).published_at == first


def test_publish_refuses_a_taxonomy_without_categories(lead: User) -> None:
    # given
    empty = Taxonomy.objects.create(name="Empty", version=1)

    # when / then
    with pytest.raises(TaxonomyError, match="at least one active category"):
        publish_taxonomy(taxonomy=empty, by=lead)
    stored = Taxonomy.objects.get(pk=empty.pk)
    assert stored.status == Status.DRAFT
    assert stored.published_at is None


def test_publish_refuses_a_taxonomy_whose_categories_are_all_retired(
    draft: Taxonomy, lead: User
) -> None:
    # given
    draft.categories.update(retired=True)

    # when / then
    with pytest.raises(TaxonomyError, match="at least one active category"):
        publish_taxonomy(taxonomy=draft, by=lead)
    assert Taxonomy.objects.get(pk=draft.pk).status == Status.DRAFT


# --- add_category --------------------------------------------------------------------


def test_add_category_appends_after_the_last_one(draft: Taxonomy) -> None:
    # when
    category = add_category(
        taxonomy=draft, code=" S24 ", name=" Spam ", group=Group.FINE_GRAINED
    )

    # then
    stored = Category.objects.get(pk=category.pk)
    assert (stored.code, stored.name, stored.display_name) == ("S24", "Spam", "Spam")
    assert (stored.group, stored.order, stored.taxonomy_id) == (
        "fine_grained",
        24,
        draft.pk,
    )
    assert (stored.requires_text, stored.retired) == (False, False)
    assert draft.categories.count() == 24


def test_add_category_rejects_a_duplicate_code(draft: Taxonomy) -> None:
    # when / then
    with pytest.raises(TaxonomyError, match="Code S1 is already used"):
        add_category(taxonomy=draft, code="S1", name="Spam", group=Group.META)
    assert draft.categories.count() == 23
    assert not draft.categories.filter(name="Spam").exists()


def test_add_category_rejects_a_duplicate_name(draft: Taxonomy) -> None:
    # when / then
    with pytest.raises(TaxonomyError, match="named 'Malware' already exists"):
        add_category(taxonomy=draft, code="S24", name="Malware", group=Group.META)
    assert draft.categories.count() == 23
    assert not draft.categories.filter(code="S24").exists()
    assert draft.categories.filter(name="Malware").count() == 1


def test_add_category_to_an_empty_draft_starts_at_order_1(db: None) -> None:
    # given
    empty = Taxonomy.objects.create(name="Empty", version=1)

    # when
    category = add_category(taxonomy=empty, code="S1", name="Spam", group="meta")

    # then
    assert category.order == 1
