"""Versioned hazard taxonomies (DESIGN section 2).

A published version is frozen: labels point at it forever, so changing it would
silently change what old labels mean. New wording goes into a cloned draft.
"""

from typing import Any

from django.conf import settings
from django.db import models
from django.db.models import Case, Q, Value, When

from accounts.refusals import Conflict
from taxonomy.matching import CategoryIndex, CategoryRef


class TaxonomyLocked(Conflict):
    """Raised on any attempt to change a published taxonomy version."""


class Group(models.TextChoices):
    CORE = "core", "Core"
    FINE_GRAINED = "fine_grained", "Fine-grained"
    META = "meta", "Meta"


# The order categories are shown in on every page (the labelling page of DESIGN
# section 8 first): core, fine-grained, then meta, each in the taxonomy's order. The
# codes run otherwise (S13 Needs Caution and S14 Other sit between S12 and S15).
DISPLAY_GROUPS = (Group.CORE, Group.FINE_GRAINED, Group.META)


class Status(models.TextChoices):
    DRAFT = "draft", "Draft"
    PUBLISHED = "published", "Published"


DEFAULT_TAXONOMY = "Aegis 2.0"
_PUBLISHED_INDEXES: dict[tuple[int, object], CategoryIndex] = {}


class TaxonomyQuerySet(models.QuerySet["Taxonomy"]):
    def published(self) -> "TaxonomyQuerySet":
        return self.filter(status=Status.PUBLISHED)

    def default(self) -> "Taxonomy":
        """The newest published Aegis 2.0 version (new batches start on it)."""
        found = (
            self.published().filter(name=DEFAULT_TAXONOMY).order_by("-version").first()
            or self.published().order_by("-published_at").first()
        )
        if found is None:
            raise Taxonomy.DoesNotExist("No published taxonomy: run the migrations.")
        return found


class Taxonomy(models.Model):
    """One version of a taxonomy; `name` + `version` identify it (e.g. Aegis 2.0 v1)."""

    name = models.CharField(max_length=100)
    version = models.PositiveIntegerField()
    status = models.CharField(
        max_length=16, choices=Status.choices, default=Status.DRAFT
    )
    description = models.TextField(blank=True, default="")
    parent = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="children"
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    created_at = models.DateTimeField(auto_now_add=True)
    published_at = models.DateTimeField(null=True, blank=True)

    objects = TaxonomyQuerySet.as_manager()

    class Meta:
        verbose_name_plural = "taxonomies"
        ordering = ["name", "-version"]
        constraints = [
            models.UniqueConstraint(
                fields=["name", "version"], name="taxonomy_name_version"
            )
        ]

    def __str__(self) -> str:
        return f"{self.name} v{self.version}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if (
            self.pk
            and Taxonomy.objects.filter(pk=self.pk, status=Status.PUBLISHED).exists()
        ):
            raise TaxonomyLocked(f"{self} is published; clone it to change it.")
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> tuple[int, dict[str, int]]:
        if Taxonomy.objects.filter(pk=self.pk, status=Status.PUBLISHED).exists():
            raise TaxonomyLocked(f"{self} is published; labels may point at it.")
        return super().delete(*args, **kwargs)

    @property
    def is_published(self) -> bool:
        return self.status == Status.PUBLISHED

    def offered_category_names(self) -> list[str]:
        """The names a vote may choose (not retired), in display order."""
        return list(self.categories.active().displayed().values_list("name", flat=True))

    def category_index(self) -> CategoryIndex:
        """Resolve category names, codes and old spellings against this version.

        A published version never changes, so its index is built once per process
        (every vote resolves its categories through it); a draft's is built anew.
        """
        key = (self.pk, self.published_at)
        cached = _PUBLISHED_INDEXES.get(key)
        if cached is not None:
            return cached
        index = CategoryIndex(
            CategoryRef(id=pk, code=code, name=name, retired=retired)
            for pk, code, name, retired in self.categories.values_list(
                "pk", "code", "name", "retired"
            )
        )
        if self.is_published:
            _PUBLISHED_INDEXES[key] = index
        return index


class CategoryQuerySet(models.QuerySet["Category"]):
    def active(self) -> "CategoryQuerySet":
        return self.filter(retired=False)

    def displayed(self) -> "CategoryQuerySet":
        """In the order every page shows them (`DISPLAY_GROUPS`)."""
        rank = Case(
            *(When(group=g, then=Value(i)) for i, g in enumerate(DISPLAY_GROUPS)),
            default=Value(len(DISPLAY_GROUPS)),
        )
        return self.order_by(rank, "order", "pk")


class Category(models.Model):
    """A hazard category; `name` is the exact string used in data and guard prompts."""

    taxonomy = models.ForeignKey(
        Taxonomy, on_delete=models.CASCADE, related_name="categories"
    )
    code = models.CharField(max_length=8)
    name = models.CharField(max_length=100)
    display_name = models.CharField(max_length=100)
    group = models.CharField(max_length=16, choices=Group.choices)
    unsafe_when = models.TextField(blank=True, default="")
    allowed_when = models.TextField(blank=True, default="")
    order = models.PositiveIntegerField()
    # "Other" asks for free text that leads later map onto fine-grained categories.
    requires_text = models.BooleanField(default=False)
    # A retired category stays for the labels made with it but is not offered.
    retired = models.BooleanField(default=False)

    objects = CategoryQuerySet.as_manager()

    class Meta:
        verbose_name_plural = "categories"
        ordering = ["taxonomy", "order"]
        constraints = [
            models.UniqueConstraint(
                fields=["taxonomy", "code"], name="category_code_unique"
            ),
            models.UniqueConstraint(
                fields=["taxonomy", "name"], name="category_name_unique"
            ),
            models.CheckConstraint(
                condition=Q(group__in=[g.value for g in Group]),
                name="category_group_valid",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.code}: {self.name}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if (
            self.taxonomy_id
            and Taxonomy.objects.filter(
                pk=self.taxonomy_id, status=Status.PUBLISHED
            ).exists()
        ):
            raise TaxonomyLocked(
                f"{self.taxonomy} is published; clone it to change it."
            )
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> tuple[int, dict[str, int]]:
        if Taxonomy.objects.filter(
            pk=self.taxonomy_id, status=Status.PUBLISHED
        ).exists():
            raise TaxonomyLocked(
                f"{self.taxonomy} is published; clone it to change it."
            )
        return super().delete(*args, **kwargs)
