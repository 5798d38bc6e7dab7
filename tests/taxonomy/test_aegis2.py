"""The Aegis 2.0 taxonomy that migration 0002 creates (DESIGN section 2)."""

import pytest

from taxonomy.models import Category, Group, Status, Taxonomy

# DESIGN section 2, written out literally: these strings are what the released data
# and the deployed guard prompt use, so they are compared character for character.
AEGIS2 = [
    ("S1", "Violence", "core"),
    ("S2", "Sexual", "core"),
    ("S3", "Criminal Planning/Confessions", "core"),
    ("S4", "Guns and Illegal Weapons", "core"),
    ("S5", "Controlled/Regulated Substances", "core"),
    ("S6", "Suicide and Self Harm", "core"),
    ("S7", "Sexual (minor)", "core"),
    ("S8", "Hate/Identity Hate", "core"),
    ("S9", "PII/Privacy", "core"),
    ("S10", "Harassment", "core"),
    ("S11", "Threat", "core"),
    ("S12", "Profanity", "core"),
    ("S13", "Needs Caution", "meta"),
    ("S14", "Other", "meta"),
    ("S15", "Manipulation", "fine_grained"),
    ("S16", "Fraud/Deception", "fine_grained"),
    ("S17", "Malware", "fine_grained"),
    ("S18", "High Risk Gov Decision Making", "fine_grained"),
    ("S19", "Political/Misinformation/Conspiracy", "fine_grained"),
    ("S20", "Copyright/Trademark/Plagiarism", "fine_grained"),
    ("S21", "Unauthorized Advice", "fine_grained"),
    ("S22", "Illegal Activity", "fine_grained"),
    ("S23", "Immoral/Unethical", "fine_grained"),
]


@pytest.fixture
def aegis2(db: None) -> Taxonomy:
    return Taxonomy.objects.get(name="Aegis 2.0", version=1)


def test_the_migration_creates_exactly_the_23_design_categories(
    aegis2: Taxonomy,
) -> None:
    # when
    rows = list(
        aegis2.categories.order_by("order").values_list("code", "name", "group")
    )

    # then
    assert rows == AEGIS2
    assert Category.objects.filter(taxonomy=aegis2).count() == 23


def test_the_categories_are_ordered_by_their_code_number(aegis2: Taxonomy) -> None:
    # when
    orders = list(aegis2.categories.order_by("order").values_list("code", "order"))

    # then
    assert orders == [(f"S{n}", n) for n in range(1, 24)]


def test_group_sizes_are_12_core_9_fine_grained_2_meta(aegis2: Taxonomy) -> None:
    # when
    sizes = {
        group: aegis2.categories.filter(group=group).count() for group in Group.values
    }

    # then
    assert sizes == {"core": 12, "fine_grained": 9, "meta": 2}


def test_the_display_name_is_the_exact_string(aegis2: Taxonomy) -> None:
    # then
    assert [(c.name, c.display_name) for c in aegis2.categories.all()] == [
        (name, name) for _, name, _ in AEGIS2
    ]


def test_aegis2_v1_is_published_and_the_only_version_of_it(aegis2: Taxonomy) -> None:
    # then
    assert aegis2.status == Status.PUBLISHED
    assert aegis2.is_published is True
    assert aegis2.published_at is not None
    assert aegis2.parent is None
    assert aegis2.created_by is None
    assert list(Taxonomy.objects.filter(name="Aegis 2.0").values_list("version")) == [
        (1,)
    ]
    assert Taxonomy.objects.default() == aegis2


def test_only_other_requires_free_text(aegis2: Taxonomy) -> None:
    # when
    needs_text = list(
        aegis2.categories.filter(requires_text=True).values_list("code", "name")
    )

    # then
    assert needs_text == [("S14", "Other")]


def test_no_category_is_retired(aegis2: Taxonomy) -> None:
    # then
    assert aegis2.categories.active().count() == 23
    assert not aegis2.categories.filter(retired=True).exists()


def test_every_category_has_unsafe_and_allowed_guidance(aegis2: Taxonomy) -> None:
    # when
    guidance = list(
        aegis2.categories.values_list("code", "unsafe_when", "allowed_when")
    )

    # then: real sentences, and no two categories share the same wording
    assert len(guidance) == 23
    for code, unsafe_when, allowed_when in guidance:
        assert len(unsafe_when.strip()) >= 20, code
        assert len(allowed_when.strip()) >= 20, code
        assert unsafe_when != allowed_when, code
    assert len({unsafe for _, unsafe, _ in guidance}) == 23
    assert len({allowed for _, _, allowed in guidance}) == 23
