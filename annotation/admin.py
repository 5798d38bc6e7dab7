from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from annotation.models import (
    Assignment,
    Audit,
    AuditItem,
    Batch,
    Dialogue,
    Feedback,
    GoldItem,
    ImportJob,
    Label,
    LabelCategory,
    OtherMapping,
)


class AssignmentInline(admin.TabularInline):
    model = Assignment
    extra = 0
    autocomplete_fields = ["annotator"]


@admin.register(Batch)
class BatchAdmin(admin.ModelAdmin):
    list_display = (
        "name",
        "taxonomy",
        "labels_required",
        "needs_caution_policy",
        "status",
    )
    list_filter = ("status", "needs_caution_policy")
    search_fields = ("name",)
    inlines = [AssignmentInline]


@admin.register(Dialogue)
class DialogueAdmin(admin.ModelAdmin):
    list_display = ("external_id", "batch", "source", "augmentation", "redacted")
    list_filter = ("batch", "source", "augmentation")
    search_fields = ("external_id", "prompt")
    readonly_fields = ("content_hash", "created_at", "import_job")
    list_select_related = ("batch",)


class LabelCategoryInline(admin.TabularInline):
    model = LabelCategory
    extra = 0


@admin.register(Label)
class LabelAdmin(admin.ModelAdmin):
    list_display = (
        "dialogue",
        "kind",
        "annotator",
        "judge",
        "label",
        "response_label",
        "valid",
    )
    list_filter = ("kind", "label", "valid")
    raw_id_fields = ("dialogue", "annotator")
    list_select_related = ("dialogue", "annotator")
    inlines = [LabelCategoryInline]


@admin.register(ImportJob)
class ImportJobAdmin(admin.ModelAdmin):
    list_display = (
        "pk",
        "original_name",
        "batch_name",
        "kind",
        "status",
        "imported",
        "error_count",
    )
    list_filter = ("status", "kind")
    readonly_fields = [f.name for f in ImportJob._meta.fields]


class AuditItemInline(admin.TabularInline):
    model = AuditItem
    extra = 0
    fields = ("position", "dialogue", "reviewed_at", "reviewed_by")
    readonly_fields = ("position", "dialogue")
    raw_id_fields = ("reviewed_by",)
    ordering = ("position",)
    can_delete = False

    def get_queryset(self, request: HttpRequest) -> QuerySet[AuditItem]:
        return super().get_queryset(request).select_related("dialogue")

    def has_add_permission(
        self, request: HttpRequest, obj: Audit | None = None
    ) -> bool:
        return False


@admin.register(Audit)
class AuditAdmin(admin.ModelAdmin):
    list_display = (
        "pk",
        "batch",
        "rate",
        "per_annotator",
        "seed",
        "population",
        "status",
        "created_by",
        "created_at",
    )
    list_filter = ("status", "per_annotator", "batch")
    list_select_related = ("batch", "created_by")
    # The sample is what the seed drew; change the review, not the draw.
    readonly_fields = ("batch", "rate", "per_annotator", "seed", "population")
    raw_id_fields = ("created_by",)
    inlines = [AuditItemInline]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # annotation.review.audits.services.create_audit draws the sample


@admin.register(Feedback)
class FeedbackAdmin(admin.ModelAdmin):
    list_display = (
        "pk",
        "label",
        "annotator",
        "author",
        "verdict",
        "guideline_ref",
        "updated_at",
        "read_at",
    )
    list_filter = ("verdict",)
    search_fields = ("text", "guideline_ref", "annotator__username")
    raw_id_fields = ("audit_item", "label", "annotator", "author")
    list_select_related = ("label", "annotator", "author")


@admin.register(GoldItem)
class GoldItemAdmin(admin.ModelAdmin):
    """Read-only here: the answer and `Dialogue.is_gold` change together through
    annotation.review.gold.services (the batch's Gold page, or manage.py mark_gold)."""

    list_display = ("dialogue", "label", "response_label", "created_by", "created_at")
    list_filter = ("label",)
    search_fields = ("dialogue__external_id",)
    list_select_related = ("dialogue", "created_by")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(
        self, request: HttpRequest, obj: GoldItem | None = None
    ) -> bool:
        return False

    def has_delete_permission(
        self, request: HttpRequest, obj: GoldItem | None = None
    ) -> bool:
        return False


@admin.register(OtherMapping)
class OtherMappingAdmin(admin.ModelAdmin):
    """Read only: a decision goes through annotation.other.services, which re-derives the
    final labels it changes (the Other page)."""

    list_display = ("text", "taxonomy", "category", "decided_by", "decided_at")
    list_filter = ("taxonomy",)
    search_fields = ("text",)
    list_select_related = ("taxonomy", "category", "decided_by")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(
        self, request: HttpRequest, obj: OtherMapping | None = None
    ) -> bool:
        return False

    def has_delete_permission(
        self, request: HttpRequest, obj: OtherMapping | None = None
    ) -> bool:
        return False
