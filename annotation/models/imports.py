"""Import jobs: an upload being read into a batch by a worker."""

from django.conf import settings
from django.db import models

from annotation.models.batches import Batch
from annotation.models.jobs import Job, JobStatus, Leased


class ImportKind(models.TextChoices):
    DIALOGUES = "dialogues", "Dialogues"
    LABELS = "labels", "Labels"


class ImportJobQuerySet(models.QuerySet["ImportJob"]):
    def unfinished(self) -> "ImportJobQuerySet":
        return self.filter(status__in=[JobStatus.PENDING, JobStatus.RUNNING])


class ImportJob(Job, Leased):
    """An upload being imported by a worker; its progress is what the page polls."""

    kind = models.CharField(
        max_length=16, choices=ImportKind.choices, default=ImportKind.DIALOGUES
    )
    batch_name = models.CharField(max_length=100)
    batch = models.ForeignKey(
        Batch, null=True, blank=True, on_delete=models.SET_NULL, related_name="imports"
    )
    format = models.CharField(max_length=32, blank=True, default="")
    options = models.JSONField(default=dict, blank=True)
    file_path = models.CharField(max_length=500)
    original_name = models.CharField(max_length=255)
    status = models.CharField(
        max_length=16, choices=JobStatus.choices, default=JobStatus.PENDING
    )
    phase = models.CharField(max_length=32, blank=True, default="")
    rows_total = models.PositiveIntegerField(null=True, blank=True)
    rows_read = models.PositiveIntegerField(default=0)
    imported = models.PositiveIntegerField(default=0)
    skipped_duplicates = models.PositiveIntegerField(default=0)
    errors = models.JSONField(default=list, blank=True)
    error_count = models.PositiveIntegerField(default=0)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    objects = ImportJobQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"import {self.pk} of {self.original_name} into {self.batch_name}"

    @property
    def done(self) -> int:
        return self.rows_read

    @property
    def total(self) -> int:
        return self.rows_total or 0

    @property
    def error_text(self) -> str:
        """Why the import failed: what was wrong with the file, or how many rows
        had an error ("" unless it failed)."""
        if self.status != JobStatus.FAILED:
            return ""
        file_level = [
            e.get("message") or e.get("text") or ""
            for e in self.errors or []
            if e.get("line") is None
        ]
        if file_level:
            return " ".join(file_level)
        if self.error_count == 1:
            return "1 row has an error; nothing was written."
        return f"{self.error_count} rows have errors; nothing was written."
