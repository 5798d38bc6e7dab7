from django.contrib import admin
from django.http import HttpRequest

from jury.models import GenerationRun, Judge, JuryRun, WorkerPresence


@admin.register(Judge)
class JudgeAdmin(admin.ModelAdmin):
    list_display = ("name", "backend", "model", "queue_name", "temperature", "enabled")
    list_filter = ("backend", "enabled")
    search_fields = ("name", "model")
    fieldsets = (
        (None, {"fields": ("name", "description", "enabled")}),
        ("Model", {"fields": ("backend", "model", "endpoint", "api_key_env", "extra")}),
        ("Sampling", {"fields": ("temperature", "max_tokens", "prompt_version")}),
        ("Worker", {"fields": ("queue",)}),
    )


@admin.register(JuryRun)
class JuryRunAdmin(admin.ModelAdmin):
    list_display = ("pk", "batch", "scope", "status", "created_at", "finished_at")
    list_filter = ("status", "scope")
    readonly_fields = ("created_at", "finished_at", "waiting_for_votes", "error")


@admin.register(GenerationRun)
class GenerationRunAdmin(admin.ModelAdmin):
    list_display = ("pk", "batch", "kind", "generator", "status", "created_at")
    list_filter = ("kind", "status")
    readonly_fields = ("created_at", "finished_at")


@admin.register(WorkerPresence)
class WorkerPresenceAdmin(admin.ModelAdmin):
    """Written by the workers themselves (jury.presence); shown, never edited."""

    list_display = (
        "hostname",
        "queues",
        "pid",
        "started_at",
        "last_seen",
        "stopped_at",
    )

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(
        self, request: HttpRequest, obj: WorkerPresence | None = None
    ) -> bool:
        return False
