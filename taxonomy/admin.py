from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from taxonomy.models import Category, Taxonomy


def _editable(obj: Taxonomy | None) -> bool:
    # Published versions are frozen; clone them on the Taxonomy page instead.
    return obj is None or not obj.is_published


class CategoryInline(admin.TabularInline):
    model = Category
    extra = 0

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return _editable(obj)

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return _editable(obj)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return _editable(obj)


@admin.register(Taxonomy)
class TaxonomyAdmin(admin.ModelAdmin):
    list_display = ("__str__", "status", "published_at", "parent")
    inlines = [CategoryInline]

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return _editable(obj)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return _editable(obj)
