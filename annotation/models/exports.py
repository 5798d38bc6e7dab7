"""Export snapshots: one export of training data, its progress and its files."""

from django.conf import settings
from django.db import models

from annotation.models.batches import Batch, NeedsCautionPolicy
from annotation.models.jobs import Job, JobStatus, Leased


class ExportQuerySet(models.QuerySet["ExportSnapshot"]):
    def unfinished(self) -> "ExportQuerySet":
        return self.filter(status__in=[JobStatus.PENDING, JobStatus.RUNNING])


class ExportSnapshot(Job, Leased):
    """One export of training data: its parameters, progress and, once written, an
    immutable folder of files (DESIGN section 6) and its zip.

    A snapshot is never rewritten: a new export is a new row and a new folder.
    """

    batches = models.ManyToManyField(Batch, related_name="exports")
    # The batch names as they were when the export was asked for.
    batch_names = models.JSONField(default=list)
    seed = models.PositiveIntegerField(default=0)
    ratios = models.JSONField(default=list)
    # "" keeps each batch's own needs-caution policy.
    needs_caution_policy = models.CharField(
        max_length=16, blank=True, default="", choices=NeedsCautionPolicy.choices
    )
    include_refusals = models.BooleanField(default=True)
    topic_file = models.CharField(max_length=500, blank=True, default="")
    topic_name = models.CharField(max_length=255, blank=True, default="")
    status = models.CharField(
        max_length=16, choices=JobStatus.choices, default=JobStatus.PENDING
    )
    phase = models.CharField(max_length=32, blank=True, default="")
    steps_total = models.PositiveIntegerField(default=0)
    steps_done = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True, default="")
    # Where the files are, relative to MEDIA_ROOT.
    directory = models.CharField(max_length=500, blank=True, default="")
    zip_path = models.CharField(max_length=500, blank=True, default="")
    counts = models.JSONField(default=dict, blank=True)
    manifest_sha256 = models.CharField(max_length=64, blank=True, default="")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    objects = ExportQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"export {self.pk} of {', '.join(self.batch_names)}"

    @property
    def done(self) -> int:
        return self.steps_done

    @property
    def total(self) -> int:
        return self.steps_total
