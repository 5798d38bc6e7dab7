"""Fixtures for the taxonomy tests: the seeded Aegis 2.0 version and a draft of it."""

import pytest

from accounts.models import User
from taxonomy.forms import CategoryForm
from taxonomy.models import Taxonomy
from taxonomy.services import clone_taxonomy

CATEGORY_FIELDS = tuple(CategoryForm.Meta.fields)


@pytest.fixture
def aegis2(db: None) -> Taxonomy:
    return Taxonomy.objects.get(name="Aegis 2.0", version=1)


@pytest.fixture
def draft(aegis2: Taxonomy, lead: User) -> Taxonomy:
    return clone_taxonomy(source=aegis2, by=lead)


def snapshot(taxonomy: Taxonomy) -> list[tuple[object, ...]]:
    """Every editable field of every category, in order: compare before and after."""
    return list(taxonomy.categories.order_by("order").values_list(*CATEGORY_FIELDS))
