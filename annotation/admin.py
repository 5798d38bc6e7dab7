from django.contrib import admin

from annotation.models import (
    Assignment,
    Batch,
    Dialogue,
    ImportJob,
    Label,
    LabelCategory,
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
