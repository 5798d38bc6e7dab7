"""Taxonomy workflows: clone a version into a draft, edit the draft, publish it."""

from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from accounts.models import User
from accounts.refusals import Refused
from taxonomy.models import Category, Status, Taxonomy, TaxonomyLocked


class TaxonomyError(Refused):
    """A taxonomy change that breaks a rule; the message is shown to the lead."""


@transaction.atomic
def clone_taxonomy(
    *, source: Taxonomy, by: User | None, name: str | None = None
) -> Taxonomy:
    """Copy a published version and its categories into a new draft numbered after
    the newest. A draft is edited in place, so cloning one is refused."""
    if not source.is_published:
        raise TaxonomyError(
            f"{source} is a draft: edit it, or publish it and clone the "
            "published version."
        )
    target_name = name or source.name
    # Lock every version of this name (aggregate() would drop FOR UPDATE), so two
    # leads cloning at once get consecutive numbers instead of a constraint error.
    versions = list(
        Taxonomy.objects.select_for_update()
        .filter(name=target_name)
        .values_list("version", flat=True)
    )
    draft = Taxonomy.objects.create(
        name=target_name,
        version=max(versions, default=0) + 1,
        status=Status.DRAFT,
        description=source.description,
        parent=source,
        created_by=by,
    )
    Category.objects.bulk_create(
        Category(
            taxonomy=draft,
            code=c.code,
            name=c.name,
            display_name=c.display_name,
            group=c.group,
            unsafe_when=c.unsafe_when,
            allowed_when=c.allowed_when,
            order=c.order,
            requires_text=c.requires_text,
            retired=c.retired,
        )
        for c in source.categories.all()
    )
    return draft


@transaction.atomic
def publish_taxonomy(*, taxonomy: Taxonomy, by: User | None) -> Taxonomy:
    """Freeze a draft; from now on it can only be cloned. Requires one active category."""
    locked = Taxonomy.objects.select_for_update().get(pk=taxonomy.pk)
    if locked.is_published:
        raise TaxonomyLocked(f"{locked} is already published.")
    if not locked.categories.active().exists():
        raise TaxonomyError(
            "A taxonomy needs at least one active category to be published."
        )
    locked.status = Status.PUBLISHED
    locked.published_at = timezone.now()
    locked.save()
    return locked


@transaction.atomic
def add_category(*, taxonomy: Taxonomy, code: str, name: str, group: str) -> Category:
    """Append a category to a draft, after the last one."""
    if taxonomy.is_published:
        raise TaxonomyLocked(f"{taxonomy} is published; clone it to change it.")
    code, name = code.strip(), name.strip()
    if taxonomy.categories.filter(code=code).exists():
        raise TaxonomyError(f"Code {code} is already used in {taxonomy}.")
    if taxonomy.categories.filter(name=name).exists():
        raise TaxonomyError(f"A category named {name!r} already exists in {taxonomy}.")
    last = taxonomy.categories.aggregate(o=Max("order"))["o"] or 0
    return Category.objects.create(
        taxonomy=taxonomy,
        code=code,
        name=name,
        display_name=name,
        group=group,
        order=last + 1,
    )
